"""`gemini-generate`: Google's Gemini API generateContent, one user message, one token.

Errors are `google.rpc` statuses, `{"error": {"code", "message", "status", "details"}}`
(../shared/provider-errors.md); the details say why: `ErrorInfo.reason` (API_KEY_INVALID,
SERVICE_DISABLED), `QuotaFailure.violations[].quotaId` and `RetryInfo.retryDelay` on a 429.
The key goes in `x-goog-api-key`, never in a `?key=` (URLs are stored).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from monitor.domain.answers import provider_message, says_retired
from monitor.domain.evidence import Evidence, Outcome, RequestSpec, Verdict
from monitor.targets.base import BaseUrl, ModelTarget, bad_response, error_verdict, retry_facts
from monitor.targets.streaming import number

KEYS_URL = "https://aistudio.google.com/apikey"
LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"
CREDENTIALS_URL = "https://console.cloud.google.com/apis/credentials"
REGIONS_URL = "https://ai.google.dev/gemini-api/docs/available-regions"
ENABLE_URL = "https://console.cloud.google.com/apis/library/generativelanguage.googleapis.com"
_RPC = "type.googleapis.com/google.rpc."
_DELAY = re.compile(r"(\d{1,9}(?:\.\d{1,9})?)s")  # google.protobuf.Duration: "37s", "0.5s"
# "Consider switching to different model, for example gemini-1.5-flash."
_SUCCESSOR = re.compile(r"for example,? ([\w.-]{1,100}?)\.?(?:\s|$)")
_URL = re.compile(r"https://[^\s\"'<>]{1,2048}")


class GeminiGenerateTarget(ModelTarget):
    kind: Literal["gemini-generate"]
    base_url: BaseUrl = "https://generativelanguage.googleapis.com"
    prompt: str = Field(default="Say OK.", description="the one user message sent")
    max_tokens: int = Field(
        default=1, ge=1, le=100_000, description="maxOutputTokens: the answer's token budget"
    )

    @property
    def endpoint(self) -> str:
        # The API names models "models/<id>"; either spelling of the id works here.
        return f"{self.base_url}/v1beta/models/{self.model.removeprefix('models/')}:generateContent"

    def build_request(self, token: str | None) -> RequestSpec:
        body = {
            "contents": [{"role": "user", "parts": [{"text": self.prompt}]}],
            "generationConfig": {"maxOutputTokens": self.max_tokens},
        }
        return self.post(self.endpoint, body, token)

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"x-goog-api-key": token}

    def judge_error(self, ev: Evidence) -> Verdict | None:
        return judge_gemini_answer(ev, self.token_env)

    def judge_body(self, ev: Evidence) -> Verdict | None:
        # (A 200 carrying an `error` object is read by the classifier for every kind.)
        data = ev.json
        candidates = data.get("candidates") if isinstance(data, dict) else None
        if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
            return None
        feedback = data.get("promptFeedback") if isinstance(data, dict) else None
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if isinstance(blocked, str):
            return bad_response(
                f"Gemini blocked the probe's prompt ({blocked})", "change the target's `prompt`"
            )
        return bad_response("the answer has no candidates")

    def ok_notes(self, ev: Evidence) -> tuple[str, dict[str, Any]]:
        """A thinking model (Gemini 2.5) may spend the whole budget on thoughts and answer no
        text: the model is up, but say so, since no text was checked."""
        data = ev.json
        candidates = data.get("candidates") if isinstance(data, dict) else None
        first = candidates[0] if isinstance(candidates, list) and candidates else None
        if not isinstance(first, dict) or first.get("finishReason") != "MAX_TOKENS":
            return "", {}
        content = first.get("content")
        if isinstance(content, dict) and content.get("parts"):
            return "", {}
        thoughts = number(data, "usageMetadata", "thoughtsTokenCount")
        spent = f" ({thoughts} thought tokens)" if thoughts else ""
        return (
            f"no text: the model spent the {self.max_tokens}-token budget thinking{spent}; it "
            "is up, but set max_tokens: 256 to have its text checked",
            {},
        )

    def usage_tokens(self, ev: Evidence) -> int | None:
        return number(ev.json, "usageMetadata", "totalTokenCount")

    def answered_model(self, ev: Evidence) -> str | None:
        version = ev.json.get("modelVersion") if isinstance(ev.json, dict) else None
        return version if isinstance(version, str) and version else None

    def config_warnings(self) -> list[tuple[str, str]]:
        warnings = super().config_warnings()
        if not self.token_env:
            warnings.append(("token_env", "gemini-generate without a key can only answer 403"))
        return warnings


def judge_gemini_answer(ev: Evidence, token_env: str | None) -> Verdict | None:
    """Gemini's reading of a google.rpc error answer, or None for the generic classifier
    (an answer not in that shape, or a status the HTTP family already says: 5xx, overload)."""
    data = ev.json
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    status = _text(error.get("status"))
    details = _dicts(error.get("details"))
    info = _detail(details, "ErrorInfo")
    reason = _text(info.get("reason"))
    message = provider_message(ev)
    low = message.lower()
    env = token_env or "the token_env variable"

    def verdict(outcome: Outcome, hint: str, facts: dict[str, Any] | None = None) -> Verdict:
        return error_verdict(ev, outcome, hint, facts)

    if reason == "API_KEY_INVALID" or "api key not valid" in low:  # a 400, not a 401
        return verdict(
            Outcome.AUTH_INVALID,
            f"the key in {env} is not a valid Gemini API key; create one at {KEYS_URL}",
        )
    if status == "PERMISSION_DENIED" and (not ev.token_sent or "unregistered callers" in low):
        where = (
            f"{token_env} is not set: export it and restart"
            if token_env
            else "set token_env to the name of a variable holding the key"
        )
        return verdict(Outcome.AUTH_MISSING, f"no API key was sent; {where} (keys: {KEYS_URL})")
    if reason == "SERVICE_DISABLED":
        url = _activation_url(info, message)
        return verdict(
            Outcome.FORBIDDEN,
            f"the Generative Language API is disabled in the key's project: enable it at {url} "
            "(or use a key made at aistudio.google.com)",
        )
    if reason.startswith("API_KEY_") and reason.endswith("_BLOCKED"):
        return verdict(
            Outcome.FORBIDDEN,
            f"the key's restrictions ({reason}) block this call: allow the Generative Language "
            f"API, this IP or referrer at {CREDENTIALS_URL}",
        )
    if status == "PERMISSION_DENIED":
        return verdict(
            Outcome.FORBIDDEN,
            f"the key in {env} may not use this model (a tuned or preview model of another "
            f"project, or not offered to its tier); check `model` and the key's project at "
            f"{KEYS_URL}",
        )
    if status == "FAILED_PRECONDITION":
        if "location is not supported" in low:
            hint = f"the Gemini API is not offered where the probe runs; see {REGIONS_URL}"
        else:
            hint = (
                "Gemini's free tier is not offered in the country the probe runs from: enable "
                f"billing on the key's project at {KEYS_URL}"
            )
        return verdict(Outcome.FORBIDDEN, hint)
    if status == "RESOURCE_EXHAUSTED" or ev.status == 429:
        hint, facts = _quota(ev, details)
        return verdict(Outcome.RATE_LIMITED, hint, facts)
    if status == "NOT_FOUND" and says_retired(message):
        instead = _SUCCESSOR.search(message)
        named = f" (it names {instead.group(1)})" if instead else ""
        return verdict(Outcome.DEPRECATED, f"Gemini retired this model: change `model`{named}")
    if status == "NOT_FOUND":
        return verdict(
            Outcome.NOT_FOUND,
            "Gemini has no such model for generateContent (retired ones answer this too): "
            "check `model` against GET /v1beta/models",
        )
    if status == "INVALID_ARGUMENT":
        return verdict(
            Outcome.REQUEST_REJECTED,
            "Gemini refused the probe's own request (the model may be fine): fix `payload` or "
            "`prompt` as the message says",
        )
    return None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list; nothing of anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _detail(details: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The first google.rpc detail of a type ("ErrorInfo", "RetryInfo"), or {}."""
    return next((d for d in details if d.get("@type") == _RPC + name), {})


