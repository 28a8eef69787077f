"""The writer with a real migrated SQLite file: probe results in, rows out.

Time is controlled (results carry their own timestamps), so each scenario of the issue is
checked exactly: which transitions, which incidents, which alerts — and how many. What each
result decides is table-tested without a database in tests/test_decide.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from monitor.agent import writer as writer_module
from monitor.agent.writer import Writer
from monitor.alerts.channels.email import render
from monitor.domain.alert_event import AlertEvent, subject_for
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.store import open_database, writes
from monitor.store.models import (
    AlertRecord,
    IncidentRecord,
    MonitorRunRecord,
    ProbeRecord,
    RollupRecord,
    TransitionRecord,
)
from tests.helpers import make_config

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EMAIL = {
    "host": "127.0.0.1",
    "port": 2525,
    "security": "none",
    "sender": "inferwatch@example.com",
    "recipients": ["oncall@example.com"],
}
GONE = (
    "https://api-inference.huggingface.co is no longer supported. "
    "Please use https://router.huggingface.co instead."
)

DETAILS = {
    Outcome.OK: (200, "HTTP 200 in 40 ms", ""),
    Outcome.DEPRECATED: (410, f"HTTP 410: {GONE}", "switch to https://router.huggingface.co"),
    Outcome.TOKEN_SCOPE: (
        403,
        "HTTP 403: This authentication method does not have sufficient "
        "permissions to call Inference Providers on behalf of user harshalhonde",
        "create a token with 'Make calls to Inference Providers'",
    ),
    Outcome.LOADING: (503, "HTTP 503: Model x is currently loading", "in about 20 s"),
    Outcome.SERVER_ERROR: (500, "HTTP 500: Internal Server Error", ""),
    Outcome.AUTH_MISSING: (401, "HTTP 401: Unauthorized", "HF_TOKEN is not set"),
}


def result(name: str, outcome: Outcome, at: datetime) -> ProbeResult:
    status, detail, hint = DETAILS[outcome]
    return ProbeResult(
        target=name,
        kind="hf-legacy",
        url="http://x/models/gpt2",
        checked_at=at,
        outcome=outcome,
        http_status=status,
        timings=Timings(1.0, None, 30.0, 40.0),
        detail=detail,
        hint=hint,
        warning="",
        request_id="Root=1-abc",
        provider="hf-inference",
        headers={},
        body_excerpt="",
    )


def config(**alerts: Any):  # type: ignore[no-untyped-def]
    return make_config(
        [
            {"name": "gpt2-legacy", "kind": "hf-legacy", "model": "gpt2", "base_url": "http://x"},
            {"name": "minilm", "kind": "hf-inference", "model": "m", "base_url": "http://x"},
        ],
        alerts={"email": EMAIL, "dashboard_url": "http://dash:8501", **alerts},
    )


@pytest.fixture
def writer(db_url: str) -> Writer:
    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()
    return w


def feed(
    writer: Writer, outcomes: list[Outcome], name: str = "gpt2-legacy", start: int = 0
) -> None:
    """One probe a minute, one batch each (like the live loop at low volume)."""
    for i, outcome in enumerate(outcomes, start=start):
        writer.write_batch([result(name, outcome, T0 + timedelta(minutes=i))])


def rows(writer: Writer, model):  # type: ignore[no-untyped-def]
    with Session(writer.engine) as s:
        return list(s.scalars(select(model).order_by(model.id)))


def text_of(alert: AlertRecord) -> str:
    """The email's text part, as the outbox renders it from the stored event when it sends."""
    return render(AlertEvent.from_json(alert.event)).text


OK, GONE410, SCOPE, LOAD, S500 = (
    Outcome.OK,
    Outcome.DEPRECATED,
    Outcome.TOKEN_SCOPE,
    Outcome.LOADING,
    Outcome.SERVER_ERROR,
)


def test_a_healthy_target_turning_410_gives_exactly_one_alert_with_the_evidence(
    writer: Writer,
) -> None:
    feed(writer, [OK, OK, OK, GONE410, GONE410, GONE410, GONE410])

    (first, change) = rows(writer, TransitionRecord)
    assert (first.from_outcome, first.to_outcome, first.announced) == (None, "ok", False)
    assert (change.from_outcome, change.to_outcome, change.announced) == ("ok", "deprecated", True)
    assert change.label == "ok → deprecated (410)"
    assert change.started_at == T0 + timedelta(minutes=3)  # when it began, not when confirmed
    (alert,) = rows(writer, AlertRecord)
    assert alert.subject == "[inferwatch] gpt2-legacy: ok → deprecated (410)"
    assert GONE in text_of(alert)
    assert "switch to https://router.huggingface.co" in text_of(alert)
    assert "Root=1-abc" in text_of(alert) and "hf-inference" in text_of(alert)
    assert "http://dash:8501/target?name=gpt2-legacy" in text_of(alert)
    assert alert.status == "pending" and alert.recipients == ["oncall@example.com"]


