"""Where does the latency inferwatch records come from? The same probes, layer by layer.

A tiny HTTP server answers in another process (so its work is not ours). The same 20 targets
at 1 s are probed by, in turn:

  bare       a Prober, 20 tasks spread over the second with asyncio.sleep
  scheduler  a Prober driven by monitor/agent/scheduler.py (APScheduler's tick placing slots)
  monitor    the real Monitor (scheduler, pipeline, writer) with its writes switched off
  full       the real Monitor writing to SQLite

and each prints the recorded total and connect times. The gap between two rows is what that
layer adds to every probe's recorded latency (issue 9: the monitor must measure the endpoint,
not itself).

    .venv/bin/python benchmarks/latency_floor.py            # all four, 12 s each
    .venv/bin/python benchmarks/latency_floor.py bare scheduler --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import free_port
from monitor.agent import eventloop
from monitor.agent import writer as writer_module
from monitor.agent.scheduler import Slots, make_scheduler
from monitor.agent.service import Monitor
from monitor.config.load import load_config
from monitor.domain.evidence import RequestSpec, Timings
from monitor.probing.engine import Prober
from monitor.store.db import open_database

TARGETS = 20
INTERVAL = 1.0

SERVER = """
import http.server, socketserver, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingTCPServer):
    request_queue_size = 128  # the default 5 drops SYNs when probes start together: +1 s each
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


async def bare(url: str, seconds: float, seen: list[Timings]) -> None:
    async with Prober() as prober:

        async def target(i: int) -> None:
            await asyncio.sleep(i * INTERVAL / TARGETS)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                seen.append((await prober.probe(RequestSpec("GET", url), 5)).timings)
                await asyncio.sleep(INTERVAL)

        await asyncio.gather(*(target(i) for i in range(TARGETS)))


async def scheduler(url: str, seconds: float, seen: list[Timings]) -> None:
    async with Prober() as prober:
        jobs = make_scheduler()

        async def job(_name: str) -> None:
            seen.append((await prober.probe(RequestSpec("GET", url), 5)).timings)

        slots = Slots(jobs, job)
        jobs.start()
        for i in range(TARGETS):
            slots.plan(f"t{i}", INTERVAL)
        slots.start()
        await asyncio.sleep(seconds)
        slots.stop()
        jobs.shutdown(wait=False)
        await asyncio.sleep(2)  # let the last probes finish before the client closes


def monitor(write: bool):  # type: ignore[no-untyped-def]
    async def run(url: str, seconds: float, seen: list[Timings]) -> None:
        folder = Path(tempfile.mkdtemp(prefix="latency-floor-"))
        config_file = folder / "inferwatch.yaml"
        config_file.write_text(
            f"database: sqlite:///{folder / 'floor.db'}\n"
            f"defaults: {{interval: {INTERVAL}s, timeout: 900ms}}\ntargets:\n"
            + "".join(f"  - {{name: t{i}, kind: http, url: '{url}'}}\n" for i in range(TARGETS))
        )
        config = load_config(config_file, env={})
        original = writer_module.Writer.submit

        async def submit(self: Any, result: Any) -> None:
            seen.append(result.timings)
            if write:
                await original(self, result)

        writer_module.Writer.submit = submit  # type: ignore[method-assign]
        try:
            running = Monitor(config, open_database(config.database), env={})
            task = asyncio.create_task(running.run())
            await asyncio.sleep(seconds)
            running.stop()
            await task
        finally:
            writer_module.Writer.submit = original  # type: ignore[method-assign]

    return run


LAYERS = {
    "bare": bare,
    "scheduler": scheduler,
    "monitor": monitor(write=False),
    "full": monitor(write=True),
}


def measure(name: str, seconds: float) -> None:
    """One layer against its own fresh server (run in a child process: nothing carries over)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    time.sleep(0.5)
    try:
        seen: list[Timings] = []
        eventloop.run(LAYERS[name](f"http://127.0.0.1:{port}/", seconds, seen))
    finally:
        server.terminate()
    total = sorted(t.total_ms for t in seen)
    connect = sorted(t.connect_ms for t in seen if t.connect_ms is not None)
    print(
        f"{name:<10} {len(total):>6} {statistics.median(total):>7.2f} "
        f"{total[int(len(total) * 0.99) - 1]:>7.2f} {total[0]:>7.2f} "
        f"{statistics.median(connect):>11.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("layers", nargs="*", help=f"any of {', '.join(LAYERS)} (default: all)")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process measuring one layer
    args = parser.parse_args()
    if args.one:
        measure(args.one, args.seconds)
        return
    unknown = set(args.layers) - set(LAYERS)
    if unknown:
        parser.error(
            f"unknown layer(s) {', '.join(sorted(unknown))}; choose from {', '.join(LAYERS)}"
        )
    loop = eventloop.loop_name()
    print(f"{TARGETS} targets every {INTERVAL:g} s for {args.seconds:g} s each, on {loop}")
    header = ("layer", "probes", "p50 ms", "p99 ms", "min ms", "connect p50")
    print("{:<10} {:>6} {:>7} {:>7} {:>7} {:>11}".format(*header), flush=True)
    for name in args.layers or list(LAYERS):
        subprocess.run(
            [sys.executable, __file__, "--one", name, "--seconds", str(args.seconds)],
            stderr=subprocess.DEVNULL,
            check=False,
        )


if __name__ == "__main__":
    main()
