"""The probes' own HTTP transport (monitor/probing/transport.py) against real local servers:
what it sends, how an answer ends, its limits, and what a failure says."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

from monitor.domain.evidence import Evidence, RequestSpec, TransportError
from monitor.probing import transport as transport_module
from monitor.probing.engine import Prober
from tests.helpers import Handler, raw_server

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def answering(raw: bytes, seen: list[bytes] | None = None) -> Handler:
    """A handler that reads the request head, writes `raw`, and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        writer.write(raw)
        await writer.drain()

    return handler


def resolve_as(monkeypatch: pytest.MonkeyPatch, addresses: list[str], asked: list[str]) -> None:
    """Make the running loop resolve every name to `addresses`, in order, noting each name
    asked (no local server can make a name resolve as a test needs; the connections stay
    real)."""

    async def resolve(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)


def probe(handler: Handler, method: str = "GET", timeout: float = 5.0, **kw: Any) -> Evidence:
    async def scenario() -> Evidence:
        async with raw_server(handler) as (url, _), Prober(**kw) as prober:
            return await prober.probe(RequestSpec(method, f"{url}/x"), timeout)

    return asyncio.run(scenario())


def test_the_request_asks_to_close_and_carries_what_httpx_built() -> None:
    seen: list[bytes] = []
    ev = probe(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", seen))

    assert ev.status == 200 and ev.body == b"ok"
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /x HTTP/1.1"
    assert "Connection: close" in lines
    assert not any(line.lower() == "connection: keep-alive" for line in lines)  # httpx's default
    assert any(line.lower().startswith("host: 127.0.0.1:") for line in lines)


def test_a_body_without_length_ends_with_the_connection() -> None:
    ev = probe(answering(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it"))

    assert ev.error is None and ev.status == 200
    assert ev.body == b"all of it"


def test_a_chunked_body_is_read_whole_and_one_cut_short_is_a_bad_answer() -> None:
    whole = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    ev = probe(answering(whole))
    assert ev.error is None and ev.body == b"abcde"

    cut = probe(answering(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n"))
    assert cut.error == TransportError.PROTOCOL
    assert cut.error_detail == (
        "not a valid HTTP answer: the server disconnected during the answer: "
        "the chunked body did not end"
    )


def test_an_answer_to_head_has_no_body_whatever_its_length_says() -> None:
    ev = probe(answering(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"), method="HEAD")

    assert ev.error is None and ev.status == 200 and ev.body == b""


def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    raw = (
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-real: yes\r\n\r\nok"
    )
    ev = probe(answering(raw))

    assert ev.error is None and ev.status == 200 and ev.body == b"ok"
    assert ev.headers.get("x-real") == "yes" and "link" not in ev.headers


def test_a_long_head_is_read_and_an_endless_one_is_a_bad_answer() -> None:
    policy = b"default-src 'self' " + b"x" * 60_000  # a provider's long policy: fine
    ev = probe(answering(b"HTTP/1.1 200 OK\r\ncontent-security-policy: %s\r\n\r\n" % policy))
    assert ev.error is None and ev.status == 200

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(10_000):  # 10,000 x 24 bytes: over the 100 KiB limit, never ending
            writer.write(b"x-filler-%05d: 0123456\r\n" % i)
            await writer.drain()

    endless_ev = probe(endless)
    assert endless_ev.error == TransportError.PROTOCOL
    assert endless_ev.error_detail == "not a valid HTTP answer: the response head is over 100 KiB"

    fields = b"".join(b"x-f%d: 1\r\n" % i for i in range(1001))
    many = probe(answering(b"HTTP/1.1 200 OK\r\n%s\r\n" % fields))
    assert many.error == TransportError.PROTOCOL
    assert many.error_detail == "not a valid HTTP answer: over 1000 header fields"


def test_a_reset_before_the_answer_is_a_connection_failure() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    ev = probe(reset)

    assert ev.error == TransportError.CONNECT
    assert ev.error_detail == "connection failed: the server reset the connection"


def test_a_probe_that_times_out_closes_its_connection() -> None:
    async def scenario() -> tuple[Evidence, bytes]:
        ended: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            ended.set_result(await reader.read())  # b"" once the client closes

        async with raw_server(stall) as (url, _), Prober() as prober:
            ev = await prober.probe(RequestSpec("GET", f"{url}/x"), 0.2)
            return ev, await asyncio.wait_for(ended, 2)

    ev, rest = asyncio.run(scenario())

    assert ev.error == TransportError.TIMEOUT
    assert ev.error_detail == "read timeout: no response within 0.2 s"
    assert rest == b""  # the client closed: the server saw the end of the stream


def test_several_addresses_are_tried_until_one_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name with two addresses, the first refusing: only the lookup is faked (no server can
    make a name resolve to two loopback addresses on cue); the connections are real."""

    async def scenario() -> Evidence:
        async with raw_server(answering(OK)) as (_, srv):
            resolve_as(monkeypatch, ["127.0.0.2", "127.0.0.1"], asked)  # nothing on .2
            async with Prober() as prober:
                url = f"http://model.example:{srv['port']}/"
                return await prober.probe(RequestSpec("GET", url), 5)

    asked: list[str] = []
    ev = asyncio.run(scenario())
    assert asked == ["model.example"]

    assert ev.error is None and ev.status == 200 and ev.body == b"ok"
    assert ev.timings.connect_ms is not None  # resolution and TCP, both timed


class _RecordingTransport(asyncio.Transport):
    """Records flow control: the one edge a server cannot show on cue (how far ahead the
    client read is up to the kernel's buffers)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


def test_the_body_is_read_no_further_ahead_than_the_prober_takes() -> None:
    async def scenario() -> list[str]:
        exchange = transport_module._Exchange(asyncio.get_running_loop(), head_request=False)
        recorder = _RecordingTransport()
        exchange.connection_made(recorder)
        exchange.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n")
        for _ in range(transport_module.READ_AHEAD // 65536 + 1):
            exchange.data_received(b"\0" * 65536)
        paused = list(recorder.calls)
        assert len(exchange.take()) > transport_module.READ_AHEAD
        return paused + recorder.calls[len(paused) :]

    assert asyncio.run(scenario()) == ["pause", "resume"]


def test_trailers_and_a_second_answer_are_not_the_answer_s_headers() -> None:
    trailers = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
        b"content-encoding: gzip\r\nx-trailer: t\r\n\r\n"
    )
    ev = probe(answering(trailers))
    assert ev.error is None and ev.body == b"ok"
    assert "content-encoding" not in ev.headers and "x-trailer" not in ev.headers

    two = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 500 No\r\nx-injected: yes\r\n\r\n"
    )
    ev = probe(answering(two))
    assert ev.error is None and ev.status == 200 and ev.body == b"ok"
    assert ev.headers == {"content-length": "2"}


def test_endless_trailers_are_a_bad_answer() -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
        for _ in range(20_000):  # 20,000 x 20 bytes, never ending (held in memory before)
            writer.write(b"x-more: 0123456789\r\n")
            await writer.drain()

    ev = probe(endless)

    assert ev.error == TransportError.PROTOCOL
    assert ev.error_detail == "not a valid HTTP answer: the chunk framing is over 100 KiB"


def test_a_non_ascii_host_is_resolved_and_verified_as_the_host_header_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    async def scenario() -> Evidence:
        async with raw_server(answering(OK)) as (_, srv):
            resolve_as(monkeypatch, ["127.0.0.1"], asked)
            async with Prober() as prober:
                url = f"http://straße.example:{srv['port']}/"
                return await prober.probe(RequestSpec("GET", url), 5)

    ev = asyncio.run(scenario())

    assert ev.status == 200
    # IDNA 2008, as httpx writes Host (Python's own codec would make it strasse.example)
    assert asked == ["xn--strae-oqa.example"]


def test_a_redirect_is_not_timed_and_a_later_hop_s_phase_names_its_timeout() -> None:
    async def scenario() -> tuple[Evidence, Evidence]:
        async with raw_server(answering(OK)) as (_, srv):
            port = srv["port"]
            moved = b"HTTP/1.1 302 Found\r\nlocation: http://localhost:%d/\r\n\r\n" % port
            async with raw_server(answering(moved)) as (url, _), Prober() as prober:
                ev = await prober.probe(RequestSpec("GET", f"{url}/x"), 5)

            async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await asyncio.sleep(2)  # no TLS handshake

            async with raw_server(stall) as (_, stalled_server):
                stalled = stalled_server["port"]
                to_stall = (
                    b"HTTP/1.1 302 Found\r\nlocation: https://127.0.0.1:%d/\r\n\r\n" % stalled
                )
                async with raw_server(answering(to_stall)) as (url, _), Prober() as prober:
                    late = await prober.probe(RequestSpec("GET", f"{url}/x"), 0.3)
        return ev, late

    ev, late = asyncio.run(scenario())

    assert ev.status == 200
    # The first hop's connection (an IP address: no name to resolve) and nothing of the second
    # (a name): before, its resolution start was taken for the connection's, a negative span.
    assert ev.timings.connect_ms is not None and ev.timings.connect_ms > 0
    assert late.error == TransportError.TIMEOUT
    # The second hop's phase, though the first hop's answer was timed.
    assert late.error_detail == "connect timeout: no TLS handshake within 0.3 s"


def test_credentials_do_not_follow_a_redirect_to_another_origin() -> None:
    seen: dict[str, list[bytes]] = {"there": [], "here": []}

    async def scenario() -> tuple[Evidence, Evidence]:
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        headers = {"x-api-key": "sk-ant-SECRET", "x-goog-api-key": "AIzaSECRET"}
        async with raw_server(answering(ok, seen["there"])) as (there, _):
            elsewhere = b"HTTP/1.1 307 Moved\r\nlocation: %s/y\r\n\r\n" % there.encode()
            async with raw_server(answering(elsewhere)) as (url, _), Prober() as prober:
                away = await prober.probe(RequestSpec("GET", f"{url}/x", headers=headers), 5)

        async def same_origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /x "):
                writer.write(b"HTTP/1.1 307 Moved\r\nlocation: /y\r\n\r\n")
            else:
                seen["here"].append(head)
                writer.write(ok)

        async with raw_server(same_origin) as (url, _), Prober() as prober:
            home = await prober.probe(RequestSpec("GET", f"{url}/x", headers=headers), 5)
        return away, home

    away, home = asyncio.run(scenario())

    assert away.status == home.status == 200
    assert b"SECRET" not in seen["there"][0]  # another origin: no key follows
    assert seen["here"][0].count(b"SECRET") == 2  # the same origin: both keys still sent


def test_a_server_that_resets_during_the_tls_handshake_says_so() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(5)  # the ClientHello's record header
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def scenario() -> Evidence:
        async with raw_server(reset) as (_, srv), Prober() as prober:
            return await prober.probe(RequestSpec("GET", f"https://127.0.0.1:{srv['port']}/"), 5)

    ev = asyncio.run(scenario())

    assert ev.error == TransportError.CONNECT
    assert ev.error_detail == (
        "cannot connect to 127.0.0.1: the server closed the connection during the TLS handshake"
    )
