"""The monitor's event loop: uvloop, answering IP addresses without a worker thread."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from pathlib import Path

import pytest

from monitor.agent import eventloop
from monitor.domain.evidence import RequestSpec
from monitor.probing.engine import Prober
from monitor.probing.transport import numeric_address


def test_an_ip_address_is_answered_as_getaddrinfo_would() -> None:
    for host, port in (("127.0.0.1", 8080), ("::1", 443), ("10.0.0.7", None)):
        expected = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
        assert numeric_address(host, port, 0, socket.SOCK_STREAM, 0) == [expected]
    assert numeric_address("api.openai.com", 443, 0, 0, 0) is None  # a name: the resolver's
    assert numeric_address("127.0.0.1", 80, socket.AF_INET6, 0, 0) is None  # not that family
    assert numeric_address("127.0.0.1", "http", 0, 0, 0) is None  # a service name: resolver's


def worker_switches() -> int:
    """Context switches of this process's libuv worker threads so far."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        if (task / "comm").read_text().strip() == "libuv-worker":
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
    return total


@pytest.mark.skipif(
    eventloop.loop_name() != "uvloop" or not os.path.isdir("/proc/self/task"),
    reason="uvloop on Linux only",
)
def test_probes_of_an_ip_address_make_no_trip_to_a_worker_thread() -> None:
    """uvloop's sock_connect looks the address up again: through its thread pool, one trip
    per probe, unless the loop answers IP addresses itself."""

    async def probe_many() -> tuple[int, int]:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with Prober() as prober:
            before = worker_switches()
            statuses = [
                (await prober.probe(RequestSpec("GET", f"http://127.0.0.1:{port}/"), 5)).status
                for _ in range(200)
            ]
            after = worker_switches()
        server.close()
        return statuses.count(200), after - before

    answered, switches = eventloop.run(probe_many())
    assert answered == 200
    assert switches < 20, f"{switches} worker-thread switches for 200 probes"


def test_a_run_collects_less_often_and_leaves_the_start_up_heap_alone() -> None:
    before = gc.get_threshold()
    kept = object.__new__(type("Kept", (), {}))  # noqa: F841  # a long-lived object

    async def inside() -> tuple[tuple[int, int, int], int]:
        return gc.get_threshold(), gc.get_freeze_count()

    threshold, frozen = eventloop.run(inside())

    assert threshold[0] == max(before[0], eventloop.YOUNG_THRESHOLD)
    assert threshold[1:] == before[1:]
    assert frozen > 0  # what existed at the start is left to reference counting
    assert gc.get_threshold() == before  # undone for a caller that goes on
    assert gc.get_freeze_count() == 0
