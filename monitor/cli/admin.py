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


def test_alert(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    channel: Annotated[
        str | None,
        typer.Option(
            "--channel",
            help="Test only this channel (email, webhook, slack or apprise); default: every "
            "configured one.",
        ),
    ] = None,
) -> None:
    """Send a test alert through each configured channel (or the one named), and record each
    attempt in the delivery log.

    Exit 0 when every channel accepted it, 1 when one did not (the error says why), 2 when
    there is nothing to test.
    """
    from monitor.alerts.outbox import Sender  # lazy: see the module docstring
    from monitor.alerts.test import queue_test_alert

    cfg = load_or_exit(config)
    configured = cfg.alerts.channels
    if channel is not None and channel not in configured:
        have = ", ".join(configured) or "none"
        err.print(
            f"[bold red]error:[/] {escape(cfg.source)}: no alerts.{escape(channel)} section "
            f"to test (configured: {escape(have)})"
        )
        raise typer.Exit(2)
    if not configured:
        err.print(
            f"[bold red]error:[/] {escape(cfg.source)}: no alert channel to test; add "
            "alerts.email, alerts.webhook, alerts.slack or alerts.apprise"
        )
        raise typer.Exit(2)
    setup_logging(cfg)
    engine = open_or_exit(cfg)
    sender = Sender(engine, cfg, os.environ)
    failed = False
    for name in (channel,) if channel else configured:
        alert_id = queue_test_alert(engine, cfg, name)
        if sender.deliver(alert_id):
            where = cfg.alerts.email.recipients if name == "email" and cfg.alerts.email else []
            to = f" to {escape(', '.join(where))}" if where else ""
            out.print(f"[green]✓[/] {name}: test alert sent{to}")
            continue
        with Session(engine) as s:
            error = reads.alert_error(s, alert_id)
        err.print(f"[bold red]error:[/] {name}: the test alert was not sent: {escape(error)}")
        failed = True
    if failed:
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
        f"{report.rollups} rollups from before {rolled:%Y-%m-%d} UTC"
        + (
            f", and {report.region_results} results handed to a holder that never took them"
            if report.region_results
            else ""
        ),
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
