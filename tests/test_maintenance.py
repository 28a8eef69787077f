"""Maintenance windows and silences: when a target is quiet (pure, DST included), what a quiet
result decides (tables, as tests/test_decide.py), the config's errors, and the writer on a real
migrated SQLite file (silences read per batch, the end-of-window alert once across a restart,
uptime leaving maintenance out). tests/test_maintenance_loop.py runs the real loop and SMTP."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
import yaml
from alembic import command
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard import charts, tables, wall
from monitor.agent.writer import Writer
from monitor.cli import app
from monitor.config.load import ConfigError, parse_config
from monitor.domain.alert_event import AlertEvent, subject_for
from monitor.domain.decide import Alerting, Decision, Route, decide
from monitor.domain.evidence import Outcome
from monitor.domain.maintenance import (
    MAINTENANCE_COLOUR,
    Every,
    Quiet,
    Silence,
    Window,
    periods,
    quiet_at,
)
from monitor.domain.states import DEFAULT_RULES, TargetState
from monitor.store import make_engine, open_database, reads, writes
from monitor.store.db import alembic_config
from monitor.store.models import AlertRecord, ProbeRecord, RollupRecord, TransitionRecord
from tests.helpers import make_config, write_config
from tests.test_decide import result
from tests.test_loop_writer import EMAIL
from tests.test_loop_writer import result as probe

OK, GONE, S500 = Outcome.OK, Outcome.DEPRECATED, Outcome.SERVER_ERROR
UTC_ = UTC
BERLIN = "Europe/Berlin"
ROOT = Path(__file__).resolve().parent.parent
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ---------------------------------------------------------------- when a window is in force


def test_a_weekly_window_starts_at_its_local_time_through_the_dst_change() -> None:
    # Tuesdays 22:00 in Berlin: 20:00 UTC in summer (CEST), 21:00 UTC in winter (CET).
    window = Window("deploy", 2 * HOUR, every=Every(time(22), BERLIN, weekday=1))
    starts = [s for s, _ in window.occurrences(utc(2026, 10, 12), utc(2026, 11, 5))]
    assert starts == [
        utc(2026, 10, 13, 20),
        utc(2026, 10, 20, 20),
        utc(2026, 10, 27, 21),  # clocks went back on Sunday 25 October
        utc(2026, 11, 3, 21),
    ]
    assert all(
        e - s == 2 * HOUR for s, e in window.occurrences(utc(2026, 10, 12), utc(2026, 11, 5))
    )


def test_a_daily_window_over_the_spring_forward_night_lasts_its_real_duration() -> None:
    # 01:30 local, 2 h: on 29 March 2026 the clocks jump 02:00 -> 03:00 inside the window.
    window = Window("nightly", 2 * HOUR, every=Every(time(1, 30), BERLIN))
    (begins, ends), *_ = window.occurrences(utc(2026, 3, 29), utc(2026, 3, 29, 6))
    assert (begins, ends) == (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 2, 30))
    assert window.occurrence_at(utc(2026, 3, 29, 2, 29)) == (begins, ends)
    assert window.occurrence_at(utc(2026, 3, 29, 2, 30)) is None  # the end is not inside


def test_a_window_that_began_before_the_range_is_still_found() -> None:
    window = Window("long", timedelta(hours=30), every=Every(time(22), "UTC", weekday=0))
    assert window.occurrence_at(utc(2026, 11, 3, 3)) == (utc(2026, 11, 2, 22), utc(2026, 11, 4, 4))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 12, 1, 21, 59), None),
        (utc(2026, 12, 1, 22), "maintenance once"),
        (utc(2026, 12, 1, 23, 59), "maintenance once"),
        (utc(2026, 12, 2, 0), "silenced by #3: deploying v2"),  # the window is over
        (utc(2026, 12, 2, 1), None),  # so is the silence
    ],
)
def test_quiet_at_names_the_window_first_then_the_silence(
    at: datetime, expected: str | None
) -> None:
    windows = [Window("once", 2 * HOUR, targets=frozenset({"llama"}), start=utc(2026, 12, 1, 22))]
    silences = [Silence(3, None, "prod", utc(2026, 12, 1, 23), utc(2026, 12, 2, 1), "deploying v2")]
    quiet = quiet_at("llama", ("prod",), at, windows, silences)
    assert (quiet.reason if quiet else None) == expected


@pytest.mark.parametrize(
    ("window", "covered"),
    [
        (Window("all", HOUR, start=utc(2026, 1, 1)), {"a", "b", "c"}),
        (Window("one", HOUR, targets=frozenset({"a"}), start=utc(2026, 1, 1)), {"a"}),
        (Window("tag", HOUR, tags=frozenset({"prod"}), start=utc(2026, 1, 1)), {"b", "c"}),
    ],
)
def test_a_window_covers_its_targets_its_tags_or_everything(window: Window, covered: set) -> None:  # type: ignore[type-arg]
    tags = {"a": (), "b": ("prod",), "c": ("prod", "eu")}
    assert {name for name, t in tags.items() if window.covers(name, t)} == covered


def test_periods_lists_what_is_in_force_and_what_is_coming_in_start_order() -> None:
    now = utc(2026, 12, 1, 12)
    windows = [Window("deploy", 2 * HOUR, every=Every(time(22), BERLIN, weekday=1))]
    silences = [
        Silence(1, "llama", None, now - HOUR, now + HOUR, "deploying v2"),
        Silence(2, "llama", None, now - 3 * HOUR, now - HOUR, "over"),
    ]
    listed = periods(windows, silences, now)
    assert [(p.kind, p.name, p.active(now)) for p in listed] == [
        ("silence", "#1", True),
        ("maintenance", "deploy", False),
    ]
    assert listed[1].starts_at == utc(2026, 12, 1, 21) and listed[1].scope == "every target"


# ---------------------------------------------------------------- what a quiet result decides

EMAIL_ROUTE = Route("email", ("oncall@example.com",))
ALERTING = Alerting((EMAIL_ROUTE,), None)
DEPLOY = Quiet("maintenance deploy", "maintenance deploy", utc(2030, 1, 1))


def walk(steps: str) -> list[Decision]:
    """One probe a minute: `steps` of 'o' (ok), 'g' (gone, 410), 's' (500); upper case inside
    the window. Incidents are left out (the writer's tests cover them)."""
    outcomes = {"o": OK, "g": GONE, "s": S500}
    state, decisions = TargetState(), []
    for i, step in enumerate(steps):
        quiet = DEPLOY if step.isupper() else None
        decision = decide(
            result(outcomes[step.lower()], i),
            "hf-legacy",
            state,
            None,
            DEFAULT_RULES,
            ALERTING,
            quiet,
        )
        state = decision.state
        decisions.append(decision)
    return decisions


def said(decisions: list[Decision]) -> list[str]:
    return [a.event.label for d in decisions for a in d.alerts]


@pytest.mark.parametrize(
    ("steps", "alerts"),
    [
        # A failure inside the window: recorded, not sent; still failing after it: one alert.
        ("ooGGGgg", ["still failing after maintenance deploy: deprecated (410)"]),
        # Failed and recovered inside the window: nothing to say.
        ("ooGGOOOoo", []),
        # Failing before the window (announced), recovered inside: people hear it recovered.
        ("oggGOOOoo", ["ok → deprecated (410)", "recovered during maintenance deploy: ok"]),
        # Failing before and after: they were told already; nothing more.
        ("oggGGGgg", ["ok → deprecated (410)"]),
        # Recovering right at the end: nothing was said, so nothing needs saying.
        ("ooGGGoogoo", []),
        # A probe at the end disagreeing with the confirmed state waits for the next one.
        ("ooGGGogg", ["still failing after maintenance deploy: deprecated (410)"]),
        # A new target added during the window: its quiet first ok is no news.
        ("OOoo", []),
        # ... but one added broken is not left unnoticed.
        ("GGgg", ["still failing after maintenance deploy: deprecated (410)"]),
        # ... or that was broken and works by the end: nobody needs to hear of it.
        ("GGooo", []),
    ],
)
def test_quiet_results_alert_nothing_and_the_end_tells_once(steps: str, alerts: list[str]) -> None:
    assert said(walk(steps)) == alerts


def test_a_quiet_transition_is_recorded_unannounced_with_its_reason() -> None:
    decisions = walk("ooGG")
    transition = decisions[-1].transition
    assert transition is not None and transition.to_outcome == "deprecated"
    assert not transition.announced and transition.quiet == "maintenance deploy"
    assert decisions[-1].alerts == () and decisions[-1].incident is not None  # still an incident
    assert (
        decisions[-1].state.last_announced == OK
        and decisions[-1].state.quiet == "maintenance deploy"
    )


def test_the_end_of_window_alert_reads_well_in_every_channel_field() -> None:
    (alert,) = walk("ooGGGg")[-1].alerts
    event = alert.event
    assert event.reason == "quiet_ended" and event.from_outcome == "ok"
    assert event.to_outcome == "deprecated" and event.http_status == 410
    assert subject_for(event) == (
        "[inferwatch] gpt2: still failing after maintenance deploy: deprecated (410)"
    )
    assert AlertEvent.from_json(event.to_json()) == event


def test_flapping_inside_a_window_sends_neither_notice() -> None:
    decisions = walk("oo" + "GO" * 12 + "O" * 20 + "oo")
    assert any(d.notice and "flapping" in d.notice for d in decisions)  # it did flap
    assert said(decisions) == []


# ---------------------------------------------------------------- the config

TARGETS = """\
targets:
  - {name: llama-chat, kind: hf-legacy, model: gpt2, tags: [prod]}
  - {name: embed, kind: hf-legacy, model: gpt2}
"""


def problems(maintenance: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(TARGETS + "maintenance:\n" + maintenance, file="mon.yaml", env={})
    return [str(p) for p in caught.value.problems]


def test_a_window_naming_an_unknown_target_or_tag_is_an_error_naming_the_line() -> None:
    found = problems(
        "  - name: weekly-deploy\n"
        "    targets: [llama-chta]\n"
        "    tags: [prd]\n"
        '    start: "2026-12-01T22:00:00Z"\n'
        "    duration: 2h\n"
    )
    assert found == [
        "mon.yaml:6: maintenance window 'weekly-deploy': field 'targets': 'llama-chta' is not "
        "a configured target (did you mean 'llama-chat'?)",
        "mon.yaml:7: maintenance window 'weekly-deploy': field 'tags': no target has the tag "
        "'prd' (tags in use: prod)",
    ]


def test_a_window_naming_a_target_with_its_own_error_reports_only_that_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "targets:\n  - {name: llama-chat, kind: hf-legacy}\n"
            "maintenance:\n  - {name: w, targets: [llama-chat], start: '2026-12-01T22:00:00Z', "
            "duration: 1h}\n",
            env={},
        )
    assert [p.field for p in caught.value.problems] == ["model"]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            '    start: "2026-12-01T22:00:00"\n    duration: 2h\n',
            "mon.yaml:6: maintenance window 'w': field 'start': needs a zone",
        ),
        (
            '    start: "2026-12-01T22:00:00Z"\n    duration: 2x\n',
            "mon.yaml:7: maintenance window 'w': field 'duration': '2x' is not a duration",
        ),
        (
            "    every: {weekday: tue, at: '22:00', tz: Europe/Berln}\n    duration: 2h\n",
            "mon.yaml:6: maintenance window 'w': field 'every.tz': 'Europe/Berln' is not a time",
        ),
        (
            "    every: {at: '22:00'}\n    duration: 25h\n",
            "mon.yaml:5: maintenance window 'w': duration 25h is longer than the 1d between",
        ),
        (
            "    duration: 2h\n",
            "mon.yaml:5: maintenance window 'w': give either start (once) or every (recurring)",
        ),
    ],
)
def test_a_bad_window_says_file_line_window_and_field(window: str, expected: str) -> None:
    (found,) = problems("  - name: w\n" + window)
    assert found.startswith(expected)


