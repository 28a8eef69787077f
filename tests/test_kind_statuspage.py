"""`statuspage`: an Atlassian-Statuspage summary.json from the fake provider, judged as the
provider's own word: calm, incident (minor/major/critical), maintenance, and a page that moved."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.agent.writer import Writer
from monitor.alerts.channels.email import render
from monitor.config.load import ConfigError
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.alert_event import AlertEvent, provider_status
from monitor.domain.evidence import Outcome, OutcomeClass, ProbeResult, outcome_class
from monitor.domain.states import TargetState
from monitor.store import open_database
from monitor.store.models import AlertRecord
from tests.helpers import make_config, probe_once

PATH = "/api/v2/summary.json"


def probe(fake: FakeProvider, reply: Reply, **extra: Any) -> ProbeResult:
    fake.route(PATH, reply)
    target = {"name": "claude-status", "kind": "statuspage", "url": fake.url + PATH, **extra}
    return probe_once(make_config([target]))["claude-status"]


# The real answers of ../shared/provider-errors.md "Provider status pages", one per case; the
# outcome table tests/test_outcomes.py counts toward "every outcome has a real answer".
CASES = [
    ("operational", sim.statuspage_summary("none"), Outcome.OK),
    ("minor incident", sim.statuspage_incident("minor"), Outcome.PROVIDER_INCIDENT),
    ("major incident", sim.statuspage_incident("major"), Outcome.PROVIDER_INCIDENT),
    ("critical incident", sim.statuspage_incident("critical"), Outcome.PROVIDER_INCIDENT),
    ("maintenance in progress", sim.statuspage_maintenance(), Outcome.OK),
    ("moved: 301 to HTML", sim.statuspage_moved(), Outcome.BAD_RESPONSE),
    ("moved: HTML instead of JSON", sim.statuspage_html(), Outcome.BAD_RESPONSE),
]


@pytest.mark.parametrize(("reply", "outcome"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_real_answer_is_judged_right(
    provider: FakeProvider, reply: Reply, outcome: Outcome
) -> None:
    assert probe(provider, reply).outcome is outcome


def test_indicator_none_is_ok_with_no_warning(provider: FakeProvider) -> None:
    result = probe(provider, sim.statuspage_summary("none"))
    assert result.outcome is Outcome.OK and result.warning == ""
    assert provider.requests[-1].method == "GET"
    assert "authorization" not in provider.requests[-1].headers


@pytest.mark.parametrize("indicator", ["minor", "major", "critical"])
def test_an_incident_is_provider_incident_named_and_linked(
    provider: FakeProvider, indicator: str
) -> None:
    result = probe(provider, sim.statuspage_incident(indicator))
    assert result.outcome is Outcome.PROVIDER_INCIDENT
    assert outcome_class(result.outcome) is OutcomeClass.TRANSIENT  # alerted only when sustained
    assert result.detail == f"{indicator}: Elevated errors on Claude Opus 4"
    assert "https://stspg.io/9x8r7kq2mz4p" in result.hint
    assert result.facts["incident_url"] == "https://stspg.io/9x8r7kq2mz4p"
    assert result.facts["incidents"] == ["Elevated errors on Claude Opus 4"]


def test_a_degraded_page_without_an_incident_names_the_components(provider: FakeProvider) -> None:
    result = probe(provider, sim.statuspage_summary("minor", component_status="partial_outage"))
    assert result.outcome is Outcome.PROVIDER_INCIDENT
    assert result.detail == "minor: Partially Degraded Service — Claude API (partial_outage)"
    assert "https://status.claude.com" in result.hint  # the page itself, no incident link


def test_announced_maintenance_is_a_warning_not_a_failure(provider: FakeProvider) -> None:
    result = probe(provider, sim.statuspage_maintenance())
    assert result.outcome is Outcome.OK
    assert result.warning == "the provider announces maintenance: Database upgrade"
    component = probe(provider, sim.statuspage_summary(component_status="under_maintenance"))
    assert component.outcome is Outcome.OK
    assert component.warning == "the provider announces maintenance: Claude API under maintenance"
    done = {"name": "Old work", "status": "completed"}
    calm = probe(provider, sim.statuspage_summary("none", maintenances=[done]))
    assert calm.warning == ""


def test_a_page_that_moved_is_the_source_moving_never_an_outage(provider: FakeProvider) -> None:
    moved = probe(provider, sim.statuspage_moved("https://status.example.com/"))
    assert moved.outcome is Outcome.BAD_RESPONSE
    assert moved.detail == "HTTP 301 to https://status.example.com/: the status page is not here"
    assert "moved" in moved.hint and "not an outage" in moved.hint
    assert len(provider.requests) == 1  # the redirect was not followed
    html = probe(provider, sim.statuspage_html())
    assert html.outcome is Outcome.BAD_RESPONSE and "expected JSON, got text/html" in html.detail
    assert "not an outage" in html.hint
    gone = probe(provider, Reply(404, "Not Found"))
    assert gone.outcome is Outcome.BAD_RESPONSE and "not an outage" in gone.hint
    other = probe(provider, Reply(200, {"status": "ok"}))
    assert other.outcome is Outcome.BAD_RESPONSE and "not a Statuspage summary" in other.detail


def test_a_statuspage_target_cannot_name_a_status_page() -> None:
    page = {"name": "p", "kind": "statuspage", "url": "https://s.example.com/api/v2/summary.json"}
    with pytest.raises(ConfigError) as err:
        make_config([{**page, "status_page": "q"}, {**page, "name": "q"}])
    assert "a statuspage target is itself the status page" in str(err.value)


# ------------------------------------------------------------------ the related status page


def test_an_alert_of_a_model_target_quotes_its_status_page_incident(
    provider: FakeProvider, tmp_path: Path
) -> None:
    """Real probes of both targets through the real writer (SQLite migrated by Alembic): the
    model's alert, stored in the outbox, says the page reports an incident, and the email
    shows it; an alert of a target naming no page does not."""
    url = f"sqlite:///{tmp_path / 'page.db'}"
    model = "meta-llama/Llama-3.1-8B-Instruct"
    mapping = f"/api/models/{model}"
    targets = [
        {"name": "claude-status", "kind": "statuspage", "url": provider.url + PATH},
        {
            "name": "llama-map",
            "kind": "hf-model",
            "model": model,
            "base_url": provider.url,
            "status_page": "claude-status",
        },
        {"name": "lonely", "kind": "hf-model", "model": model, "base_url": provider.url},
    ]
    config = make_config(targets, database=url, alerts=EMAIL)
    writer = Writer(open_database(url), config)
    writer.start_run()
    t0 = datetime(2026, 11, 30, 12, 3, 20, tzinfo=UTC)
    provider.route(PATH, sim.statuspage_summary("none"))
    provider.route(mapping, sim.hf_model_mapping(model, {"together": "live"}))
    writer.write_batch(stamped(probe_once(config), t0 - timedelta(minutes=1)))
    provider.route(PATH, sim.statuspage_incident("major"))
    writer.write_batch(stamped(probe_once(config), t0))  # only the page changes
    provider.route(mapping, sim.hf_model_mapping(model, {}))  # the model loses its provider
    for minutes in (1, 2):  # a contract break, confirmed by a second probe
        writer.write_batch(stamped(probe_once(config), t0 + timedelta(minutes=minutes)))

    with Session(writer.engine) as s:
        events = {
            e.target: e
            for e in (AlertEvent.from_json(r.event) for r in s.scalars(select(AlertRecord)))
            if e.to_outcome == "model_unsupported"
        }
    said = events["llama-map"].provider_status
    assert said == "the provider reports an incident since 12:03 UTC (status page claude-status)"
    assert events["lonely"].provider_status == ""
    email = render(events["llama-map"])
    assert f"Status page: {said}" in " ".join(email.text.split())
    assert said in email.html
    assert "Status page" not in render(events["lonely"]).text


def test_the_status_page_word_is_its_latest_outcome_and_names_the_day_when_older() -> None:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    calm = TargetState(candidate=Outcome.OK, streak_since=at)
    assert provider_status("p", calm, at) == ""
    assert provider_status("p", None, at) == ""
    old = TargetState(candidate=Outcome.PROVIDER_INCIDENT, streak_since=at - timedelta(hours=10))
    assert provider_status("p", old, at) == (
        "the provider reports an incident since 2026-11-29 23:00 UTC (status page p)"
    )


EMAIL = {
    "email": {
        "host": "127.0.0.1",
        "port": 2525,
        "security": "none",
        "sender": "inferwatch@example.com",
        "recipients": ["oncall@example.com"],
    }
}


def stamped(results: dict[str, ProbeResult], at: datetime) -> list[ProbeResult]:
    return [replace(r, checked_at=at) for r in results.values()]
