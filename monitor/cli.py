"""The `inferwatch` command line: thin wrappers over config, pipeline, store and report."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
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
)
from monitor.pipeline import probe_targets
from monitor.probe import Prober
from monitor.redact import RedactingFilter, Redactor
from monitor.report import results_json, results_table, summary
from monitor.store import DatabaseError, open_database, save_results, sync_targets
from monitor.targets import TargetBase

app = typer.Typer(
    help="inferwatch: watch AI model endpoints and say what changed, why, and what to do.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
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
    """inferwatch probes AI model endpoints on a schedule and explains every change of state.

    Exit codes: 0 done (whether targets are up or down), 1 runtime failure (e.g. the
    database cannot be opened), 2 bad config or usage.
    """


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