def test_an_unquoted_time_of_day_is_read_as_written() -> None:
    config = parse_config(
        TARGETS + "maintenance:\n  - {name: n, every: {at: 22:05}, duration: 1h}\n", env={}
    )
    assert config.windows[0].every == Every(time(22, 5), "UTC", None)


def test_a_good_maintenance_section_gives_domain_windows() -> None:
    config = parse_config(
        TARGETS + "maintenance:\n"
        "  - name: weekly-deploy\n"
        "    tags: [prod]\n"
        "    every: {weekday: tue, at: '22:00', tz: Europe/Berlin}\n"
        "    duration: 2h\n",
        env={},
    )
    (window,) = config.windows
    assert window == Window(
        "weekly-deploy", 2 * HOUR, tags=frozenset({"prod"}), every=Every(time(22), BERLIN, 1)
    )


# ---------------------------------------------------------------- the writer, on SQLite

T0 = utc(2026, 12, 1, 20, 50)  # the window below runs 21:00-23:00 UTC (22:00 Berlin)
WINDOW = {
    "name": "weekly-deploy",
    "targets": ["llama-chat"],
    "every": {"weekday": "tue", "at": "22:00", "tz": BERLIN},
    "duration": "2h",
}


def writer_for(db_url: str, **top: Any) -> Writer:
    config = make_config(
        [{"name": "llama-chat", "kind": "hf-legacy", "model": "gpt2", "tags": ["prod"]}],
        alerts={"email": EMAIL},
        **top,
    )
    writer = Writer(open_database(db_url), config, clock=lambda: T0)
    writer.start_run()
    return writer


