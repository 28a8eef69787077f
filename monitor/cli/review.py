"""`transitions`, `incidents` and `alerts`: the history, read through monitor/store/reads.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor.cli.app import (
    ConfigOption,
    Format,
    FormatOption,
    err,
    existing_or_exit,
    load_or_exit,
    out,
)
from monitor.cli.report import (
    alert_dict,
    alerts_table,
    incident_dict,
    incidents_table,
    transition_dict,
    transitions_table,
)
from monitor.config.types import DEFAULT_CONFIG_FILE, parse_duration
from monitor.store import reads

SinceOption = Annotated[
    str,
    typer.Option(
        "--since",
        "-s",
        help="How far back: a duration (24h, 7d) or a UTC date/time (2026-11-01T12:00).",
    ),
]
TargetFilter = Annotated[
    str | None, typer.Option("--target", "-t", help="Only this target.", show_default=False)
]


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """'24h' / '7d' (ago) or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    try:
        return now - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (24h, 7d) nor a date (2026-11-01)",
            param_hint="--since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _review(config: Path, since: str, target: str | None) -> tuple[datetime, Engine]:
    """The --since time and the database engine, for the review commands.

    An unknown --target is a usage error (exit 2), as for `probe`: a name that is neither in
    the config nor in the history is a typo, and an empty table would hide it.
    """
    cfg = load_or_exit(config)
    when = parse_since(since)
    engine = existing_or_exit(cfg)
    if target is not None and target not in {t.name for t in cfg.targets}:
        with Session(engine) as s:
            known = reads.target_names(s)
        if target not in known:
            names = ", ".join(sorted({t.name for t in cfg.targets} | set(known)))
            err.print(
                f"[bold red]error:[/] {escape(cfg.source)}: no target named {target!r} in the "
                f"config or the history; known: {escape(names) or '(none)'}"
            )
            raise typer.Exit(2)
    return when, engine


def _emit(rows: list[dict[str, Any]], table: Table, output: Format, nothing: str) -> None:
    """JSON (an empty list when there is nothing), or the table, or `nothing` said plainly."""
    if output is Format.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        out.print(nothing, markup=False)
    else:
        out.print(table)


def _nothing(what: str, since: datetime, target: str | None) -> str:
    about = f" for {target}" if target else ""
    return f"nothing found: no {what}{about} since {since:%Y-%m-%d %H:%M} UTC (widen --since)"


def transitions(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "7d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """List accepted state changes (what changed, when, why, what to do), newest first.

    With agents in several regions, a region's own change that the target's state did not
    follow is listed too, marked "regional". JSON: `agent` and `region` name the agent whose
    writer accepted the row, `regions` the regions that confirmed the change, and
    `observed_region` the region of a regional observation (null for the target's own
    changes)."""
    when, engine = _review(config, since, target)
    with Session(engine) as s:
        rows = reads.transitions(s, when, target=target)
        who = reads.agent_names(s)
    nothing = _nothing("state changes", when, target)
    found = [transition_dict(t, n, who.get(t.agent_id or 0)) for t, n in rows]
    _emit(found, transitions_table(rows), output, nothing)


def incidents(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "30d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """List failure periods (open, or closed within --since), with the states they went through."""
    when, engine = _review(config, since, target)
    with Session(engine) as s:
        found = reads.incidents(s, when, targets=[target] if target else None, with_alerts=False)
    rows = [(i, i.target) for i in found]
    table = incidents_table(rows, datetime.now(UTC))
    nothing = _nothing("incidents", when, target)
    _emit([incident_dict(i, n) for i, n in rows], table, output, nothing)


def alerts(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "7d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """Show the alert delivery log: sent, pending (with the next try) and failed, with errors."""
    when, engine = _review(config, since, target)
    with Session(engine) as s:
        rows = reads.alerts(s, when, target=target)
    nothing = _nothing("alerts", when, target)
    _emit([alert_dict(a, n) for a, n in rows], alerts_table(rows), output, nothing)
