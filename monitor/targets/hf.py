"""What Hugging Face's answers mean, shared by the Hugging Face kinds and the classifier."""

from __future__ import annotations

import re

SCOPE_MARKER = "sufficient permissions to call inference providers"
SCOPE_HINT = (
    "create a token with 'Make calls to Inference Providers' at "
    "https://huggingface.co/settings/tokens (or tick it on this token) and put it in ${env}"
)

_REPLACEMENT = re.compile(r"(?:please\s+)?use\s+(https?://[^\s\"']+?)[./]?\s+instead", re.I)


def replacement_hint(message: str) -> str:
    """'…no longer supported. Please use https://router.huggingface.co instead.' -> a hint."""
    match = _REPLACEMENT.search(message)
    return f"switch to {match.group(1)} (named by the provider as the replacement)" if match else ""