def feed(writer: Writer, outcomes: str, start: datetime, step: timedelta = timedelta(minutes=5)):  # type: ignore[no-untyped-def]
    codes = {"o": OK, "g": GONE, "s": S500}
    for i, code in enumerate(outcomes):
        writer.write_batch([probe("llama-chat", codes[code], start + i * step)])


def rows(writer: Writer, model: Any) -> list[Any]:
    with Session(writer.engine) as s:
        return list(s.scalars(select(model).order_by(model.id)))


def test_the_writer_keeps_quiet_in_the_window_and_tells_once_after_it_across_a_restart(
    db_url: str,
) -> None:
    writer = writer_for(db_url, maintenance=[WINDOW])
    feed(writer, "oo", T0)  # 20:50, 20:55: before the window
    feed(writer, "gggg", utc(2026, 12, 1, 21, 30))  # inside it: deprecated, confirmed
    assert rows(writer, AlertRecord) == []
    (transition,) = [t for t in rows(writer, TransitionRecord) if t.to_outcome == "deprecated"]
    assert not transition.announced and transition.quiet_reason == "maintenance weekly-deploy"

    restarted = writer_for(db_url, maintenance=[WINDOW])  # a restart between window and end
    feed(restarted, "gg", utc(2026, 12, 1, 23, 5))
    (alert,) = rows(restarted, AlertRecord)
    assert alert.reason == "quiet_ended" and alert.subject == (
        "[inferwatch] llama-chat: still failing after maintenance weekly-deploy: deprecated (410)"
    )
    assert alert.incident_id is not None  # about the incident opened inside the window


