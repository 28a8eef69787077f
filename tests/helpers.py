"""Helpers the tests share: configs from plain data, and one probe of every target."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from monitor.config.load import parse_config
from monitor.config.model import Config
from monitor.domain.evidence import ProbeResult
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_targets


def make_config(
    targets: list[dict[str, Any]], env: Mapping[str, str] | None = None, **top: Any
) -> Config:
    text = yaml.safe_dump({"targets": targets, **top}, sort_keys=False)
    return parse_config(text, file="test.yaml", env=env or {})


def write_config(path: Path, targets: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(yaml.safe_dump({"targets": targets, **top}, sort_keys=False))
    return path


def probe_once(
    config: Config, env: Mapping[str, str] | None = None, **prober: Any
) -> dict[str, ProbeResult]:
    """Probe every target of `config` once; results by target name."""

    async def run() -> list[ProbeResult]:
        async with Prober(config.concurrency, **prober) as p:
            return await probe_targets(config, config.targets, p, env or {})

    return {r.target: r for r in asyncio.run(run())}


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A raw TCP server on 127.0.0.1 in the test's own loop, for answers no HTTP framework
    would send: (its http:// URL, {"port": ..., "connections": accepted so far})."""
    seen = {"port": 0, "connections": 0}

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    seen["port"] = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{seen['port']}", seen
    finally:
        server.close()
        await server.wait_closed()
