"""The HTTP transport under httpx: one request over one fresh connection, on the event loop's
own sockets, with the response parsed by httptools (llhttp, Node's HTTP parser), and the
phase clock of each probe.

httpx stays the client API (requests, redirects, the body stream, the errors); this module
only moves the bytes of one exchange. A probe needs none of a general client's machinery (a
pool, keep-alive, cookies, retries, proxies), and every layer of it is paid on every probe:
under aiohttp (through httpx-aiohttp), with each of those switched off, `inferwatch run` used
1.28-1.32 ms of CPU per probe at 200 probes/s; with this transport, 0.89-0.93 ms (issue 9,
benchmarks/profile_run.py, docs/benchmarks.md).

Each exchange:

- resolves the host (an IP address needs no resolver), connects over TCP (to several
  addresses: happy eyeballs, through aiohappyeyeballs, as browsers and aiohttp do), then, for
  HTTPS, completes the TLS handshake as a step of its own, so `connect_ms` (name resolution and
  TCP) and `tls_ms` (the handshake) are each real;
- sends the head httpx built, plus `Connection: close` (a fresh connection every probe, like
  blackbox_exporter: connection times are real every time), refusing a header a server could
  read as two (CR, LF, NUL) before anything is sent;
- reads the response head within limits (100 KiB, 1,000 fields: a provider's long
  Content-Security-Policy is fine, an endless head is not), skips 1xx interim answers, and
  hands httpx the body as it arrives, reading no further ahead than 256 KiB (a 1 GB answer
  cannot fill memory while the prober reads its capped share);
- a body ends at its length, at its last chunk, or at the close of the connection when the
  answer gave neither; an answer to HEAD, and a 204 or 304, has none.

Failures are httpx's errors with the cause chained (`ConnectError` from the `OSError`, the
`gaierror` or the `SSLError`; `RemoteProtocolError` for what is not valid HTTP or stops
early; `ReadError` for a reset), so the prober classifies them from what really happened.
The probe's own `asyncio.timeout` bounds the whole exchange; a cancelled exchange closes its
socket.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiohappyeyeballs
import httptools
import httpx

MAX_HEAD_BYTES = 100 * 1024  # what httpcore accepted; aiohttp's 8 KiB a line was too little
MAX_HEAD_FIELDS = 1000
READ_AHEAD = 256 * 1024  # body bytes read before the prober takes them
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before trying the next address in parallel (RFC 8305)

_DNS_START, _DNS_END = "dns_start", "dns_end"
_CONNECT_START, _CONNECT_END = "connect_start", "connect_end"
_TLS_START, _TLS_END = "tls_start", "tls_end"
_HEAD_SENT, _HEAD_RECEIVED = "request_head_sent", "response_head_received"

_CLOSED_IN_TLS = "the server closed the connection during the TLS handshake"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110)
_NOT_IN_VALUE = re.compile(rb"[\r\n\x00]")


class PhaseClock:
    """Marks of one probe's first connection and answer (a redirect's later hops are not
    timed), and the phase the probe is in now (of whichever hop), for a timeout's words."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}
        self.phase: str | None = None

    def mark(self, event: str) -> None:
        self.phase = event
        if _HEAD_RECEIVED not in self.marks:
            self.marks.setdefault(event, time.perf_counter())

    def _span(self, begin: str, end: str) -> float | None:
        a, b = self.marks.get(begin), self.marks.get(end)
        return (b - a) * 1000 if a is not None and b is not None else None

    def timings(self) -> tuple[float | None, float | None, float | None, float]:
        """(connect_ms, tls_ms, ttfb_ms, total_ms). connect_ms is name resolution and TCP."""
        head = self.marks.get(_HEAD_RECEIVED)
        return (
            self._span(_DNS_START if _DNS_START in self.marks else _CONNECT_START, _CONNECT_END),
            self._span(_TLS_START, _TLS_END),
            (head - self.start) * 1000 if head is not None else None,
            (time.perf_counter() - self.start) * 1000,
        )

    def timeout_detail(self, timeout: float) -> str:
        limit = f"{timeout:g} s"
        if self.phase == _DNS_START:
            return f"connect timeout: the host name did not resolve within {limit}"
        if self.phase == _CONNECT_START:
            return f"connect timeout: no connection within {limit}"
        if self.phase == _TLS_START:
            return f"connect timeout: no TLS handshake within {limit}"
        if self.phase == _HEAD_RECEIVED:
            return f"read timeout: the body did not arrive within {limit}"
        return f"read timeout: no response within {limit}"


