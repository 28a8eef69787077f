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


# What the pages write for "nothing known" (a pill reads "no data", the palette key is no_data).
NO_DATA_WORDS = frozenset({NO_DATA, "no data"})
CLASS_NAMES = frozenset(str(c) for c in OutcomeClass)


def state_class(outcome: str | None) -> str:
    """ok / transient / contract, or no_data: the colour key used on every page.

    Takes an outcome, a class name ("transient" is amber, as in the legends) or the words for
    no data. A string that is none of these is no data too: grey claims nothing, where red
    would claim a contract break nobody saw.
    """
    if outcome is None or outcome in NO_DATA_WORDS:
        return NO_DATA
    if outcome in CLASS_NAMES:
        return outcome
    try:
        return str(outcome_class(Outcome(outcome)))
    except ValueError:
        return NO_DATA


def period_for(start: datetime, end: datetime) -> str:
    """Hourly blocks up to a week, daily beyond: at most a few hundred points per chart."""
    return HOUR if end - start <= timedelta(days=7) else DAY
