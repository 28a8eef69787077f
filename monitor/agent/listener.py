"""The `metrics.listen` HTTP server: /metrics for Prometheus and /badge/ SVGs for READMEs.

One small threaded WSGI server on a daemon thread beside the event loop. /metrics is
prometheus-client's own exposition of the monitor's registry (monitor/agent/metrics.py);
a badge reads the database here, in the request's thread over a read-only engine, never on
the probing loop:

    /badge/<target>/state.svg             the confirmed state, coloured by its class
    /badge/<target>/uptime/<window>.svg   uptime over 24h, 7d or 30d (the overview's numbers)

Targets not in the config, and other windows, answer 404.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
from collections.abc import Callable, Container, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.agent.metrics import Metrics
from monitor.domain.badges import state_badge, uptime_badge
from monitor.domain.text import utcnow
from monitor.store import reads
from monitor.store.db import make_engine

log = logging.getLogger(__name__)

BADGE_WINDOWS = ("24h", "7d", "30d")
BADGE_CACHE = "public, max-age=60"  # a badge may be a minute old; camo and browsers re-ask
_STATE = re.compile(r"/badge/(?P<target>[^/]+)/state\.svg")
_UPTIME = re.compile(r"/badge/(?P<target>[^/]+)/uptime/(?P<window>[^/]+)\.svg")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class ListenError(Exception):
    """The listener could not bind its address (in use, not ours, not an address)."""


def address(listen: str) -> tuple[str, int]:
    """`host:port` as the socket wants it; an empty host means every interface."""
    host, _, port = listen.rpartition(":")
    return host or "0.0.0.0", int(port)


class Listener:
    """Serves /metrics and /badge/ on `listen` from `start` until `stop`."""

    def __init__(
        self,
        listen: str,
        metrics: Metrics,
        database: str,
        targets: Callable[[], Container[str]],
        clock: Callable[[], datetime] = utcnow,
    ):
        self.listen = listen
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._database = database
        self._targets = targets  # the configured names, as of the latest reload
        self._clock = clock
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve; ListenError (naming the address) when the address cannot be had."""
        host, port = address(self.listen)
        try:
            self._server = make_server(
                host, port, self._app, server_class=_Server, handler_class=_QuietHandler
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ListenError(
                    f"metrics.listen {self.listen}: the port is already in use "
                    "(another inferwatch or exporter?); choose a free one"
                ) from None
            reason = exc.strerror or str(exc)
            raise ListenError(
                f"metrics.listen {self.listen}: cannot listen there: {reason}"
            ) from None
        self._engine = make_engine(self._database, readonly=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="inferwatch-metrics",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket (blocking: up to the poll interval)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------ the WSGI app

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics_app(environ, start_response)
            return body
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "only GET\n")
        if match := _STATE.fullmatch(path):
            return self._badge(start_response, match["target"], None)
        if match := _UPTIME.fullmatch(path):
            return self._badge(start_response, match["target"], match["window"])
        return _text(start_response, "404 Not Found", "try /metrics or /badge/<target>/...\n")

    def _badge(self, start_response: StartResponse, target: str, window: str | None) -> list[bytes]:
        if target not in self._targets():
            return _text(start_response, "404 Not Found", "no such target\n")
        if window is not None and window not in BADGE_WINDOWS:
            return _text(start_response, "404 Not Found", "windows: 24h, 7d, 30d\n")
        assert self._engine is not None
        try:
            with Session(self._engine) as session:
                facts = reads.badge_facts(session, target, self._clock())
        except Exception as exc:  # e.g. the database locked past its timeout
            log.warning("badge for %s: could not read the database: %s", target, exc)
            return _text(start_response, "503 Service Unavailable", "database unavailable\n")
        state = facts.state if facts else None
        if window is None:
            svg = state_badge(target, state)
        else:
            svg = uptime_badge(window, facts.uptime.get(window) if facts else None)
        body = svg.encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "image/svg+xml; charset=utf-8"),
                ("Cache-Control", BADGE_CACHE),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


def _text(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, none of them keeping the process alive."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Requests go to the debug log, not to stderr (Prometheus asks every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
