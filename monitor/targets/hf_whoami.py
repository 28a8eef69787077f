"""`hf-whoami`: token introspection, which catches a scope regression before any model call.

A fine-grained token may call Inference Providers only when `inference.serverless.write`
("Make calls to Inference Providers") is in its `global` permissions or in any `scoped` entry.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.targets.base import BaseUrl, TargetBase, bad_response
from monitor.targets.hf import INFERENCE_PERMISSION, SCOPE_FACTS, SCOPE_HINT, judge_hf_answer

MIN_INTERVAL = 900.0  # whoami-v2 is strictly rate-limited


class HfWhoamiTarget(TargetBase):
    kind: Literal["hf-whoami"]
    base_url: BaseUrl = "https://huggingface.co"
    default_interval: ClassVar[float | None] = MIN_INTERVAL

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/api/whoami-v2"

    def build_request(self, token: str | None) -> RequestSpec:
        return RequestSpec(method="GET", url=self.endpoint, headers=self.request_headers(token))

    def judge_body(self, ev: Evidence) -> Verdict | None:
        data = ev.json
        auth = data.get("auth") if isinstance(data, dict) else None
        token = auth.get("accessToken") if isinstance(auth, dict) else None
        if not isinstance(token, dict):
            return bad_response("the whoami answer has no auth.accessToken")
        if token.get("role") == "fineGrained" and not _can_call_inference(token):
            label = token.get("displayName") or "this token"
            user = data.get("name")
            return Verdict(
                Outcome.TOKEN_SCOPE,
                detail=(
                    f"fine-grained token {label!r}"
                    + (f" of user {user}" if user else "")
                    + f" lacks 'Make calls to Inference Providers' ({INFERENCE_PERMISSION})"
                ),
                hint=SCOPE_HINT.format(env=self.token_env or "HF_TOKEN"),
                facts=dict(SCOPE_FACTS),
            )
        return None

    def judge_error(self, ev: Evidence) -> Verdict | None:
        return judge_hf_answer(ev, self.token_env)

    def config_warnings(self) -> list[tuple[str, str]]:
        warnings = []
        if self.interval is not None and self.interval < MIN_INTERVAL:
            warnings.append(
                ("interval", "whoami-v2 is strictly rate-limited; probe it every 15m or less often")
            )
        if not self.token_env:
            warnings.append(("token_env", "hf-whoami without a token can only answer 401"))
        return warnings


def _can_call_inference(token: dict[str, Any]) -> bool:
    fine = token.get("fineGrained") or {}
    grants = [fine.get("global") or []]
    grants += [s.get("permissions") or [] for s in fine.get("scoped") or [] if isinstance(s, dict)]
    return any(INFERENCE_PERMISSION in g for g in grants)
