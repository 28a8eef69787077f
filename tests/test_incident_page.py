"""The incident page (/incident?id=N): its read (reads.incident_detail) on a history written
through the real Writer, the page itself (AppTest), the Markdown summary, and the links to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboard import charts, tables
from dashboard import format as f
from monitor.demo.seed import seed
from monitor.store import make_engine, open_database
from monitor.store import reads as q

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
NOW = datetime.now(UTC).replace(microsecond=0)  # the app reads the real clock


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('incident') / 'seed.db'}"
    seed(open_database(url), now=NOW)
    return url


@pytest.fixture(scope="module")
def ids(seeded: str) -> dict[str, int]:
    """The seeded incidents' ids by target: status-page's closed outage, the open others."""
    with Session(make_engine(seeded, readonly=True)) as s:
        return {r.target: r.id for r in q.incidents(s)}


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("INFERWATCH_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.delenv("INFERWATCH_DATABASE", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def open_page(monkeypatch: pytest.MonkeyPatch, url: str, view: str, **query: str) -> AppTest:
    monkeypatch.setenv("INFERWATCH_DATABASE", url)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.query_params.update(query)
    at.switch_page(f"views/{view}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown_of(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


# ---------------------------------------------------------------- the read


def test_incident_detail_has_transitions_alerts_probes_and_both_evidences(seeded: str) -> None:
    with Session(make_engine(seeded, readonly=True)) as s:
        outage = next(r for r in q.incidents(s) if r.target == "status-page")
        detail = q.incident_detail(s, outage.id, NOW)
        assert q.incident_detail(s, 10**6, NOW) is None
    assert detail is not None
    assert detail.incident.target == "status-page" and not detail.incident.open
    assert [(t.from_outcome, t.to_outcome) for t in detail.transitions] == [
        ("ok", "server_error"),
        ("server_error", "ok"),
    ]
    assert [a.status for a in detail.alerts] == ["sent", "failed"]
    assert {a.channel for a in detail.alerts} == {"email"}
    # Every probe of the outage and a margin either side, oldest first.
    start, end = detail.window
    assert start < detail.incident.opened_at and end > detail.incident.closed_at  # type: ignore[operator]
    assert not detail.bucketed and len(detail.points) == 34
    assert [p.at for p in detail.points] == sorted(p.at for p in detail.points)
    assert {p.outcome for p in detail.points} == {"ok", "server_error"}
    # The first failing probe and the first ok one: full evidence, not lean rows.
    first, back = detail.first_failing, detail.recovering
    assert first is not None and back is not None
    assert first.outcome == "server_error" and first.http_status == 502
    assert first.checked_at == detail.transitions[0].started_at
    assert "502 Bad Gateway" in first.detail and first.request_id
    assert back.outcome == "ok" and back.checked_at == detail.transitions[1].started_at
    assert back.detail.startswith("HTTP 200")


def test_an_open_incident_has_no_recovering_probe_and_runs_to_now(
    seeded: str, ids: dict[str, int]
) -> None:
    with Session(make_engine(seeded, readonly=True)) as s:
        detail = q.incident_detail(s, ids["llama-chat"], NOW)
    assert detail is not None and detail.incident.open
    assert detail.recovering is None
    assert detail.first_failing is not None and detail.first_failing.http_status == 403
    assert detail.window[1] == NOW


def test_long_incidents_are_bucketed_keeping_the_failures() -> None:
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    points = [
        q.ProbePoint(t0 + timedelta(seconds=i), "ok", float(i % 7), 200) for i in range(12_000)
    ]
    points[5_001] = q.ProbePoint(points[5_001].at, "server_error", 3.0, 502)
    out = q.bucket_points(points, limit=1_000)
    assert len(out) <= 1_000 and sum(p.probes for p in out) == 12_000
    assert [p.outcome for p in out].count("server_error") == 1
    assert max(p.latency_ms or 0 for p in out) == 6.0
    assert q.bucket_points(points[:10], limit=1_000) == points[:10]
    # A margin of a tenth, 10 minutes to 2 hours, never past now.
    opened = t0
    assert q.incident_window(opened, opened + timedelta(hours=1), t0 + timedelta(days=1)) == (
        opened - timedelta(minutes=10),
        opened + timedelta(hours=1, minutes=10),
    )
    now = opened + timedelta(days=3)
    assert q.incident_window(opened, None, now) == (opened - timedelta(hours=2), now)


# ---------------------------------------------------------------- the page


def test_the_incident_page_tells_the_whole_story(
    monkeypatch: pytest.MonkeyPatch, seeded: str, ids: dict[str, int]
) -> None:
    at = open_page(monkeypatch, seeded, "incident", id=str(ids["status-page"]))

    assert at.title[0].value == f"Incident #{ids['status-page']}: status-page"
    link = next(p for p in at.get("page_link") if "status-page" in p.proto.label)
    assert link.proto.page.endswith("target") and "name=status-page" in link.proto.query_string
    shown = markdown_of(at)
    assert shown.count("server_error</span>") == 1 and shown.count(">ok</span>") == 2
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Duration"] == "2h 25m" and metrics["Closed"] != "ongoing"

    charts_shown = at.get("plotly_chart")
    assert len(charts_shown) == 1  # band and latency in one figure
    spec = json.loads(charts_shown[0].proto.spec)
    assert {t["name"] for t in spec["data"]} >= {"ok", "transient failure", "latency"}

    changes = at.dataframe[0].value
    assert changes["change"].tolist() == ["ok → server_error", "server_error → ok"]
    assert changes["HTTP"].tolist() == ["502", "200"]
    alerts = at.dataframe[1].value
    assert alerts["status"].tolist() == ["sent", "failed"]
    assert alerts["channel"].tolist() == ["email", "email"]
    assert "550 5.1.1 no such user" in alerts["error"].str.cat()

    assert "502 Bad Gateway" in shown and "Root=1-" in shown  # the first failing probe
    assert "HTTP 200 in" in shown  # the recovering one
    summary = at.code[-1]
    assert summary.language == "markdown"
    assert f"# Incident #{ids['status-page']}: status-page (server_error)" in summary.value
    assert "- **Duration:** 2h 25m" in summary.value
    assert "## Alerts sent" in summary.value and "email (transition): sent" in summary.value


def test_an_open_incident_says_ongoing_and_still_failing(
    monkeypatch: pytest.MonkeyPatch, seeded: str, ids: dict[str, int]
) -> None:
    at = open_page(monkeypatch, seeded, "incident", id=str(ids["gpt2-legacy"]))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Closed"] == "ongoing" and metrics["Duration"].endswith(" so far")
    assert "Still failing." in [c.value for c in at.caption]
    assert "ongoing (as of" in at.code[-1].value


@pytest.mark.parametrize("wanted", ["999999", "abc", ""])
def test_an_unknown_or_missing_id_is_a_plain_message(
    monkeypatch: pytest.MonkeyPatch, seeded: str, wanted: str
) -> None:
    at = open_page(monkeypatch, seeded, "incident", id=wanted)
    assert not at.error and not at.dataframe
    message = at.info[0].value
    assert ("No incident #999999" in message) if wanted.isdigit() else ("?id=" in message)


# ---------------------------------------------------------------- the Markdown summary


def _detail(**incident: Any) -> dict[str, Any]:
    opened = datetime(2026, 11, 22, 14, 5, 3, tzinfo=UTC)
    probe = {
        "checked_at": opened,
        "outcome": "deprecated",
        "http_status": 410,
        "latency_ms": 123.4,
        "url": "https://api.example/v1",
        "detail": "HTTP 410: gone, use *v2* <b>now</b>",
        "hint": "switch to https://router.example",
        "warning": "",
        "request_id": "req-7f3a",
        "provider": "hf-inference",
        "headers": {"x-request-id": "req-7f3a"},
        "body_excerpt": "```not closed early```",
        "facts": {},
    }
    return {
        "incident": {
            "id": 7,
            "target": "gpt2-legacy",
            "opened_at": opened,
            "closed_at": opened + timedelta(hours=2, minutes=14),
            "duration_s": 8040.0,
            "outcomes": ["deprecated"],
            **incident,
        },
        "transitions": [
            {
                "at": opened + timedelta(minutes=5),
                "started_at": opened,
                "from_outcome": "ok",
                "to_outcome": "deprecated",
                "label": "ok → deprecated (410)",
                "detail": probe["detail"],
                "hint": probe["hint"],
                "http_status": 410,
            },
            {
                "at": opened + timedelta(hours=2, minutes=19),
                "from_outcome": "deprecated",
                "to_outcome": "ok",
                "label": "recovered after 2h 14m",
                "detail": "HTTP 200",
                "hint": "",
                "http_status": 200,
            },
        ],
        "alerts": [
            {
                "created_at": opened + timedelta(minutes=5),
                "sent_at": opened + timedelta(minutes=5, seconds=2),
                "channel": "email",
                "reason": "transition",
                "status": "sent",
                "attempts": 1,
                "last_error": "",
            }
        ],
        "first_failing": probe,
        "recovering": None,
    }


def test_the_markdown_summary_is_a_post_mortem_skeleton() -> None:
    md = f.incident_markdown(_detail(), datetime(2026, 11, 23, tzinfo=UTC))
    assert md.startswith("# Incident #7: gpt2-legacy (deprecated)\n")
    assert "- **States:** ok → deprecated → ok" in md
    assert "- **Started:** 2026-11-22T14:05:03Z" in md
    assert "- **Ended:** 2026-11-22T16:19:03Z" in md
    assert "- **Duration:** 2h 14m" in md
    assert "- 2026-11-22T14:05:03Z — ok → deprecated (HTTP 410): HTTP 410: gone" in md
    assert "\\</b\\> (confirmed 2026-11-22T14:10:03Z)\n" in md
    assert "— deprecated → ok (HTTP 200), recovered after 2h 14m: HTTP 200" in md
    assert "- 2026-11-22T14:10:03Z — email (transition): sent, sent 2026-11-22T14:10:05Z" in md
    # Untrusted words escaped: no emphasis, no HTML; a body cannot close its code block.
    assert "use \\*v2\\* \\<b\\>now\\</b\\>" in md and "<b>" not in md
    assert "````\n```not closed early```\n````" in md
    assert "- **Request id:** req-7f3a" in md and "x-request-id: req-7f3a" in md
    assert "### Recovering probe\n\nNot kept" in md
    assert md.rstrip().endswith("- switch to https://router.example")


def test_an_ongoing_incident_reads_so_far() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    md = f.incident_markdown(_detail(closed_at=None, duration_s=3600.0), now)
    assert "- **Ended:** ongoing (as of 2026-11-23T00:00:00Z)" in md
    assert "- **Duration:** 1h so far" in md or "- **Duration:** 1h 0m so far" in md
    assert "- **States:** ok → deprecated\n" in md


def test_the_timeline_draws_runs_not_one_bar_per_probe() -> None:
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    outcomes = ["ok"] * 5 + ["server_error"] * 3 + ["ok"] * 4
    points = [
        {"at": t0 + timedelta(minutes=i), "outcome": o, "latency_ms": 50.0, "http_status": 200}
        for i, o in enumerate(outcomes)
    ]
    runs = charts.outcome_runs(points, t0 + timedelta(minutes=12))
    assert [(r["outcome"], r["probes"]) for r in runs] == [
        ("ok", 5),
        ("server_error", 3),
        ("ok", 4),
    ]
    assert runs[1]["start"] == t0 + timedelta(minutes=5) and runs[1]["end"] == runs[2]["start"]
    fig = charts.incident_timeline(points, (t0, t0 + timedelta(minutes=12)), f.zone("UTC"))
    bars = [t for t in fig.data if t.type == "bar"]
    assert sum(len(t.x) for t in bars) == 3
    assert len(next(t for t in fig.data if t.name == "latency").x) == 12


# ---------------------------------------------------------------- links to it


def test_incidents_transitions_and_alerts_link_to_the_incident_page(
    monkeypatch: pytest.MonkeyPatch, seeded: str, ids: dict[str, int]
) -> None:
    at = open_page(monkeypatch, seeded, "incidents")
    rows = at.dataframe[0].value.set_index("target")
    assert rows.loc["status-page", "incident"] == f"incident?id={ids['status-page']}"
    config = json.loads(at.dataframe[0].proto.columns)["incident"]
    assert config["type_config"]["type"] == "link"
    sent_for = at.dataframe[1].value.set_index("target")
    assert set(sent_for.loc["status-page", "incident"]) == {f"incident?id={ids['status-page']}"}

    at = open_page(monkeypatch, seeded, "target", name="status-page")
    changes = at.dataframe[1].value  # the first probe opened no incident: no link
    assert changes["incident"].dropna().tolist() == [f"incident?id={ids['status-page']}"] * 2
    assert at.dataframe[2].value["incident"].tolist() == [f"incident?id={ids['status-page']}"]

    at = open_page(monkeypatch, seeded, "alerts")
    linked = set(at.dataframe[0].value["incident"].dropna())
    assert {f"incident?id={i}" for i in ids.values()} <= linked


def test_frames_without_an_incident_have_no_link() -> None:
    row = {
        "at": NOW,
        "target": "t",
        "label": "first probe",
        "to_outcome": "ok",
        "http_status": 200,
        "detail": "",
        "announced": False,
        "incident_id": None,
    }
    frame = tables.transition_frame([row], f.zone("UTC"))
    assert frame["incident"].tolist() == [None]
    assert tables.link_columns(frame.drop(columns=["incident"])) == {}