def test_maintenance_probes_are_left_out_of_uptime(db_url: str) -> None:
    writer = writer_for(db_url, maintenance=[WINDOW])
    feed(writer, "oo", utc(2026, 12, 1, 20, 50))
    feed(writer, "ssssss", utc(2026, 12, 1, 21, 0))  # an outage inside the window
    feed(writer, "oo", utc(2026, 12, 1, 23, 0))
    with Session(writer.engine) as s:
        day = s.scalars(select(RollupRecord).where(RollupRecord.period == "d")).one()
        quiet = s.scalars(select(ProbeRecord.quiet).order_by(ProbeRecord.id)).all()
        raw = reads.raw_uptime(s, utc(2026, 12, 1, 23, 30), {"24h": timedelta(hours=24)})
    assert (day.probes, day.ok, day.quiet) == (4, 4, 6)
    assert quiet == [False] * 2 + [True] * 6 + [False] * 2
    assert raw["24h"]["llama-chat"] == (4, 4)


def test_a_silence_stored_between_batches_counts_from_the_next_batch(db_url: str) -> None:
    writer = writer_for(db_url)
    feed(writer, "oo", T0)
    with writer.engine.begin() as conn:
        silence_id = writes.add_silence(
            conn, target=None, tag="prod", starts_at=T0, ends_at=T0 + HOUR, reason="deploying v2"
        )
    feed(writer, "gg", T0 + timedelta(minutes=10))
    assert rows(writer, AlertRecord) == []
    with writer.engine.begin() as conn:
        writes.end_silence(conn, silence_id, T0 + timedelta(minutes=20))
    feed(writer, "g", T0 + timedelta(minutes=25))
    (alert,) = rows(writer, AlertRecord)
    assert alert.subject.endswith(f"still failing after silence #{silence_id}: deprecated (410)")
    reasons = [t.quiet_reason for t in rows(writer, TransitionRecord)]
    assert reasons == [None, f"silenced by #{silence_id}: deploying v2"]