_clock: ContextVar[PhaseClock | None] = ContextVar("inferwatch_probe_clock", default=None)


@contextmanager
def timing(clock: PhaseClock) -> Iterator[PhaseClock]:
    """Route the phase marks of requests made in this task (until exit) to `clock`."""
    token = _clock.set(clock)
    try:
        yield clock
    finally:
        _clock.reset(token)


def _mark(event: str) -> None:
    clock = _clock.get()
    if clock is not None:
        clock.mark(event)


def numeric_address(
    host: Any,
    port: Any,
    family: int = 0,
    type_: int = socket.SOCK_STREAM,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, ...]] | None:
    """getaddrinfo's answer for an IP address, which needs no resolver (AI_NUMERICHOST never
    looks anything up, so it cannot block); None for a name or a service name."""
    if not isinstance(host, str) or not isinstance(port, int | None):
        return None
    try:
        return socket.getaddrinfo(host, port, family, type_, proto, flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None


@functools.lru_cache(maxsize=4096)  # a target's host and port are the same every probe
def _numeric(host: str, port: int) -> tuple[tuple[Any, ...], ...] | None:
    infos = numeric_address(host, port)
    return None if infos is None else tuple(infos)


class ProbeTransport(httpx.AsyncBaseTransport):
    """httpx's transport for probes: each request on a connection of its own (see above)."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        https = url.scheme == "https"
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"a probe speaks http or https, not {url.scheme!r}")
        head = _request_head(request, await request.aread())
        # The name as httpx sends it in Host (IDNA 2008 for a non-ASCII one), so that the
        # resolved, verified and asked-for names are one and the same.
        host = url.raw_host.decode("ascii")
        loop = asyncio.get_running_loop()
        exchange = _Exchange(loop, request.method == "HEAD")
        transport = await _connect(loop, exchange, host, url.port or (443 if https else 80))
        try:
            if https:
                _mark(_TLS_START)
                try:
                    tls = await loop.start_tls(transport, exchange, self._ssl, server_hostname=host)
                except ssl.SSLError as exc:
                    raise httpx.ConnectError(_say(exc)) from exc
                except OSError as exc:  # a reset, often with no words of its own
                    raise httpx.ConnectError(_CLOSED_IN_TLS) from exc
                if tls is None:  # (the same, as some loops say it)
                    raise httpx.ConnectError(_CLOSED_IN_TLS)
                transport = exchange.transport = tls
                _mark(_TLS_END)
            transport.write(head)
            _mark(_HEAD_SENT)
            status, headers, version, reason = await exchange.head
        except BaseException:
            exchange.head.cancel()  # nobody waits for it now: its end is not news to log
            transport.close()  # also on cancellation: the probe's timeout
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(exchange),
            extensions={"http_version": version, "reason_phrase": reason},
        )


def _request_head(request: httpx.Request, body: bytes) -> bytes:
    """The request's head and body as sent, refusing a header that is not valid HTTP."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), request.url.raw_path)]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name) or _NOT_IN_VALUE.search(value):
            # The text names no value: it could be a token's.
            raise httpx.LocalProtocolError("a header value is not valid HTTP")
        if name.lower() != b"connection":  # httpx's default says keep-alive: not here
            lines.append(b"%s: %s\r\n" % (name, value))
    lines.append(b"Connection: close\r\n\r\n")
    lines.append(body)
    return b"".join(lines)


async def _connect(
    loop: asyncio.AbstractEventLoop, exchange: _Exchange, host: str, port: int
) -> asyncio.Transport:
    """A TCP connection to `host` for `exchange`, resolving the name first if it is one."""
    infos: Sequence[tuple[Any, ...]] | None = _numeric(host, port)
    if infos is None:
        _mark(_DNS_START)
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:  # socket.gaierror
            raise httpx.ConnectError(_say(exc)) from exc
        _mark(_DNS_END)
    _mark(_CONNECT_START)
    try:
        if len(infos) == 1:  # the common case, and an IP address: no socket of our own
            family, _, _, _, address = infos[0]
            transport, _ = await loop.create_connection(
                lambda: exchange, address[0], address[1], family=family
            )
        else:
            sock = await aiohappyeyeballs.start_connection(
                infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop
            )
            transport, _ = await loop.create_connection(lambda: exchange, sock=sock)
    except OSError as exc:
        raise httpx.ConnectError(_say(exc)) from exc
    _mark(_CONNECT_END)
    return transport


def _say(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class _Exchange(asyncio.Protocol):
    """The answer to one request, as its bytes arrive (httptools calls the `on_` methods)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, head_request: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = head_request
        self.head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bytes]] = (
            loop.create_future()
        )
        self.transport: asyncio.Transport | None = None
        self._loop = loop
        self._clock = _clock.get()  # (the callbacks run outside the probe's task)
        self._reason = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._framing = 0
        self._length: int | None = None
        self._close_delimited = False
        self.received = 0
        self.chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self.complete = False
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ---- the connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.complete or self.error is not None:
            return  # what follows a whole answer (or a broken one) is not read
        heading = not self.head.done()
        before = self.received
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()  # a 101: the body is another protocol's
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(_parse_error(exc)), exc)
            return
        if heading and not self.head.done():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(httpx.RemoteProtocolError("the response head is over 100 KiB"))
        elif not heading and not self.complete:
            # What is not body after the head: chunk sizes and trailers, a few bytes a chunk
            # unless someone means harm (trailers are never kept: they would never end).
            self._framing += len(data) - (self.received - before)
            if self._framing > MAX_HEAD_BYTES + self.received:
                self._fail(httpx.RemoteProtocolError("the chunk framing is over 100 KiB"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.complete or self.error is not None:
            return
        if isinstance(exc, ssl.SSLError):  # a TLS alert after the handshake
            self._fail(httpx.ConnectError(_say(exc)), exc)
        elif isinstance(exc, ConnectionResetError):
            self._fail(httpx.ReadError("the server reset the connection"), exc)
        elif exc is not None and self.head.done():
            self._fail(httpx.ReadError(_say(exc)), exc)
        elif not self.head.done():
            self._fail(httpx.RemoteProtocolError("the server disconnected before answering"), exc)
        elif self._close_delimited:
            self._finish()  # neither a length nor chunks: the body ends with the connection
        else:
            short = (
                f"received {self.received} of {self._length} bytes"
                if self._length is not None
                else "the chunked body did not end"
            )
            self._fail(
                httpx.RemoteProtocolError(f"the server disconnected during the answer: {short}"),
                exc,
            )

    # ---- httptools' callbacks

    # Once the answer's head is taken, later heads (trailers, a second answer) are ignored.

    def on_status(self, reason: bytes) -> None:
        if not self.head.done():
            self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head.done():
            self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        if self.head.done():
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # an interim answer: the real one follows
            self._fields, self._reason, self._head_bytes = [], b"", 0
            return
        if len(self._fields) > MAX_HEAD_FIELDS:
            self._fail(httpx.RemoteProtocolError(f"over {MAX_HEAD_FIELDS} header fields"))
            return
        chunked = False
        for name, value in self._fields:
            lowered = name.lower()
            if lowered == b"content-length" and value.strip().isdigit():
                self._length = int(value)
            elif lowered == b"transfer-encoding":  # chunked only if it is the last coding
                chunked = value.rsplit(b",", 1)[-1].strip().lower() == b"chunked"
        version = b"HTTP/" + self._parser.get_http_version().encode("ascii")
        self._close_delimited = self._length is None and not chunked
        if self._clock is not None:
            self._clock.mark(_HEAD_RECEIVED)  # as the head is parsed, not when the task wakes
        self.head.set_result((status, self._fields, version, self._reason))
        if self._head_request or status in (204, 304):
            self._finish()  # no body, whatever the head announced

    def on_body(self, body: bytes) -> None:
        if self.complete or self.error is not None:
            return
        self.received += len(body)
        self.chunks.append(body)
        self._buffered += len(body)
        if self._buffered > READ_AHEAD and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head.done():  # (an interim answer's end is not the answer's)
            self._finish()

    # ---- for the body stream

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    async def wait(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, error: Exception, cause: BaseException | None = None) -> None:
        error.__cause__ = cause
        self.error = error
        if not self.head.done():
            self.head.set_exception(error)
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Body(httpx.AsyncByteStream):
    """The answer's body as it arrives; closing it closes the connection."""

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        while True:
            if exchange.chunks:
                yield exchange.take()
            elif exchange.complete:
                return
            elif exchange.error is not None:
                raise exchange.error
            else:
                await exchange.wait()

    async def aclose(self) -> None:
        self._exchange.close()


def _parse_error(exc: httptools.HttpParserError) -> str:
    """httptools' words for a bad answer, without its C names ("HPE_INVALID_CONSTANT")."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("HPE_") and ": " in text else text
