"""The `inferwatch` command line: thin wrappers over config, pipeline, store and report."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.config import (
    DEFAULT_CONFIG_FILE,
    Config,
    ConfigError,
    config_warnings,
    format_duration,
    load_config,
    parse_duration,
)
from monitor.pipeline import probe_targets
from monitor.probe import Prober
from monitor.redact import RedactingFilter, Redactor
from monitor.report import (
    alert_dict,
    alerts_table,
    incident_dict,
    incidents_table,
    results_json,
    results_table,
    summary,
    transition_dict,
    transitions_table,
)
from monitor.store import DatabaseError, open_database, save_results, sync_targets
from monitor.store.models import AlertRecord
from monitor.store.repo import list_alerts, list_incidents, list_transitions
from monitor.targets import TargetBase

app = typer.Typer(
    help="inferwatch: watch AI model endpoints and say what changed, why, and what to do.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    epilog="Every command reads --config FILE (default inferwatch.yaml, or $INFERWATCH_CONFIG). "
    "Exit codes: 0 done, whether targets are up or down; 1 runtime failure (e.g. the database "
    "cannot be opened); 2 bad config or usage.",
)
db_app = typer.Typer(help="Create or upgrade the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="INFERWATCH_CONFIG",
        help="The YAML config file.",
        show_default=True,
    ),
]


class Format(StrEnum):
    table = "table"
    json = "json"


def _version(value: bool) -> None:
    if value:
        out.print(f"inferwatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """inferwatch probes AI model endpoints on a schedule and explains every change of state."""


# ------------------------------------------------------------------ helpers


def load_or_exit(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[bold red]error:[/] {escape(str(problem))}")
        n = len(exc.problems)
        err.print(f"{path}: {n} problem{'s' if n != 1 else ''}; nothing was run.", markup=False)
        raise typer.Exit(2) from None


def setup_logging(config: Config | None, level: int = logging.WARNING) -> None:
    """Log lines on stderr, with every configured secret redacted. Safe to call again."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "inferwatch", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.inferwatch = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(config.secrets if config else ())))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries log every request / job run / migration step at INFO: one line per probe
    # belongs at DEBUG (--verbose), so they speak only about problems otherwise.
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if level <= logging.DEBUG else logging.WARNING
        )


def select_targets(config: Config, names: list[str] | None) -> list[TargetBase]:
    if not names:
        return list(config.targets)
    known = {t.name: t for t in config.targets}
    unknown = [n for n in names if n not in known]
    if unknown:
        listing = f"{', '.join(repr(n) for n in unknown)}; configured: {', '.join(known)}"
        err.print(f"[bold red]error:[/] {escape(config.source)}: no target named {escape(listing)}")
        raise typer.Exit(2)
    return [known[n] for n in names]


def open_or_exit(config: Config):  # type: ignore[no-untyped-def]
    try:
        return open_database(config.database)
    except DatabaseError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None


# ------------------------------------------------------------------ commands


