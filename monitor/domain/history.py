"""How a target's history is summarised for people: pure, shared by the reads and the pages.

The colour class of a state (no data included), the uptime windows of the overview, the size of
a timeline's blocks, and the states that need someone to act.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.domain.evidence import NO_DATA, Outcome, OutcomeClass, outcome_class
from monitor.domain.rollups import DAY, HOUR

UPTIME_WINDOWS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
# States that need someone to act, flagged above the overview.
ACTION_OUTCOMES = (Outcome.DEPRECATED, Outcome.TOKEN_SCOPE, Outcome.PAYMENT_REQUIRED)


def state_class(outcome: str | None) -> str:
    """ok / transient / contract, or no_data: the colour key used on every page."""
    if outcome is None or outcome == NO_DATA:
        return NO_DATA
    try:
        return str(outcome_class(outcome))
    except ValueError:
        return str(OutcomeClass.CONTRACT)


def period_for(start: datetime, end: datetime) -> str:
    """Hourly blocks up to a week, daily beyond: at most a few hundred points per chart."""
    return HOUR if end - start <= timedelta(days=7) else DAY
