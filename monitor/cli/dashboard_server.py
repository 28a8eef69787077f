"""Starting the Streamlit dashboard as a child process, for `dashboard`, `up` and `demo`.

The app is the installed `dashboard/app.py` (found through importlib.resources, so a plain
`pip install .` works). It gets the config path and the database URL through the environment
(`INFERWATCH_CONFIG`, `INFERWATCH_DATABASE`) and opens the database read-only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import IO, Any, Protocol

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"  # the dashboard has no login: only this machine, unless asked
START_TIMEOUT = 60.0  # a cold streamlit start on a slow machine takes several seconds
STOP_TIMEOUT = 5.0

# Streamlit's own banner repeats the URL we print ourselves; everything else is passed on.
_BANNER = (
    "You can now view your Streamlit app",
    "URL:",
    "Local URL:",
    "Network URL:",
    "Stopping...",
)


class DashboardError(Exception):
    """The dashboard could not be started (port taken, streamlit failed)."""


def app_path() -> Path:
    """The installed dashboard entry script."""
    return Path(str(importlib.resources.files("dashboard") / "app.py"))


def browser_host(host: str) -> str:
    """The host name to print in URLs: `localhost` for loopback and all-interfaces binds."""
    return "localhost" if host in ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1", "") else host


def url_for(host: str, port: int) -> str:
    return f"http://{browser_host(host)}:{port}"


def command(port: int, host: str = DEFAULT_HOST, app: Path | None = None) -> list[str]:
    """The `streamlit run` command line: headless, no usage stats, no file watching."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app or app_path()),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        host,
        # Without it a headless start looks up this machine's external IP (no route out here).
        "--browser.serverAddress",
        browser_host(host),
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--server.fileWatcherType",
        "none",  # installed code does not change under us; saves a polling thread
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",  # no "Deploy" button on a monitoring board
        "--logger.level",
        "warning",  # its INFO lines (server started, ...) are noise beside the monitor's log
    ]


def port_free(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when nothing listens on host:port (a bind would succeed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class Dashboard:
    """One `streamlit run` child: start, wait until it serves, stop."""

    def __init__(
        self,
        config_path: Path,
        database: str | None,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        app: Path | None = None,
        say: Callable[[str], None] | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.config_path = config_path.resolve()
        self.database = database
        self.port = port
        self.host = host
        self.app = app or app_path()
        self.url = url_for(host, port)
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    def start(self) -> Dashboard:
        """Start streamlit; raise DashboardError at once if the port is taken or app missing."""
        if not self.app.is_file():
            raise DashboardError(f"the dashboard app is missing: {self.app}")
        if not port_free(self.port, self.host):
            raise DashboardError(
                f"port {self.port} on {self.host} is already in use; pass --port with a free one"
            )
        env = dict(os.environ if self.env is None else self.env)
        env["INFERWATCH_CONFIG"] = str(self.config_path)
        if self.database:
            env["INFERWATCH_DATABASE"] = self.database  # the very database the CLI resolved
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            command(self.port, self.host, self.app),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=self._forward, args=(self.proc.stdout,), name="dashboard-log", daemon=True
        )
        self._pump.start()
        return self

    def _forward(self, stream: IO[str]) -> None:
        """Pass streamlit's output on, prefixed, minus its banner (a pipe must be drained)."""
        for line in stream:
            text = line.rstrip()
            if text and not text.lstrip().startswith(_BANNER):
                self.say(f"dashboard: {text}")

    def health_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "localhost", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/_stcore/health"

    def serving(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url(), timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_until_serving(
        self, timeout: float = START_TIMEOUT, stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """Poll the health endpoint; False if streamlit exited, `stop()` or the time is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop():
            if self.exited() is not None:
                return False
            if self.serving():
                return True
            time.sleep(0.2)
        return False

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns streamlit's exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._pump is not None:
            self._pump.join(timeout=2)
        return self.proc.returncode


def stopped_by_signal(returncode: int | None) -> bool:
    """Streamlit's exit code after Ctrl-C / SIGTERM (it exits 0 on its own signal handlers)."""
    return returncode in (0, -signal.SIGTERM, -signal.SIGINT)


class Stoppable(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_beside(
    monitor: Stoppable,
    board: Dashboard,
    on_ready: Callable[[], None],
    also: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run `monitor` in this loop while `board` serves; stop both together.

    The monitor owns SIGTERM/SIGINT (it stops cleanly on them); the dashboard is stopped after
    it. If streamlit fails to start or dies, the monitor is stopped too and the result is 1, so
    a supervisor restarts the pair instead of leaving a monitor without its dashboard.
    """
    log = logging.getLogger("monitor.dashboard")
    task = asyncio.create_task(monitor.run(), name="monitor")
    extra: asyncio.Task[None] | None = None
    if also is not None:
        extra = asyncio.create_task(also(), name="also")
    failed = False
    try:
        ready = await asyncio.to_thread(board.wait_until_serving, START_TIMEOUT, task.done)
        if ready:
            on_ready()
        elif not task.done():
            log.error(
                "the dashboard did not start (streamlit exit code %s); stopping", board.exited()
            )
            failed = True
            monitor.stop()
        while not task.done():
            code = board.exited()
            if code is not None:
                failed = failed or not stopped_by_signal(code)
                log.log(
                    logging.ERROR if failed else logging.INFO,
                    "the dashboard stopped (exit code %s); stopping the monitor",
                    code,
                )
                monitor.stop()
                break
            await asyncio.wait({task}, timeout=0.5)
        await task
    finally:
        if extra is not None:
            extra.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await extra
        await asyncio.to_thread(board.stop)
    return 1 if failed else 0


def without_secrets(env: Mapping[str, str], config: Any) -> dict[str, str]:
    """The environment with every variable the config reads a token or login from blanked.

    The dashboard only reads the database; it has no use for credentials. Blanked, not
    removed, so a `${VAR}` naming one still interpolates and the app's config still loads.
    """
    names = {t.token_env for t in config.targets if t.token_env}
    alerts = config.alerts
    if alerts.email is not None:
        names |= {alerts.email.username_env, alerts.email.password_env} - {None}
    if alerts.webhook is not None and alerts.webhook.secret_env:
        names.add(alerts.webhook.secret_env)
    if alerts.slack is not None:
        names.add(alerts.slack.webhook_url_env)
    if alerts.apprise is not None:
        names.add(alerts.apprise.urls_env)
    return {k: "" if k in names else v for k, v in env.items()}
