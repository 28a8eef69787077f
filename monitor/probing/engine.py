"""Send one request and observe everything about it. Never raises: every failure is evidence.

Like blackbox_exporter, each probe opens a fresh connection (keep-alive is off), so connection
times are real every time. One client and one SSL context serve all probes (loading CA
certificates per client costs ~30 ms), and a semaphore bounds how many run at once. httpx is
the client; under it, our transport moves the bytes of each exchange on the event loop's own
sockets (monitor/probing/transport.py: why, and how each phase is timed).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from http.cookiejar import Cookie, CookieJar
from typing import Any

import certifi
import httpx

from monitor.domain.evidence import (
    CREDENTIAL_HEADERS,
    Evidence,
    RequestSpec,
    Timings,
    TransportError,
)
from monitor.probing.content import ACCEPT_ENCODING, CappedDecoder, UndecodableBody
from monitor.probing.stream import EventStreamReader
from monitor.probing.transport import PhaseClock, ProbeTransport, timing

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


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing: a `Set-Cookie` in one probe's answer must not be sent
    with later probes of the same host (a session cookie could turn a broken endpoint into a
    working one, or the reverse)."""

    def set_cookie(self, cookie: Cookie) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass


class _NoCookieStore(httpx.Cookies):
    """The client's cookies: always empty, and an answer's `Set-Cookie` is not even read
    (httpx builds urllib request and response wrappers per answer to hand them to the jar:
    3% of the monitor's CPU at 200 probes/s, for a jar that keeps nothing)."""

    def __init__(self) -> None:
        super().__init__(_NoCookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class _ProbeClient(httpx.AsyncClient):
    """httpx's client with the cookie store above (httpx offers no way to pass a store)."""

    _no_cookies = _NoCookieStore()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("a probe client keeps no cookies")


# Parsed URLs and merged header sets kept per distinct value: a target sends the same ones
# every probe, and parsing them again was 6% of the monitor's CPU at 200 probes/s. Bounded,
# for one-off URLs (`inferwatch probe`, a reload that changes every URL): emptied when full.
_CACHED = 10_000


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
        self.max_redirects = max_redirects
        self._slots = asyncio.Semaphore(concurrency)
        self._custom_transport = transport is not None
        if transport is None:
            transport = ProbeTransport(ssl_context or default_ssl_context())
        self._urls: dict[str, httpx.URL] = {}
        self._headers: dict[tuple[tuple[str, str], ...], httpx.Headers] = {}
        self._timeouts: dict[float, dict[str, float | None]] = {}
        self._client = _ProbeClient(  # each probe stands alone: no cookie reaches the next
            headers={"accept-encoding": ACCEPT_ENCODING},  # only what we decode within a cap
            transport=transport,
            trust_env=False,  # a probe measures the endpoint, not whatever proxy the shell sets
        )

    async def __aenter__(self) -> Prober:
        await self.warm_up()
        return self

    async def warm_up(self) -> float | None:
        """One probe of a throwaway local server, so that the first real probe is not timed
        with the client's first-use costs (lazy imports, the session and HTTP machinery set up
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
        clock = PhaseClock()
        response: httpx.Response | None = None
        body, truncated = b"", False
        error: TransportError | None = None
        error_detail = ""
        # A streamed probe keeps its events with their times, and what arrived before a timeout.
        stream = EventStreamReader(self.max_body_bytes, clock.start) if spec.stream else None
        try:
            with timing(clock):
                async with asyncio.timeout(timeout):
                    request = self.request(spec, timeout)
                    response = await self._send(request, spec.follow_redirects)
                    try:
                        if stream is None:
                            body, truncated = await _read_capped(response, self.max_body_bytes)
                        else:
                            await stream.read(response)
                    finally:
                        await response.aclose()
        except Exception as exc:  # a probe must never take the monitor down
            error, error_detail = _failure(exc, spec.url, clock, timeout)
        if stream is not None:
            body, truncated = stream.body, stream.truncated
        connect_ms, tls_ms, ttfb_ms, total_ms = clock.timings()
        return Evidence(
            url=str(response.url) if response is not None else spec.url,
            method=spec.method,
            started_at=started_at,
            token_sent=spec.token_sent,
            timings=Timings(connect_ms, tls_ms, ttfb_ms, total_ms),
            status=response.status_code if response is not None else None,
            headers={k.lower(): v for k, v in response.headers.items()} if response else {},
            body=body,
            body_truncated=truncated,
            error=error,
            error_detail=error_detail,
            events=tuple(stream.events) if stream is not None else None,
        )

    async def _send(self, request: httpx.Request, follow_redirects: bool) -> httpx.Response:
        """httpx's `send`, with redirects followed here rather than by httpx, which reads a
        redirect's whole body (uncapped, and inflated) before its next hop; a redirect's body
        is never read here. httpx builds each next request (`next_request`) and drops
        Authorization for another origin; every other credential header goes too."""
        response = await self._client.send(request, stream=True, follow_redirects=False)
        hops = 0
        while follow_redirects and response.next_request is not None:
            await response.aclose()
            if hops == self.max_redirects:
                raise httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=request)
            hops += 1
            following = response.next_request
            if _origin(following.url) != _origin(response.request.url):
                for name in CREDENTIAL_HEADERS:
                    following.headers.pop(name, None)
            response = await self._client.send(following, stream=True, follow_redirects=False)
        return response

    def request(self, spec: RequestSpec, timeout: float) -> httpx.Request:
        """The request `self._client.build_request` would build for `spec`, from the parsed
        URL and merged headers kept for it (the client has no base URL, params or cookies
        to merge)."""
        url = self._urls.get(spec.url)
        if url is None:
            url = httpx.URL(spec.url)  # raises on a bad URL, before anything is kept
            _keep(self._urls, spec.url, url)
        key = tuple(spec.headers.items())
        headers = self._headers.get(key)
        if headers is None:
            headers = httpx.Headers(self._client.headers)
            headers.update(spec.headers)
            _keep(self._headers, key, headers)
        limits = self._timeouts.get(timeout)
        if limits is None:
            limits = httpx.Timeout(timeout).as_dict()
            _keep(self._timeouts, timeout, limits)
        return httpx.Request(
            spec.method,
            url,
            headers=headers,  # copied by Request
            json=spec.json,
            content=spec.content,
            extensions={"timeout": limits},
        )

    async def probe_many(self, jobs: list[tuple[RequestSpec, float]]) -> list[Evidence]:
        return list(await asyncio.gather(*(self.probe(s, t) for s, t in jobs)))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value


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


_BAD_HEADER = "the request could not be sent: a header value is not valid HTTP"


def _failure(
    exc: Exception, url: str, clock: PhaseClock, timeout: float
) -> tuple[TransportError, str]:
    """What kind of failure `exc` is, and the detail to record. The transport raises httpx's
    errors with what really happened chained (monitor/probing/transport.py)."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return TransportError.TIMEOUT, clock.timeout_detail(timeout)
    if isinstance(exc, httpx.TooManyRedirects):
        return TransportError.REDIRECTS, f"too many redirects: {_reason(exc)}"
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc, url)
    if isinstance(exc, httpx.LocalProtocolError | ValueError):
        # A header value with a newline, or one httpx cannot encode (UnicodeEncodeError): the
        # message may quote the value, a token: not kept.
        return TransportError.REQUEST, _BAD_HEADER
    if isinstance(exc, httpx.UnsupportedProtocol):
        return TransportError.REQUEST, f"the request could not be sent: {_reason(exc)}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError | UndecodableBody):
        return TransportError.PROTOCOL, f"not a valid HTTP answer: {_reason(exc)}"
    if isinstance(exc, httpx.TransportError):
        return TransportError.CONNECT, f"connection failed: {_reason(exc)}"
    log.error("unexpected error probing %s", url, exc_info=exc)
    return TransportError.CONNECT, f"{type(exc).__name__}: {_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """What went wrong, in words: transport errors are often empty (a reset connection) or
    wrapped, so the first cause that says something, on one line, else the exception's type."""
    for cause in _causes(exc):
        if text := " ".join(str(cause).split()):
            return text
        if isinstance(cause, ConnectionResetError):
            return "the server reset the connection"
    return type(exc).__name__


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from (or during), down the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _connect_failure(exc: BaseException, url: str) -> tuple[TransportError, str]:
    host, reason = httpx.URL(url).host, _reason(exc)
    text = " ".join(str(e) for e in _causes(exc))
    if any(isinstance(e, socket.gaierror) for e in _causes(exc)) or any(
        marker in text
        for marker in ("Name or service not known", "nodename nor servname", "getaddrinfo")
    ):
        return TransportError.DNS, f"cannot resolve host {host}: {reason}"
    if any(isinstance(e, ssl.SSLError) for e in _causes(exc)) or ("SSL" in text):
        return TransportError.TLS, f"TLS failed with {host}: {reason}"
    if any(isinstance(e, ConnectionRefusedError) for e in _causes(exc)) or "refused" in text:
        return TransportError.CONNECT, f"connection refused by {host}: {reason}"
    return TransportError.CONNECT, f"cannot connect to {host}: {reason}"
