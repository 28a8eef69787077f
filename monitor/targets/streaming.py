"""Reading a streamed answer's events, the part every streaming kind shares (pure).

A kind says what one event means (`Step`: the content it adds, the usage it reports, whether it
ends the stream or is an error); `read_events` turns the steps into a `StreamReading`: time to
the first non-empty content delta, to the last, output tokens (the provider's usage count when
it sends one, else the content deltas counted), and the first error event after the 200.
OpenAI's chunks are read in openai_chat.py, Anthropic's events in anthropic.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import Field

from monitor.config.types import StrictModel
from monitor.domain.evidence import RequestSpec, StreamEvent, StreamReading

STREAM_MAX_TOKENS = 16  # enough tokens to time their pace; GPT-5-class models refuse fewer


class ChatFields(StrictModel):
    """What a chat kind (openai-chat, anthropic-messages) probes with: one user message, a
    token budget, and whether to stream the answer."""

    prompt: str = Field(default="Say OK.", description="the one user message sent")
    max_tokens: int = Field(
        default=1, ge=1, le=100_000, description="the answer's token budget (what a probe costs)"
    )
    stream: bool = Field(
        default=False,
        description="stream the answer to measure time to first token and tokens per second "
        f"(max_tokens defaults to {STREAM_MAX_TOKENS} then)",
    )

    @property
    def budget(self) -> int:
        """max_tokens as set; unset, one token, or enough to time their pace when streaming."""
        if "max_tokens" in self.model_fields_set or not self.stream:
            return self.max_tokens
        return STREAM_MAX_TOKENS


def streamed(spec: RequestSpec) -> RequestSpec:
    """A chat request as a streamed one: it asks for server-sent events and is read as such."""
    return replace(spec, headers=spec.headers | {"accept": "text/event-stream"}, stream=True)


@dataclass(frozen=True)
class Step:
    """What one event says, in its kind's reading."""

    text: str = ""  # content it adds; empty for a role, a ping, a usage-only chunk
    input_tokens: int | None = None  # the provider's counts so far, when the event has them
    output_tokens: int | None = None
    end: bool = False  # the answer is complete (a finish or stop reason, [DONE], message_stop)
    error_status: int | None = None  # an error event: the HTTP status its error stands for


def read_events(
    events: Sequence[StreamEvent], step: Callable[[StreamEvent, Any], Step]
) -> StreamReading:
    """Walk the events through `step(event, its data as JSON or None)` up to the first error;
    keep-alives and comments simply add nothing."""
    first: float | None = None
    last: float | None = None
    deltas = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    ended = False
    error: str | None = None
    error_status = 500
    for event in events:
        now = step(event, _json(event.data))
        if now.error_status is not None:
            error, error_status = event.data, now.error_status
            break
        if now.text:
            deltas += 1
            first = event.at_ms if first is None else first
            last = event.at_ms
        input_tokens = _count(now.input_tokens, input_tokens)
        output_tokens = _count(now.output_tokens, output_tokens)
        ended = ended or now.end
    usage = None
    if input_tokens is not None or output_tokens is not None:
        usage = (input_tokens or 0) + (output_tokens or 0)
    return StreamReading(
        ttft_ms=first,
        last_token_ms=last,
        output_tokens=output_tokens if output_tokens is not None else deltas,
        usage_tokens=usage,
        ended=ended,
        error=error,
        error_status=error_status,
    )


def _json(data: str) -> Any:
    if not data.startswith(("{", "[")):
        return None  # "[DONE]" is no JSON; neither is a ping's empty data
    try:
        return json.loads(data)
    except ValueError:
        return None


def _count(new: int | None, old: int | None) -> int | None:
    """A reported count, if it is one (a provider's null or a string is no count)."""
    return new if isinstance(new, int) and not isinstance(new, bool) and new >= 0 else old


def number(data: Any, *path: str) -> int | None:
    """data[path...] when it is a non-negative int, else None (odd shapes are no count)."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, int) and not isinstance(data, bool) and data >= 0 else None