def _activation_url(info: dict[str, Any], message: str) -> str:
    """Where to enable the API: ErrorInfo's activationUrl, the message's URL, else the library."""
    metadata = info.get("metadata")
    url = metadata.get("activationUrl") if isinstance(metadata, dict) else None
    if isinstance(url, str) and _URL.fullmatch(url):
        return url
    found = _URL.search(message)
    return found.group(0).rstrip(".,") if found else ENABLE_URL


def _quota(ev: Evidence, details: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Which quota ran out and when to retry (RetryInfo, else Retry-After)."""
    violations = _dicts(_detail(details, "QuotaFailure").get("violations"))
    quota_ids = [v["quotaId"] for v in violations if isinstance(v.get("quotaId"), str)]
    delay = _detail(details, "RetryInfo").get("retryDelay")
    match = _DELAY.fullmatch(delay) if isinstance(delay, str) else None
    retry = ev.headers.get("retry-after", "").strip()
    if match:
        facts = retry_facts(float(match.group(1)), ev.started_at)
    elif retry.isdigit() and len(retry) <= 9:
        facts = retry_facts(float(retry), ev.started_at)
    else:
        facts = {}
    which = f"the quota {', '.join(quota_ids[:3])} is used up" if quota_ids else "rate limited"
    when = f"; retry in {facts['retry_after_s']:g} s" if "retry_after_s" in facts else ""
    return (
        f"{which}{when}; limits per tier at {LIMITS_URL}, billing raises them ({KEYS_URL})",
        facts,
    )
