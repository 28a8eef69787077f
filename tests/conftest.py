"""Shared fixtures: a real fake provider on 127.0.0.1, a migrated SQLite file, config helpers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config.load import parse_config
from monitor.config.model import Config
from monitor.demo.simulator import FakeProvider
from monitor.domain.evidence import ProbeResult
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_targets


@pytest.fixture(scope="session")
def shared_provider() -> Iterator[FakeProvider]:
    """One fake provider for the whole run; `provider` hands it to each test wiped clean."""
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def provider(shared_provider: FakeProvider) -> FakeProvider:
    shared_provider.reset()
    return shared_provider


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inferwatch.db'}"


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture
def inbox() -> Iterator[Any]:
    from tests.smtp import Inbox

    box = Inbox().up()
    yield box
    box.down()
