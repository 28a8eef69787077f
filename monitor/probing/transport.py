"""The HTTP transport under httpx: aiohttp (through httpx-aiohttp), and the phase clock fed by
aiohttp's trace hooks.

httpx stays the client API (requests, redirects, the body stream); aiohttp moves the bytes, for
about a third less CPU per probe than httpcore (issue 9; benchmarks/probe_engine.py, 1,000
probes at concurrency 20 on uvloop: 0.85 -> 0.54 ms). Our own `aiohttp.ClientSession` keeps
what a probe needs:

- a fresh connection every probe (`force_close`, no DNS cache), like blackbox_exporter, so the
  connection time is real every time;
- raw bytes (`auto_decompress=False`): `CappedDecoder` decodes them within the body cap;
- nothing from the environment (no proxy variables) and no cookie jar of aiohttp's own;
- only the headers httpx builds: aiohttp adds no Content-Type of its own to a body.

Timings, TLS where the transport can tell: aiohttp opens TCP and completes the TLS handshake in
one step (one `loop.create_connection`) and its trace hooks mark only the start and end of that
step, so `connect_ms` is the whole connection setup (name resolution, TCP and, for HTTPS, the
TLS handshake) and `tls_ms` stays None. Splitting it would mean overriding aiohttp's private
connection code. `ttfb_ms` ends when the response head has been read.

Trace events carry no per-request context from httpx-aiohttp, so each probe puts its clock in a
context variable (`timing`): aiohttp runs the hooks in the probe's own task.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiohttp
from httpx_aiohttp import AiohttpTransport

# httpcore read a response head of up to 100 KiB: aiohttp's default (8190 bytes a line) would
# turn a provider's long Content-Security-Policy or cookie header into a bad answer.
_MAX_HEAD_LINE = 100 * 1024
_MAX_HEADERS = 1000

_DNS_START, _DNS_END = "dns_start", "dns_end"
_CONNECT_START, _CONNECT_END = "connect_start", "connect_end"
_HEAD_SENT, _HEAD_RECEIVED = "request_head_sent", "response_head_received"


class PhaseClock:
    """Marks of one probe's first connection and answer (a redirect's later hops are ignored)."""

    def __init__(self, https: bool) -> None:
        self.https = https
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, event: str) -> None:
        self.marks.setdefault(event, time.perf_counter())

    @property
    def answered(self) -> bool:
        """True once a response head has arrived."""
        return _HEAD_RECEIVED in self.marks

    def _span(self, begin: str, end: str) -> float | None:
        a, b = self.marks.get(begin), self.marks.get(end)
        return (b - a) * 1000 if a is not None and b is not None else None

    def timings(self) -> tuple[float | None, float | None, float | None, float]:
        """(connect_ms, tls_ms, ttfb_ms, total_ms); tls_ms is always None here (see above)."""
        head = self.marks.get(_HEAD_RECEIVED)
        return (
            self._span(_CONNECT_START, _CONNECT_END),
            None,
            (head - self.start) * 1000 if head is not None else None,
            (time.perf_counter() - self.start) * 1000,
        )

    def timeout_detail(self, timeout: float) -> str:
        limit = f"{timeout:g} s"
        started = self.marks.keys()
        if _DNS_START in started and _DNS_END not in started:
            return f"connect timeout: the host name did not resolve within {limit}"
        if _CONNECT_START in started and _CONNECT_END not in started:
            if self.https:  # TCP and TLS are one step in aiohttp: either may be the slow one
                return f"connect timeout: no connection and TLS handshake within {limit}"
            return f"connect timeout: no connection within {limit}"
        if _HEAD_RECEIVED not in started:
            return f"read timeout: no response within {limit}"
        return f"read timeout: the body did not arrive within {limit}"


_clock: ContextVar[PhaseClock | None] = ContextVar("inferwatch_probe_clock", default=None)


@contextmanager
def timing(clock: PhaseClock) -> Iterator[PhaseClock]:
    """Route the trace events of requests made in this task (until exit) to `clock`."""
    token = _clock.set(clock)
    try:
        yield clock
    finally:
        _clock.reset(token)


def _marker(event: str) -> Any:
    async def mark(session: aiohttp.ClientSession, ctx: object, params: object) -> None:
        clock = _clock.get()
        if clock is not None:
            clock.mark(event)

    return mark


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_dns_resolvehost_start.append(_marker(_DNS_START))
    trace.on_dns_resolvehost_end.append(_marker(_DNS_END))
    trace.on_connection_create_start.append(_marker(_CONNECT_START))
    trace.on_connection_create_end.append(_marker(_CONNECT_END))
    trace.on_request_headers_sent.append(_marker(_HEAD_SENT))
    trace.on_request_end.append(_marker(_HEAD_RECEIVED))  # sent once the head is read
    return trace


def new_session(ssl_context: ssl.SSLContext, concurrency: int) -> aiohttp.ClientSession:
    """The probe session; must be created inside the running event loop."""
    connector = aiohttp.TCPConnector(
        ssl=ssl_context,
        limit=concurrency,
        force_close=True,  # a fresh connection every probe: connect times are real
        use_dns_cache=False,  # and so is name resolution (a moved host is seen at once)
    )
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # CappedDecoder decodes within the body cap
        trust_env=False,  # a probe measures the endpoint, not whatever proxy the shell sets
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("Content-Type",),  # httpx sets it when we mean it; no octet-stream
        trace_configs=[_trace_config()],
        max_line_size=_MAX_HEAD_LINE,
        max_field_size=_MAX_HEAD_LINE,
        max_headers=_MAX_HEADERS,
    )
    # aiohttp sends an idempotent request again when the server drops the connection (meant
    # for a stale pooled one; ours are all fresh). A probe records that drop instead of hiding
    # it behind a second request. There is no public switch; tests/test_probe_engine.py
    # notices if this one goes away.
    session._retry_connection = False
    return session


def aiohttp_transport(ssl_context: ssl.SSLContext, concurrency: int) -> AiohttpTransport:
    """httpx's transport over our aiohttp session, which it opens on first use (in the loop)
    and closes with the httpx client."""
    return AiohttpTransport(
        verify=ssl_context,  # not loaded again: the transport builds nothing from it
        trust_env=False,
        client=lambda: new_session(ssl_context, concurrency),
    )
