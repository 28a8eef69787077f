"""`hf-model`: which Inference Providers serve a model, from the Hub's free model API.

`GET {base}/api/models/{model}?expand[]=inferenceProviderMapping` costs no credits. The
mapping is a dict keyed by provider (`{"together": {"status": "live", ...}}`); list endpoints
give an array of `{"provider": ..., "status": ...}` instead: both are read. A model is callable
while at least one provider is `live` (or the configured `provider` is). The live set is kept as
the fact `live_providers`, so a provider dropped while the model still answers is recorded
(monitor/domain/sampling.py) before the model 404s for everyone.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.targets.base import BaseUrl, ModelId, TargetBase, bad_response, error_verdict
from monitor.targets.hf import judge_hf_answer

LIVE = "live"
ENDPOINTS_PAGE = "https://endpoints.huggingface.co"
MIN_SENSIBLE_INTERVAL = 60.0


class HfModelTarget(TargetBase):
    kind: Literal["hf-model"]
    model: ModelId = Field(description="model id, e.g. meta-llama/Llama-3.1-8B-Instruct")
    base_url: BaseUrl = "https://huggingface.co"
    provider: str | None = Field(
        default=None,
        min_length=1,
        description="the provider your calls use: ok only while this one is live",
    )
    default_interval: ClassVar[float | None] = 300.0  # mappings change over days, not seconds
    tracks_providers: ClassVar[bool] = True

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/api/models/{self.model}?expand[]=inferenceProviderMapping"

    def build_request(self, token: str | None) -> RequestSpec:
        return RequestSpec(method="GET", url=self.endpoint, headers=self.request_headers(token))

    def judge_error(self, ev: Evidence) -> Verdict | None:
        verdict = judge_hf_answer(ev, self.token_env)  # gated models, the Hub's wording
        if verdict is None and ev.status == 401 and not self.token_env:
            # The Hub answers 401 for a private or unknown model alike, to hide which.
            return error_verdict(
                ev,
                Outcome.AUTH_MISSING,
                "the model is private or does not exist (the Hub hides which): check the id, "
                "or set token_env to a token that can read it",
            )
        return verdict

    def judge_body(self, ev: Evidence) -> Verdict | None:
        statuses = _statuses_of(ev)
        if statuses is None:
            return bad_response(
                "the model answer has no inferenceProviderMapping",
                "check base_url: it must be the Hub (https://huggingface.co), which adds the "
                "mapping when asked with ?expand[]=inferenceProviderMapping",
            )
        live = live_providers(statuses)
        served = self.provider in live if self.provider is not None else bool(live)
        if served:
            return None  # ok: ok_notes keeps the live set
        return Verdict(
            Outcome.MODEL_UNSUPPORTED,
            detail=self._unserved_detail(statuses, live),
            hint=self._unserved_hint(statuses, live),
            facts={"live_providers": live},
        )

    def ok_notes(self, ev: Evidence) -> tuple[str, dict[str, Any]]:
        return "", {"live_providers": live_providers(_statuses_of(ev) or {})}

    def config_warnings(self) -> list[tuple[str, str]]:
        if self.interval is not None and self.interval < MIN_SENSIBLE_INTERVAL:
            return [
                (
                    "interval",
                    "provider mappings change over days and the Hub allows 500 API calls per "
                    "5 minutes for everything you run: probe every 5m (at least every 1m)",
                )
            ]
        return []

    def _unserved_detail(self, statuses: dict[str, str], live: list[str]) -> str:
        if self.provider is not None:
            state = statuses.get(self.provider)
            was = "does not serve it" if state is None else f"is {state or 'not live'}"
            others = f"; live: {', '.join(live)}" if live else "; no provider is live"
            return f"provider {self.provider} {was} for {self.model}{others}"
        if statuses:
            return (
                f"no live provider serves {self.model}; mapped but not live: {not_live(statuses)}"
            )
        return f"no inference provider serves {self.model}"

    def _unserved_hint(self, statuses: dict[str, str], live: list[str]) -> str:
        if live:
            return f"switch the calls (and this target's provider) to a live one: {', '.join(live)}"
        if statuses:
            return (
                f"{not_live(statuses)} cannot be called yet; pick another model or deploy "
                f"this one on an Inference Endpoint ({ENDPOINTS_PAGE})"
            )
        return (
            "no provider serves this model: pick another model (the Hub lists those with a "
            f"provider) or deploy it on an Inference Endpoint ({ENDPOINTS_PAGE})"
        )


def _statuses_of(ev: Evidence) -> dict[str, str] | None:
    data = ev.json
    return provider_statuses(
        data.get("inferenceProviderMapping") if isinstance(data, dict) else None
    )


def provider_statuses(mapping: Any) -> dict[str, str] | None:
    """{provider: status} from the dict keyed by provider or the list of {provider, status};
    None when it is neither (not a mapping answer)."""
    if isinstance(mapping, dict):
        items = [(name, entry) for name, entry in mapping.items()]
    elif isinstance(mapping, list):
        items = [(e.get("provider"), e) for e in mapping if isinstance(e, dict)]
    else:
        return None
    return {
        str(name): str(entry.get("status") or "")
        for name, entry in items
        if isinstance(name, str) and name and isinstance(entry, dict)
    }


def live_providers(statuses: dict[str, str]) -> list[str]:
    return sorted(name for name, status in statuses.items() if status == LIVE)


def not_live(statuses: dict[str, str]) -> str:
    """'novita (staging), together (error)': the mapped providers that cannot be called."""
    return ", ".join(
        f"{name} ({status or 'no status'})"
        for name, status in sorted(statuses.items())
        if status != LIVE
    )
