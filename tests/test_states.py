"""The state machine, table-tested: probe outcome sequences -> accepted states and alerts.

Sequences are written as space-separated outcome names; expected accepted states use "-" for
"none yet"; expected changes read "index:outcome!" (announced) or "index:outcome~" (quiet).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.domain.evidence import Outcome
from monitor.domain.states import (
    Change,
    FlapEvent,
    Notice,
    Rules,
    TargetState,
    flap_percent,
    format_span,
    label,
    replay,
    step,
)

START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def probes(
    sequence: str, every: timedelta = timedelta(minutes=1)
) -> list[tuple[Outcome, datetime]]:
    return [(Outcome(name), START + i * every) for i, name in enumerate(sequence.split())]


def run(
    outcomes: list[tuple[Outcome, datetime]], rules: Rules, state: TargetState | None = None
) -> tuple[list[TargetState], list[Change | None], list[Notice | None]]:
    """Every intermediate state and output, so tests can check each step."""
    current = state or TargetState()
    states, changes, notices = [], [], []
    for outcome, at in outcomes:
        current, change, notice = step(current, outcome, at, rules)
        states.append(current)
        changes.append(change)
        notices.append(notice)
    return states, changes, notices


def summarise(changes: list[Change | None]) -> list[str]:
    return [
        f"{i}:{c.to_outcome}{'!' if c.announce else '~'}"
        for i, c in enumerate(changes)
        if c is not None
    ]


# (id, rules, probe outcomes, accepted state after each probe, changes)
SEQUENCES: list[tuple[str, Rules, str, str, list[str]]] = [
    ("ok start is accepted at once, quietly", Rules(), "ok ok ok", "ok ok ok", ["0:ok~"]),
    ("contract break at start: announced after one confirming probe", Rules(),
     "auth_missing auth_missing", "- auth_missing", ["1:auth_missing!"]),
    ("transient failure at start: announced after three", Rules(),
     "timeout timeout timeout", "- - timeout", ["2:timeout!"]),
    ("mixed transient failures confirm each other; the latest is accepted", Rules(),
     "server_error server_error timeout", "- - timeout", ["2:timeout!"]),
    ("a new target that warms up then works starts quietly", Rules(),
     "loading loading ok", "- - ok", ["2:ok~"]),
    ("a lone 503 between oks changes nothing", Rules(),
     "ok loading ok ok", "ok ok ok ok", ["0:ok~"]),
    ("two 503s then ok change nothing", Rules(),
     "ok loading loading ok", "ok ok ok ok", ["0:ok~"]),
    ("three 503s in a row are an outage", Rules(),
     "ok loading loading loading", "ok ok ok loading", ["0:ok~", "3:loading!"]),
    ("one ok between failures does not recover; two do", Rules(),
     "ok server_error server_error server_error ok server_error ok ok",
     "ok ok ok server_error server_error server_error server_error ok",
     ["0:ok~", "3:server_error!", "7:ok!"]),
    ("410 after oks: deprecated after one confirming probe", Rules(),
     "ok ok deprecated deprecated", "ok ok ok deprecated", ["0:ok~", "3:deprecated!"]),
    ("different contract breaks do not confirm each other", Rules(),
     "ok not_found deprecated not_found deprecated", "ok ok ok ok ok", ["0:ok~"]),
    ("a transient failure interrupts a contract run", Rules(),
     "ok deprecated timeout deprecated", "ok ok ok ok", ["0:ok~"]),
    ("server_error -> token_scope is a transition, confirmed as a contract break", Rules(),
     "ok server_error server_error server_error token_scope token_scope",
     "ok ok ok server_error server_error token_scope",
     ["0:ok~", "3:server_error!", "5:token_scope!"]),
    ("token_scope -> server_error needs the transient threshold", Rules(),
     "ok token_scope token_scope server_error server_error server_error",
     "ok ok token_scope token_scope token_scope server_error",
     ["0:ok~", "2:token_scope!", "5:server_error!"]),
    ("during a transient outage, alternating failure kinds keep the state", Rules(),
     "ok server_error server_error server_error timeout server_error timeout server_error",
     "ok ok ok server_error server_error server_error server_error server_error",
     ["0:ok~", "3:server_error!"]),
    ("during a transient outage, a steady new failure kind is a transition", Rules(),
     "ok server_error server_error server_error timeout timeout timeout",
     "ok ok ok server_error server_error server_error timeout",
     ["0:ok~", "3:server_error!", "6:timeout!"]),
    ("slow is sustained-only, like other transient failures", Rules(),
     "ok slow slow ok slow slow slow", "ok ok ok ok ok ok slow", ["0:ok~", "6:slow!"]),
    ("contract break recovers after two oks", Rules(),
     "deprecated deprecated ok ok", "- deprecated deprecated ok",
     ["1:deprecated!", "3:ok!"]),
    ("contract_threshold=1: a contract break is accepted at once", Rules(contract_threshold=1),
     "ok deprecated", "ok deprecated", ["0:ok~", "1:deprecated!"]),
    ("contract_threshold=1 also applies to a failing first probe", Rules(contract_threshold=1),
     "auth_missing", "auth_missing", ["0:auth_missing!"]),
    ("failure_threshold=1: any failure is accepted at once", Rules(failure_threshold=1),
     "ok timeout ok ok", "ok timeout timeout ok", ["0:ok~", "1:timeout!", "3:ok!"]),
    ("failure_threshold=5: four 503s are still noise", Rules(failure_threshold=5),
     "ok loading loading loading loading ok", "ok ok ok ok ok ok", ["0:ok~"]),
    ("success_threshold=3: recovery needs three oks", Rules(success_threshold=3),
     "ok deprecated deprecated ok ok ok", "ok ok deprecated deprecated deprecated ok",
     ["0:ok~", "2:deprecated!", "5:ok!"]),
    ("success_threshold does not delay a new target's first ok", Rules(success_threshold=3),
     "ok", "ok", ["0:ok~"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "sequence", "accepted", "expected_changes"),
    [case[1:] for case in SEQUENCES],
    ids=[case[0] for case in SEQUENCES],
)
def test_it_accepts_states_only_when_confirmed(
    rules: Rules, sequence: str, accepted: str, expected_changes: list[str]
) -> None:
    states, changes, notices = run(probes(sequence), rules)
    assert [str(s.accepted) if s.accepted else "-" for s in states] == accepted.split()
    assert summarise(changes) == expected_changes
    assert notices == [None] * len(notices)


def test_it_dates_changes_from_the_first_probe_of_the_confirming_run() -> None:
    every = timedelta(minutes=5)
    _, changes = replay(probes("ok timeout timeout timeout ok ok", every))
    down, up = changes[1], changes[2]
    assert (down.started_at, down.at, down.since) == (START + every, START + 3 * every, START)
    assert (up.from_outcome, up.since, up.started_at) == (
        Outcome.TIMEOUT,
        START + every,
        START + 4 * every,
    )
    assert up.previous_lasted_seconds == 15 * 60


def change(before: Outcome | None, after: Outcome, lasted: timedelta | None = None) -> Change:
    since = None if lasted is None else START - lasted
    return Change(before, after, at=START, started_at=START, since=since, announce=True)


# (id, change, http_status, detail, label)
LABELS: list[tuple[str, Change, int | None, str | None, str]] = [
    ("first failing state",
     change(None, Outcome.AUTH_MISSING), 401, None, "first probe: auth_missing (401)"),
    ("quiet first ok",
     change(None, Outcome.OK), 200, None, "first probe: ok (200)"),
    ("ok to deprecated",
     change(Outcome.OK, Outcome.DEPRECATED, timedelta(days=3)), 410, None,
     "ok → deprecated (410)"),
    ("no status known",
     change(Outcome.OK, Outcome.TIMEOUT), None, None, "ok → timeout"),
    ("token scope lost while working",
     change(Outcome.OK, Outcome.TOKEN_SCOPE), 403, None, "token scope regression (403)"),
    ("token scope lost while slow",
     change(Outcome.SLOW, Outcome.TOKEN_SCOPE), 403, None, "token scope regression (403)"),
    ("token scope after an outage is a class change",
     change(Outcome.SERVER_ERROR, Outcome.TOKEN_SCOPE), 403, None,
     "server_error → token_scope (403)"),
    ("recovery with duration",
     change(Outcome.SERVER_ERROR, Outcome.OK, timedelta(hours=2, minutes=14, seconds=9)), 200,
     None, "recovered after 2h 14m"),
    ("recovery without known start",
     change(Outcome.DEPRECATED, Outcome.OK), 200, None, "recovered"),
    ("detail is appended",
     change(Outcome.OK, Outcome.DEPRECATED), 410, "use router.huggingface.co",
     "ok → deprecated (410): use router.huggingface.co"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("the_change", "http_status", "detail", "expected"),
    [case[1:] for case in LABELS],
    ids=[case[0] for case in LABELS],
)
def test_it_labels_changes(
    the_change: Change, http_status: int | None, detail: str | None, expected: str
) -> None:
    assert label(the_change, http_status=http_status, detail=detail) == expected


def test_it_labels_a_replayed_recovery_with_its_duration() -> None:
    outage = [(Outcome.SERVER_ERROR, START + timedelta(minutes=m)) for m in (0, 1, 2)]
    back = [(Outcome.OK, START + timedelta(hours=2, minutes=m)) for m in (14, 15)]
    _, changes = replay(outage + back, Rules())
    assert [label(c) for c in changes] == [
        "first probe: server_error",
        "recovered after 2h 14m",
    ]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (-5, "0s"),
        (45.9, "45s"),
        (60, "1m"),
        (125, "2m 5s"),
        (7200, "2h"),
        (7205, "2h"),
        (8040, "2h 14m"),
        (86400, "1d"),
        (90061, "1d 1h"),
        (30 * 86400 + 3600 * 5, "30d 5h"),
    ],
)
def test_it_formats_spans(seconds: float, expected: str) -> None:
    assert format_span(seconds) == expected


@pytest.mark.parametrize(
    ("recent", "expected"),
    [
        ("", 0.0),
        ("+" * 21, 0.0),
        ("-" * 21, 0.0),
        ("+-" * 10 + "+", 1.0),  # every probe flips: weights average to 1
        ("-" + "+" * 20, 0.8 / 20),  # the oldest flip weighs least
        ("+" * 20 + "-", 1.2 / 20),  # the newest flip weighs most
        ("+-", 1.2 / 20),  # a short history counts as steady before its start
        ("+-" * 15 + "+", 1.0),  # only the last 21 count
    ],
)
def test_it_weighs_flips_like_nagios(recent: str, expected: float) -> None:
    assert flap_percent([c == "+" for c in recent], window=21) == pytest.approx(expected)


# One flip per probe, so every flip is a transition and suppression is visible.
TWITCHY = Rules(contract_threshold=1, success_threshold=1)
ALTERNATING = "ok " * 5 + "deprecated ok " * 10


def notices_of(notices: list[Notice | None]) -> list[tuple[int, FlapEvent]]:
    return [(i, n.event) for i, n in enumerate(notices) if n is not None]


def test_it_suppresses_announcements_while_flapping_and_notices_start_and_stop() -> None:
    states, changes, notices = run(probes(ALTERNATING + "ok " * 25), TWITCHY)
    assert notices_of(notices) == [(13, FlapEvent.STARTED), (39, FlapEvent.STOPPED)]
    announced = [i for i, c in enumerate(changes) if c is not None and c.announce]
    quiet = [i for i, c in enumerate(changes) if c is not None and not c.announce]
    assert announced == list(range(5, 13))  # every flip before flapping is detected
    assert quiet == [0, *range(13, 25)]  # the quiet start, then every flip while flapping
    assert [s.flapping for s in states] == [False] * 13 + [True] * 26 + [False] * 11
    started, stopped = notices[13], notices[39]
    assert started is not None and started.change_percent > 0.5 and not started.announces_state
    assert stopped is not None and stopped.change_percent < 0.25
    # settled where people were last told it was: nothing more to say
    assert (stopped.state, stopped.previously_announced, stopped.announces_state) == (
        Outcome.OK,
        Outcome.OK,
        False,
    )


def test_it_announces_where_a_flapping_target_settled_when_it_differs() -> None:
    states, changes, notices = run(probes(ALTERNATING + "deprecated " * 30), TWITCHY)
    assert [e for _, e in notices_of(notices)] == [FlapEvent.STARTED, FlapEvent.STOPPED]
    settle = next(c for c in reversed(changes) if c is not None)
    assert (settle.to_outcome, settle.announce) == (Outcome.DEPRECATED, False)
    stopped = next(n for n in reversed(notices) if n is not None)
    assert (stopped.state, stopped.previously_announced) == (Outcome.DEPRECATED, Outcome.OK)
    assert stopped.announces_state
    assert states[-1].last_announced == Outcome.DEPRECATED


def test_it_notices_flapping_even_when_no_failure_is_confirmed() -> None:
    """ok/503 every other probe never confirms an outage, but is worth one notice."""
    states, changes, notices = run(probes("ok loading " * 15), Rules())
    assert summarise(changes) == ["0:ok~"]
    assert [e for _, e in notices_of(notices)] == [FlapEvent.STARTED]
    assert states[-1].accepted == Outcome.OK


@pytest.mark.parametrize(
    ("rules", "started"),
    [
        (Rules(flap_high=0.5), True),
        (Rules(flap_high=0.9), False),
        (Rules(flap_window=5, flap_high=0.5, flap_low=0.25), True),
    ],
)
def test_it_takes_flapping_thresholds_from_the_rules(rules: Rules, started: bool) -> None:
    _, _, notices = run(probes("ok timeout " * 5), rules)
    assert (FlapEvent.STARTED in [e for _, e in notices_of(notices)]) is started


ROUND_TRIP_SEQUENCES = [
    "ok server_error server_error timeout ok server_error ok ok deprecated deprecated",
    "auth_missing auth_missing ok token_scope ok ok token_scope token_scope",
    ALTERNATING + "deprecated " * 25,
]


@pytest.mark.parametrize("sequence", ROUND_TRIP_SEQUENCES)
def test_it_continues_identically_after_a_reload(sequence: str) -> None:
    outcomes = probes(sequence)
    expected = run(outcomes, TWITCHY)
    for split in range(len(outcomes) + 1):
        before, _, _ = run(outcomes[:split], TWITCHY)
        saved = before[-1] if before else TargetState()
        reloaded = TargetState.from_dict(json.loads(json.dumps(saved.to_dict())))
        assert reloaded == saved
        after = run(outcomes[split:], TWITCHY, state=reloaded)
        assert [part[split:] for part in expected] == list(after)


def test_it_loads_a_state_stored_with_fewer_fields() -> None:
    assert TargetState.from_dict({"accepted": "ok"}) == TargetState(accepted=Outcome.OK)


def test_replay_matches_stepping() -> None:
    outcomes = probes("ok timeout timeout timeout ok ok")
    states, changes, _ = run(outcomes, Rules())
    state, replayed = replay(outcomes, Rules())
    assert state == states[-1]
    assert replayed == [c for c in changes if c is not None]


@pytest.mark.parametrize(
    "bad",
    [
        {"failure_threshold": 0},
        {"success_threshold": 0},
        {"contract_threshold": 0},
        {"flap_window": 2},
        {"flap_low": 0.6, "flap_high": 0.5},
        {"flap_high": 1.5},
    ],
)
def test_it_rejects_impossible_rules(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Rules(**bad)  # type: ignore[arg-type]
