"""The read layer (monitor/store/reads.py) on a seeded database: what each page will show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.demo.seed import SEED_TARGETS, seed
from monitor.store import make_engine, open_database
from monitor.store import reads as q

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    url = f"sqlite:///{tmp_path_factory.mktemp('q') / 'seed.db'}"
    seed(open_database(url), now=NOW, days=2)
    return make_engine(url, readonly=True)


def test_overview_has_state_uptime_latency_and_why(engine: Engine) -> None:
    with Session(engine) as s:
        rows = {r.name: r for r in q.overview(s, NOW)}

    assert rows["minilm-embeddings"].state == "ok"
    assert rows["minilm-embeddings"].uptime["24h"] == 1.0
    assert rows["gpt2-legacy"].state == "deprecated"
    assert rows["gpt2-legacy"].uptime["24h"] == 0.0
    assert 0.25 < rows["gpt2-legacy"].uptime["7d"] < 0.35  # ok for the first 30% of two days
    assert rows["gpt2-legacy"].http_status == 410  # the latest words, not the 404 that began it
    assert "switch to https://router.huggingface.co" in rows["gpt2-legacy"].hint
    assert rows["llama-chat"].last_change == "token scope regression (403)"
    assert rows["status-page"].last_change.startswith("recovered after")
    for r in rows.values():
        assert r.p50_ms is not None and r.p50_ms <= r.p95_ms
        assert r.probes_24h == 288


def test_flags_are_the_states_that_need_action(engine: Engine) -> None:
    with Session(engine) as s:
        flagged = {f.target: f for f in q.flags(q.overview(s, NOW))}

    assert set(flagged) == {"gpt2-legacy", "llama-chat"}
    assert "Make calls to Inference Providers" in flagged["llama-chat"].hint


def test_the_overview_can_follow_the_config_order(engine: Engine) -> None:
    with Session(engine) as s:
        rows = q.overview(s, NOW, names=["status-page", "gpt2-legacy"])
    assert [r.name for r in rows] == ["status-page", "gpt2-legacy"]


def test_the_timeline_has_a_block_per_hour_and_no_data_where_nothing_ran(engine: Engine) -> None:
    with Session(engine) as s:
        blocks = q.timeline(s, "status-page", NOW - timedelta(days=3), NOW)

    assert len(blocks) == 72
    assert {b.worst for b in blocks[:24]} == {q.NO_DATA}  # before the history began
    assert "transient" in {b.worst for b in blocks}  # the outage
    assert blocks[-2].uptime == 1.0


def test_long_ranges_use_daily_blocks(engine: Engine) -> None:
    with Session(engine) as s:
        blocks = q.timeline(s, "gpt2-legacy", NOW - timedelta(days=30), NOW)
    assert len(blocks) == 31 and blocks[1].end - blocks[1].start == timedelta(days=1)
    assert blocks[-1].worst == "contract"


def test_outcome_mix_and_probe_log(engine: Engine) -> None:
    with Session(engine) as s:
        blocks = q.timeline(s, "bert-classifier", NOW - timedelta(days=2), NOW)
        log = q.probe_log(s, "bert-classifier", NOW - timedelta(days=2), NOW, limit=50)
    mix = q.outcome_mix(blocks)
    assert next(iter(mix)) == "ok" and mix["loading"] >= 5
    assert len(log) == 50 and log[0].checked_at > log[-1].checked_at


def test_incidents_with_alerts_and_stats(engine: Engine) -> None:
    with Session(engine) as s:
        rows = q.incidents(s, NOW - timedelta(days=7), NOW + timedelta(minutes=1), NOW)
        only_scope = q.incidents(s, NOW - timedelta(days=7), NOW, NOW, outcomes=["token_scope"])
    by_target = {r.target: r for r in rows}
    assert by_target["status-page"].closed_at is not None
    assert by_target["gpt2-legacy"].open
    assert (
        by_target["gpt2-legacy"].alerts
        and "deprecated" in by_target["gpt2-legacy"].alerts[0]["subject"]
    )
    assert [r.target for r in only_scope] == ["llama-chat"]
    stats = q.incident_stats(rows)
    assert stats.count == len(rows) and stats.open >= 2
    assert stats.mttr_s == pytest.approx(by_target["status-page"].duration_s)


def test_the_alert_log_has_every_status(engine: Engine) -> None:
    with Session(engine) as s:
        log = q.alerts(s, NOW - timedelta(days=7), NOW + timedelta(days=1))
    statuses = {a.status for a, _ in log}
    assert statuses == {"sent", "pending", "failed"}
    assert any("550" in a.last_error for a, _ in log)


def test_gaps_are_the_times_the_monitor_was_not_running(engine: Engine) -> None:
    with Session(engine) as s:
        assert q.gaps(s, NOW - timedelta(days=3), NOW) == []


def test_a_transient_blip_does_not_hide_the_fix_in_a_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from monitor.agent.writer import Writer
    from monitor.domain.evidence import Outcome
    from tests.test_loop_writer import T0, config, result

    url = f"sqlite:///{tmp_path / 'blip.db'}"
    w = Writer(open_database(url), config(), clock=lambda: T0)
    w.start_run()
    story = [Outcome.DEPRECATED, Outcome.DEPRECATED, Outcome.DEPRECATED, Outcome.SERVER_ERROR]
    for i, outcome in enumerate(story):
        w.write_batch([result("gpt2-legacy", outcome, T0 + timedelta(minutes=i))])

    with Session(make_engine(url, readonly=True)) as s:
        (flag,) = q.flags(q.overview(s, T0 + timedelta(minutes=5)))
    assert flag.state == "deprecated"
    assert "switch to https://router.huggingface.co" in flag.hint


def test_transitions_take_either_bound_and_a_target(engine: Engine) -> None:
    with Session(engine) as s:
        every = q.transitions(s)
        since = q.transitions(s, NOW - timedelta(hours=12))
        window = q.transitions(s, NOW - timedelta(days=3), NOW - timedelta(hours=12))
        legacy = q.transitions(s, target="gpt2-legacy")
    assert [t.at for t, _ in every] == sorted((t.at for t, _ in every), reverse=True)
    assert {t.id for t, _ in since} | {t.id for t, _ in window} == {t.id for t, _ in every}
    assert not {t.id for t, _ in since} & {t.id for t, _ in window}
    assert legacy and {name for _, name in legacy} == {"gpt2-legacy"}
    assert legacy[0][0].to_outcome == "deprecated"  # newest first


def test_incidents_since_a_time_keep_the_open_ones_and_the_later_closed_ones(
    engine: Engine,
) -> None:
    with Session(engine) as s:
        every = q.incidents(s, now=NOW)
        status = next(i for i in every if i.target == "status-page")
        later = q.incidents(s, status.closed_at + timedelta(seconds=1), now=NOW)
        bare = q.incidents(s, now=NOW, targets=["status-page"], with_alerts=False)
    assert status.duration_seconds == status.duration_s > 0
    assert all(i.duration_seconds is None for i in every if i.open)
    assert {i.id for i in later} == {i.id for i in every if i.open}  # closed before: gone
    assert [i.id for i in bare] == [status.id] and bare[0].alerts == []


def test_the_alert_log_filters_by_target_status_and_count_without_bodies(engine: Engine) -> None:
    from sqlalchemy import inspect

    with Session(engine) as s:
        every = q.alerts(s)
        legacy = q.alerts(s, target="gpt2-legacy")
        failed = q.alerts(s, statuses=["failed"])
        newest = q.alerts(s, limit=2)
        unloaded = inspect(every[0][0]).unloaded
        error = q.alert_error(s, failed[0][0].id)
    assert [a.id for a, _ in every] == sorted((a.id for a, _ in every), reverse=True)
    assert legacy and {name for _, name in legacy} == {"gpt2-legacy"}
    assert {a.status for a, _ in failed} == {"failed"} and "550" in error
    assert [a.id for a, _ in newest] == [a.id for a, _ in every[:2]]
    assert {"body_text", "body_html"} <= unloaded  # ~8 KB each, never shown in a log


def test_the_names_the_history_knows(engine: Engine) -> None:
    with Session(engine) as s:
        assert q.target_names(s) == sorted(t["name"] for t in SEED_TARGETS)


def test_overview_rows_and_flags_carry_the_latest_probes_facts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from monitor.store.models import ProbeRecord

    url = f"sqlite:///{tmp_path / 'facts.db'}"
    engine = open_database(url)
    seed(engine, now=NOW, days=1)
    facts = {"replacement_url": "https://router.huggingface.co"}
    with Session(engine) as s, s.begin():
        s.execute(
            update(ProbeRecord).where(ProbeRecord.outcome == "deprecated").values(facts=facts)
        )

    with Session(make_engine(url, readonly=True)) as s:
        rows = {r.name: r for r in q.overview(s, NOW)}
        flagged = {f.target: f for f in q.flags(rows.values())}
    assert rows["gpt2-legacy"].facts == facts and flagged["gpt2-legacy"].facts == facts
    assert rows["minilm-embeddings"].facts == {}  # empty until the classifier fills it


def test_overview_rows_carry_the_last_24_hours_and_the_state_machines_run(engine: Engine) -> None:
    with Session(engine) as s:
        rows = {r.name: r for r in q.overview(s, NOW)}

    legacy, minilm = rows["gpt2-legacy"], rows["minilm-embeddings"]
    assert len(legacy.hours) == len(minilm.hours) == q.HISTORY_HOURS
    # The seed ends at NOW (12:00): the current hour, last, has no probes yet.
    assert set(minilm.hours[:-1]) == {"ok"} and minilm.hours[-1] == "no_data"
    assert legacy.hours[-2] == "contract"  # deprecated for the last day
    with Session(engine) as s:
        later = {r.name: r for r in q.overview(s, NOW + timedelta(hours=30))}
    assert set(later["minilm-embeddings"].hours) == {"no_data"}
    assert legacy.candidate == "deprecated" and legacy.streak >= 2
    assert legacy.streak_since is not None