def test_a_token_losing_its_scope_gives_exactly_one_alert(writer: Writer) -> None:
    feed(writer, [OK, OK, SCOPE, SCOPE, SCOPE, SCOPE, SCOPE])

    (alert,) = rows(writer, AlertRecord)
    assert "token scope regression (403)" in alert.subject
    assert "Make calls to Inference Providers" in text_of(alert)


def test_an_outage_alerts_once_down_and_once_on_recovery(writer: Writer) -> None:
    feed(writer, [OK, S500, S500, S500, S500, OK, S500, S500, OK, OK, OK])

    subjects = [a.subject for a in rows(writer, AlertRecord)]
    assert subjects == [
        "[inferwatch] gpt2-legacy: ok → server_error (500)",
        "[inferwatch] gpt2-legacy: server_error → ok (recovered after 7m)",
    ]
    (incident,) = rows(writer, IncidentRecord)
    assert incident.opened_at == T0 + timedelta(minutes=1)
    assert incident.closed_at == T0 + timedelta(minutes=8)
    assert incident.duration_seconds == 7 * 60


def test_a_lone_503_while_a_model_wakes_never_alerts(writer: Writer) -> None:
    feed(writer, [OK, OK, LOAD, OK, OK, LOAD, LOAD, OK, OK])

    assert rows(writer, AlertRecord) == []
    assert [t.to_outcome for t in rows(writer, TransitionRecord)] == ["ok"]
    assert rows(writer, IncidentRecord) == []


def test_a_target_failing_from_its_first_probe_is_announced(writer: Writer) -> None:
    feed(writer, [Outcome.AUTH_MISSING, Outcome.AUTH_MISSING, Outcome.AUTH_MISSING])

    (alert,) = rows(writer, AlertRecord)
    assert alert.subject == "[inferwatch] gpt2-legacy: first probe: auth_missing (401)"
    assert "HF_TOKEN is not set" in text_of(alert)


def test_a_class_change_updates_the_incident_and_alerts(writer: Writer) -> None:
    feed(writer, [OK, S500, S500, S500, SCOPE, SCOPE])

    assert [a.subject.split(": ", 1)[1] for a in rows(writer, AlertRecord)] == [
        "ok → server_error (500)",
        "server_error → token_scope (403)",
    ]
    (incident,) = rows(writer, IncidentRecord)
    assert incident.outcomes == ["server_error", "token_scope"]
    assert incident.closed_at is None


def test_a_restart_never_re_announces_but_announces_what_changed_meanwhile(db_url: str) -> None:
    engine = open_database(db_url)
    first = Writer(engine, config(), clock=lambda: T0)
    first.start_run()
    feed(first, [OK, OK, GONE410, GONE410])
    first.stop_run()
    assert len(rows(first, AlertRecord)) == 1

    second = Writer(engine, config(), clock=lambda: T0 + timedelta(hours=1))
    second.start_run()
    feed(second, [GONE410, GONE410, GONE410], start=60)  # still deprecated: nothing new
    assert len(rows(second, AlertRecord)) == 1
    feed(second, [OK, OK], start=63)  # fixed while... now recovered: announced once
    subjects = [a.subject for a in rows(second, AlertRecord)]
    assert len(subjects) == 2 and "recovered" in subjects[1]


def test_a_change_while_stopped_is_announced_after_the_restart(db_url: str) -> None:
    engine = open_database(db_url)
    first = Writer(engine, config(), clock=lambda: T0)
    first.start_run()
    feed(first, [OK, OK])
    first.stop_run()

    second = Writer(engine, config(), clock=lambda: T0 + timedelta(hours=2))
    second.start_run()
    feed(second, [SCOPE, SCOPE], start=120)

    (alert,) = rows(second, AlertRecord)
    assert "token scope regression (403)" in alert.subject


def test_a_crashed_run_is_closed_at_its_last_heartbeat(db_url: str) -> None:
    engine = open_database(db_url)
    crashed = Writer(engine, config(), clock=lambda: T0)
    crashed.start_run()
    feed(crashed, [OK])  # heartbeat at T0, then the process dies without stop_run

    later = Writer(engine, config(), clock=lambda: T0 + timedelta(hours=3))
    later.start_run()

    runs = rows(later, MonitorRunRecord)
    assert [r.stopped_at for r in runs] == [T0, None]
    assert runs[1].started_at - runs[0].stopped_at == timedelta(hours=3)  # the "no data" gap


