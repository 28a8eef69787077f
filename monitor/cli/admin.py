"""`test-alert`, `prune` and `db upgrade`: looking after the alert path and the database.

The alert modules (monitor.alerts.outbox and monitor.alerts.test load the email templates'
Jinja2 environment, about 20 ms) are imported inside `test-alert`, the one command that sends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy.orm import Session

from monitor.cli.app import ConfigOption, err, load_or_exit, open_or_exit, out, setup_logging
from monitor.config.types import DEFAULT_CONFIG_FILE
from monitor.store import reads
from monitor.store.db import current_revision, display_url
from monitor.store.prune import cutoffs
from monitor.store.prune import prune as prune_database


def test_alert(config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Send a test email through the configured server, and record it in the delivery log.

    Exit 0 when the server accepted it, 1 when it did not (the error says why).
    """
    from monitor.alerts.outbox import Sender  # lazy: see the module docstring
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
        error = reads.alert_error(s, alert_id)
    err.print(f"[bold red]error:[/] the test alert was not sent: {escape(error)}")
    raise typer.Exit(1)


def prune(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete raw probes older than retention.raw (default 30d) and rollups older than
    retention.rollups (default 400d), one target at a time. `inferwatch run` also does this
    once a day.
    """
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


def db_upgrade(config: ConfigOption = Path(DEFAULT_CONFIG_FILE)) -> None:
    """Create the database or bring its schema to the latest version (safe to repeat)."""
    cfg = load_or_exit(config)
    engine = open_or_exit(cfg, create_folder=True)
    out.print(
        f"[green]✓[/] {escape(display_url(cfg.database))} is at schema revision "
        f"{current_revision(engine)}"
    )
