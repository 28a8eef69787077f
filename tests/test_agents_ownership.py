"""Several agents on one database: who probes which target, and the writer's fence.

Each state has one holder (`target_states.holder`); a writer decides only for the targets the
database says it holds, checked under a row lock in each batch's transaction, and stores every
other result as an observation (a probe row with its agent, nothing else). The PostgreSQL
tests run when INFERWATCH_TEST_POSTGRES_URL names a database they may wipe; the same writer
rules run on a real SQLite file always.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from monitor.agent.membership import Membership
from monitor.agent.scheduler import Slots, make_scheduler
from monitor.agent.writer import Holding, Writer
from monitor.config.model import Config
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.agents import LOST_AFTER_S, Agent, alive, duties
from monitor.domain.evidence import Outcome
from monitor.store import make_engine, open_database, writes
from monitor.store.models import (
    AgentRecord,
    AlertRecord,
    IncidentRecord,
    ProbeRecord,
    TargetRecord,
    TargetStateRecord,
    TransitionRecord,
)
from tests.helpers import make_config
from tests.smtp import Inbox
from tests.test_loop_writer import EMAIL, T0, result

URL = os.environ.get("INFERWATCH_TEST_POSTGRES_URL", "")
needs_pg = pytest.mark.skipif(not URL, reason="set INFERWATCH_TEST_POSTGRES_URL (CI does)")
OK, S500 = Outcome.OK, Outcome.SERVER_ERROR


def targets_config(n: int = 1, database: str = "sqlite:///unused.db") -> Config:
    names = ["t"] if n == 1 else [f"t{i:02d}" for i in range(n)]
    return make_config(
        [{"name": name, "kind": "hf-legacy", "model": "gpt2"} for name in names],
        alerts={"email": EMAIL},
        database=database,
    )


@pytest.fixture
def pg() -> Iterator[Engine]:
    with make_engine(URL).begin() as conn:  # a clean database each time
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine = open_database(URL)
    yield engine
    engine.dispose()


def register(engine: Engine, name: str, region: str = "default", at: datetime = T0) -> int:
    """An agents row, as a join leaves it (the registry's own rules are tested apart)."""
    with Session(engine) as s, s.begin():
        row = AgentRecord(
            name=name,
            region=region,
            version="test",
            host="h",
            pid=1,
            started_at=at,
            heartbeat_at=at,
            stopped_at=None,
        )
        s.add(row)
        s.flush()
        return row.id


def agent_writer(engine: Engine, config: Config, agent_id: int) -> Writer:
    w = Writer(engine, config, clock=lambda: T0, agent_id=agent_id)
    w.start_run()
    return w


def rows(engine: Engine, model):  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        key = model.__table__.primary_key.columns.values()[0]
        return list(s.scalars(select(model).order_by(key)))


def feed(writer: Writer, outcome: Outcome, minute: int, name: str = "t") -> None:
    writer.write_batch([result(name, outcome, T0 + timedelta(minutes=minute))])


def holder(engine: Engine, name: str = "t") -> int | None:
    with Session(engine) as s:
        return s.scalar(
            select(TargetStateRecord.holder)
            .join(TargetRecord, TargetRecord.id == TargetStateRecord.target_id)
            .where(TargetRecord.name == name)
        )


# ---------------------------------------------------------------- the fenced writer


@needs_pg
def test_two_agents_fed_the_same_failure_record_one_transition_and_one_alert(pg: Engine) -> None:
    config = targets_config(database=URL)
    a_id, b_id = register(pg, "a"), register(pg, "b")
    a, b = agent_writer(pg, config, a_id), agent_writer(pg, config, b_id)
    live = [Agent("a", "default", T0), Agent("b", "default", T0)]
    # Both compute their duties from the same membership: one of them holds the state.
    for w, name in ((a, "a"), (b, "b")):
        w.hold(duties(name, "default", ["t"], live)[1])
    assert sorted([len(a.held or ()), len(b.held or ())]) == [0, 1]

    # Both probe it (as two regions would) and write at the same moments, in threads.
    for minute, outcome in enumerate([OK, OK, S500, S500, S500, S500]):
        start = threading.Barrier(2)

        def write(w: Writer, minute: int = minute, outcome: Outcome = outcome, start=start) -> None:
            start.wait()
            feed(w, outcome, minute)

        threads = [threading.Thread(target=write, args=(w,)) for w in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)

    probes = rows(pg, ProbeRecord)
    assert len(probes) == 12 and {p.agent_id for p in probes} == {a_id, b_id}
    failing = [t for t in rows(pg, TransitionRecord) if t.to_outcome == "server_error"]
    assert len(failing) == 1
    assert len(rows(pg, AlertRecord)) == 1 and len(rows(pg, IncidentRecord)) == 1


@needs_pg
def test_a_handover_mid_failure_continues_the_count_and_alerts_once(pg: Engine) -> None:
    config = targets_config(database=URL)
    a_id, b_id = register(pg, "a"), register(pg, "b")
    a, b = agent_writer(pg, config, a_id), agent_writer(pg, config, b_id)
    a.hold({"t"})
    for minute, outcome in enumerate([OK, OK, S500]):  # up, then 1 of the 3 failures needed
        feed(a, outcome, minute)
    assert holder(pg) == a_id and not rows(pg, TransitionRecord)[1:]

    # B takes over (A was thought lost) while A still has results queued: A's cache still
    # says it holds the target, the database says B does.
    b.hold({"t"})
    assert holder(pg) == b_id and a.held == {"t"}
    feed(a, S500, 3)  # A's late result: an observation, nothing decided
    assert a.held == set()  # A noticed in that batch and dropped its caches
    assert [t.to_outcome for t in rows(pg, TransitionRecord)] == ["ok"]

    feed(b, S500, 4)  # 2 of 3: B continues the count stored by A
    assert [t.to_outcome for t in rows(pg, TransitionRecord)] == ["ok"]
    feed(b, S500, 5)  # 3 of 3: confirmed, by B
    feed(a, S500, 5)  # A still probing it: stored, not decided
    feed(b, S500, 6)
    transitions = rows(pg, TransitionRecord)
    assert [t.to_outcome for t in transitions] == ["ok", "server_error"]
    alerts = rows(pg, AlertRecord)
    assert len(alerts) == 1 and alerts[0].transition_id == transitions[1].id
    assert len(rows(pg, IncidentRecord)) == 1
    observed = [p for p in rows(pg, ProbeRecord) if p.agent_id == a_id]
    assert len(observed) == 5  # every result of A was stored, the late ones too

    # B recovers it; A, taking it back later, continues B's incident rather than a new one.
    feed(b, OK, 7)
    a.hold({"t"})
    feed(a, OK, 8)
    assert [t.to_outcome for t in rows(pg, TransitionRecord)] == ["ok", "server_error", "ok"]
    assert [i.closed_at is not None for i in rows(pg, IncidentRecord)] == [True]
    assert len(rows(pg, AlertRecord)) == 2  # the failure, then the recovery


@needs_pg
def test_an_acquisition_waits_for_the_batch_deciding_the_target(pg: Engine) -> None:
    """B's UPDATE of the holder waits on A's row lock; what B reads after it is A's commit."""
    config = targets_config(database=URL)
    a_id, b_id = register(pg, "a"), register(pg, "b")
    a, b = agent_writer(pg, config, a_id), agent_writer(pg, config, b_id)
    a.hold({"t"})
    feed(a, OK, 0)
    feed(a, OK, 1)
    feed(a, S500, 2)
    locked, taken = threading.Event(), threading.Event()
    with pg.begin() as conn:  # A's next batch, paused just after its fence
        assert writes.lock_held(conn, a_id, [a.target_ids["t"]]) == {a.target_ids["t"]}
        thread = threading.Thread(target=lambda: (locked.set(), b.hold({"t"}), taken.set()))
        thread.start()
        locked.wait()
        assert not taken.wait(0.5)  # B waits for A's transaction
        assert a.states["t"].streak == 1
        # What A's batch decides: a second failure in a row.
        conn.execute(
            update(TargetStateRecord).values(state={**a.states["t"].to_dict(), "streak": 2})
        )
    thread.join(timeout=10)
    assert taken.is_set() and holder(pg) == b_id
    assert b.states["t"].streak == 2  # read after A's commit, not before it


@needs_pg
def test_reminders_come_from_the_holder_only(pg: Engine) -> None:
    """An open incident's reminder is fenced like a result: the old holder, writing a batch of
    another target, sends none for the one it lost; the new holder sends it once."""
    config = make_config(
        [{"name": n, "kind": "hf-legacy", "model": "gpt2"} for n in ("t00", "t01")],
        alerts={"email": EMAIL, "remind_every": "10m"},
        database=URL,
    )
    now = [T0]
    a_id, b_id = register(pg, "a"), register(pg, "b")
    a = Writer(pg, config, clock=lambda: now[0], agent_id=a_id)
    b = Writer(pg, config, clock=lambda: now[0], agent_id=b_id)
    a.start_run()
    b.start_run()
    a.hold({"t00", "t01"})
    for minute, outcome in enumerate([OK, OK, S500, S500, S500]):
        feed(a, outcome, minute, "t00")
    assert [r.reason for r in rows(pg, AlertRecord)] == ["transition"]
    b.hold({"t00"})
    now[0] = T0 + timedelta(minutes=30)  # a reminder is due
    feed(a, OK, 30, "t01")  # A's batch: its fence finds t00 taken, so no reminder from A
    assert a.held == {"t01"} and len(rows(pg, AlertRecord)) == 1
    feed(b, S500, 30, "t00")
    assert [r.reason for r in rows(pg, AlertRecord)] == ["transition", "reminder"]
    feed(b, S500, 31, "t00")
    feed(a, OK, 31, "t01")
    assert len(rows(pg, AlertRecord)) == 2


def test_a_writer_with_an_agent_on_sqlite_decides_only_what_it_holds(db_url: str) -> None:
    engine = open_database(db_url)
    config = targets_config(2)
    me = register(engine, "solo")
    w = agent_writer(engine, config, me)
    feed(w, S500, 0, "t00")  # nothing held yet: stored, no state
    assert not rows(engine, TargetStateRecord)
    w.hold({"t00", "t01"})
    assert {s.holder for s in rows(engine, TargetStateRecord)} == {me}
    for minute in range(1, 5):
        feed(w, S500, minute, "t00")
    assert len(rows(engine, TransitionRecord)) == 1 and len(rows(engine, AlertRecord)) == 1
    # Saving states keeps the holder (the upsert leaves that column alone).
    assert {s.holder for s in rows(engine, TargetStateRecord)} == {me}
    assert {p.agent_id for p in rows(engine, ProbeRecord)} == {me}
    w.hold({"t01"})  # released: its caches go, its results are observations again
    assert "t00" not in w.states and w.held == {"t01"}


def test_holding_arrives_on_the_queue_in_order_with_results(db_url: str) -> None:
    import asyncio

    engine = open_database(db_url)
    config = targets_config()
    w = agent_writer(engine, config, register(engine, "solo"))

    async def run() -> None:
        task = asyncio.create_task(w.run())
        await w.submit(result("t", S500, T0))  # before the holding: an observation
        w.queue_holding({"t"})
        for minute in range(1, 4):
            await w.submit(result("t", S500, T0 + timedelta(minutes=minute)))
        await w.close()
        await task

    asyncio.run(run())
    (transition,) = rows(engine, TransitionRecord)
    assert transition.at == T0 + timedelta(minutes=3)  # 3 decided failures, not 4


# ---------------------------------------------------------------- membership


def slots() -> Slots:
    async def probe(name: str) -> None:  # never started: the tick job is not run here
        pass

    return Slots(make_scheduler(), probe)


def planned(s: Slots) -> set[str]:
    return set(s._intervals)


def drain(w: Writer) -> None:
    """Apply what membership queued for the writer, as its task does."""
    while not w.queue.empty():
        item = w.queue.get_nowait()
        assert isinstance(item, Holding)
        w.hold(item.targets)


def test_membership_in_two_regions_probes_once_per_region_and_holds_once() -> None:
    names = [f"t{i:02d}" for i in range(60)]
    live = [Agent("eu-1", "eu", T0), Agent("eu-2", "eu", T0), Agent("us-1", "us", T0)]
    probe = {a.name: duties(a.name, a.region, names, live)[0] for a in live}
    hold = {a.name: duties(a.name, a.region, names, live)[1] for a in live}
    assert probe["eu-1"] | probe["eu-2"] == set(names) and not probe["eu-1"] & probe["eu-2"]
    assert probe["us-1"] == set(names)
    assert sorted(n for h in hold.values() for n in h) == names  # each state held once
    assert all(hold[a] <= probe[a] for a in hold)
    assert all(hold.values())  # with 60 targets each agent holds some


@needs_pg
def test_a_joining_agent_takes_its_share_and_a_lost_one_is_taken_within_a_beat(
    pg: Engine,
) -> None:
    config = targets_config(20, database=URL)
    names = {t.name for t in config.targets}
    ids = {"a": register(pg, "a"), "b": register(pg, "b", at=T0 + timedelta(seconds=5))}
    writers = {n: agent_writer(pg, config, i) for n, i in ids.items()}
    members = {n: Membership(n, "default", slots(), writers[n]) for n in ids}

    def live(now: datetime) -> list[Agent]:
        """The live agents at `now`, as each beat reads them back."""
        with Session(pg) as s:
            found = [
                Agent(r.name, r.region, r.heartbeat_at, r.stopped_at)
                for r in s.scalars(select(AgentRecord).order_by(AgentRecord.name))
            ]
        return [a for a in found if alive(a, now)]

    # A alone (B's row is not written yet as far as A's beat at T0 knows).
    members["a"].update([Agent("a", "default", T0)], config)
    drain(writers["a"])
    assert planned(members["a"].slots) == names and writers["a"].held == names

    # B joins: its first update takes its rendezvous share; A's next beat gives exactly that up.
    now = T0 + timedelta(seconds=5)
    for n in ("b", "a"):
        members[n].update(live(now), config)
        drain(writers[n])
    share = planned(members["b"].slots)
    assert share and share < names
    assert planned(members["a"].slots) == names - share  # only B's share moved
    assert writers["b"].held == share and writers["a"].held == names - share
    with Session(pg) as s:
        holders = list(s.scalars(select(TargetStateRecord.holder)))
    assert sorted(holders) == sorted([ids["a"]] * (20 - len(share)) + [ids["b"]] * len(share))

    # B stops beating (kill -9): at A's first beat after LOST_AFTER_S, A takes B's targets.
    with pg.begin() as conn:
        conn.execute(
            update(AgentRecord)
            .where(AgentRecord.id == ids["a"])
            .values(heartbeat_at=now + timedelta(seconds=LOST_AFTER_S))
        )
    later = now + timedelta(seconds=LOST_AFTER_S + 0.1)
    assert [a.name for a in live(later)] == ["a"]
    members["a"].update(live(later), config)
    drain(writers["a"])
    assert planned(members["a"].slots) == names and writers["a"].held == names
    with Session(pg) as s:
        assert set(s.scalars(select(TargetStateRecord.holder))) == {ids["a"]}
    # B's late result, if any, is only an observation now.
    first = sorted(share)[0]
    feed(writers["b"], S500, 0, first)
    assert first not in (writers["b"].held or ())  # dropped in the batch that found it lost
    assert not [t for t in rows(pg, TransitionRecord) if t.to_outcome == "server_error"]


def test_an_agent_without_a_registry_is_unfenced(db_url: str) -> None:
    """agent_id None: holds every target, as before several agents existed."""
    engine = open_database(db_url)
    w = Writer(engine, targets_config(), clock=lambda: T0)
    w.start_run()
    assert w.held is None
    for minute in range(4):
        feed(w, S500, minute)
    assert len(rows(engine, TransitionRecord)) == 1
    assert {s.holder for s in rows(engine, TargetStateRecord)} == {None}


# ---------------------------------------------------------------- two live agents


@needs_pg
def test_two_live_agents_in_two_regions_alert_once_and_take_over_a_stopped_one(
    tmp_path: Path, provider: FakeProvider, inbox: Inbox
) -> None:
    """Two `Monitor`s (regions eu and us) on one PostgreSQL against the fake provider: both
    probe every target, each state has one holder, a lasting 410 is one transition and one
    email; when one stops, the other holds everything at its next beat."""
    import asyncio
    import time

    from monitor.agent.registry import Identity
    from monitor.agent.service import Monitor
    from monitor.config.load import load_config
    from monitor.demo import simulator as sim
    from monitor.domain.agents import HEARTBEAT_S

    with make_engine(URL).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    provider.route("/gone/models/gpt2", sim.legacy_410())
    provider.route("/up/models/m", Reply(200, [[0.1, 0.2]]))
    names = ["gone", "up-1", "up-2", "up-3", "up-4", "up-5"]
    targets = [
        {
            "name": name,
            "kind": "hf-legacy",
            "model": "gpt2" if name == "gone" else "m",
            "base_url": f"{provider.url}/{'gone' if name == 'gone' else 'up'}",
        }
        for name in names
    ]
    path = tmp_path / "inferwatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": URL,
                "defaults": {"interval": "200ms", "timeout": "1s"},
                "alerts": {"email": inbox.settings()},
                "targets": targets,
            }
        )
    )
    config = load_config(path, env={})
    engine = open_database(URL)
    found: dict[str, float] = {}

    async def main() -> None:
        monitors = {
            region: Monitor(
                config,
                engine,
                env={},
                config_path=path,
                identity=Identity(f"agent-{region}", region, "host", 1),
            )
            for region in ("eu", "us")
        }
        tasks = {r: asyncio.create_task(m.run()) for r, m in monitors.items()}
        start = time.monotonic()

        def shared() -> bool:  # both have seen each other at a beat, and hold their shares
            held = [m.membership.holding for m in monitors.values()]
            return all(held) and len(held[0] | held[1]) == len(names) and not held[0] & held[1]

        # (The second agent to join waits one heartbeat before sharing: see Monitor.run.)
        while not (shared() and len(inbox.messages) >= 1) and time.monotonic() - start < 25:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # a few more rounds from both regions
        found["shared"] = float(shared())
        monitors["us"].stop()
        await asyncio.wait_for(tasks["us"], 12)
        stopped = time.monotonic()
        eu = monitors["eu"].membership
        while len(eu.holding) < len(names) and time.monotonic() - stopped < 3 * HEARTBEAT_S:
            await asyncio.sleep(0.05)
        found["takeover_s"] = time.monotonic() - stopped
        await asyncio.sleep(1.0)  # eu decides everything now
        monitors["eu"].stop()
        await asyncio.wait_for(tasks["eu"], 12)

    asyncio.run(main())
    assert found["shared"] == 1.0
    assert found["takeover_s"] <= HEARTBEAT_S + 1.0  # at eu's next beat after us left
    with Session(engine) as s:
        agents = {a.id: a.region for a in s.scalars(select(AgentRecord))}
        by_target: dict[str, set[str]] = {}
        for name, agent_id in s.execute(
            select(TargetRecord.name, ProbeRecord.agent_id).join(ProbeRecord.target)
        ):
            by_target.setdefault(name, set()).add(agents[agent_id])
        transitions = [
            (name, agents[agent_id])
            for name, agent_id in s.execute(
                select(TargetRecord.name, TransitionRecord.agent_id).join(
                    TargetRecord, TargetRecord.id == TransitionRecord.target_id
                )
            )
        ]
        holders = set(s.scalars(select(TargetStateRecord.holder)))
    assert by_target == {name: {"eu", "us"} for name in names}  # probed from both regions
    assert sorted(name for name, _ in transitions) == sorted(names)  # one first state each
    assert [m["subject"] for m in inbox.messages] == [
        "[inferwatch] gone: first probe: deprecated (410)"
    ]
    assert holders == {next(i for i, r in agents.items() if r == "eu")}
    engine.dispose()


def test_a_target_narrowed_to_regions_without_agents_is_named_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        [
            {"name": "everywhere", "kind": "hf-legacy", "model": "gpt2"},
            {"name": "ap-only", "kind": "hf-legacy", "model": "gpt2", "regions": ["ap"]},
        ],
        database=f"sqlite:///{tmp_path / 'm.db'}",
    )
    engine = open_database(config.database)
    member = Membership("eu-1", "eu", slots(), Writer(engine, config, agent_id=1))
    with caplog.at_level("WARNING", logger="monitor.agent.membership"):
        member.update([Agent("eu-1", "eu", T0)], config)
        member.update([Agent("eu-1", "eu", T0)], config)  # the next beat: not again
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 1 and "ap-only is probed in regions ap only" in told[0]
    assert planned(member.slots) == {"everywhere"}
    engine.dispose()
