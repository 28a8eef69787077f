"""The `inferwatch` command line: thin wrappers over config, pipeline, store and report."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from monitor import __version__
from monitor.cli.report import (
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
from monitor.config.load import ConfigError, config_warnings, load_config
from monitor.config.model import Config
from monitor.config.types import DEFAULT_CONFIG_FILE, format_duration, parse_duration
from monitor.domain.redact import RedactingFilter, Redactor
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_targets
from monitor.store import DatabaseError, open_database, reads, save_results, sync_targets
from monitor.store.db import display_url, sqlite_path
from monitor.targets import TargetBase

app = typer.Typer(
    help="inferwatch: watch AI model endpoints and say what changed, why, and what to do.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
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


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged, not when the handler was made:
    a stream swapped in for a while (a test runner's) may be closed by the time a thread logs.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


def setup_logging(config: Config | None, level: int = logging.WARNING) -> None:
    """Log lines on stderr, with every configured secret redacted. Safe to call again."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "inferwatch", False)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
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


def open_or_exit(config: Config, *, create_folder: bool = False) -> Engine:
    try:
        return open_database(config.database, create_folder=create_folder)
    except DatabaseError as exc:
        err.print(f"[bold red]error:[/] {escape(config.source)}: {escape(str(exc))}")
        raise typer.Exit(1) from None


def existing_or_exit(config: Config) -> Engine:
    """The database of a command that only reads: a missing SQLite file is said plainly
    (not created empty, which would show a blank history with no hint why)."""
    file = sqlite_path(config.database)
    if file is not None and not file.exists():
        err.print(
            f"[bold red]error:[/] {escape(config.source)}: no database at {escape(str(file))} "
            f"yet: start the monitor first (`{command_name()} run` or `{command_name()} up`), "
            f"or check the path in `database:`",
            markup=True,
        )
        raise typer.Exit(1)
    return open_or_exit(config)


