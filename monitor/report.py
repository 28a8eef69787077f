"""Pure rendering of probe results for the terminal: a rich table, JSON, a summary line."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from monitor.evidence import OutcomeClass, ProbeResult, outcome_class

# One colour per outcome class, used everywhere (table, emails, dashboard).
CLASS_STYLE = {
    OutcomeClass.OK: "bold green",
    OutcomeClass.TRANSIENT: "bold yellow",
    OutcomeClass.CONTRACT: "bold red",
}


def outcome_text(outcome: str) -> Text:
    return Text(outcome, style=CLASS_STYLE[outcome_class(outcome)])


def results_table(results: Sequence[ProbeResult]) -> Table:
    """Three columns so it reads on an 80-column terminal: who, what state, what to do."""
    table = Table(show_lines=True, header_style="bold")
    table.add_column("Target", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("What happened / what to do", ratio=1, overflow="fold")
    for r in results:
        who = Text(r.target)
        who.append(f"\n{r.kind}", style="dim")
        state = outcome_text(str(r.outcome))
        facts = [f"HTTP {r.http_status}" if r.http_status is not None else "no answer"]
        if r.latency_ms is not None:
            facts.append(f"{r.latency_ms:.0f} ms")
        state.append("\n" + " · ".join(facts), style="dim")
        what = Text(r.detail or "")
        if r.hint:
            what.append(f"\n→ {r.hint}", style="cyan")
        if r.warning:
            what.append(f"\n⚠ {r.warning}", style="yellow")
        trail = [f"provider {r.provider}" if r.provider else "", r.request_id or ""]
        if any(trail):
            what.append("\n" + " · ".join(x for x in trail if x), style="dim")
        table.add_row(who, state, what)
    return table


def results_json(results: Sequence[ProbeResult]) -> str:
    return json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False)


def summary(results: Sequence[ProbeResult]) -> str:
    counts = Counter(str(r.outcome) for r in results)
    parts = ", ".join(
        f"{n} {outcome}" for outcome, n in sorted(counts.items(), key=lambda x: -x[1])
    )
    noun = "target" if len(results) == 1 else "targets"
    return f"{len(results)} {noun}: {parts}"
