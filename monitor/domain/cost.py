"""Pure: what probing a model costs in tokens, from the provider's own `usage` figures."""

from __future__ import annotations

from statistics import median

MONTH_S = 30 * 86400.0  # a month of probes, as the figures count it
# A model kind spends tokens on every probe: more often than this is rarely worth it.
MIN_MODEL_INTERVAL_S = 60.0


def tokens_per_probe(recent: list[int]) -> int | None:
    """The typical cost of one probe: the median of the recent measured ones (a streamed
    answer varies in length), None before any probe reported its usage."""
    return round(median(recent)) if recent else None


def tokens_per_month(per_probe: int, interval_s: float) -> int:
    """The tokens a target spends in a month of probes every `interval_s` seconds."""
    return round(per_probe * MONTH_S / interval_s) if interval_s > 0 else 0


def cost_line(per_probe: int | None, interval_s: float) -> str:
    """'13 tokens a probe, about 561,600 a month': the figures people read."""
    if per_probe is None:
        return "not measured yet; `inferwatch probe` reads it from the provider's usage"
    return (
        f"{per_probe:,} tokens a probe, about {tokens_per_month(per_probe, interval_s):,} "
        "a month at this interval"
    )


def frequent_probe_warning(kind: str, interval_s: float) -> str | None:
    """A warning when a kind that spends tokens probes more often than every minute."""
    if interval_s >= MIN_MODEL_INTERVAL_S:
        return None
    return (
        f"{kind} spends tokens on every probe and this target probes every {interval_s:g} s: "
        f"set interval to {MIN_MODEL_INTERVAL_S:.0f}s or more unless the cost is intended"
    )
