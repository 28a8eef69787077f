"""`check` and `probe`: validate the config, probe targets once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.cli.app import (
    ConfigOption,
    Format,
    FormatOption,
    err,
    load_or_exit,
    open_or_exit,
    out,
    select_targets,
    setup_logging,
)
from monitor.cli.report import results_json, results_table, summary
from monitor.config.load import config_warnings
from monitor.config.types import DEFAULT_CONFIG_FILE, format_duration
from monitor.domain import cost
from monitor.domain.evidence import ProbeResult
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_targets
from monitor.store import reads, save_results, sync_targets
from monitor.store.db import display_url, make_engine, sqlite_path


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
    redact = cfg.redactor()
    usage = recent_usage(cfg.database, [t.name for t in cfg.targets if t.spends_tokens])
    for t in cfg.targets:
        every = format_duration(cfg.interval_of(t))
        line = f"  {t.name} ({t.kind}, every {every})\n    {redact(t.endpoint)}"
        if t.spends_tokens:
            per_probe = cost.tokens_per_probe(usage.get(t.name, []))
            line += f"\n    cost: {cost.cost_line(per_probe, cfg.interval_of(t))}"
        out.print(line, soft_wrap=True, markup=False)
    out.print(f"  database: {display_url(cfg.database)}", soft_wrap=True, markup=False)


def recent_usage(database: str, names: list[str]) -> dict[str, list[int]]:
    """The usage the stored probes of these targets reported, read only if the database is
    already there (check never creates one): {} when it is not, or cannot be read."""
    file = sqlite_path(database)
    if not names or (file is not None and not file.is_file()):
        return {}
    engine = make_engine(database, readonly=True)
    try:
        with Session(engine) as session:
            return {name: reads.recent_usage(session, name) for name in names}
    except SQLAlchemyError:  # an older schema, a locked or unreachable database
        return {}
    finally:
        engine.dispose()


def probe(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Probe only this target (repeatable)."),
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """Probe targets once, concurrently; store the results and print them.

    Exits 0 whether the targets are up or down: the outcome is in the output.
    """
    cfg = load_or_exit(config)
    targets = select_targets(cfg, target)
    setup_logging(cfg)
    engine = open_or_exit(cfg)

    async def run() -> list[ProbeResult]:
        async with Prober(cfg.concurrency) as prober:
            return await probe_targets(cfg, targets, prober, os.environ)

    results = asyncio.run(run())
    with Session(engine) as session, session.begin():
        save_results(session, results, sync_targets(session, targets, cfg.redactor()))
    if output is Format.json:
        print(results_json(results))
    else:
        out.print(results_table(results))
        out.print(summary(results), style="bold", markup=False)
