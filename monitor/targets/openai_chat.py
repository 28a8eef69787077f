"""`openai-chat`: an OpenAI-compatible /chat/completions, one user message, one token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from monitor.domain.evidence import Evidence, RequestSpec, StreamEvent, StreamReading, Verdict
from monitor.targets.base import bad_response
from monitor.targets.openai import OpenAICompatibleTarget, Rejection
from monitor.targets.streaming import ChatFields, Step, number, read_events, streamed


class OpenAIChatTarget(ChatFields, OpenAICompatibleTarget):
    kind: Literal["openai-chat"]
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="the request field carrying max_tokens: OpenAI's reasoning models and "
        "Azure GPT-5 take only max_completion_tokens",
    )

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build_request(self, token: str | None) -> RequestSpec:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": self.prompt}],
            self.max_tokens_field: self.budget,
        }
        if not self.stream:
            return self.post(self.endpoint, body, token)
        body |= {"stream": True, "stream_options": {"include_usage": True}}
        spec = self.post(self.endpoint, body, token)
        return streamed(spec)

    def read_stream(self, events: Sequence[StreamEvent]) -> StreamReading:
        return read_events(events, _chunk_step)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        data = ev.json
        choices = data.get("choices") if isinstance(data, dict) else None
        if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
            return bad_response("the answer has no choices[0]")
        if not isinstance(choices[0].get("message"), dict):
            return bad_response("the answer has no choices[0].message")
        return None

    def ok_notes(self, ev: Evidence) -> tuple[str, dict[str, Any]]:
        """A reasoning model may spend the whole budget thinking and answer an empty message
        with finish_reason "length": it is up, but say so, since no text was checked."""
        data = ev.json
        choices = data.get("choices") if isinstance(data, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(first, dict) or first.get("finish_reason") != "length":
            return "", {}
        message = first.get("message")
        if isinstance(message, dict) and message.get("content"):
            return "", {}  # a real token within the budget: the usual one-token probe
        reasoning = number(data, "usage", "completion_tokens_details", "reasoning_tokens")
        spent = f" ({reasoning} reasoning tokens)" if reasoning else ""
        return (
            f"no text: the model spent the {self.budget}-token budget reasoning{spent}; it is "
            f"up, but set max_tokens: {max(256, 4 * self.max_tokens)} to have its text checked",
            {},
        )

    def rejection_hint(self, rejection: Rejection) -> str:
        if self.payload is not None:  # the user's own body was sent: our fields do not apply
            return super().rejection_hint(rejection)
        budget = f"`max_tokens` (now {self.max_tokens})"
        if rejection.reason == "parameter" and rejection.param in TOKEN_FIELDS:
            other = next(f for f in TOKEN_FIELDS if f != rejection.param)
            return f"this model does not take `{rejection.param}`: set max_tokens_field: {other}"
        if rejection.reason == "token_floor" and rejection.floor:
            return f"the model needs a larger budget: set max_tokens: {rejection.floor} or more"
        if rejection.reason == "budget":
            return (
                f"the model spent the whole {budget} before answering (a reasoning model "
                f"thinks first): raise it, e.g. max_tokens: {max(256, 4 * self.max_tokens)}"
            )
        if rejection.reason == "context":
            return "the probe's input is longer than the model's context: shorten `prompt`"
        if rejection.reason == "too_large":
            return (
                f"one probe asks for more tokens than the tokens-per-minute limit: lower "
                f"{budget} or shorten `prompt` (retrying will not help)"
            )
        return super().rejection_hint(rejection)


TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def _chunk_step(event: StreamEvent, data: Any) -> Step:
    """One `data:` chunk of an OpenAI-style stream. The first chunk often carries only the
    role (an empty content): no token yet. With include_usage a last chunk has empty choices
    and the usage. OpenRouter reports a failure mid-stream as a chunk with `error`."""
    if event.data.strip() == "[DONE]":
        return Step(end=True)
    if event.event == "error" or (isinstance(data, dict) and "error" in data):
        code = number(data, "error", "code")  # OpenRouter's codes are HTTP statuses
        return Step(error_status=code if code is not None and 400 <= code < 600 else 500)
    if not isinstance(data, dict):
        return Step()
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    delta = choice.get("delta") if isinstance(choice, dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return Step(
        text=content if isinstance(content, str) else "",
        input_tokens=number(data, "usage", "prompt_tokens"),
        output_tokens=number(data, "usage", "completion_tokens"),
        # A finish reason completes the answer too (the usage chunk and [DONE] may follow).
        end=isinstance(choice, dict) and choice.get("finish_reason") is not None,
    )