def test_reminders_repeat_while_an_incident_stays_open(db_url: str) -> None:
    now = [T0]
    w = Writer(open_database(db_url), config(remind_every="30m"), clock=lambda: now[0])
    w.start_run()
    for minute in range(0, 100, 10):
        now[0] = T0 + timedelta(minutes=minute)
        w.write_batch([result("gpt2-legacy", GONE410, now[0])])

    subjects = [a.subject for a in rows(w, AlertRecord)]
    assert subjects[0].endswith("first probe: deprecated (410)")
    reminders = [s for s in subjects if "reminder" in s]
    assert len(reminders) == 2  # 30 and 60 minutes after the first alert (t=10m -> 40m, 70m)
    assert "still deprecated" in reminders[0]


def test_no_email_settings_means_transitions_but_no_outbox(db_url: str) -> None:
    plain = make_config([{"name": "gpt2-legacy", "kind": "hf-legacy", "model": "gpt2"}])
    w = Writer(open_database(db_url), plain, clock=lambda: T0)
    w.start_run()
    feed(w, [OK, GONE410, GONE410])

    assert [t.to_outcome for t in rows(w, TransitionRecord)] == ["ok", "deprecated"]
    assert rows(w, AlertRecord) == []


def test_per_target_recipients_override_the_default(db_url: str) -> None:
    cfg = make_config(
        [
            {
                "name": "gpt2-legacy",
                "kind": "hf-legacy",
                "model": "gpt2",
                "recipients": ["ml@example.com"],
            }
        ],
        alerts={"email": EMAIL},
    )
    w = Writer(open_database(db_url), cfg, clock=lambda: T0)
    w.start_run()
    feed(w, [GONE410, GONE410])

    (alert,) = rows(w, AlertRecord)
    assert alert.recipients == ["ml@example.com"]


def test_flapping_sends_one_notice_then_stays_quiet(writer: Writer) -> None:
    feed(writer, [OK, S500] * 15 + [OK] * 25)

    subjects = [a.subject for a in rows(writer, AlertRecord)]
    flapping = [s for s in subjects if "flapping" in s]
    assert len(flapping) == 2  # one when it starts, one when it settles
    assert "is flapping" in flapping[0] and "stopped flapping" in flapping[1]
    assert len(subjects) <= 4


def test_thresholds_can_be_set_per_target(db_url: str) -> None:
    cfg = make_config(
        [{"name": "gpt2-legacy", "kind": "hf-legacy", "model": "gpt2", "failure_threshold": 1}],
        alerts={"email": EMAIL},
    )
    w = Writer(open_database(db_url), cfg, clock=lambda: T0)
    w.start_run()
    feed(w, [OK, LOAD])

    assert [t.to_outcome for t in rows(w, TransitionRecord)] == ["ok", "loading"]


def test_a_result_for_a_removed_target_does_not_cost_the_others_their_alerts(db_url: str) -> None:
    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()
    feed(w, [OK, OK])
    ghost = result("ghost", GONE410, T0 + timedelta(minutes=2))  # in flight when it was removed

    w.write_batch([ghost, result("gpt2-legacy", GONE410, T0 + timedelta(minutes=2))])
    w.write_batch([ghost, result("gpt2-legacy", GONE410, T0 + timedelta(minutes=3))])

    assert [a.subject for a in rows(w, AlertRecord)] == [
        "[inferwatch] gpt2-legacy: ok → deprecated (410)"
    ]


