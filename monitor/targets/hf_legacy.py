"""`hf-legacy`: the retired serverless API (api-inference.huggingface.co), for old integrations.

Any 404 or 410 from this host means the endpoint is retired (the seeds' story): it is reported
as `deprecated`, with the replacement URL when the message names one.
"""

from __future__ import annotations

from typing import Literal

from monitor.domain.answers import provider_message
from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.targets.base import PROBE_TEXT, BaseUrl, ModelTarget
from monitor.targets.hf import judge_hf_answer, replacement_facts, replacement_hint

ROUTER_HINT = (
    "the serverless Inference API is retired; move to https://router.huggingface.co "
    "(kinds hf-inference, openai-chat or openai-embeddings)"
)


class HfLegacyTarget(ModelTarget):
    kind: Literal["hf-legacy"]
    base_url: BaseUrl = "https://api-inference.huggingface.co"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/models/{self.model}"

    def build_request(self, token: str | None) -> RequestSpec:
        return self.post(self.endpoint, {"inputs": PROBE_TEXT}, token)

    def judge_error(self, ev: Evidence) -> Verdict | None:
        if ev.status not in (404, 410):
            return judge_hf_answer(ev, self.token_env)
        message = provider_message(ev) or "Not Found"
        return Verdict(
            Outcome.DEPRECATED,
            detail=f"HTTP {ev.status}: {message}",
            hint=replacement_hint(message) or ROUTER_HINT,
            facts=replacement_facts(message),
        )
