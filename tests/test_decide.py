"""What one result decides (monitor/domain/decide.py), as tables: no database, no channel.

tests/test_loop_writer.py shows the same decisions written to a real database.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.domain.alert_event import AlertEvent, ProbeLine, jsonable, subject_for
from monitor.domain.decide import (
    Alert,
    Alerting,
    Decision,
    IncidentChange,
    IncidentStep,
    OpenIncident,
    ProbeView,
    Route,
    decide,
    incident_change,
    remind,
    reminder_due,
)
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.states import DEFAULT_RULES, Change, Rules, TargetState, replay

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
OK, GONE, SCOPE, S500 = Outcome.OK, Outcome.DEPRECATED, Outcome.TOKEN_SCOPE, Outcome.SERVER_ERROR
EMAIL = Route("email", ("oncall@example.com",))
ALERTING = Alerting((EMAIL,), "http://dash:8501")
ANSWERS: dict[Outcome, tuple[int | None, str, str]] = {
    OK: (200, "HTTP 200 in 40 ms", ""),
    GONE: (410, "HTTP 410: gone", "switch to https://router.huggingface.co"),
    SCOPE: (403, "HTTP 403: insufficient permissions", "tick 'Make calls to Inference Providers'"),
    S500: (500, "HTTP 500: Internal Server Error", ""),
}


def minute(i: int) -> datetime:
    return T0 + timedelta(minutes=i)


def result(outcome: Outcome, i: int, **changes: Any) -> ProbeResult:
    status, detail, hint = ANSWERS[outcome]
    base = ProbeResult(
        target="gpt2",
        kind="hf-legacy",
        url="http://x/models/gpt2",
        checked_at=minute(i),
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
    return dataclasses.replace(base, **changes)


def after(*outcomes: Outcome, rules: Rules = DEFAULT_RULES) -> TargetState:
    """The state after one probe a minute, from minute 0."""
    state, _ = replay(((o, minute(i)) for i, o in enumerate(outcomes)), rules)
    return state


def incident(outcomes: tuple[str, ...] = ("server_error",), **changes: Any) -> OpenIncident:
    base = OpenIncident(7, 1, minute(1), outcomes[-1], outcomes, last_alert_at=minute(2))
    return dataclasses.replace(base, **changes)


def run(
    history: tuple[Outcome, ...],
    now: Outcome,
    open_incident: OpenIncident | None = None,
    alerting: Alerting = ALERTING,
    rules: Rules = DEFAULT_RULES,
    **changes: Any,
) -> Decision:
    """Decide the probe after `history` (at minute len(history))."""
    probe = result(now, len(history), **changes)
    return decide(probe, "hf-legacy", after(*history, rules=rules), open_incident, rules, alerting)


# ---------------------------------------------------------------- decide


def test_most_results_change_only_the_state() -> None:
    decision = run((OK, OK), OK)
    assert decision == Decision(after(OK, OK, OK))
    assert not decision.opens_incident


@pytest.mark.parametrize(
    ("history", "now", "open_incident", "transition", "step", "reasons"),
    [
        # A new target's first ok is recorded quietly: no incident, no alert.
        ((), OK, None, (None, "ok", "first probe: ok", False), None, []),
        # A contract break confirmed by a second probe: announced, an incident opens.
        (
            (OK, OK, GONE),
            GONE,
            None,
            ("ok", "deprecated", "ok → deprecated (410)", True),
            "open",
            ["transition"],
        ),
        # A failing first state is announced too.
        (
            (GONE,),
            GONE,
            None,
            (None, "deprecated", "first probe: deprecated (410)", True),
            "open",
            ["transition"],
        ),
        # One failure turning into another adds to the open incident.
        (
            (OK, S500, S500, S500, SCOPE),
            SCOPE,
            incident(),
            ("server_error", "token_scope", "server_error → token_scope (403)", True),
            "update",
            ["transition"],
        ),
        # Recovery closes it.
        (
            (OK, S500, S500, S500, OK),
            OK,
            incident(),
            ("server_error", "ok", "recovered after 3m", True),
            "close",
            ["transition"],
        ),
        # A lone 503 is not a change.
        ((OK, OK), S500, None, None, None, []),
    ],
)
def test_what_a_result_records(
    history: tuple[Outcome, ...],
    now: Outcome,
    open_incident: OpenIncident | None,
    transition: tuple[str | None, str, str, bool] | None,
    step: str | None,
    reasons: list[str],
) -> None:
    decision = run(history, now, open_incident)

    t = decision.transition
    assert (t and (t.from_outcome, t.to_outcome, t.label, t.announced)) == transition
    assert (decision.incident and str(decision.incident.step)) == step
    assert [a.event.reason for a in decision.alerts] == reasons


def test_an_announced_change_says_everything_in_its_event() -> None:
    decision = run((OK, OK, GONE), GONE)

    assert decision.incident == IncidentChange(
        IncidentStep.OPEN, minute(2), "deprecated", ("deprecated",)
    )
    assert decision.opens_incident  # so the writer gives the transition and alert its id
    assert decision.transition is not None and decision.transition.incident_id is None
    (alert,) = decision.alerts
    assert (alert.channel, alert.recipients) == ("email", ("oncall@example.com",))
    event = alert.event
    assert event == AlertEvent(
        reason="transition",
        target="gpt2",
        kind="hf-legacy",
        url="http://x/models/gpt2",
        from_outcome="ok",
        to_outcome="deprecated",
        label="ok → deprecated (410)",
        at=minute(3),
        since=minute(2),
        http_status=410,
        detail="HTTP 410: gone",
        hint="switch to https://router.huggingface.co",
        warning="",
        request_id="Root=1-abc",
        provider="hf-inference",
        latency_ms=40.0,
        recent=(),  # the writer lists the stored probes
        dashboard_url="http://dash:8501",
        incident_opened_at=minute(2),
        incident_id=None,
    )
    assert subject_for(event) == "[inferwatch] gpt2: ok → deprecated (410)"


def test_changes_of_an_open_incident_name_it() -> None:
    open_incident = incident()
    update = run((OK, S500, S500, S500, SCOPE), SCOPE, open_incident)
    assert update.incident == IncidentChange(
        IncidentStep.UPDATE, minute(4), "token_scope", ("server_error", "token_scope")
    )
    close = run((OK, S500, S500, S500, OK), OK, open_incident)
    assert close.incident is not None and close.incident.at == minute(4)  # when recovery began
    for decision in (update, close):
        assert not decision.opens_incident
        assert decision.transition is not None and decision.transition.incident_id == 7
        assert [a.event.incident_id for a in decision.alerts] == [7]
        assert [a.event.incident_opened_at for a in decision.alerts] == [minute(1)]


def test_without_routes_changes_are_recorded_but_nobody_is_told() -> None:
    decision = run((OK, OK, GONE), GONE, alerting=Alerting())
    assert decision.transition is not None and decision.transition.announced
    assert decision.incident is not None and decision.alerts == ()


def test_each_route_gets_the_same_event() -> None:
    routes = (EMAIL, Route("email", ("ml@example.com",)), Route("slack", ("#ops",)))
    decision = run((OK, OK, GONE), GONE, alerting=Alerting(routes))
    assert [(a.channel, a.recipients) for a in decision.alerts] == [
        (r.channel, r.recipients) for r in routes
    ]
    assert len({a.event for a in decision.alerts}) == 1


@pytest.mark.parametrize(
    ("status", "expected"), [(403, "ok → token_scope (403)"), (200, "ok → token_scope")]
)
def test_a_status_explains_a_failure_but_a_200_with_a_verdict_is_not_shown(
    status: int, expected: str
) -> None:
    decision = run((OK, OK, SCOPE), SCOPE, http_status=status)
    assert decision.transition is not None
    # From a working state a scope failure is a regression, said so.
    assert decision.transition.label == expected.replace(
        "ok → token_scope", "token scope regression"
    )
    assert decision.transition.http_status == status  # the row keeps the status either way


def test_facts_go_with_the_transition_and_the_event() -> None:
    facts = {"replacement_url": "https://router.huggingface.co", "retry_at": minute(9)}
    decision = run((OK, OK, GONE), GONE, facts=facts)
    assert decision.transition is not None and decision.transition.facts == facts
    (alert,) = decision.alerts
    assert alert.event.facts == facts
    stored = alert.event.to_json()["facts"]
    assert stored == {
        "replacement_url": "https://router.huggingface.co",
        "retry_at": minute(9).isoformat(),
    }


FLAP = Rules(failure_threshold=1, success_threshold=1, flap_window=5, flap_high=0.5, flap_low=0.2)


def test_flapping_is_one_notice_with_its_state() -> None:
    # ok/500 alternating with thresholds of 1: the second flip starts flapping.
    quiet = run((OK,), S500, rules=FLAP)
    assert quiet.notice is None and quiet.transition is not None and quiet.transition.announced
    decision = run((OK, S500), OK, open_incident=incident(), rules=FLAP)

    assert decision.notice is not None and decision.notice.startswith("flapping (")
    assert decision.transition is not None and not decision.transition.announced
    (alert,) = decision.alerts
    event = alert.event
    assert (event.reason, event.to_outcome, event.label) == (
        "flapping_started",
        "ok",
        decision.notice,
    )
    # The recovery closed the incident, so the notice belongs to none.
    assert decision.incident is not None and decision.incident.step is IncidentStep.CLOSE
    assert event.incident_id is None and event.incident_opened_at is None
    assert subject_for(event) == "[inferwatch] gpt2 is flapping"


def test_a_notice_with_an_opening_change_is_about_the_new_incident() -> None:
    decision = run((S500, OK), S500, rules=FLAP)
    assert decision.opens_incident
    assert decision.transition is not None and not decision.transition.announced
    (alert,) = decision.alerts
    assert (alert.event.reason, alert.event.to_outcome) == ("flapping_started", "server_error")
    assert alert.event.incident_id is None  # the writer sets the new incident's id
    assert alert.event.incident_opened_at == minute(2)


# ---------------------------------------------------------------- incidents and reminders


def change(to: Outcome) -> Change:
    return Change(from_outcome=None, to_outcome=to, at=T0, started_at=T0, since=None, announce=True)


@pytest.mark.parametrize(
    ("to", "open_incident", "expected"),
    [
        (GONE, None, IncidentChange(IncidentStep.OPEN, T0, "deprecated", ("deprecated",))),
        (
            SCOPE,
            incident(),
            IncidentChange(IncidentStep.UPDATE, T0, "token_scope", ("server_error", "token_scope")),
        ),
        (OK, incident(), IncidentChange(IncidentStep.CLOSE, T0, "ok", ("server_error",))),
        (OK, None, None),
    ],
)
def test_incident_changes(
    to: Outcome, open_incident: OpenIncident | None, expected: IncidentChange | None
) -> None:
    assert incident_change(change(to), open_incident) == expected


@pytest.mark.parametrize(
    ("last", "every", "due"),
    [
        (None, 60.0, False),
        (T0, None, False),
        (T0, 60.0, True),
        (T0 + timedelta(seconds=30), 60.0, False),
    ],
)
def test_reminder_due(last: datetime | None, every: float | None, due: bool) -> None:
    assert reminder_due(last, T0 + timedelta(minutes=1), every) is due


LATEST = ProbeView(
    checked_at=minute(90),
    outcome="deprecated",
    url="http://x/models/gpt2",
    http_status=410,
    latency_ms=38.0,
    detail="HTTP 410: gone",
    hint="switch",
    warning="",
    request_id="r-9",
    provider=None,
    facts={"replacement_url": "https://router.huggingface.co"},
)


def test_a_reminder_repeats_the_latest_evidence_of_the_open_incident() -> None:
    open_incident = incident(("deprecated",), opened_at=minute(10))
    (alert,) = remind(open_incident, "gpt2", "hf-legacy", LATEST, ALERTING)
    event = alert.event
    assert (event.reason, event.label, event.to_outcome) == (
        "reminder",
        "still deprecated",
        "deprecated",
    )
    assert (event.at, event.since, event.incident_opened_at) == (minute(90), minute(10), minute(10))
    assert (event.incident_id, event.request_id, event.facts) == (7, "r-9", LATEST.facts)
    assert subject_for(event) == "[inferwatch] reminder: gpt2 still deprecated (open for 1h 20m)"
    assert remind(open_incident, "gpt2", "hf-legacy", LATEST, Alerting()) == ()


# ---------------------------------------------------------------- the stored event


def test_an_event_survives_its_json_column() -> None:
    event = dataclasses.replace(
        run((OK, OK, GONE), GONE, facts={"retry_after_s": 20.0}).alerts[0].event,
        recent=(ProbeLine(minute(3), "deprecated", 410, 40.0, "HTTP 410: gone"),),
        incident_id=12,
    )
    import json

    stored = json.loads(json.dumps(event.to_json()))  # what the JSON column gives back
    assert AlertEvent.from_json(stored) == event
    assert stored["v"] == 1


def test_an_event_missing_later_keys_still_reads() -> None:
    minimal = {
        "reason": "test",
        "target": "inferwatch",
        "kind": "test",
        "url": "",
        "label": "test alert",
        "at": T0.isoformat(),
    }
    event = AlertEvent.from_json(minimal)
    assert (event.recent, event.facts, event.incident_id, event.detail) == ((), {}, None, "")


def test_facts_of_any_shape_become_json() -> None:
    assert jsonable({"at": T0, "outcome": Outcome.OK, "ids": (1, 2), "n": {"x": None}}) == {
        "at": T0.isoformat(),
        "outcome": "ok",
        "ids": [1, 2],
        "n": {"x": None},
    }


def test_alerts_are_plain_data() -> None:
    alert = run((OK, OK, GONE), GONE).alerts[0]
    assert alert == Alert(alert.event, "email", ("oncall@example.com",))
