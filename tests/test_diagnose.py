"""`inferwatch diagnose`: the ranking as table tests (pure), then the seeds' scenarios end to end
against the fake provider (every Hugging Face host pointed at it), the JSON shape, exit codes,
and the token never in the output.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.diagnosis import CAUSE_OF, CauseKind, Check, Role, diagnose
from monitor.domain.evidence import Outcome, ProbeResult, Timings

# ---------------------------------------------------------------- the ranking (pure)


def result(name: str, outcome: Outcome, hint: str = "", url: str = "", **facts: Any) -> ProbeResult:
    return ProbeResult(
        target=name,
        kind="k",
        url=url or f"https://example.test/{name}",
        checked_at=datetime(2026, 11, 30, tzinfo=UTC),
        outcome=outcome,
        http_status=None,
        timings=Timings(),
        detail=f"{name} said {outcome}",
        hint=hint,
        warning="",
        request_id=None,
        provider=None,
        headers={},
        body_excerpt="",
        facts=facts,
    )


def call(name: str, outcome: Outcome, hint: str = "", **facts: Any) -> Check:
    return Check(Role.CALL, result(name, outcome, hint, **facts))


ROUTER_URL = "https://router.huggingface.co"
SCOPE_HINT = "tick 'Make calls to Inference Providers' at https://huggingface.co/settings/tokens"

RANKING = [
    pytest.param(
        [
            call("legacy", Outcome.DEPRECATED, "move to the router", replacement_url=ROUTER_URL),
            call("chat", Outcome.TOKEN_SCOPE, SCOPE_HINT),
            Check(Role.TOKEN, result("whoami", Outcome.TOKEN_SCOPE, SCOPE_HINT)),
        ],
        False,
        [CauseKind.RETIRED, CauseKind.TOKEN_PERMISSION],
        f"switch to {ROUTER_URL}",
        id="410 era and 403 scope: the retired host first, then the permission",
    ),
    pytest.param(
        [
            call("legacy", Outcome.DEPRECATED, "move to the router"),
            call("chat", Outcome.OK),
        ],
        True,
        [CauseKind.RETIRED],
        "switch to https://example.test/chat (answers for this model now)",
        id="a working route is the fix for a retired one",
    ),
    pytest.param(
        [
            call("chat", Outcome.RATE_LIMITED, "wait 20 s"),
            call("inference", Outcome.PAYMENT_REQUIRED, "add credits"),
            Check(Role.TOKEN, result("whoami", Outcome.AUTH_INVALID, "create a new token")),
        ],
        False,
        [CauseKind.BAD_TOKEN, CauseKind.CREDITS, CauseKind.RATE_LIMITED],
        "create a new token",
        id="a rejected token before credits before a rate limit",
    ),
    pytest.param(
        [
            call("chat", Outcome.MODEL_UNSUPPORTED, "enable a provider"),
            Check(
                Role.MAPPING,
                result(
                    "mapping", Outcome.MODEL_UNSUPPORTED, "pick another model", live_providers=[]
                ),
            ),
        ],
        False,
        [CauseKind.NO_PROVIDER],
        "pick another model",
        id="no provider: the mapping's hint is the fix",
    ),
    pytest.param(
        [
            call("chat", Outcome.MODEL_UNSUPPORTED, "enable one at the settings page"),
            Check(
                Role.MAPPING, result("mapping", Outcome.OK, live_providers=["novita", "together"])
            ),
        ],
        False,
        [CauseKind.NO_PROVIDER],
        "the model is live on novita, together; enable one at the settings page",
        id="live providers none of which is enabled: name them",
    ),
    pytest.param(
        [
            call("inference", Outcome.NOT_FOUND, "not deployed on hf-inference"),
            call("chat", Outcome.PAYMENT_REQUIRED, "add credits"),
            Check(Role.MAPPING, result("mapping", Outcome.OK, live_providers=["together"])),
        ],
        False,
        [CauseKind.CREDITS],
        "add credits",
        id="a route the model is not on is no cause while the mapping names where it is",
    ),
    pytest.param(
        [
            call("chat", Outcome.MODEL_UNSUPPORTED, "enable a provider"),
            call("inference", Outcome.OK),
        ],
        True,
        [],
        None,
        id="one route that does not fit the model is no cause when another works",
    ),
    pytest.param(
        [
            call("model", Outcome.OVERLOADED, "wait"),
            Check(Role.STATUS, result("status", Outcome.PROVIDER_INCIDENT, "see the incident")),
        ],
        False,
        [CauseKind.PROVIDER_INCIDENT, CauseKind.PROVIDER_TROUBLE],
        "see the incident",
        id="an incident the provider reports explains its overload",
    ),
    pytest.param(
        [
            call("model", Outcome.OK),
            Check(Role.STATUS, result("status", Outcome.BAD_RESPONSE, "the page moved")),
        ],
        True,
        [],
        None,
        id="a status page that cannot be read explains nothing",
    ),
    pytest.param(
        [call("a", Outcome.TIMEOUT, "check the network"), call("b", Outcome.CONNECT_ERROR)],
        False,
        [CauseKind.NETWORK],
        "check the network",
        id="two probes, one cause, both as its evidence",
    ),
]


@pytest.mark.parametrize(("checks", "works", "causes", "first_fix"), RANKING)
def test_ranking(
    checks: list[Check], works: bool, causes: list[CauseKind], first_fix: str | None
) -> None:
    verdict = diagnose("m", checks)
    assert verdict.works is works
    assert [c.kind for c in verdict.causes] == causes
    if first_fix is not None:
        assert verdict.causes[0].fix.startswith(first_fix)


def test_every_failing_outcome_has_its_cause() -> None:
    failing = set(Outcome) - {Outcome.OK, Outcome.SLOW}
    assert set(CAUSE_OF) == failing


def test_more_evidence_ranks_first_within_a_rank_and_names_every_probe() -> None:
    verdict = diagnose(
        "m",
        [
            call("a", Outcome.TIMEOUT),
            call("b", Outcome.SERVER_ERROR),
            call("c", Outcome.LOADING),
        ],
    )
    assert [c.kind for c in verdict.causes] == [CauseKind.PROVIDER_TROUBLE, CauseKind.NETWORK]
    assert verdict.causes[0].evidence == ("b", "c")
    assert verdict.headline.startswith("m does not work: the provider is overloaded")


def test_a_long_list_of_providers_is_cut_in_the_fix() -> None:
    live = [f"p{i:02}" for i in range(30)]
    verdict = diagnose(
        "m",
        [
            call("chat", Outcome.MODEL_UNSUPPORTED, "enable one"),
            Check(Role.MAPPING, result("mapping", Outcome.OK, live_providers=live)),
        ],
    )
    assert verdict.causes[0].fix == (
        "the model is live on p00, p01, p02, p03, p04, p05, p06, p07 and 22 more; enable one"
    )
    assert verdict.providers == tuple(live)  # all of them in the JSON


def test_the_permission_a_token_lacks_is_named() -> None:
    missing = "Make calls to Inference Providers"
    verdict = diagnose("m", [call("chat", Outcome.TOKEN_SCOPE, missing_permission=missing)])
    assert verdict.causes[0].title == f"the token lacks the permission {missing!r}"


# ---------------------------------------------------------------- end to end, the seeds

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TOKEN = "hf_diagnoseSecretToken1234567890"


def hf_routes(
    fake: FakeProvider,
    *,
    legacy: Reply,
    inference: Reply,
    chat: Reply,
    whoami: Reply,
    mapping: Reply | None = None,
    model: str = MODEL,
) -> None:
    fake.route(f"/models/{model}", legacy)
    fake.route(f"/hf-inference/models/{model}/pipeline/feature-extraction", inference)
    fake.route("/v1/chat/completions", chat)
    fake.route("/api/whoami-v2", whoami)
    fake.route(
        f"/api/models/{model}", mapping or sim.hf_model_mapping(model, {"hf-inference": "live"})
    )


def run(fake: FakeProvider, *args: str, token: str | None = TOKEN) -> Any:
    hosts = ["--hub-url", fake.url, "--router-url", fake.url, "--legacy-url", fake.url]
    env = {"HF_TOKEN": token} if token else {"HF_TOKEN": ""}
    return CliRunner().invoke(app, ["diagnose", *args, *hosts], env=env)


def run_json(fake: FakeProvider, *args: str, token: str | None = TOKEN) -> tuple[int, Any]:
    outcome = run(fake, *args, "--format", "json", token=token)
    return outcome.exit_code, json.loads(outcome.stdout)


def test_the_404_era_blames_the_legacy_host_and_names_the_router(provider: FakeProvider) -> None:
    """Aug 2025: every model 404s on the legacy host while the token works."""
    model = "gpt2"
    hf_routes(
        provider,
        model=model,
        legacy=sim.legacy_404(),
        inference=sim.router_404_not_deployed(),
        chat=sim.router_400_model_not_supported(model),
        whoami=sim.whoami(),
        mapping=sim.hf_model_mapping(model, {}),
    )
    code, verdict = run_json(provider, model)
    assert code == 1
    assert verdict["works"] is False
    assert "whoami" in verdict["working"]
    assert [c["cause"] for c in verdict["causes"]] == ["retired", "no_provider"]
    assert "https://router.huggingface.co" in verdict["causes"][0]["fix"]
    assert verdict["causes"][0]["evidence"] == ["legacy-host"]
    assert "pick another model" in verdict["causes"][1]["fix"]


def test_the_410_era_names_the_replacement_and_the_route_that_works(
    provider: FakeProvider,
) -> None:
    hf_routes(
        provider,
        legacy=sim.legacy_410(),
        inference=sim.embedding_ok(),
        chat=sim.router_400_model_not_supported(MODEL),
        whoami=sim.whoami(),
    )
    code, verdict = run_json(provider, MODEL)
    assert code == 0
    assert verdict["works"] is True
    assert verdict["via"] == ["router-hf-inference"]
    [retired] = verdict["causes"]  # the chat route not fitting an embedding model is no cause
    assert retired["cause"] == "retired"
    working = f"{provider.url}/hf-inference/models/{MODEL}/pipeline/feature-extraction"
    assert retired["fix"] == (
        "switch to https://router.huggingface.co (named by the provider as the replacement): "
        f"{working} answers for this model now"
    )


def test_the_403_scope_names_the_permission_to_tick(provider: FakeProvider) -> None:
    hf_routes(
        provider,
        legacy=sim.legacy_410(),
        inference=sim.router_403_scope(),
        chat=sim.router_403_scope(),
        whoami=sim.whoami(permissions=["repo.content.read"]),
    )
    outcome = run(provider, MODEL)
    assert outcome.exit_code == 1
    _, verdict = run_json(provider, MODEL)
    assert verdict["verdict"].endswith(
        "; and then: the token lacks the permission 'Make calls to Inference Providers'"
    )
    causes = {c["cause"]: c for c in verdict["causes"]}
    scope = causes["token_permission"]
    assert scope["title"] == "the token lacks the permission 'Make calls to Inference Providers'"
    assert "https://huggingface.co/settings/tokens" in scope["fix"]
    assert set(scope["evidence"]) == {"router-hf-inference", "router-chat", "whoami"}
    assert "Make calls to Inference Providers" in outcome.stdout


def test_a_model_no_provider_serves(provider: FakeProvider) -> None:
    model = "someone/unserved-model"
    hf_routes(
        provider,
        model=model,
        legacy=sim.legacy_410(),
        inference=sim.router_404_not_deployed(),
        chat=sim.router_400_model_not_supported(model),
        whoami=sim.whoami(),
        mapping=sim.hf_model_mapping(model, {"featherless-ai": "staging"}),
    )
    code, verdict = run_json(provider, model)
    assert code == 1
    no_provider = next(c for c in verdict["causes"] if c["cause"] == "no_provider")
    assert "featherless-ai" in no_provider["fix"] and "staging" in no_provider["fix"]
    assert verdict["live_providers"] == []


def test_live_providers_not_enabled_are_named(provider: FakeProvider) -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    hf_routes(
        provider,
        model=model,
        legacy=sim.legacy_410(),
        inference=sim.router_404_not_deployed(),
        chat=sim.router_400_model_not_supported(model),
        whoami=sim.whoami(),
        mapping=sim.hf_model_mapping(model, {"together": "live", "novita": "live"}),
    )
    code, verdict = run_json(provider, model)
    assert code == 1
    assert verdict["live_providers"] == ["novita", "together"]
    no_provider = next(c for c in verdict["causes"] if c["cause"] == "no_provider")
    assert no_provider["fix"].startswith("the model is live on novita, together; ")
    assert "https://huggingface.co/settings/inference-providers" in no_provider["fix"]


@pytest.mark.parametrize(
    ("chat", "cause", "fix"),
    [
        (sim.router_402_credits(2026), "credits", "add credits or raise the plan"),
        (sim.router_402_credits(2025), "credits", "add credits or raise the plan"),
        (sim.openai_429_rate_limit(), "rate_limited", "20"),
        (sim.gated_403("meta-llama/Llama-3.1-8B-Instruct"), "gated", "accept its conditions"),
        (sim.router_401_invalid(), "bad_token", "create a new one"),
    ],
)
def test_what_the_router_says_becomes_the_cause(
    provider: FakeProvider, chat: Reply, cause: str, fix: str
) -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    hf_routes(
        provider,
        model=model,
        legacy=sim.legacy_410(),
        inference=sim.router_404_not_deployed(),
        chat=chat,
        whoami=sim.whoami(),
        mapping=sim.hf_model_mapping(model),
    )
    code, verdict = run_json(provider, model)
    assert code == 1
    assert [c["cause"] for c in verdict["causes"]] == ["retired", cause]
    assert verdict["causes"][1]["evidence"] == ["router-chat"]
    assert fix in verdict["causes"][1]["fix"]


def test_every_probe_is_in_flight_at_once(provider: FakeProvider) -> None:
    slow = Reply(404, "Not Found", content_type="text/plain", delay=0.5)
    hf_routes(provider, legacy=slow, inference=slow, chat=slow, whoami=slow, mapping=slow)
    run(provider, MODEL)
    assert len(provider.requests) == 5
    assert provider.max_open_connections == 5


def test_a_healthy_model_exits_0_and_says_through_what(provider: FakeProvider) -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"
    hf_routes(
        provider,
        model=model,
        legacy=sim.legacy_410(),
        inference=sim.router_404_not_deployed(),
        chat=sim.chat_ok(model),
        whoami=sim.whoami(),
        mapping=sim.hf_model_mapping(model),
    )
    outcome = run(provider, model)
    assert outcome.exit_code == 0, outcome.stdout
    assert f"{model} works (through router-chat)" in outcome.stdout
    assert "why the rest fails:\n  1. retired" in outcome.stdout


def test_the_json_shape(provider: FakeProvider) -> None:
    hf_routes(
        provider,
        legacy=sim.legacy_410(),
        inference=sim.embedding_ok(),
        chat=sim.router_400_model_not_supported(MODEL),
        whoami=sim.whoami(),
    )
    _, verdict = run_json(provider, MODEL)
    assert set(verdict) == {
        "model",
        "works",
        "verdict",
        "via",
        "working",
        "broken",
        "causes",
        "live_providers",
        "probes",
    }
    assert verdict["model"] == MODEL
    assert verdict["verdict"] == f"{MODEL} works (through router-hf-inference)"
    assert {p["target"]: p["role"] for p in verdict["probes"]} == {
        "legacy-host": "call",
        "router-hf-inference": "call",
        "router-chat": "call",
        "whoami": "token",
        "provider-mapping": "mapping",
    }
    assert {b["probe"]: b["outcome"] for b in verdict["broken"]} == {
        "legacy-host": "deprecated",
        "router-chat": "model_unsupported",
    }
    assert set(verdict["causes"][0]) == {"cause", "title", "fix", "evidence"}
    # One request per probe, all through the pipeline: nothing retried, nothing skipped.
    assert len(provider.requests) == 5


def test_the_token_never_reaches_the_output(provider: FakeProvider) -> None:
    echo = Reply(401, {"error": f"Invalid credentials in Authorization header: Bearer {TOKEN}"})
    hf_routes(provider, legacy=echo, inference=echo, chat=echo, whoami=echo, mapping=echo)
    table = run(provider, MODEL)
    as_json = run(provider, MODEL, "--format", "json")
    assert table.exit_code == as_json.exit_code == 1
    assert any(seen.headers.get("authorization") == f"Bearer {TOKEN}" for seen in provider.requests)
    for text in (table.stdout, table.stderr, as_json.stdout):
        assert TOKEN not in text
        assert TOKEN[:12] not in text
    causes = json.loads(as_json.stdout)["causes"]
    assert causes[0]["cause"] == "bad_token"


def test_no_token_says_which_variable_to_set(provider: FakeProvider) -> None:
    hf_routes(
        provider,
        legacy=sim.legacy_410(),
        inference=sim.router_401_no_token(),
        chat=sim.router_401_no_token(),
        whoami=sim.router_401_no_token(),
    )
    outcome = run(provider, MODEL, token=None)
    assert outcome.exit_code == 1
    assert "HF_TOKEN is not set" in outcome.stdout
    assert not any("authorization" in seen.headers for seen in provider.requests)


# ---------------------------------------------------------------- one provider's API


def test_anthropic_overload_with_the_incident_its_status_page_reports(
    provider: FakeProvider,
) -> None:
    provider.route("/v1/messages", sim.anthropic_529_overloaded())
    provider.route("/v1/models/claude-sonnet-4-5", Reply(200, {"id": "claude-sonnet-4-5"}))
    provider.route("/api/v2/summary.json", sim.statuspage_incident())
    outcome = CliRunner().invoke(
        app,
        [
            "diagnose",
            "claude-sonnet-4-5",
            "--kind",
            "anthropic-messages",
            "--base-url",
            provider.url,
            "--status-page",
            f"{provider.url}/api/v2/summary.json",
            "--format",
            "json",
        ],
        env={"ANTHROPIC_API_KEY": "sk-ant-diagnose-secret-0123456789"},
    )
    assert outcome.exit_code == 1
    verdict = json.loads(outcome.stdout)
    assert [c["cause"] for c in verdict["causes"]] == ["provider_incident", "provider_trouble"]
    assert "https://stspg.io/9x8r7kq2mz4p" in verdict["causes"][0]["fix"]
    assert verdict["working"] == ["model-lookup"]
    sent = {seen.path: seen.headers for seen in provider.requests}
    assert sent["/v1/messages"]["x-api-key"] == "sk-ant-diagnose-secret-0123456789"
    assert sent["/v1/models/claude-sonnet-4-5"]["x-api-key"] == "sk-ant-diagnose-secret-0123456789"
    assert "sk-ant-diagnose-secret" not in outcome.stdout


def test_gemini_with_a_bad_key(provider: FakeProvider) -> None:
    key = "AIzaDiagnoseSecret0123456789abcdef"
    provider.route("/v1beta/models/gemini-2.5-flash:generateContent", sim.gemini_400_bad_key())
    provider.route("/v1beta/models/gemini-2.5-flash", sim.gemini_400_bad_key())
    outcome = CliRunner().invoke(
        app,
        [
            "diagnose",
            "models/gemini-2.5-flash",
            "--kind",
            "gemini-generate",
            "--base-url",
            provider.url,
            "--token-env",
            "MY_GEMINI_KEY",
            "--format",
            "json",
        ],
        env={"MY_GEMINI_KEY": key},
    )
    assert outcome.exit_code == 1
    verdict = json.loads(outcome.stdout)
    [bad_key] = verdict["causes"]
    assert bad_key["cause"] == "bad_token"
    assert bad_key["evidence"] == ["model-call", "model-lookup"]
    assert "https://aistudio.google.com/apikey" in bad_key["fix"]
    assert [seen.headers["x-goog-api-key"] for seen in provider.requests] == [key, key]
    assert key not in outcome.stdout


def test_an_openai_compatible_api_that_works(provider: FakeProvider) -> None:
    provider.route("/v1/chat/completions", sim.chat_ok("gpt-4.1-mini"))
    provider.route("/v1/models/gpt-4.1-mini", Reply(200, {"id": "gpt-4.1-mini"}))
    outcome = CliRunner().invoke(
        app,
        ["diagnose", "gpt-4.1-mini", "--kind", "openai-chat", "--base-url", f"{provider.url}/v1"],
        env={"OPENAI_API_KEY": "sk-diagnose-0123456789abcdef"},
    )
    assert outcome.exit_code == 0, outcome.stdout
    assert "gpt-4.1-mini works (through model-call)" in outcome.stdout
    assert {seen.path for seen in provider.requests} == {
        "/v1/chat/completions",
        "/v1/models/gpt-4.1-mini",
    }


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    "args",
    [
        ["gpt2", "--kind", "cohere"],
        ["gpt2", "--timeout", "soon"],
        ["gpt2", "--base-url", "http://127.0.0.1:1"],
        ["has space"],
        ["m", "--kind", "openai-chat", "--base-url", "not a url"],
    ],
)
def test_usage_errors_exit_2_without_probing(provider: FakeProvider, args: list[str]) -> None:
    outcome = CliRunner().invoke(app, ["diagnose", *args])
    assert outcome.exit_code == 2, outcome.stdout
    assert provider.requests == []
