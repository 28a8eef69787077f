"""`hf-model`: the Hub's provider mapping against the fake provider, and a change in the live
providers recorded by the real writer (SQLite migrated by Alembic) while the model stays ok."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from monitor.agent.writer import Writer
from monitor.config.load import ConfigError, config_warnings, load_config
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome, ProbeResult
from monitor.store import open_database
from monitor.store.models import ProbeRecord
from tests.helpers import make_config, probe_once, write_config

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
PATH = f"/api/models/{MODEL}"
STATUS = "/api/v2/summary.json"
TOKEN = "hf_mappingProbeTokenThatMustStaySecret01"


def probe(fake: FakeProvider, reply: Reply, token: str = TOKEN, **extra: Any) -> ProbeResult:
    """One probe of the fake's `reply`; HF_TOKEN holds `token` ("": unset)."""
    fake.route(PATH, reply)
    target = {"name": "llama-map", "kind": "hf-model", "model": MODEL, "base_url": fake.url}
    env = {"HF_TOKEN": token} if token else {}
    return probe_once(make_config([{**target, **extra}], env=env), env)["llama-map"]


def test_the_request_is_the_free_mapping_query_with_bearer_only_when_configured() -> None:
    target = make_config([{"name": "m", "kind": "hf-model", "model": MODEL}]).targets[0]
    spec = target.build_request(None)
    assert spec.method == "GET"
    assert spec.url == (
        f"https://huggingface.co/api/models/{MODEL}?expand[]=inferenceProviderMapping"
    )
    assert "authorization" not in spec.headers
    assert target.build_request(TOKEN).headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("as_list", [False, True], ids=["dict-by-provider", "list-of-entries"])
def test_a_model_with_a_live_provider_is_ok_and_keeps_the_live_set(
    provider: FakeProvider, as_list: bool
) -> None:
    mapping = {"together": "live", "novita": "live", "nscale": "staging"}
    result = probe(provider, sim.hf_model_mapping(MODEL, mapping, as_list), token_env="HF_TOKEN")
    assert result.outcome is Outcome.OK, result.detail
    assert result.facts["live_providers"] == ["novita", "together"]  # staging is not live
    assert provider.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_no_provider_at_all_is_model_unsupported_with_what_to_do(provider: FakeProvider) -> None:
    result = probe(provider, sim.hf_model_mapping(MODEL, {}))
    assert result.outcome is Outcome.MODEL_UNSUPPORTED
    assert result.detail == f"no inference provider serves {MODEL}"
    assert "pick another model" in result.hint and "Inference Endpoint" in result.hint
    assert result.facts["live_providers"] == []
    assert "authorization" not in provider.requests[-1].headers  # no token_env: no token


def test_only_staging_providers_are_named_in_the_verdict(provider: FakeProvider) -> None:
    result = probe(provider, sim.hf_model_mapping(MODEL, {"novita": "staging", "nscale": "error"}))
    assert result.outcome is Outcome.MODEL_UNSUPPORTED
    assert result.detail.endswith("mapped but not live: novita (staging), nscale (error)")
    assert result.hint.startswith("novita (staging), nscale (error) cannot be called yet")


def test_the_configured_provider_must_be_the_live_one(provider: FakeProvider) -> None:
    mapping = {"together": "staging", "novita": "live"}
    result = probe(provider, sim.hf_model_mapping(MODEL, mapping), provider="together")
    assert result.outcome is Outcome.MODEL_UNSUPPORTED
    assert result.detail == f"provider together is staging for {MODEL}; live: novita"
    assert result.hint == "switch the calls (and this target's provider) to a live one: novita"
    ok = probe(provider, sim.hf_model_mapping(MODEL, mapping), provider="novita")
    assert ok.outcome is Outcome.OK and ok.facts["live_providers"] == ["novita"]
    gone = probe(provider, sim.hf_model_mapping(MODEL, {"novita": "live"}), provider="groq")
    assert gone.detail == f"provider groq does not serve it for {MODEL}; live: novita"