def test_a_failed_batch_advances_nothing_so_writing_it_again_gives_the_same_result(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()
    feed(w, [OK, GONE410])
    batch = [result("gpt2-legacy", GONE410, T0 + timedelta(minutes=2))]

    def broken(*args: Any) -> None:
        raise RuntimeError("disk full")

    # An edge case no real database produces on cue: it fails after the transition is written.
    monkeypatch.setattr(writes, "save_rollups", broken)
    with pytest.raises(RuntimeError):
        w.write_batch(batch)
    assert rows(w, AlertRecord) == [] and rows(w, TransitionRecord)[-1].to_outcome == "ok"
    assert w.states["gpt2-legacy"].accepted == Outcome.OK

    monkeypatch.undo()
    w.write_batch(batch)
    assert [a.subject for a in rows(w, AlertRecord)] == [
        "[inferwatch] gpt2-legacy: ok → deprecated (410)"
    ]
    # The rollups count every stored probe once: the failed try left no trace in them.
    probes = len(rows(w, ProbeRecord))
    with Session(w.engine) as s:
        rollups = list(s.scalars(select(RollupRecord)))
    for period in ("h", "d"):
        assert sum(r.probes for r in rollups if r.period == period) == probes, period


def test_the_outbox_row_holds_the_event_and_its_subject_not_a_rendering(writer: Writer) -> None:
    feed(writer, [OK, OK, GONE410, GONE410])

    (alert,) = rows(writer, AlertRecord)
    (incident,) = rows(writer, IncidentRecord)
    (_, transition) = rows(writer, TransitionRecord)
    event = AlertEvent.from_json(alert.event)
    assert (event.reason, event.target, event.kind) == ("transition", "gpt2-legacy", "hf-legacy")
    assert (event.from_outcome, event.to_outcome) == ("ok", "deprecated")
    assert (event.at, event.since) == (T0 + timedelta(minutes=3), T0 + timedelta(minutes=2))
    assert (event.http_status, event.request_id) == (410, "Root=1-abc")
    assert (
        event.provider == "hf-inference" and event.hint == "switch to https://router.huggingface.co"
    )
    assert event.dashboard_url == "http://dash:8501"
    assert [line.outcome for line in event.recent] == ["deprecated", "deprecated", "ok", "ok"]
    assert event.incident_id == incident.id == alert.incident_id == transition.incident_id
    assert event.incident_opened_at == incident.opened_at
    assert alert.transition_id == transition.id and alert.channel == "email"
    assert alert.subject == subject_for(event) and (alert.body_text, alert.body_html) == ("", "")
    assert incident.last_alert_at == T0  # reminders count from the alert


def test_facts_are_stored_with_the_probe_the_transition_and_the_alert(writer: Writer) -> None:
    facts = {"replacement_url": "https://router.huggingface.co"}
    for i, outcome in enumerate([OK, GONE410, GONE410]):
        probe = result("gpt2-legacy", outcome, T0 + timedelta(minutes=i))
        writer.write_batch([dataclasses.replace(probe, facts=facts) if outcome != OK else probe])

    assert [p.facts for p in rows(writer, ProbeRecord)] == [{}, facts, facts]
    assert [t.facts for t in rows(writer, TransitionRecord)] == [{}, facts]
    (alert,) = rows(writer, AlertRecord)
    assert alert.event["facts"] == facts


def test_one_batch_with_several_changes_keeps_their_order_and_incident(writer: Writer) -> None:
    gpt2 = [OK, OK, GONE410, GONE410, OK, OK]
    minilm = [OK, S500, S500, S500]
    writer.write_batch(
        [result("gpt2-legacy", o, T0 + timedelta(minutes=i)) for i, o in enumerate(gpt2)]
        + [result("minilm", o, T0 + timedelta(minutes=i)) for i, o in enumerate(minilm)]
    )

    assert [a.subject for a in rows(writer, AlertRecord)] == [
        "[inferwatch] gpt2-legacy: ok → deprecated (410)",
        "[inferwatch] gpt2-legacy: deprecated → ok (recovered after 2m)",
        "[inferwatch] minilm: ok → server_error (500)",
    ]
    incidents = rows(writer, IncidentRecord)
    assert [i.outcomes for i in incidents] == [["deprecated"], ["server_error"]]
    gone, down = incidents
    assert gone.closed_at == T0 + timedelta(minutes=4) and down.closed_at is None
    assert [a.incident_id for a in rows(writer, AlertRecord)] == [gone.id, gone.id, down.id]


def test_the_writer_knows_no_channel() -> None:
    from tests.test_architecture import graph

    assert [m for m in graph()["monitor.agent.writer"] if m.startswith("monitor.alerts")] == []


def test_routine_results_gather_longer_and_news_is_written_at_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of results that repeat their targets' last word waits up to ROUTINE_WAIT (here
    3 s, so that a slow machine cannot blur the two); one holding news, BATCH_WAIT (0.25 s)."""
    monkeypatch.setattr(writer_module, "ROUTINE_WAIT", 3.0)
    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()

    def stored() -> int:
        return len(rows(w, ProbeRecord))

    async def until(count: int, within: float) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while stored() < count:
            assert loop.time() - started < within, f"{stored()} of {count} stored in {within} s"
            await asyncio.sleep(0.05)
        return loop.time() - started

    async def scenario() -> tuple[float, int, float, float]:
        task = asyncio.create_task(w.run())
        await w.submit(result("gpt2-legacy", Outcome.OK, T0))  # a first word: news
        first = await until(1, within=2.5)
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=1)))
        await asyncio.sleep(1.5)
        waiting = stored()  # the routine result still gathering
        routine = await until(2, within=3.0)
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=2)))
        await w.submit(result("gpt2-legacy", Outcome.SERVER_ERROR, T0 + timedelta(minutes=3)))
        news = await until(4, within=2.5)  # the failure takes the routine one along
        for minute in (4, 5, 6):  # confirmed failing (three in a row)
            await w.submit(
                result("gpt2-legacy", Outcome.SERVER_ERROR, T0 + timedelta(minutes=minute))
            )
        await until(7, within=2.5)
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=7)))
        await until(8, within=2.5)
        # An ok like the one before, but the one that confirms the recovery: news too.
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=8)))
        recovered = await until(9, within=2.5)
        await w.close()
        await task
        return first, waiting, routine, max(news, recovered)

    first, waiting, routine, news = asyncio.run(scenario())

    assert waiting == 1
    assert first < 2.5 and news < 2.5 and routine > 0.5
    assert [t.to_outcome for t in rows(w, TransitionRecord)][-1] == Outcome.OK


def _quick_writer(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Writer:
    """A running-loop writer whose routine batches wait 3 s: far from the 0.25 s of news."""
    monkeypatch.setattr(writer_module, "ROUTINE_WAIT", 3.0)
    w = Writer(open_database(db_url), config(), clock=lambda: T0)
    w.start_run()
    return w


async def _stored_within(w: Writer, count: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while len(rows(w, ProbeRecord)) < count:
        assert loop.time() - started < seconds, f"{len(rows(w, ProbeRecord))} of {count} stored"
        await asyncio.sleep(0.05)


def test_news_left_behind_a_reload_is_not_held_for_a_routine_batch(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _quick_writer(db_url, monkeypatch)

    async def scenario() -> float:
        task = asyncio.create_task(w.run())
        await w.submit(result("gpt2-legacy", Outcome.OK, T0))
        await _stored_within(w, 1, 2.5)
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=1)))  # routine
        await asyncio.sleep(0.1)
        w.queue_config(config())  # ends the batch: the failure queued next is left behind
        await asyncio.sleep(0.05)
        await w.submit(result("gpt2-legacy", Outcome.SERVER_ERROR, T0 + timedelta(minutes=2)))
        await _stored_within(w, 3, 2.0)  # not after a routine wait (3 s)
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=3)))  # routine...
        await asyncio.sleep(0.1)
        w.queue_config(config())
        await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=4)))
        closing = asyncio.get_running_loop().time()
        await w.close()  # ...but a stop does not wait for one
        await task
        return asyncio.get_running_loop().time() - closing

    assert asyncio.run(scenario()) < 2.0
    assert len(rows(w, ProbeRecord)) == 5


def test_results_held_while_the_database_was_away_are_written_without_a_routine_wait(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database going away is simulated (the one edge here no local server produces on
    cue): the writer's transaction raises as SQLAlchemy does when the connection is gone."""
    w = _quick_writer(db_url, monkeypatch)
    away = [False]
    write = w._write_batch

    def write_or_fail(results: Any) -> int:
        if away[0]:
            raise OperationalError("COMMIT", {}, Exception("database is away"))
        return write(results)

    monkeypatch.setattr(w, "_write_batch", write_or_fail)

    async def scenario() -> None:
        task = asyncio.create_task(w.run())
        await w.submit(result("minilm", Outcome.OK, T0))
        await w.submit(result("gpt2-legacy", Outcome.OK, T0))  # settled: its next ok is routine
        await _stored_within(w, 2, 2.5)
        away[0] = True
        for minute in (1, 2):  # a token losing its scope, confirmed: an alert
            await w.submit(result("minilm", Outcome.TOKEN_SCOPE, T0 + timedelta(minutes=minute)))
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        away[0] = False
        minute = 3
        loop = asyncio.get_running_loop()
        back = loop.time()
        while len(rows(w, ProbeRecord)) < 4:  # routine results keep coming meanwhile
            assert loop.time() - back < 2.0, "the held results waited for a routine batch"
            await w.submit(result("gpt2-legacy", Outcome.OK, T0 + timedelta(minutes=minute)))
            minute += 1
            await asyncio.sleep(0.1)
        assert [r.outcome for r in rows(w, ProbeRecord)][2:4] == ["token_scope"] * 2
        await w.close()
        await task

    asyncio.run(scenario())
    assert len(rows(w, AlertRecord)) == 1  # the held confirmation's alert, written once
