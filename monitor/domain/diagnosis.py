"""Pure: the probes of one `inferwatch diagnose` run -> one verdict.

What works, what is broken, the causes ranked most likely first, and for each the exact fix.
The provider knowledge (which URL replaces a retired host, which permission a token lacks)
arrives in the results' hints and facts, written by the kinds; this module only weighs them:
which outcome explains a failure, which explanation comes first, and which probe's evidence
gives the most concrete fix (a route that answers now beats a URL a message names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from monitor.domain.evidence import Outcome, ProbeResult


class Role(StrEnum):
    """What a probe is for in a diagnosis."""

    CALL = "call"  # a route that calls the model: the model works when one of these does
    MAPPING = "mapping"  # which providers serve the model (free)
    TOKEN = "token"  # token introspection (whoami)
    LISTING = "listing"  # the provider's model listing (free)
    STATUS = "status"  # the provider's status page


@dataclass(frozen=True)
class Check:
    """One probe of the diagnosis and its role."""

    role: Role
    result: ProbeResult


class CauseKind(StrEnum):
    """The explanations a diagnosis can give, most likely first (the ranking order)."""

    RETIRED = "retired"  # the host or the model was retired: move to the replacement
    NO_TOKEN = "no_token"
    BAD_TOKEN = "bad_token"
    TOKEN_PERMISSION = "token_permission"
    NO_PROVIDER = "no_provider"  # no (enabled, live) provider serves the model, or unknown model
    GATED = "gated"
    CREDITS = "credits"
    PROBE_REJECTED = "probe_rejected"  # the provider refused the request itself, not the model
    PROVIDER_INCIDENT = "provider_incident"
    PROVIDER_TROUBLE = "provider_trouble"  # overloaded, loading, 5xx
    RATE_LIMITED = "rate_limited"
    NETWORK = "network"
    FORBIDDEN = "forbidden"
    UNEXPECTED = "unexpected"  # an answer nothing above explains


CAUSE_OF: dict[Outcome, CauseKind] = {
    Outcome.DEPRECATED: CauseKind.RETIRED,
    Outcome.AUTH_MISSING: CauseKind.NO_TOKEN,
    Outcome.AUTH_INVALID: CauseKind.BAD_TOKEN,
    Outcome.TOKEN_SCOPE: CauseKind.TOKEN_PERMISSION,
    Outcome.MODEL_UNSUPPORTED: CauseKind.NO_PROVIDER,
    Outcome.NOT_FOUND: CauseKind.NO_PROVIDER,
    Outcome.GATED: CauseKind.GATED,
    Outcome.PAYMENT_REQUIRED: CauseKind.CREDITS,
    Outcome.REQUEST_REJECTED: CauseKind.PROBE_REJECTED,
    Outcome.PROVIDER_INCIDENT: CauseKind.PROVIDER_INCIDENT,
    Outcome.OVERLOADED: CauseKind.PROVIDER_TROUBLE,
    Outcome.LOADING: CauseKind.PROVIDER_TROUBLE,
    Outcome.SERVER_ERROR: CauseKind.PROVIDER_TROUBLE,
    Outcome.RATE_LIMITED: CauseKind.RATE_LIMITED,
    Outcome.TIMEOUT: CauseKind.NETWORK,
    Outcome.DNS_ERROR: CauseKind.NETWORK,
    Outcome.CONNECT_ERROR: CauseKind.NETWORK,
    Outcome.TLS_ERROR: CauseKind.NETWORK,
    Outcome.FORBIDDEN: CauseKind.FORBIDDEN,
    Outcome.CLIENT_ERROR: CauseKind.UNEXPECTED,
    Outcome.BAD_RESPONSE: CauseKind.UNEXPECTED,
}
RANK = {kind: i for i, kind in enumerate(CauseKind)}

TITLES: dict[CauseKind, str] = {
    CauseKind.RETIRED: "retired: the provider no longer serves this endpoint or model",
    CauseKind.NO_TOKEN: "no token was sent",
    CauseKind.BAD_TOKEN: "the token is rejected (wrong, expired or revoked)",
    CauseKind.TOKEN_PERMISSION: "the token lacks a permission",
    CauseKind.NO_PROVIDER: "no provider serves this model (or it does not exist)",
    CauseKind.GATED: "the model is gated",
    CauseKind.CREDITS: "out of credits or quota",
    CauseKind.PROBE_REJECTED: "the provider rejects the request's parameters, not the model",
    CauseKind.PROVIDER_INCIDENT: "the provider reports an incident",
    CauseKind.PROVIDER_TROUBLE: "the provider is overloaded, loading the model or failing",
    CauseKind.RATE_LIMITED: "rate limited",
    CauseKind.NETWORK: "the host cannot be reached",
    CauseKind.FORBIDDEN: "the credentials are valid but not allowed here",
    CauseKind.UNEXPECTED: "an unexpected answer",
}

# Outcomes a working route contradicts: the model is served, so these say only that one route
# (say the chat route of an embedding model) does not fit it.
_CONTRADICTED_BY_A_WORKING_CALL = frozenset({CauseKind.NO_PROVIDER})
_WORKING = frozenset({Outcome.OK, Outcome.SLOW})


@dataclass(frozen=True)
class Cause:
    kind: CauseKind
    title: str
    fix: str
    evidence: tuple[str, ...]  # the names of the probes showing it, in probing order

    def as_dict(self) -> dict[str, Any]:
        return {
            "cause": str(self.kind),
            "title": self.title,
            "fix": self.fix,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Diagnosis:
    model: str
    working: tuple[ProbeResult, ...]  # the model calls and checks that answered well
    broken: tuple[ProbeResult, ...]
    causes: tuple[Cause, ...]  # most likely first
    providers: tuple[str, ...]  # live providers, when a mapping probe named them
    via: tuple[str, ...]  # the call routes that answer (works when there is one)

    @property
    def works(self) -> bool:
        return bool(self.via)

    @property
    def headline(self) -> str:
        if self.works:
            return f"{self.model} works (through {', '.join(self.via)})"
        if len(self.causes) > 1 and self.causes[0].kind is CauseKind.RETIRED:
            # Moving off the retired route is not enough: say what the others fail on.
            first, then = self.causes[0].title, self.causes[1].title
            return f"{self.model} does not work: {first}; and then: {then}"
        if self.causes:
            return f"{self.model} does not work: {self.causes[0].title}"
        return f"{self.model} does not work"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "works": self.works,
            "verdict": self.headline,
            "via": list(self.via),
            "working": [r.target for r in self.working],
            "broken": [
                {"probe": r.target, "outcome": str(r.outcome), "detail": r.detail}
                for r in self.broken
            ],
            "causes": [c.as_dict() for c in self.causes],
            "live_providers": list(self.providers),
        }


def diagnose(model: str, checks: Sequence[Check]) -> Diagnosis:
    """Weigh the checks: the model works when any call route answers; every failure is
    explained by a cause, the causes ranked by how much they explain (a retired host first,
    then the token, then the providers, then what passes by itself), more evidence first
    within a rank."""
    answering = [c.result for c in checks if c.role is Role.CALL and _answers(c.result)]
    works = bool(answering)
    working = tuple(c.result for c in checks if _answers(c.result))
    broken = tuple(c.result for c in checks if not _answers(c.result))
    providers = _live_providers(checks)

    found: dict[CauseKind, list[Check]] = {}
    for check in checks:
        kind = _cause_of(check)
        if kind is None or (works and kind in _CONTRADICTED_BY_A_WORKING_CALL):
            continue
        if providers and check.result.outcome is Outcome.NOT_FOUND:
            continue  # a route the model is not on, while the mapping names where it is
        found.setdefault(kind, []).append(check)

    causes = [
        Cause(
            kind=kind,
            title=_title(kind, shown),
            fix=_fix(kind, shown, answering, providers),
            evidence=tuple(c.result.target for c in shown),
        )
        for kind, shown in found.items()
    ]
    causes.sort(key=lambda c: (RANK[c.kind], -len(c.evidence)))
    return Diagnosis(
        model=model,
        working=working,
        broken=broken,
        causes=tuple(causes),
        providers=providers,
        via=tuple(r.target for r in answering),
    )


def _answers(result: ProbeResult) -> bool:
    return result.outcome in _WORKING


def _cause_of(check: Check) -> CauseKind | None:
    outcome = check.result.outcome
    if _answers(check.result):
        return None
    if check.role is Role.STATUS:
        # The status page is evidence next to the probes: only the incident it reports is a
        # cause; a page that cannot be read explains nothing about the model.
        return CauseKind.PROVIDER_INCIDENT if outcome is Outcome.PROVIDER_INCIDENT else None
    return CAUSE_OF.get(outcome, CauseKind.UNEXPECTED)


def _title(kind: CauseKind, shown: Sequence[Check]) -> str:
    if kind is CauseKind.TOKEN_PERMISSION:
        missing = _fact(shown, "missing_permission")
        if missing:
            return f"the token lacks the permission {missing!r}"
    return TITLES[kind]


def _fix(
    kind: CauseKind,
    shown: Sequence[Check],
    working_calls: Sequence[ProbeResult],
    providers: Sequence[str],
) -> str:
    """The most concrete fix the evidence gives; the kinds' hints are the fallback."""
    hints = [c.result.hint for c in sorted(shown, key=_hint_order(kind)) if c.result.hint]
    hint = hints[0] if hints else "see the probes' details above"
    if kind is CauseKind.RETIRED:
        replacement = _fact(shown, "replacement_url")
        named = f"switch to {replacement} (named by the provider as the replacement)"
        now = " or ".join(r.url for r in working_calls)
        if replacement and now:
            return f"{named}: {now} answers for this model now"
        if now:
            return f"switch to {now} (answers for this model now)"
        return named if replacement else hint
    if kind is CauseKind.NO_PROVIDER and providers:
        return f"the model is live on {_listing(providers)}; {hint}"
    return hint


def _listing(names: Sequence[str], shown: int = 8) -> str:
    """Names for a line of text: a mapping may list dozens of providers."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _hint_order(kind: CauseKind) -> Callable[[Check], tuple[bool, bool]]:
    """Whose hint is the fix: the mapping's says best what serves a model, then an answer
    about providers (model_unsupported) more than a route's 404; for other causes a model
    call's, which is what the user's code meets."""
    first = Role.MAPPING if kind is CauseKind.NO_PROVIDER else Role.CALL
    return lambda check: (
        check.role is not first,
        check.result.outcome is not Outcome.MODEL_UNSUPPORTED,
    )


def _fact(shown: Sequence[Check], key: str) -> str | None:
    for check in shown:
        value = check.result.facts.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _live_providers(checks: Sequence[Check]) -> tuple[str, ...]:
    for check in checks:
        if check.role is Role.MAPPING:
            live = check.result.facts.get("live_providers")
            if isinstance(live, list | tuple):
                return tuple(str(p) for p in live)
    return ()
