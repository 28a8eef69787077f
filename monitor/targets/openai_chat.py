"""`openai-chat`: an OpenAI-compatible /chat/completions, one user message, one token."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.domain.evidence import Evidence, RequestSpec, Verdict
from monitor.targets.base import bad_response
from monitor.targets.openai import OpenAICompatibleTarget


class OpenAIChatTarget(OpenAICompatibleTarget):
    kind: Literal["openai-chat"]
    prompt: str = Field(default="Say OK.", description="the one user message sent")

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build_request(self, token: str | None) -> RequestSpec:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            "max_tokens": 1,
        }
        return self.post(self.endpoint, body, token)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        data = ev.json
        choices = data.get("choices") if isinstance(data, dict) else None
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            return bad_response("the answer has no choices[0]")
        if not isinstance(choices[0].get("message"), dict):
            return bad_response("the answer has no choices[0].message")
        return None