def test_hub_errors_read_as_the_hub_means_them(provider: FakeProvider) -> None:
    unknown = Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
    assert probe(provider, unknown).outcome is Outcome.NOT_FOUND
    hidden = probe(provider, Reply(401, {"error": "Invalid username or password."}))
    assert hidden.outcome is Outcome.AUTH_MISSING
    assert "private or does not exist" in hidden.hint
    said = probe(
        provider, Reply(401, {"error": "Invalid username or password."}), "", token_env="HF_TOKEN"
    )
    assert said.outcome is Outcome.AUTH_MISSING and said.hint.startswith("HF_TOKEN is not set")
    gated = probe(provider, sim.gated_403(MODEL), token_env="HF_TOKEN")
    assert gated.outcome is Outcome.GATED
    limited = probe(provider, sim.hub_429())
    assert limited.outcome is Outcome.RATE_LIMITED and limited.facts["retry_after_s"] == 293


def test_probing_the_hub_more_often_than_every_minute_is_warned_about() -> None:
    target = {"name": "m", "kind": "hf-model", "model": MODEL}
    warnings = config_warnings(make_config([{**target, "interval": "30s"}]), env={})
    (warning,) = [w for w in warnings if w.field == "interval"]
    assert (warning.target, warning.field) == ("m", "interval")
    assert "500 API calls per 5 minutes" in warning.message
    assert config_warnings(make_config([target]), env={}) == []  # the default: every 5m
    assert make_config([target]).interval_of(make_config([target]).targets[0]) == 300


def test_an_answer_without_the_mapping_is_a_bad_response(provider: FakeProvider) -> None:
    result = probe(provider, Reply(200, {"_id": "x", "id": MODEL}))
    assert result.outcome is Outcome.BAD_RESPONSE
    assert "no inferenceProviderMapping" in result.detail and "base_url" in result.hint


# ------------------------------------------------------------------ a provider dropped while ok

T0 = datetime(2026, 11, 30, 9, 5, tzinfo=UTC)


def test_a_dropped_provider_is_recorded_with_evidence_and_a_warning(
    provider: FakeProvider, tmp_path: Path
) -> None:
    """Real probes of the fake's answers through the real writer: the set shrinks (together
    dropped, novita added) while the model stays ok, and that probe keeps its evidence."""
    url = f"sqlite:///{tmp_path / 'map.db'}"
    config = make_config(
        [{"name": "llama-map", "kind": "hf-model", "model": MODEL, "base_url": provider.url}],
        database=url,
    )
    answers = [
        {"together": "live", "fireworks-ai": "live"},
        {"together": "live", "fireworks-ai": "live"},
        {"novita": "live", "fireworks-ai": "live"},  # together dropped, novita added
        {"novita": "live", "fireworks-ai": "live"},
    ]
    results = []
    for i, mapping in enumerate(answers):
        provider.route(PATH, sim.hf_model_mapping(MODEL, mapping))
        result = probe_once(config)["llama-map"]
        results.append(replace(result, checked_at=T0 + timedelta(minutes=i)))
    writer = Writer(open_database(url), config)
    writer.start_run()
    writer.write_batch(results[:2])
    writer.write_batch(results[2:])  # across batches: the writer remembers the last set
    with Session(writer.engine) as s:
        rows = list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.checked_at)))
    assert [r.outcome for r in rows] == ["ok"] * 4
    assert [r.warning for r in rows] == ["", "", "providers changed: +novita, -together", ""]
    assert [bool(r.body_excerpt) for r in rows] == [True, False, True, True]
    changed = rows[2]
    assert changed.facts["providers_added"] == ["novita"]
    assert changed.facts["providers_dropped"] == ["together"]
    assert changed.facts["live_providers"] == ["fireworks-ai", "novita"]
    assert "novita" in changed.body_excerpt  # the answer that showed it


