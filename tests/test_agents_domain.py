"""The pure membership rules of monitor/domain/agents.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.domain.agents import LOST_AFTER_S, Agent, alive, duties, held, owner

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
TARGETS = [f"t{i}" for i in range(3000)]


def test_an_agent_is_alive_while_it_beats_and_has_not_stopped() -> None:
    fresh = Agent("a", "eu", NOW - timedelta(seconds=LOST_AFTER_S - 1))
    stale = Agent("b", "eu", NOW - timedelta(seconds=LOST_AFTER_S))
    stopped = Agent("c", "eu", NOW, stopped_at=NOW)
    assert [alive(a, NOW) for a in (fresh, stale, stopped)] == [True, False, False]


def test_every_target_has_exactly_one_owner_and_the_share_is_even() -> None:
    agents = ["a", "b", "c"]
    shares = [held(me, TARGETS, agents) for me in agents]
    assert set().union(*shares) == set(TARGETS)
    assert sum(len(s) for s in shares) == len(TARGETS)  # nobody probes a target twice
    assert all(900 <= len(s) <= 1100 for s in shares)  # about a third each


def test_an_agent_leaving_moves_only_its_own_targets() -> None:
    before = {t: owner(t, ["a", "b", "c"]) for t in TARGETS}
    after = {t: owner(t, ["a", "b"]) for t in TARGETS}
    moved = {t for t in TARGETS if before[t] != after[t]}
    assert moved == {t for t in TARGETS if before[t] == "c"}


def test_an_agent_joining_takes_only_what_it_then_owns() -> None:
    before = {t: owner(t, ["a", "b"]) for t in TARGETS}
    after = {t: owner(t, ["a", "b", "c"]) for t in TARGETS}
    moved = {t for t in TARGETS if before[t] != after[t]}
    assert moved == {t for t in TARGETS if after[t] == "c"}
    assert 900 <= len(moved) <= 1100


def test_alone_an_agent_holds_everything_and_without_agents_nobody_does() -> None:
    assert held("solo", TARGETS, []) == set(TARGETS)
    assert owner("t1", []) is None


def test_a_target_narrowed_to_some_regions_is_probed_and_held_only_there() -> None:
    live = [Agent(n, r, NOW) for n, r in (("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us"))]
    names = [f"t{i}" for i in range(40)]
    narrowed = {name: ("eu",) for name in names[:20]}
    probe = {a.name: duties(a.name, a.region, names, live, narrowed)[0] for a in live}
    hold = {a.name: duties(a.name, a.region, names, live, narrowed)[1] for a in live}
    # us never probes nor holds the eu-only targets; eu's two agents share them.
    assert not (probe["us-1"] | hold["us-1"]) & set(names[:20])
    assert probe["eu-1"] | probe["eu-2"] == set(names)
    assert probe["us-1"] == set(names[20:])
    # Every state has exactly one holder, who probes it.
    for name in names:
        holders = [a for a, held in hold.items() if name in held]
        assert len(holders) == 1 and name in probe[holders[0]]
