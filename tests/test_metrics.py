"""/metrics: the recorder's families, a running `inferwatch run` serving them over HTTP, and a
real Prometheus (Debian's) scraping it.

The running monitor probes one healthy and one broken target on a fake provider and mails its
alert to the local SMTP server, so every family has real values: probes, states, an alert
attempt, scheduler lag.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.agent.metrics import Metrics
from monitor.agent.service import Monitor
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.states import TargetState
from monitor.store import open_database
from tests.helpers import make_config
from tests.smtp import Inbox
from tests.test_launch import get, start_cli, stop, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def series_of(found: Samples, target: str) -> list[str]:
    return sorted({name for name, labels in found if ("target", target) in labels})


def result(
    target: str, outcome: Outcome, total_ms: float = 120.0, kind: str = "http"
) -> ProbeResult:
    return ProbeResult(
        target=target,
        kind=kind,
        url="http://127.0.0.1:9/",
        checked_at=datetime.now(UTC),
        outcome=outcome,
        http_status=200 if outcome is Outcome.OK else 500,
        timings=Timings(connect_ms=1.0, tls_ms=None, ttfb_ms=100.0, total_ms=total_ms),
        detail="",
        hint="",
        warning="",
        request_id=None,
        provider=None,
        headers={},
        body_excerpt="",
    )


@dataclass(frozen=True)
class Named:
    name: str
    kind: str


# ------------------------------------------------------------------ the recorder


def test_the_recorder_fills_every_family_and_forgets_removed_targets() -> None:
    states = {
        "up": TargetState(accepted=Outcome.OK),
        "down": TargetState(accepted=Outcome.SERVER_ERROR),
        "gone-from-config": TargetState(accepted=Outcome.OK),
    }
    metrics = Metrics([Named("up", "http"), Named("down", "http")], lambda: states)
    metrics.probed(result("up", Outcome.OK, total_ms=80))
    metrics.probed(result("up", Outcome.OK, total_ms=300))
    metrics.probed(result("down", Outcome.SERVER_ERROR))
    metrics.probed(result("unknown", Outcome.OK))  # removed while in flight: no series
    metrics.lagged(0.002)
    metrics.alerted("webhook", "retry")
    metrics.alerted("webhook", "sent")

    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "inferwatch_probe_success", target="up", kind="http") == 1
    assert value(found, "inferwatch_probe_success", target="down", kind="http") == 0
    assert value(found, "inferwatch_probes_total", target="up", outcome="ok") == 2
    assert value(found, "inferwatch_probes_total", target="down", outcome="server_error") == 1
    duration = "inferwatch_probe_duration_seconds"
    assert value(found, f"{duration}_count", target="up", kind="http") == 2
    assert value(found, f"{duration}_bucket", target="up", kind="http", le="0.1") == 1
    assert value(found, f"{duration}_bucket", target="up", kind="http", le="0.5") == 2
    assert value(found, f"{duration}_sum", target="up", kind="http") == pytest.approx(0.38)
    phase = "inferwatch_probe_phase_seconds"
    assert value(found, phase, target="up", phase="ttfb") == pytest.approx(0.1)
    tls = value(found, phase, target="up", phase="tls")
    assert tls is not None and tls != tls  # NaN: a plain-HTTP probe has no TLS phase
    assert value(found, "inferwatch_target_state", target="up", outcome="ok") == 1
    assert value(found, "inferwatch_target_state", target="down", outcome="server_error") == 1
    assert series_of(found, "gone-from-config") == [] and series_of(found, "unknown") == []
    assert value(found, "inferwatch_scheduler_lag_seconds_count") == 1
    assert value(found, "inferwatch_alerts_total", channel="webhook", status="retry") == 1
    assert value(found, "inferwatch_alerts_total", channel="webhook", status="sent") == 1
    assert not any(name.endswith("_created") for name, _ in found)

    # The state moves: only the new state has a series.
    states["down"] = TargetState(accepted=Outcome.OK)
    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "inferwatch_target_state", target="down", outcome="ok") == 1
    assert value(found, "inferwatch_target_state", target="down", outcome="server_error") is None

    # A reload drops "down" and changes the kind of "up": both lose every series.
    metrics.configure([Named("up", "openai-chat")])
    found = samples(generate_latest(metrics.registry).decode())
    assert series_of(found, "down") == []
    assert value(found, "inferwatch_probe_success", target="up", kind="http") is None
    metrics.probed(result("up", Outcome.OK, kind="openai-chat"))
    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "inferwatch_probe_success", target="up", kind="openai-chat") == 1
    assert value(found, "inferwatch_probes_total", target="up", outcome="ok") == 1  # anew


def test_only_streamed_targets_get_a_ttft_series_and_lose_it_on_removal() -> None:
    from dataclasses import replace

    metrics = Metrics([Named("chat", "openai-chat"), Named("plain", "http")])
    streamed = result("chat", Outcome.OK, kind="openai-chat")
    streamed = replace(streamed, timings=replace(streamed.timings, ttft_ms=250.0))
    metrics.probed(streamed)
    metrics.probed(result("plain", Outcome.OK))

    found = samples(generate_latest(metrics.registry).decode())
    phase = "inferwatch_probe_phase_seconds"
    assert value(found, phase, target="chat", phase="ttft") == pytest.approx(0.25)
    assert value(found, phase, target="plain", phase="ttft") is None  # no NaN series per target

    metrics.configure([Named("plain", "http")])
    found = samples(generate_latest(metrics.registry).decode())
    assert series_of(found, "chat") == []


def test_a_reload_removes_a_target_from_the_monitors_metrics(tmp_path: Path) -> None:
    targets = [
        {"name": "a", "kind": "http", "url": "http://127.0.0.1:9/a"},
        {"name": "b", "kind": "http", "url": "http://127.0.0.1:9/b"},
    ]
    database = f"sqlite:///{tmp_path / 'm.db'}"
    config = make_config(targets, database=database, metrics={"listen": "127.0.0.1:0"})
    monitor = Monitor(config, open_database(database), env={})
    assert monitor.metrics is not None
    for name in ("a", "b"):
        monitor.metrics.probed(result(name, Outcome.OK))
    monitor.apply(make_config(targets[:1], database=database, metrics={"listen": "127.0.0.1:0"}))
    found = samples(generate_latest(monitor.metrics.registry).decode())
    assert series_of(found, "a") == [
        "inferwatch_probe_duration_seconds_bucket",
        "inferwatch_probe_duration_seconds_count",
        "inferwatch_probe_duration_seconds_sum",
        "inferwatch_probe_phase_seconds",
        "inferwatch_probe_success",
        "inferwatch_probes_total",
    ]
    assert series_of(found, "b") == []


def test_no_metrics_section_means_no_recorder_and_no_listener(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'm.db'}"
    config = make_config([{"name": "a", "kind": "http", "url": "http://127.0.0.1:9/"}])
    monitor = Monitor(config, open_database(database), env={})
    assert monitor.metrics is None and monitor._listener is None


# ------------------------------------------------------------------ a running monitor


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Running:
    port: int
    proc: subprocess.Popen  # type: ignore[type-arg]
    log: Path
    inbox: Inbox

    def text(self) -> str:
        status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        return text if status == 200 else ""

    def metrics(self) -> Samples:
        return samples(self.text())


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory, shared_provider: FakeProvider
) -> Iterator[Running]:
    """`inferwatch run` with metrics.listen, one healthy and one broken target, an SMTP inbox."""
    shared_provider.reset()
    shared_provider.route("/healthy/models/m", Reply(200, [[0.1, 0.2]]))
    shared_provider.route("/broken/models/m", sim.legacy_401_no_token())
    folder = tmp_path_factory.mktemp("metrics")
    port = free_port()
    inbox = Inbox().up()
    base = shared_provider.url
    config = {
        "database": f"sqlite:///{folder / 'watch.db'}",
        "defaults": {"interval": "200ms", "timeout": "1s"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "alerts": {"email": inbox.settings()},
        "targets": [
            {"name": "healthy", "kind": "hf-legacy", "model": "m", "base_url": f"{base}/healthy"},
            {"name": "broken", "kind": "hf-legacy", "model": "m", "base_url": f"{base}/broken"},
        ],
    }
    path = folder / "inferwatch.yaml"
    path.write_text(yaml.safe_dump(config))
    log = folder / "run.log"
    proc = start_cli(["run", "-c", str(path)], log)
    here = Running(port, proc, log, inbox)
    try:
        wait_for(lambda: len(inbox.messages) >= 1, proc, log, timeout=30)
        yield here
    finally:
        if proc.poll() is None:
            stop(proc, log)
        inbox.down()


def test_a_running_monitor_serves_every_family_over_http(running: Running) -> None:
    def settled() -> bool:
        found = running.metrics()
        return (
            value(found, "inferwatch_target_state", target="healthy", outcome="ok") == 1
            and value(found, "inferwatch_alerts_total", channel="email", status="sent") == 1
        )

    wait_for(settled, running.proc, running.log, timeout=20)
    found = running.metrics()
    kind = "hf-legacy"
    assert value(found, "inferwatch_probe_success", target="healthy", kind=kind) == 1
    assert value(found, "inferwatch_probe_success", target="broken", kind=kind) == 0
    assert value(found, "inferwatch_target_state", target="broken", outcome="auth_missing") == 1
    assert value(found, "inferwatch_target_state", target="broken", outcome="ok") is None
    ok = value(found, "inferwatch_probes_total", target="healthy", outcome="ok")
    failed = value(found, "inferwatch_probes_total", target="broken", outcome="auth_missing")
    assert ok is not None and ok >= 2 and failed is not None and failed >= 2
    count = value(found, "inferwatch_probe_duration_seconds_count", target="healthy", kind=kind)
    assert count is not None and count >= ok - 1  # a probe may be counted between the two reads
    lags = value(found, "inferwatch_scheduler_lag_seconds_count")
    assert lags is not None and lags >= ok + failed - 2
    assert value(found, "inferwatch_alerts_total", channel="email", status="sent") == 1
    # Only inferwatch's own families: the registry is not the process-global one.
    assert not any(name.startswith(("process_", "python_")) for name, _ in found)
    # Names and kinds only: no URL (a query string may hold a key) and no SMTP address.
    text = running.text()
    assert "127.0.0.1" not in text and "example.com" not in text


def test_a_real_prometheus_scrapes_it(running: Running, tmp_path: Path) -> None:
    if not PROMETHEUS.is_file():
        pytest.fail(
            f"{PROMETHEUS} is missing: install Debian's Prometheus (apt-get install -y "
            "prometheus); .ci/run does."
        )
    web = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "inferwatch",
                        "static_configs": [{"targets": [f"127.0.0.1:{running.port}"]}],
                    }
                ],
            }
        )
    )
    log = tmp_path / "prometheus.log"
    with log.open("w") as sink:
        prometheus = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )

    def query(promql: str) -> list[str]:
        url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                data = json.load(answer)
        except OSError:
            return []
        return [r["value"][1] for r in data["data"]["result"]]

    try:
        started = time.monotonic()
        scraped: dict[str, list[str]] = {}

        def scraped_both() -> bool:
            scraped["up"] = query('up{job="inferwatch"}')
            scraped["broken"] = query('inferwatch_probe_success{target="broken"}')
            scraped["healthy"] = query('inferwatch_probe_success{target="healthy"}')
            return all(scraped.values())

        wait_for(scraped_both, prometheus, log, timeout=20)
        assert scraped == {"up": ["1"], "broken": ["0"], "healthy": ["1"]}
        assert query('inferwatch_target_state{target="broken"}') == ["1"]
        assert time.monotonic() - started < 20
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=10)


@pytest.mark.parametrize("command", ["run", "up"])
def test_a_taken_port_exits_2_naming_it(tmp_path: Path, command: str) -> None:
    """Before anything runs; under `up` the dashboard it started is stopped again."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "inferwatch.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "database": f"sqlite:///{tmp_path / 'watch.db'}",
                    "metrics": {"listen": f"127.0.0.1:{port}"},
                    "targets": [{"name": "t", "kind": "http", "url": "http://127.0.0.1:9/"}],
                }
            )
        )
        log = tmp_path / "run.log"
        dashboard = ["--port", str(free_port())] if command == "up" else []
        proc = start_cli([command, *dashboard, "-c", str(path)], log)
        code = proc.wait(timeout=20)
    text = log.read_text()
    assert code == 2, text
    assert f"metrics.listen 127.0.0.1:{port}: the port is already in use" in text, text
    assert str(path) in text and "Traceback" not in text, text
