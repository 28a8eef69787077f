"""Agents in several regions: the holder decides each target from every region's results,
by a quorum of regions (monitor/domain/quorum.py), on a real PostgreSQL.

Three writers stand for three agents in three regions. Each probes the target; the one that
holds its state folds its own results, and takes the other regions' from `region_results` in
the transaction that decides them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from monitor.agent.writer import Writer
from monitor.config.model import Config
from monitor.domain.agents import Agent, duties
from monitor.domain.evidence import Outcome
from monitor.store.models import (
    AlertRecord,
    IncidentRecord,
    ProbeRecord,
    RegionResultRecord,
    TargetRegionStateRecord,
    TransitionRecord,
)
from tests.helpers import make_config
from tests.test_agents_ownership import URL, needs_pg, pg, register, rows  # noqa: F401
from tests.test_loop_writer import EMAIL, T0, result

OK, S500 = Outcome.OK, Outcome.SERVER_ERROR
REGIONS = ("eu", "us", "ap")


def regions_config(names: tuple[str, ...] = ("t",), **alerts: Any) -> Config:
    return make_config(
        [{"name": name, "kind": "hf-legacy", "model": "gpt2"} for name in names],
        alerts={"email": EMAIL, **alerts},
        database=URL,
    )


class Fleet:
    """One writer per region, each holding what `duties` gives it."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        live = [Agent(f"agent-{r}", r, T0) for r in REGIONS]
        self.writers: dict[str, Writer] = {}
        for region in REGIONS:
            agent_id = register(engine, f"agent-{region}", region)
            w = Writer(engine, config, clock=lambda: T0, agent_id=agent_id, region=region)
            w.start_run()
            w.hold({"t"} & duties(f"agent-{region}", region, ["t"], live)[1], REGIONS)
            self.writers[region] = w
        holders = [r for r, w in self.writers.items() if w.held]
        assert len(holders) == 1
        self.holder = holders[0]

    def probe(self, minute: int, **outcomes: Outcome) -> None:
        """Each region's result of this minute, the holder's batch last (it takes the
        others' in it)."""
        at = T0 + timedelta(minutes=minute)
        order = sorted(outcomes, key=lambda r: r == self.holder)
        for region in order:
            self.writers[region].write_batch([result("t", outcomes[region], at)])


@pytest.fixture
def fleet(pg: Engine) -> Iterator[Fleet]:  # noqa: F811
    yield Fleet(pg, regions_config())


def transitions(engine: Engine) -> list[TransitionRecord]:
    return rows(engine, TransitionRecord)


@needs_pg
def test_one_region_failing_alone_is_recorded_as_regional_and_alerts_nobody(
    fleet: Fleet,
) -> None:
    engine = fleet.engine
    for minute in range(2):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    for minute in range(2, 8):
        fleet.probe(minute, eu=S500, us=OK, ap=OK)
    changes = transitions(engine)
    assert [(t.to_outcome, t.region) for t in changes] == [("ok", None), ("server_error", "eu")]
    regional = changes[1]
    assert regional.label.startswith("eu: server_error (500) since ")
    assert regional.regions == ["eu"] and not regional.announced
    assert rows(engine, AlertRecord) == [] and rows(engine, IncidentRecord) == []
    # Every region's probes are stored, and nothing waits for the holder any more.
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(ProbeRecord)) == 24
        assert conn.scalar(select(func.count()).select_from(RegionResultRecord)) == 0
    states = {s.region: s.state["accepted"] for s in rows(engine, TargetRegionStateRecord)}
    assert states == {"eu": "server_error", "us": "ok", "ap": "ok"}


@needs_pg
def test_a_majority_failing_alerts_once_and_recovery_once(fleet: Fleet) -> None:
    engine = fleet.engine
    fleet.probe(0, eu=OK, us=OK, ap=OK)
    for minute in range(1, 6):
        fleet.probe(minute, eu=S500, us=S500, ap=S500)
    for minute in range(6, 9):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    changes = [t for t in transitions(engine) if t.region is None]
    assert [t.to_outcome for t in changes] == ["ok", "server_error", "ok"]
    # Confirmed the moment a majority (2 of 3) had confirmed it in their own regions.
    confirming = changes[1].regions or []
    assert len(confirming) == 2 and set(confirming) < set(REGIONS)
    alerts = rows(engine, AlertRecord)
    assert [a.event["to_outcome"] for a in alerts] == ["server_error", "ok"]
    assert alerts[0].event["regions"] == confirming
    assert [t for t in transitions(engine) if t.region is not None] == []
    assert len(rows(engine, IncidentRecord)) == 1


