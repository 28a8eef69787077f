"""The quorum of regions (monitor/domain/quorum.py): pure, every case a few lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.domain.evidence import Outcome
from monitor.domain.quorum import RegionState, needed, step_region
from monitor.domain.states import Rules, TargetState

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OK, S500, GONE, TIMEOUT = Outcome.OK, Outcome.SERVER_ERROR, Outcome.DEPRECATED, Outcome.TIMEOUT
RULES = Rules()
INTERVAL = 60.0


@pytest.mark.parametrize(
    ("quorum", "reporting", "want"),
    [(None, 1, 1), (None, 2, 2), (None, 3, 2), (None, 4, 3), (None, 5, 3), (2, 3, 2), (3, 2, 2)],
)
def test_needed_is_a_majority_or_the_number_capped_by_who_reports(
    quorum: int | None, reporting: int, want: int
) -> None:
    assert needed(quorum, reporting) == want


class World:
    """A target watched from some regions, folded one result at a time."""

    def __init__(self, quorum: int | None = None) -> None:
        self.state = TargetState()
        self.regions: dict[str, RegionState] = {}
        self.quorum = quorum
        self.changes: list[tuple[Outcome | None, Outcome, tuple[str, ...]]] = []
        self.regional: list[tuple[str, Outcome]] = []

    def probe(self, minute: int, **outcomes: Outcome) -> None:
        for region, outcome in outcomes.items():
            at = T0 + timedelta(minutes=minute)
            moved = step_region(
                self.state, self.regions, region, outcome, at, RULES, self.quorum, INTERVAL
            )
            self.state, self.regions = moved.state, moved.regions
            if moved.change is not None:
                self.changes.append(
                    (moved.change.from_outcome, moved.change.to_outcome, moved.confirming)
                )
            if moved.regional is not None:
                self.regional.append((moved.regional.region, moved.regional.change.to_outcome))


def test_one_region_failing_alone_is_a_regional_observation_not_a_change() -> None:
    w = World()
    for minute in range(2):
        w.probe(minute, eu=OK, us=OK, ap=OK)
    assert w.changes == [(None, OK, ("eu",))]  # the first state, quietly
    for minute in range(2, 6):
        w.probe(minute, eu=S500, us=OK, ap=OK)
    assert w.state.accepted is OK
    assert len(w.changes) == 1
    # eu confirmed at minute 4 and still disagreed at its next probe: an observation.
    assert w.regional == [("eu", S500)]
    assert w.regions["eu"].observed
    for minute in range(6, 8):
        w.probe(minute, eu=OK, us=OK, ap=OK)
    assert w.regional == [("eu", S500), ("eu", OK)]  # and its end is recorded too
    assert not w.regions["eu"].observed


def test_a_majority_failing_changes_the_target_once_naming_the_regions() -> None:
    w = World()
    w.probe(0, eu=OK, us=OK, ap=OK)
    for minute in range(1, 6):
        w.probe(minute, eu=S500, us=S500, ap=OK)
    assert w.changes[1:] == [(OK, S500, ("eu", "us"))]
    assert w.state.accepted is S500
    # The first failing probe of the confirming regions is when it began.
    assert w.state.accepted_since == T0 + timedelta(minutes=1)
    # eu and us confirmed it: no observation of theirs; ap, still working, is one.
    assert w.regional == [("ap", OK)]
    for minute in range(6, 9):
        w.probe(minute, eu=OK, us=OK, ap=OK)
    assert w.changes[2:] == [(S500, OK, ("ap", "eu"))]  # ap never failed; eu is back first


def test_a_quorum_of_one_alerts_on_any_region() -> None:
    w = World(quorum=1)
    w.probe(0, eu=OK, us=OK)
    w.probe(1, eu=GONE, us=OK)
    w.probe(2, eu=GONE, us=OK)
    assert w.changes[1:] == [(OK, GONE, ("eu",))]


def test_a_region_that_stopped_reporting_no_longer_counts() -> None:
    w = World()
    w.probe(0, eu=OK, us=OK, ap=OK)
    # ap and us go silent (their agents died); eu alone reports for more than two intervals.
    for minute in range(1, 8):
        w.probe(minute, eu=S500)
    assert w.state.accepted is S500
    assert w.changes[1:] == [(OK, S500, ("eu",))]


def test_regions_failing_differently_agree_on_the_most_common_outcome() -> None:
    w = World()
    w.probe(0, eu=OK, us=OK, ap=OK)
    for minute in range(1, 5):
        w.probe(minute, eu=TIMEOUT, us=S500, ap=S500)
    assert w.state.accepted is S500
    assert w.changes[1][2] == ("eu", "us")  # every failing region confirms it (ap: later)


def test_state_round_trips_through_json() -> None:
    w = World()
    for minute in range(4):
        w.probe(minute, eu=S500, us=OK)
    for region in w.regions.values():
        assert RegionState.from_dict(region.to_dict()) == region


def test_a_region_still_working_while_the_quorum_fails_is_observed_at_its_next_probe() -> None:
    w = World()
    w.probe(0, eu=OK, us=OK, ap=OK)
    for minute in range(1, 5):
        w.probe(minute, eu=S500, us=S500, ap=OK)
    assert w.state.accepted is S500
    assert w.regional == [("ap", OK)]  # ap disagrees: it still reaches the provider
