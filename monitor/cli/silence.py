"""`silence add`, `silence list` and `silence end`: silences stored in the database.

A running monitor's writer reads the silences in force with each batch, so one added here
counts from its next batch (within a second), and one ended here stops counting as soon.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from monitor.cli.app import (
    ConfigOption,
    Format,
    FormatOption,
    err,
    existing_or_exit,
    load_or_exit,
    open_or_exit,
    out,
)
from monitor.config.model import Config
from monitor.config.types import DEFAULT_CONFIG_FILE, format_duration, parse_duration
from monitor.domain.maintenance import Silence, periods
from monitor.domain.states import format_span
from monitor.store import reads, writes

silence_app = typer.Typer(
    help="Silence alerts for a target or tag for a while (probes still run and are recorded).",
    no_args_is_help=True,
)


def add(
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="The target to silence.")
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Or: silence every target with this tag.")
    ] = None,
    duration: Annotated[
        str, typer.Option("--for", help="How long: a duration such as 30m, 2h or 1d.")
    ] = "1h",
    reason: Annotated[
        str, typer.Option("--reason", "-r", help="Why, shown with every change it hides.")
    ] = "",
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """Silence a target (--target) or every target with a tag (--tag) for a while."""
    cfg = load_or_exit(config)
    if (target is None) == (tag is None):
        _usage(cfg, "give --target NAME or --tag TAG (one of them)")
    if target is not None and target not in {t.name for t in cfg.targets}:
        _usage(cfg, f"no target named {target!r}; configured: {_names(cfg)}")
    tags = sorted({t for target_ in cfg.targets for t in target_.tags})
    if tag is not None and tag not in tags:
        _usage(cfg, f"no target has the tag {tag!r}; tags in use: {', '.join(tags) or 'none'}")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None
    engine = open_or_exit(cfg)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        silence_id = writes.add_silence(
            s,
            target=target,
            tag=tag,
            starts_at=now,
            ends_at=now + timedelta(seconds=seconds),
            reason=reason.strip(),
        )
    scope = target if target is not None else f"tag {tag}"
    out.print(
        f"[green]✓[/] silence #{silence_id}: {escape(scope)} for {format_duration(seconds)} "
        f"(until {now + timedelta(seconds=seconds):%Y-%m-%d %H:%M} UTC)"
    )


def list_(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    output: FormatOption = Format.table,
) -> None:
    """List silences and maintenance windows in force now or starting within 7 days."""
    cfg = load_or_exit(config)
    engine = existing_or_exit(cfg)
    now = datetime.now(UTC)
    with Session(engine) as s:
        found = reads.silences(s, since=now)
    listed = periods(cfg.windows, found, now)
    if output is Format.json:
        rows = [
            {
                "kind": p.kind,
                "name": p.name,
                "scope": p.scope,
                "starts_at": p.starts_at.isoformat(),
                "ends_at": p.ends_at.isoformat(),
                "active": p.active(now),
                "reason": p.reason,
            }
            for p in listed
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not listed:
        out.print("no silences or maintenance windows now or in the next 7 days", markup=False)
        return
    table = Table(header_style="bold", title="Silences and maintenance (UTC)")
    for column in ("", "Which", "Covers", "From", "Until", "Reason / schedule"):
        table.add_column(column)
    for p in listed:
        state = f"active, {format_span((p.ends_at - now).total_seconds())} left"
        table.add_row(
            state if p.active(now) else "upcoming",
            f"{p.kind} {p.name}",
            p.scope,
            f"{p.starts_at:%Y-%m-%d %H:%M}",
            f"{p.ends_at:%Y-%m-%d %H:%M}",
            p.reason,
        )
    out.print(table)


def end(
    silence_id: Annotated[int, typer.Argument(help="The silence's number (see `silence list`).")],
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
) -> None:
    """End a silence now: changes from here on are alerted again."""
    cfg = load_or_exit(config)
    engine = existing_or_exit(cfg)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        silence: Silence | None = writes.end_silence(s, silence_id, now)
    if silence is None:
        _usage(cfg, f"no silence #{silence_id} (see `silence list`)")
    assert silence is not None
    if silence.ends_at < now:
        out.print(f"silence #{silence_id} was already over ({silence.ends_at:%Y-%m-%d %H:%M} UTC)")
        return
    out.print(f"[green]✓[/] silence #{silence_id} ended")


def _usage(cfg: Config, message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(cfg.source)}: {escape(message)}")
    raise typer.Exit(2)


def _names(cfg: Config) -> str:
    return ", ".join(t.name for t in cfg.targets)


silence_app.command("add")(add)
silence_app.command("list")(list_)
silence_app.command("end")(end)
