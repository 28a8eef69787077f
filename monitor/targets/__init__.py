"""Target kinds, one module each: how to build a kind's request and judge its answer."""

from __future__ import annotations

import difflib
from typing import Any, get_args

from monitor.targets.anthropic import AnthropicMessagesTarget
from monitor.targets.base import TargetBase
from monitor.targets.gemini import GeminiGenerateTarget
from monitor.targets.hf_inference import HfInferenceTarget
from monitor.targets.hf_legacy import HfLegacyTarget
from monitor.targets.hf_model import HfModelTarget
from monitor.targets.hf_whoami import HfWhoamiTarget
from monitor.targets.http import HttpTarget
from monitor.targets.openai_chat import OpenAIChatTarget
from monitor.targets.openai_embeddings import OpenAIEmbeddingsTarget
from monitor.targets.statuspage import StatuspageTarget

Target = (
    HttpTarget
    | HfInferenceTarget
    | HfLegacyTarget
    | OpenAIChatTarget
    | OpenAIEmbeddingsTarget
    | HfWhoamiTarget
    | AnthropicMessagesTarget
    | GeminiGenerateTarget
    | HfModelTarget
    | StatuspageTarget
)

TARGET_KINDS: dict[str, type[TargetBase]] = {
    get_args(cls.model_fields["kind"].annotation)[0]: cls for cls in get_args(Target)
}


def parse_target(raw: dict[str, Any]) -> Target:
    """Validate one target mapping as its kind; ValueError for a missing or unknown kind."""
    kind = raw.get("kind")
    allowed = ", ".join(TARGET_KINDS)
    if kind is None:
        raise ValueError(f"is required; one of: {allowed}")
    cls = TARGET_KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(kind), TARGET_KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{kind!r} is not a target kind{hint}; allowed: {allowed}")
    return cls.model_validate(raw)  # type: ignore[return-value]  # cls is one of Target's kinds


__all__ = ["TARGET_KINDS", "Target", "TargetBase", "parse_target"]