@app.command()
def check(config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Validate the config file: exit 0 if usable, else print every problem and exit 2.

    Also warns about things that work but are probably unwanted, such as a token_env
    variable that is not set in this environment.
    """
    cfg = load_or_exit(config)
    for warning in config_warnings(cfg):
        err.print(f"[bold yellow]warning:[/] {escape(str(warning))}")
    kinds: dict[str, int] = {}
    for t in cfg.targets:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    listing = ", ".join(f"{n} {k}" for k, n in kinds.items())
    out.print(f"[green]✓[/] {escape(str(config))} is valid: {len(cfg.targets)} targets ({listing})")
    for t in cfg.targets:
        every = format_duration(cfg.interval_of(t))
        line = f"  {t.name} ({t.kind}, every {every})\n    {t.endpoint}"
        out.print(line, soft_wrap=True, markup=False)
    out.print(f"  database: {cfg.database}", soft_wrap=True, markup=False)


@app.command()
def probe(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Probe only this target (repeatable)."),
    ] = None,
    output: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
) -> None:
    """Probe targets once, concurrently; store the results and print them.

    Exits 0 whether the targets are up or down: the outcome is in the output.
    """
    cfg = load_or_exit(config)
    targets = select_targets(cfg, target)
    setup_logging(cfg)
    engine = open_or_exit(cfg)

    async def run() -> list:  # type: ignore[type-arg]
        async with Prober(cfg.concurrency) as prober:
            return await probe_targets(cfg, targets, prober, os.environ)

    results = asyncio.run(run())
    with Session(engine) as session, session.begin():
        save_results(session, results, sync_targets(session, targets))
    if output is Format.json:
        print(results_json(results))
    else:
        out.print(results_table(results))
        out.print(summary(results), style="bold", markup=False)


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
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


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


def _review(config: Path, since: str):  # type: ignore[no-untyped-def]
    """The --since time and the database engine, for the review commands."""
    cfg = load_or_exit(config)
    when = parse_since(since)
    return when, open_or_exit(cfg)


def _emit(rows: list[dict], table, output: Format) -> None:  # type: ignore[no-untyped-def,type-arg]
    if output is Format.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        out.print(table)


@app.command()
def run(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every probe (DEBUG), not only changes.")
    ] = False,
) -> None:
    """Run the monitor: probe every target on its interval, record, detect changes, alert.

    Logs one line per state change and per alert at INFO. SIGTERM/SIGINT stop it cleanly
    (in-flight probes finish, results and pending alerts are flushed) within about 10 s;
    SIGHUP reloads the config file without a restart.
    """
    from monitor.service import Monitor

    cfg = load_or_exit(config)
    setup_logging(cfg, logging.DEBUG if verbose else logging.INFO)
    for warning in config_warnings(cfg):
        logging.getLogger("monitor.config").warning("%s", warning)
    engine = open_or_exit(cfg)
    asyncio.run(Monitor(cfg, engine, os.environ, config_path=config).run())


@app.command()
def transitions(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "7d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """List accepted state changes (what changed, when, why, what to do), newest first."""
    when, engine = _review(config, since)
    with Session(engine) as s:
        rows = list_transitions(s, when, target)
    _emit([transition_dict(t, n) for t, n in rows], transitions_table(rows), output)


@app.command()
def incidents(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "30d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """List failure periods (open, or closed within --since), with the states they went through."""
    when, engine = _review(config, since)
    with Session(engine) as s:
        rows = list_incidents(s, when, target)
    _emit([incident_dict(i, n) for i, n in rows], incidents_table(rows, datetime.now(UTC)), output)


@app.command()
def alerts(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "7d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """Show the alert delivery log: sent, pending (with the next try) and failed, with errors."""
    when, engine = _review(config, since)
    with Session(engine) as s:
        rows = list_alerts(s, when, target)
    _emit([alert_dict(a, n) for a, n in rows], alerts_table(rows), output)


@app.command("test-alert")
def test_alert(config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Send a test email through the configured server, and record it in the delivery log.

    Exit 0 when the server accepted it, 1 when it did not (the error says why).
    """
    from monitor.alerts.outbox import Sender
    from monitor.alerts.test import queue_test_alert

    cfg = load_or_exit(config)
    if cfg.alerts.email is None:
        err.print(f"[bold red]error:[/] {escape(cfg.source)}: no alerts.email section to test")
        raise typer.Exit(2)
    setup_logging(cfg)
    engine = open_or_exit(cfg)
    alert_id = queue_test_alert(engine, cfg)
    sender = Sender(engine, cfg, os.environ)
    if sender.deliver(alert_id):
        out.print(
            f"[green]✓[/] test alert sent to {escape(', '.join(cfg.alerts.email.recipients))}"
        )
        return
    with Session(engine) as s:
        error = s.get(AlertRecord, alert_id).last_error  # type: ignore[union-attr]
    err.print(f"[bold red]error:[/] the test alert was not sent: {escape(error)}")
    raise typer.Exit(1)


@app.command()
def prune(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete raw probes older than retention.raw (30d) and rollups older than retention.rollups
    (400d), one target at a time. `inferwatch run` also does this once a day.
    """
    from monitor.prune import cutoffs
    from monitor.prune import prune as prune_database

    cfg = load_or_exit(config)
    engine = open_or_exit(cfg)
    raw, rolled = cutoffs(cfg.retention.raw, cfg.retention.rollups)
    report = prune_database(engine, raw, rolled, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    out.print(
        f"{verb} {report.probes} raw probes from before {raw:%Y-%m-%d %H:%M} UTC and "
        f"{report.rollups} rollups from before {rolled:%Y-%m-%d} UTC",
        markup=False,
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Create the database or bring its schema to the latest version (safe to repeat)."""
    cfg = load_or_exit(config)
    from monitor.store.db import current_revision

    engine = open_or_exit(cfg)
    out.print(
        f"[green]✓[/] {escape(cfg.database)} is at schema revision {current_revision(engine)}"
    )


def main() -> None:
    app()
