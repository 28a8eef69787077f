"""`statuspage`: an Atlassian-Statuspage summary.json from the fake provider, judged as the
provider's own word: calm, incident (minor/major/critical), maintenance, and a page that moved."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config.load import ConfigError
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome, OutcomeClass, ProbeResult, outcome_class
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