def test_a_change_while_the_monitor_was_down_is_marked_after_a_restart(
    provider: FakeProvider, tmp_path: Path
) -> None:
    """The set is read back from the stored facts at start: the first probe of the next run
    is compared with it (a timeout in between forgets nothing)."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    config = make_config(
        [{"name": "llama-map", "kind": "hf-model", "model": MODEL, "base_url": provider.url}],
        database=url,
        defaults={"timeout": "1s"},
    )

    def probed(mapping: dict[str, str] | None, minute: int) -> ProbeResult:
        reply = Reply(delay=1.5) if mapping is None else sim.hf_model_mapping(MODEL, mapping)
        provider.route(PATH, reply)
        return replace(probe_once(config)["llama-map"], checked_at=T0 + timedelta(minutes=minute))

    first = Writer(open_database(url), config)
    first.start_run()
    first.write_batch([probed({"together": "live", "novita": "live"}, 0)])
    first.write_batch([probed({"together": "live", "novita": "live"}, 1)])  # lean: no facts
    first.stop_run()

    second = Writer(open_database(url), config)
    second.start_run()
    timeout = probed(None, 30)
    assert timeout.outcome is Outcome.TIMEOUT
    second.write_batch([timeout, probed({"together": "live"}, 31)])
    with Session(second.engine) as s:
        rows = list(s.scalars(select(ProbeRecord).order_by(ProbeRecord.checked_at)))
    assert [r.warning for r in rows] == ["", "", "", "providers changed: -novita"]


def test_status_page_must_name_a_statuspage_target() -> None:
    model = {"name": "llama-map", "kind": "hf-model", "model": MODEL}
    page = {"name": "claude-status", "kind": "statuspage", "url": "https://status.claude.com/x"}
    config = make_config([{**model, "status_page": "claude-status"}, page])
    assert config.targets[0].status_page == "claude-status"
    with pytest.raises(ConfigError) as wrong_kind:
        make_config([{**model, "status_page": "other"}, {**model, "name": "other"}])
    assert "'other' is a hf-model target; status_page must name a statuspage target" in str(
        wrong_kind.value
    )
    with pytest.raises(ConfigError) as typo:
        make_config([{**model, "status_page": "claude-statu"}, page])
    message = str(typo.value)
    assert "target 'llama-map': field 'status_page'" in message
    assert "(did you mean 'claude-status'?)" in message


# ------------------------------------------------------------------ the target page


def test_the_target_page_shows_provider_changes_and_the_status_page_incident(
    provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real probes through the real writer, then the real dashboard page (AppTest)."""
    url = f"sqlite:///{tmp_path / 'page.db'}"
    targets = [
        {
            "name": "llama-map",
            "kind": "hf-model",
            "model": MODEL,
            "base_url": provider.url,
            "status_page": "claude-status",
        },
        {"name": "claude-status", "kind": "statuspage", "url": provider.url + STATUS},
    ]
    config_file = write_config(tmp_path / "inferwatch.yaml", targets, database=url)
    config = load_config(config_file)
    writer = Writer(open_database(url), config)
    writer.start_run()
    now = datetime.now(UTC).replace(microsecond=0)
    provider.route(STATUS, sim.statuspage_incident("major"))
    for i, mapping in enumerate([{"together": "live"}, {"novita": "live", "together": "live"}]):
        provider.route(PATH, sim.hf_model_mapping(MODEL, mapping))
        at = now - timedelta(minutes=10 - i)
        writer.write_batch([replace(r, checked_at=at) for r in probe_once(config).values()])

    monkeypatch.setenv("INFERWATCH_CONFIG", str(config_file))
    monkeypatch.delenv("INFERWATCH_DATABASE", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.query_params.update({"name": "llama-map"})
    at.switch_page("views/target.py").run()
    assert not at.exception, [e.value for e in at.exception]

    (said,) = [w.value for w in at.warning if "Status page" in w.value]
    assert said.startswith("Status page claude-status: the provider reports an incident since ")
    assert "Provider changes" in [h.value for h in at.subheader]
    (changes,) = [d.value for d in at.dataframe if "added" in d.value.columns]
    assert changes.iloc[0].to_dict()["added"] == "novita"
    assert changes.iloc[0].to_dict()["live after"] == "novita, together"