def test_no_reminder_while_quiet(db_url: str) -> None:
    writer = writer_for(db_url, maintenance=[WINDOW])
    writer.config = writer.config.model_copy(
        update={"alerts": writer.config.alerts.model_copy(update={"remind_every": 600.0})}
    )
    feed(writer, "ggg", utc(2026, 12, 1, 20, 40))  # announced before the window
    writer.clock = lambda: utc(2026, 12, 1, 22)
    feed(writer, "g" * 10, utc(2026, 12, 1, 21, 5), step=timedelta(minutes=10))
    assert [a.reason for a in rows(writer, AlertRecord)] == ["transition"]
    writer.clock = lambda: utc(2026, 12, 1, 23, 30)
    feed(writer, "g", utc(2026, 12, 1, 23, 25))  # after it: reminders resume
    assert [a.reason for a in rows(writer, AlertRecord)] == ["transition", "reminder"]


# ---------------------------------------------------------------- migration 0006


def test_migration_0006_adds_silences_and_quiet_columns_and_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    old = sqlite3.connect(path)
    old.execute(
        "INSERT INTO targets (id, name, kind, url, created_at, updated_at) VALUES "
        "(1, 'gpt', 'http', 'https://x', '2026-11-01 00:00:00.000000', "
        "'2026-11-01 00:00:00.000000')"
    )
    old.execute(
        "INSERT INTO probe_results (target_id, checked_at, outcome, url, detail, hint, "
        "warning, body_excerpt) VALUES (1, 1700000000000000, 'ok', '', '', '', '', '')"
    )
    old.execute(
        "INSERT INTO probe_rollups (target_id, period, bucket_start, probes, ok, counts, "
        "latency, latency_sum, latency_max) VALUES "
        "(1, 'h', '2026-11-01 00:00:00.000000', 3, 3, '{}', '{}', 0, 0)"
    )
    old.commit()
    old.close()

    open_database(f"sqlite:///{path}")  # upgrades to head
    with Session(engine) as s:
        assert s.scalars(select(ProbeRecord.quiet)).all() == [False]
        assert s.scalars(select(RollupRecord.quiet)).all() == [0]
        writes.add_silence(s, target="gpt", tag=None, starts_at=T0, ends_at=T0 + HOUR, reason="why")
        s.commit()
        assert [x.reason for x in reads.silences(s)] == ["why"]

    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    back = sqlite3.connect(path)
    tables = {r[0] for r in back.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {r[1] for r in back.execute("PRAGMA table_info(probe_results)")}
    assert "silences" not in tables and "quiet" not in columns
    assert back.execute("SELECT count(*) FROM probe_rollups").fetchone() == (1,)


# ---------------------------------------------------------------- the dashboard


def test_a_bucket_held_by_maintenance_has_its_own_colour_unless_something_failed_outside() -> None:
    start = utc(2026, 12, 1, 21)
    held = reads.Bucket(start, start + HOUR, 0, 0, {}, None, None, quiet=12)
    mostly = reads.Bucket(start, start + HOUR, 2, 2, {"ok": 2}, None, None, quiet=10)
    failed = reads.Bucket(start, start + HOUR, 2, 0, {"deprecated": 2}, None, None, quiet=10)
    assert [b.worst for b in (held, mostly, failed)] == ["maintenance", "maintenance", "contract"]
    assert held.uptime is None and mostly.uptime == 1.0  # maintenance is not downtime

    fig = charts.status_band(
        [{**dataclasses.asdict(b), "worst": b.worst} for b in (held, failed)], ZoneInfo("UTC")
    )
    traces = {t.name: t for t in fig.data}
    assert (
        traces["maintenance"].marker.color == MAINTENANCE_COLOUR
        and len(traces["maintenance"].x) == 1
    )
    assert "12 probes in maintenance" in traces["maintenance"].hovertext[0]


def test_the_timeline_reads_maintenance_from_the_rollups(db_url: str) -> None:
    writer = writer_for(db_url, maintenance=[WINDOW])
    feed(writer, "ssssssssssss", utc(2026, 12, 1, 21, 0))  # the whole hour inside the window
    feed(writer, "o", utc(2026, 12, 1, 22, 0))
    with Session(writer.engine) as s:
        band = reads.timeline(s, "llama-chat", utc(2026, 12, 1, 21), utc(2026, 12, 1, 23))
    assert [(b.worst, b.probes, b.quiet) for b in band] == [
        ("maintenance", 0, 12),
        ("maintenance", 0, 1),
    ]


def test_the_overview_lists_active_silences_and_upcoming_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    writer = writer_for(url)
    now = datetime.now(UTC)
    writer.write_batch([probe("llama-chat", OK, now - timedelta(minutes=1))])
    with writer.engine.begin() as conn:
        writes.add_silence(
            conn, target="llama-chat", tag=None, starts_at=now, ends_at=now + HOUR, reason="v2"
        )
    config = tmp_path / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": url,
                "targets": [{"name": "llama-chat", "kind": "hf-legacy", "model": "gpt2"}],
                "maintenance": [WINDOW],  # next on Tuesday: within the 7 days listed
            }
        )
    )
    monkeypatch.setenv("INFERWATCH_CONFIG", str(config))
    monkeypatch.delenv("INFERWATCH_DATABASE", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [d.value for d in at.dataframe if "What" in d.value.columns]
    rows = {(r["What"], r["Reason / schedule"]): r[""] for r in table.to_dict("records")}
    assert rows[("silence #1", "v2")] == "active"
    assert ("maintenance weekly-deploy", "every tue at 22:00 Europe/Berlin") in rows
    assert len(rows) == 2
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_dashboards_transition_tables_say_why_a_change_was_quiet() -> None:
    rows = [
        {
            "at": utc(2026, 12, 1, 21, 35),
            "target": "llama-chat",
            "label": "ok → deprecated (410)",
            "to_outcome": "deprecated",
            "http_status": 410,
            "detail": "gone",
            "announced": False,
            "quiet_reason": "maintenance weekly-deploy",
            "incident_id": None,
        }
    ]
    frame = tables.transition_frame(rows, ZoneInfo("UTC"))
    assert list(frame["announced"]) == ["maintenance weekly-deploy"]


def test_the_writers_silence_read_is_an_index_search(db_url: str) -> None:
    engine = open_database(db_url)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    with engine.begin() as conn:
        writes.silences_since(conn, T0)
    event.remove(engine, "before_cursor_execute", capture)
    ((statement, params),) = seen
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
    assert [row[-1] for row in plan] == [
        "SEARCH silences USING INDEX ix_silences_ends_at (ends_at>?)"
    ]


# ---------------------------------------------------------------- the silence commands


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "inferwatch.yaml",
        [{"name": "llama-chat", "kind": "hf-legacy", "model": "gpt2", "tags": ["prod"]}],
        database=f"sqlite:///{tmp_path / 'cli.db'}",
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "llama-chta"], "no target named 'llama-chta'; configured: llama-chat"),
        (["--tag", "prd"], "no target has the tag 'prd'; tags in use: prod"),
        (["--target", "llama-chat", "--tag", "prod"], "give --target NAME or --tag TAG"),
        ([], "give --target NAME or --tag TAG"),
        (["--target", "llama-chat", "--for", "soon"], "'soon' is not a duration"),
    ],
)
def test_silence_add_refuses_bad_usage_with_exit_2(
    configured: Path, args: list[str], says: str
) -> None:
    done = CliRunner().invoke(app, ["silence", "add", *args, "-c", str(configured)])
    assert done.exit_code == 2
    assert says in " ".join(done.output.split())


