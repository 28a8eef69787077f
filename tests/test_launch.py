"""`inferwatch dashboard` and `inferwatch up` as real processes: they serve, probe and stop cleanly.

Helpers here are shared with test_demo.py and test_browser.py (real child processes, logs in
files so a pipe can never fill up, and a clear failure with the log when a process dies).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.cli.dashboard_server import command, port_free, without_secrets
from monitor.demo.simulator import FakeProvider, Reply
from tests.helpers import make_config


def start_cli(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:  # type: ignore[type-arg]
    """`inferwatch ARGS` as a child process; stdout and stderr go to `log`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")}
    with log.open("w") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**base, **(env or {})},
        )


def wait_for(
    check: Callable[[], bool],
    proc: subprocess.Popen,  # type: ignore[type-arg]
    log: Path,
    timeout: float = 45.0,
) -> None:
    """Poll `check` until true; fail with the log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"timed out:\n{log.read_text()}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen, log: Path) -> tuple[int, float]:  # type: ignore[type-arg]
    """SIGTERM; the exit code and how long the process took to go."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 15 s after SIGTERM:\n{log.read_text()}") from None
    return proc.returncode, time.monotonic() - sent


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except OSError:
        return 0, ""


def serving(port: int) -> bool:
    return get(f"http://127.0.0.1:{port}/_stcore/health") == (200, "ok")


def db_count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # not migrated yet


def write_config(folder: Path, targets: list[dict], **top: object) -> Path:  # type: ignore[type-arg]
    path = folder / "inferwatch.yaml"
    path.write_text(yaml.safe_dump({"database": "sqlite:///watch.db", "targets": targets, **top}))
    return path


# ------------------------------------------------------------------ inferwatch dashboard


def test_dashboard_serves_the_app_and_stops_on_sigterm(tmp_path: Path, free_port: int) -> None:
    cfg = write_config(tmp_path, [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}])
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)]).exit_code == 0
    log = tmp_path / "dashboard.log"
    proc = start_cli(["dashboard", "-c", str(cfg), "--port", str(free_port)], log)
    try:
        wait_for(lambda: f"http://localhost:{free_port}" in log.read_text(), proc, log)
        status, page = get(f"http://127.0.0.1:{free_port}/")
        assert status == 200 and "<title>" in page.lower(), page
    finally:
        code, took = stop(proc, log)
    assert code == 0, log.read_text()
    assert took < 10
    assert port_free(free_port), "streamlit outlived inferwatch dashboard"


def test_dashboard_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets: [{name: t, kind: nope}]\n")
    result = CliRunner().invoke(app, ["dashboard", "-c", str(bad), "--port", "1"])
    assert result.exit_code == 2
    assert "nothing was run" in result.stderr


def test_a_taken_port_is_a_clear_runtime_error(tmp_path: Path) -> None:
    import socket

    cfg = write_config(tmp_path, [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}])
    assert CliRunner().invoke(app, ["db", "upgrade", "-c", str(cfg)]).exit_code == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command_name in ("dashboard", "up"):
            result = CliRunner().invoke(app, [command_name, "-c", str(cfg), "-p", str(port)])
            assert result.exit_code == 1, result.output
            assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_streamlit_runs_headless_on_loopback_without_the_configs_secrets() -> None:
    argv = command(8600)
    flags = dict(zip(argv[5::2], argv[6::2], strict=False))
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    assert flags["--server.headless"] == "true" and flags["--server.port"] == "8600"
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--browser.serverAddress"] == "localhost"  # no external-IP lookup at start
    assert flags["--browser.gatherUsageStats"] == "false"
    config = make_config(
        [{"name": "t", "kind": "hf-whoami", "token_env": "HF_TOKEN"}],
        alerts={
            "email": {
                "host": "h",
                "sender": "a@b",
                "recipients": ["c@d"],
                "username_env": "SMTP_USER",
                "password_env": "SMTP_PASSWORD",
            },
            "webhook": {"url": "https://hooks.example.com/x", "secret_env": "SIGN_KEY"},
            "slack": {"webhook_url_env": "SLACK_URL"},
            "apprise": {"urls_env": "APPRISE_URLS"},
        },
    )
    env = {
        "HF_TOKEN": "hf_x",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "p",
        "SIGN_KEY": "k",
        "SLACK_URL": "https://hooks.slack.com/services/T/B/X",
        "APPRISE_URLS": "ntfy://t",
        "PATH": "/bin",
    }
    assert without_secrets(env, config) == {
        "HF_TOKEN": "",
        "SMTP_USER": "",
        "SMTP_PASSWORD": "",
        "SIGN_KEY": "",
        "SLACK_URL": "",
        "APPRISE_URLS": "",
        "PATH": "/bin",
    }


# ------------------------------------------------------------------ inferwatch up


def test_up_serves_the_dashboard_probes_and_stops_cleanly(
    tmp_path: Path, provider: FakeProvider, free_port: int
) -> None:
    provider.route("/models/gpt2", Reply(200, [{"generated_text": "hi"}]))
    cfg = write_config(
        tmp_path,
        [{"name": "gpt2", "kind": "hf-legacy", "model": "gpt2", "base_url": provider.url}],
        defaults={"interval": "200ms", "timeout": "2s"},
    )
    db = tmp_path / "watch.db"
    log = tmp_path / "up.log"
    proc = start_cli(["up", "-c", str(cfg), "--port", str(free_port)], log)
    try:
        wait_for(lambda: serving(free_port), proc, log)
        wait_for(lambda: db_count(db, "select count(*) from probe_results") >= 3, proc, log)
        wait_for(lambda: f"http://localhost:{free_port}" in log.read_text(), proc, log)
    finally:
        code, took = stop(proc, log)
    text = log.read_text()
    assert code == 0, text
    assert took < 12
    assert "stopped" in text and "Traceback" not in text
    assert db_count(db, "select count(*) from monitor_runs where stopped_at is not null") == 1
    assert port_free(free_port), "streamlit outlived inferwatch up"