@needs_pg
def test_regional_alerts_when_asked_for(pg: Engine) -> None:  # noqa: F811
    fleet = Fleet(pg, regions_config(regional=True))
    for minute in range(2):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    for minute in range(2, 8):
        fleet.probe(minute, eu=S500, us=OK, ap=OK)
    for minute in range(8, 11):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    alerts = rows(pg, AlertRecord)
    assert [a.reason for a in alerts] == ["regional", "regional"]
    assert alerts[0].subject.startswith("[inferwatch] t: eu: server_error (500) since")
    assert "eu: recovered" in alerts[1].subject
    assert rows(pg, IncidentRecord) == []


def waiting_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(RegionResultRecord)) or 0)


@needs_pg
def test_a_released_target_is_not_decided_by_its_old_holder_before_the_next_takes_it(
    pg: Engine,  # noqa: F811
) -> None:
    """Between a writer dropping a target (membership moved it) and the next holder taking
    it, the row still names the old holder; the old holder no longer has its state and must
    leave the handed-over results for the next."""
    fleet = Fleet(pg, regions_config(("t", "u")))
    fleet.probe(0, eu=OK, us=OK, ap=OK)
    old = fleet.writers[fleet.holder]
    old.hold({"u"}, REGIONS)  # t released in memory (it keeps another); nobody took t yet
    other = next(r for r in REGIONS if r != fleet.holder)
    fleet.writers[other].write_batch([result("t", S500, T0 + timedelta(minutes=1))])
    assert waiting_rows(pg) == 1
    old.write_batch([])  # its idle poll
    assert waiting_rows(pg) == 1  # left for the next holder
    states = rows(pg, TargetRegionStateRecord)
    assert {s.state["accepted"] for s in states} == {"ok"}


@needs_pg
def test_a_result_handed_over_long_ago_is_stored_but_decides_nothing(fleet: Fleet) -> None:
    engine = fleet.engine
    holder = fleet.writers[fleet.holder]
    for minute in range(2):
        holder.write_batch([result("t", OK, T0 + timedelta(minutes=minute))])
    # The other two regions' first results: failures from an hour before, handed over late
    # (their holder was away): far outside the quorum's window.
    for region in (r for r in REGIONS if r != fleet.holder):
        for minute in range(3):
            at = T0 - timedelta(hours=1) + timedelta(minutes=minute)
            fleet.writers[region].write_batch([result("t", S500, at)])
    holder.clock = lambda: T0 + timedelta(minutes=2)
    holder.write_batch([])
    assert waiting_rows(engine) == 0  # taken
    assert [t.to_outcome for t in transitions(engine)] == ["ok"]  # and decided nothing
    assert rows(engine, AlertRecord) == []


@needs_pg
def test_a_handed_over_result_this_version_cannot_read_does_not_block_the_holder(
    fleet: Fleet,
) -> None:
    engine = fleet.engine
    fleet.probe(0, eu=OK, us=OK, ap=OK)
    other = next(r for r in REGIONS if r != fleet.holder)
    fleet.writers[other].write_batch([result("t", OK, T0 + timedelta(minutes=1))])
    with engine.begin() as conn:  # as a newer agent with a new outcome would have written it
        conn.execute(
            ProbeRecord.__table__.update()
            .where(ProbeRecord.id == select(func.max(ProbeRecord.id)).scalar_subquery())
            .values(outcome="an_outcome_from_the_future")
        )
    holder = fleet.writers[fleet.holder]
    holder.write_batch([result("t", OK, T0 + timedelta(minutes=1, seconds=1))])
    assert waiting_rows(engine) == 0
    assert len(rows(engine, ProbeRecord)) == 5  # the holder's own result was written