def test_silence_add_list_and_end_through_the_cli(configured: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        app, ["silence", "add", "--tag", "prod", "--for", "90m", "-r", "v2", "-c", str(configured)]
    )
    assert added.exit_code == 0 and "silence #1: tag prod for 90m" in added.output
    listed = json.loads(
        runner.invoke(app, ["silence", "list", "-f", "json", "-c", str(configured)]).output
    )
    assert [(p["name"], p["scope"], p["active"], p["reason"]) for p in listed] == [
        ("#1", "tag prod", True, "v2")
    ]
    assert runner.invoke(app, ["silence", "end", "1", "-c", str(configured)]).exit_code == 0
    after = runner.invoke(app, ["silence", "list", "-c", str(configured)]).output
    assert "no silences or maintenance windows" in after
    again = runner.invoke(app, ["silence", "end", "1", "-c", str(configured)])
    assert again.exit_code == 0 and "already over" in again.output
    unknown = runner.invoke(app, ["silence", "end", "9", "-c", str(configured)])
    assert unknown.exit_code == 2 and "no silence #9" in unknown.output


def test_the_overviews_history_bar_shows_hours_held_by_maintenance(db_url: str) -> None:
    writer = writer_for(db_url, maintenance=[WINDOW])
    feed(writer, "ssssssssssss", utc(2026, 12, 1, 21, 0))  # 21:00-22:00, all inside
    feed(writer, "o", utc(2026, 12, 1, 23, 30))
    with Session(writer.engine) as s:
        (row,) = reads.overview(s, utc(2026, 12, 1, 23, 45))
    assert row.hours[-3:] == ("maintenance", "no_data", "ok")  # 21 h, 22 h, 23 h
    assert row.uptime["24h"] == 1.0
    bar = wall.history_bar(row.hours)
    assert MAINTENANCE_COLOUR in bar and "maintenance 1 h" in bar


def test_the_readme_maintenance_example_is_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### `maintenance`") :]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(
        "targets:\n  - {name: llama-chat, kind: hf-legacy, model: gpt2}\n" + example, env={}
    )
    assert [w.describe() for w in config.windows] == [
        "every tue at 22:00 Europe/Berlin",
        "once at 2026-12-01 22:00 UTC",
    ]


def test_a_window_added_by_a_reload_counts_from_the_next_batch(db_url: str) -> None:
    writer = writer_for(db_url)
    feed(writer, "oo", utc(2026, 12, 1, 20, 50))
    reloaded = make_config(
        [{"name": "llama-chat", "kind": "hf-legacy", "model": "gpt2", "tags": ["prod"]}],
        alerts={"email": EMAIL},
        maintenance=[WINDOW],
    )
    writer.reconfigure(reloaded)  # as a SIGHUP reload does
    feed(writer, "ggg", utc(2026, 12, 1, 21, 10))
    assert rows(writer, AlertRecord) == []
    assert [t.quiet_reason for t in rows(writer, TransitionRecord)][-1] == (
        "maintenance weekly-deploy"
    )
