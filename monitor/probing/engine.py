"""Send one request and observe everything about it. Never raises: every failure is evidence.

Like blackbox_exporter, each probe opens a fresh connection (keep-alive is off), so connect and
TLS times are real every time. One client and one SSL context serve all probes (loading CA
certificates per client costs ~30 ms), and a semaphore bounds how many run at once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import certifi
import httpx

from monitor.domain.evidence import Evidence, RequestSpec, Timings, TransportError
from monitor.probing.content import ACCEPT_ENCODING, CappedDecoder, UndecodableBody

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # enough to judge any embedding; a 1 GB answer is cut here
MAX_REDIRECTS = 5


async def _answer_no_content(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The warm-up server: reads a request's head, answers 204, closes."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def default_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


class Prober:
    """Runs probes through one shared client; use as an async context manager."""

    def __init__(
        self,
        concurrency: int = 20,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_redirects: int = MAX_REDIRECTS,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.max_body_bytes = max_body_bytes
        self._slots = asyncio.Semaphore(concurrency)
        self._custom_transport = transport is not None
        self._client = httpx.AsyncClient(
            verify=ssl_context or default_ssl_context(),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=0),
            max_redirects=max_redirects,
            headers={"accept-encoding": ACCEPT_ENCODING},  # only what we decode within a cap
            transport=transport,
            trust_env=False,  # a probe measures the endpoint, not whatever proxy the shell sets
        )

    async def __aenter__(self) -> Prober:
        await self.warm_up()
        return self

    async def warm_up(self) -> float | None:
        """One probe of a throwaway local server, so that the first real probe is not timed
        with the client's first-use costs (lazy imports, the TLS and HTTP machinery set up
        on first use): a one-off probe of a fast endpoint recorded 18 to 100 ms without it.
        Returns the warm-up's own time in ms (None with a custom transport: nothing to warm).
        """
        if self._custom_transport:
            return None
        server = await asyncio.start_server(_answer_no_content, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            ev = await self._probe(RequestSpec("GET", f"http://127.0.0.1:{port}/"), 5.0)
        finally:
            server.close()
            await server.wait_closed()
        return ev.timings.total_ms

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def probe(self, spec: RequestSpec, timeout: float) -> Evidence:
        async with self._slots:
            return await self._probe(spec, timeout)

    async def _probe(self, spec: RequestSpec, timeout: float) -> Evidence:
        started_at = datetime.now(UTC)
        clock = _PhaseClock()
        response: httpx.Response | None = None
        body, truncated = b"", False
        error: TransportError | None = None
        error_detail = ""
        try:
            async with asyncio.timeout(timeout):
                request = self._client.build_request(
                    spec.method,
                    spec.url,
                    headers=spec.headers,
                    json=spec.json,
                    content=spec.content,
                    timeout=timeout,
                    extensions={"trace": clock.trace},
                )
                response = await self._client.send(
                    request, stream=True, follow_redirects=spec.follow_redirects
                )
                try:
                    body, truncated = await _read_capped(response, self.max_body_bytes)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            error, error_detail = TransportError.TIMEOUT, clock.timeout_detail(timeout)
        except httpx.TooManyRedirects as exc:
            error, error_detail = TransportError.REDIRECTS, f"too many redirects: {_reason(exc)}"
        except httpx.ConnectError as exc:
            error, error_detail = _connect_failure(exc, spec.url)
        except httpx.LocalProtocolError:
            # Its message quotes the offending header value, which may be a token: not kept.
            error = TransportError.REQUEST
            error_detail = "the request could not be sent: a header value is not valid HTTP"
        except (httpx.RemoteProtocolError, httpx.DecodingError, UndecodableBody) as exc:
            error = TransportError.PROTOCOL
            error_detail = f"not a valid HTTP answer: {_reason(exc)}"
        except httpx.TransportError as exc:
            error = TransportError.CONNECT
            error_detail = f"connection failed: {_reason(exc)}"
        except Exception as exc:  # a probe must never take the monitor down
            log.exception("unexpected error probing %s", spec.url)
            error, error_detail = TransportError.CONNECT, f"{type(exc).__name__}: {_reason(exc)}"
        return Evidence(
            url=str(response.url) if response is not None else spec.url,
            method=spec.method,
            started_at=started_at,
            token_sent=spec.token_sent,
            timings=clock.timings(),
            status=response.status_code if response is not None else None,
            headers={k.lower(): v for k, v in response.headers.items()} if response else {},
            body=body,
            body_truncated=truncated,
            error=error,
            error_detail=error_detail,
        )

    async def probe_many(self, jobs: list[tuple[RequestSpec, float]]) -> list[Evidence]:
        return list(await asyncio.gather(*(self.probe(s, t) for s, t in jobs)))


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """Read and decode at most `cap` bytes of body; say whether more was left unread.

    Raw bytes go through our own decoder (`CappedDecoder`), never httpx's, whose inflate has
    no output limit: memory stays near `cap` whatever the server compressed.
    """
    decoder = CappedDecoder(response.headers.get("content-encoding"), cap)
    chunks: list[bytes] = []
    async for raw in response.aiter_raw():
        chunks.append(decoder.feed(raw))
        if decoder.done:
            break
    return b"".join(chunks), decoder.truncated


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: httpx's errors are often empty (a reset connection), so
    the first cause that says something, else the exception's type."""
    for cause in _causes(exc):
        if text := str(cause).strip():
            return text
        if isinstance(cause, ConnectionResetError):
            return "the server reset the connection"
    return type(exc).__name__