def command_name() -> str:
    """How the user can call inferwatch again: the bare name when it is on PATH, else a path
    that works (after `make up`, .venv/bin is not on PATH until the venv is activated)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "__main__.py":
        return f"{sys.executable} -m monitor"
    on_path = shutil.which("inferwatch")
    if on_path and argv0.name == "inferwatch" and Path(on_path).resolve() == argv0.resolve():
        return "inferwatch"
    if argv0.name == "inferwatch" and argv0.exists():
        return os.path.relpath(argv0) if not argv0.is_absolute() else str(argv0)
    return "inferwatch"


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
    redact = cfg.redactor()
    for t in cfg.targets:
        every = format_duration(cfg.interval_of(t))
        line = f"  {t.name} ({t.kind}, every {every})\n    {redact(t.endpoint)}"
        out.print(line, soft_wrap=True, markup=False)
    out.print(f"  database: {display_url(cfg.database)}", soft_wrap=True, markup=False)


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
        save_results(session, results, sync_targets(session, targets, cfg.redactor()))
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


def _emit(rows: list[dict], table, output: Format, nothing: str) -> None:  # type: ignore[no-untyped-def,type-arg]
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
    from monitor.agent.service import Monitor

    cfg = load_or_exit(config)
    setup_logging(cfg, logging.DEBUG if verbose else logging.INFO)
    for warning in config_warnings(cfg):
        logging.getLogger("monitor.config").warning("%s", warning)
    engine = open_or_exit(cfg)
    asyncio.run(Monitor(cfg, engine, os.environ, config_path=config).run())


PortOption = Annotated[
    int,
    typer.Option("--port", "-p", min=1, max=65535, help="Port for the dashboard."),
]
HostOption = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address the dashboard listens on (0.0.0.0 for every interface; it has no login).",
    ),
]


def _start_dashboard(cfg: Config, config: Path, port: int, host: str):  # type: ignore[no-untyped-def]
    """The dashboard child over the config's own database, without the config's secrets."""
    from monitor.cli.dashboard_server import Dashboard, DashboardError, without_secrets

    board = Dashboard(config, cfg.database, port, host, env=without_secrets(os.environ, cfg))
    try:
        return board.start()
    except DashboardError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None


@app.command()
def up(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    port: PortOption = 8501,
    host: HostOption = "127.0.0.1",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every probe (DEBUG), not only changes.")
    ] = False,
) -> None:
    """Run the monitor and the dashboard together, and print the dashboard's URL.

    The monitor works as in `inferwatch run`; the dashboard as in `inferwatch dashboard`.
    SIGTERM/SIGINT stop both cleanly (exit 0); if the dashboard dies, the monitor is stopped
    too (exit 1).
    """
    from monitor.agent.service import Monitor
    from monitor.cli.dashboard_server import run_beside

    cfg = load_or_exit(config)
    setup_logging(cfg, logging.DEBUG if verbose else logging.INFO)
    for warning in config_warnings(cfg):
        logging.getLogger("monitor.config").warning("%s", warning)
    engine = open_or_exit(cfg)  # creates the schema, so the dashboard opens a ready database
    board = _start_dashboard(cfg, config, port, host)
    monitor = Monitor(cfg, engine, os.environ, config_path=config)

    def ready() -> None:
        out.print(
            f"[bold green]dashboard:[/] {board.url}  ·  monitoring {len(cfg.targets)} targets  "
            "·  Ctrl-C stops both",
            soft_wrap=True,
        )

    try:
        code = asyncio.run(run_beside(monitor, board, ready))
    except KeyboardInterrupt:  # before the monitor took over the signals
        board.stop()
        code = 0
    raise typer.Exit(code)


@app.command()
def dashboard(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    port: PortOption = 8501,
    host: HostOption = "127.0.0.1",
) -> None:
    """Serve the dashboard (Streamlit, headless) over the config's database, read-only.

    Prints the URL and runs until Ctrl-C or SIGTERM. Run it beside `inferwatch run`, or use
    `inferwatch up` for both in one command.
    """
    import signal
    import threading

    from monitor.cli.dashboard_server import stopped_by_signal

    cfg = load_or_exit(config)
    existing_or_exit(cfg).dispose()  # upgrades an older schema; never creates a database
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    board = _start_dashboard(cfg, config, port, host)
    if board.wait_until_serving(stop=stopping.is_set):
        database = display_url(cfg.database)
        out.print(f"[bold green]dashboard:[/] {board.url}  ·  {escape(database)}", soft_wrap=True)
    elif not stopping.is_set() and board.exited() is None:
        err.print(f"[bold yellow]warning:[/] nothing answers at {board.url} yet; still waiting")
    while not stopping.is_set() and board.exited() is None:
        stopping.wait(0.2)
    code = board.stop()
    if stopping.is_set() or stopped_by_signal(code):
        return
    err.print(f"[bold red]error:[/] the dashboard stopped (streamlit exit code {code})")
    raise typer.Exit(1)


@app.command()
def demo(
    port: PortOption = 8501,
    minutes: Annotated[
        float,
        typer.Option(
            "--minutes",
            "-m",
            min=0.1,
            max=60,
            help="How long the story takes; the probe interval scales with it (2 s at 2 min).",
        ),
    ] = 2.0,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Folder for the demo's config, database and emails (default: a new temp folder).",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    host: HostOption = "127.0.0.1",
) -> None:
    """See every feature in two minutes, offline: a simulated provider replays the story.

    Healthy embeddings; the legacy API answering 404, then 410 with its replacement URL; a
    token losing its Inference Providers permission (whoami, then 403); a model loading (503);
    a rate limit (429); recoveries. The real monitor probes it (default thresholds), a local
    SMTP server catches the alert emails (printed, and saved as .eml files) and the dashboard
    shows it all. No network and no token needed; Ctrl-C stops it.
    """
    import tempfile

    from monitor.agent.service import Monitor
    from monitor.cli.dashboard_server import run_beside, url_for
    from monitor.demo.story import Demo, clock_text

    folder = (directory or Path(tempfile.mkdtemp(prefix="inferwatch-demo-"))).resolve()

    def say(line: str) -> None:
        out.print(line, markup=False, soft_wrap=True)

    show = Demo(folder, minutes, url_for(host, port), say)
    cfg = show.start()
    try:
        setup_logging(cfg, logging.WARNING)
        engine = open_or_exit(cfg)
        board = _start_dashboard(cfg, show.config_path, port, host)
        say(
            f"inferwatch demo: {len(cfg.targets)} targets at a local fake provider "
            f"({show.provider.url}); alert emails caught on 127.0.0.1:{show.mail.port}"
        )
        say(f"  files: {folder}  (config {show.config_path.name}, database inferwatch.db, mail/)")
        say(f"  the story takes {clock_text(minutes * 60)} (--minutes); times below are story time")

        def ready() -> None:
            out.print(
                f"[bold green]dashboard:[/] {board.url}  ·  Ctrl-C stops the demo", soft_wrap=True
            )

        monitor = Monitor(cfg, engine, show.env, config_path=show.config_path)
        try:
            code = asyncio.run(run_beside(monitor, board, ready, also=show.narrate))
        except KeyboardInterrupt:
            board.stop()
            code = 0
    finally:
        show.stop()
    say(
        f"demo stopped: {show.mail.count} emails in {folder / 'mail'}; review the history with "
        f"`{command_name()} transitions -c {show.config_path}` (or incidents, alerts)"
    )
    raise typer.Exit(code)


@app.command()
def transitions(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    since: SinceOption = "7d",
    target: TargetFilter = None,
    output: FormatOption = Format.table,
) -> None:
    """List accepted state changes (what changed, when, why, what to do), newest first."""
    when, engine = _review(config, since, target)
    with Session(engine) as s:
        rows = reads.transitions(s, when, target=target)
    nothing = _nothing("state changes", when, target)
    _emit([transition_dict(t, n) for t, n in rows], transitions_table(rows), output, nothing)


@app.command()
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


@app.command()
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
        error = reads.alert_error(s, alert_id)
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
    from monitor.store.prune import cutoffs
    from monitor.store.prune import prune as prune_database

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

    engine = open_or_exit(cfg, create_folder=True)
    out.print(
        f"[green]✓[/] {escape(display_url(cfg.database))} is at schema revision "
        f"{current_revision(engine)}"
    )


def main() -> None:
    app()