class _PhaseClock:
    """Collects httpcore trace events into phase timings (first connection only)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}
        self.end: float | None = None

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        self.marks.setdefault(event, time.perf_counter())

    def _span(self, begin: str, end: str) -> float | None:
        a, b = self._mark(begin), self._mark(end)
        return (b - a) * 1000 if a is not None and b is not None else None

    def _mark(self, suffix: str) -> float | None:
        return next((t for name, t in self.marks.items() if name.endswith(suffix)), None)

    def timings(self) -> Timings:
        first_byte = self._mark("receive_response_headers.complete")
        return Timings(
            connect_ms=self._span("connect_tcp.started", "connect_tcp.complete"),
            tls_ms=self._span("start_tls.started", "start_tls.complete"),
            ttfb_ms=(first_byte - self.start) * 1000 if first_byte is not None else None,
            total_ms=(time.perf_counter() - self.start) * 1000,
        )

    def timeout_detail(self, timeout: float) -> str:
        limit = f"{timeout:g} s"
        if (
            self._mark("connect_tcp.started") is not None
            and self._mark("connect_tcp.complete") is None
        ):
            return f"connect timeout: no connection within {limit}"
        if self._mark("start_tls.started") is not None and self._mark("start_tls.complete") is None:
            return f"TLS handshake timeout: not done within {limit}"
        if self._mark("receive_response_headers.complete") is None:
            return f"read timeout: no response within {limit}"
        return f"read timeout: the body did not arrive within {limit}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connect_failure(exc: httpx.ConnectError, url: str) -> tuple[TransportError, str]:
    host = httpx.URL(url).host
    text = " ".join(str(e) for e in _causes(exc))
    if any(isinstance(e, socket.gaierror) for e in _causes(exc)) or any(
        marker in text
        for marker in ("Name or service not known", "nodename nor servname", "getaddrinfo")
    ):
        return TransportError.DNS, f"cannot resolve host {host}: {_reason(exc)}"
    if any(isinstance(e, ssl.SSLError) for e in _causes(exc)) or "SSL" in text:
        return TransportError.TLS, f"TLS failed with {host}: {_reason(exc)}"
    if any(isinstance(e, ConnectionRefusedError) for e in _causes(exc)) or "refused" in text:
        return TransportError.CONNECT, f"connection refused by {host}: {_reason(exc)}"
    return TransportError.CONNECT, f"cannot connect to {host}: {_reason(exc)}"
