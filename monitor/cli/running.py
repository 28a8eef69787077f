"""`run`, `up`, `dashboard` and `demo`: the long-running commands.

The monitor (monitor.agent.service: APScheduler, the writer, the outbox with its email
templates) and the demo (its fake provider and SMTP catcher) are imported inside the commands
that start them: together they add about 60 ms to every start of `inferwatch`, which the
short commands (`check`, `transitions`...) should not pay.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from monitor.agent import eventloop
from monitor.cli.app import (
    ConfigOption,
    command_name,
    err,
    existing_or_exit,
    load_or_exit,
    open_or_exit,
    out,
    setup_logging,
)
from monitor.cli.dashboard_server import (
    Dashboard,
    DashboardError,
    run_beside,
    stopped_by_signal,
    url_for,
    without_secrets,
)
from monitor.config.load import config_warnings
from monitor.config.model import Config
from monitor.config.types import DEFAULT_CONFIG_FILE
from monitor.store.db import display_url

if TYPE_CHECKING:
    from monitor.agent.registry import Identity

PortOption = Annotated[
    int,
    typer.Option("--port", "-p", min=1, max=65535, help="Port for the dashboard."),
]
AgentOption = Annotated[
    str | None,
    typer.Option(
        "--agent",
        envvar="INFERWATCH_AGENT",
        help="This agent's name, unique in the deployment [default: the host name].",
        show_default=False,
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        envvar="INFERWATCH_REGION",
        help="Where this agent probes from [default: default].",
        show_default=False,
    ),
]
HostOption = Annotated[
    str,
    typer.Option(
        "--host",
        help="Address the dashboard listens on (0.0.0.0 for every interface; it has no login).",
    ),
]


def run(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every probe (DEBUG), not only changes.")
    ] = False,
    agent: AgentOption = None,
    region: RegionOption = None,
) -> None:
    """Run the monitor: probe every target on its interval, record, detect changes, alert.

    Logs one line per state change and per alert at INFO. SIGTERM/SIGINT stop it cleanly
    (in-flight probes finish, results and pending alerts are flushed) within about 10 s;
    SIGHUP reloads the config file without a restart. Several agents (--agent, --region) can
    share one PostgreSQL; a second start with a live agent's name exits 2.
    """
    from monitor.agent.service import Monitor  # lazy: see the module docstring

    cfg = load_or_exit(config)
    me = _identity(agent, region)
    setup_logging(cfg, logging.DEBUG if verbose else logging.INFO)
    for warning in config_warnings(cfg):
        logging.getLogger("monitor.config").warning("%s", warning)
    engine = open_or_exit(cfg)
    eventloop.run(Monitor(cfg, engine, os.environ, config_path=config, identity=me).run())


def _identity(agent: str | None, region: str | None) -> Identity:
    """This agent's name and region, or exit 2 saying what is wrong with them."""
    from monitor.agent.registry import Identity

    try:
        return Identity.of(agent, region, os.environ)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _start_dashboard(cfg: Config, config: Path, port: int, host: str) -> Dashboard:
    """The dashboard child over the config's own database, without the config's secrets."""
    board = Dashboard(config, cfg.database, port, host, env=without_secrets(os.environ, cfg))
    try:
        return board.start()
    except DashboardError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None


def up(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    port: PortOption = 8501,
    host: HostOption = "127.0.0.1",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every probe (DEBUG), not only changes.")
    ] = False,
    agent: AgentOption = None,
    region: RegionOption = None,
) -> None:
    """Run the monitor and the dashboard together, and print the dashboard's URL.

    The monitor works as in `inferwatch run`; the dashboard as in `inferwatch dashboard`.
    SIGTERM/SIGINT stop both cleanly (exit 0); if the dashboard dies, the monitor is stopped
    too (exit 1).
    """
    from monitor.agent.service import Monitor  # lazy: see the module docstring

    cfg = load_or_exit(config)
    me = _identity(agent, region)
    setup_logging(cfg, logging.DEBUG if verbose else logging.INFO)
    for warning in config_warnings(cfg):
        logging.getLogger("monitor.config").warning("%s", warning)
    engine = open_or_exit(cfg)  # creates the schema, so the dashboard opens a ready database
    board = _start_dashboard(cfg, config, port, host)
    monitor = Monitor(cfg, engine, os.environ, config_path=config, identity=me)

    def ready() -> None:
        out.print(
            f"[bold green]dashboard:[/] {board.url}  ·  monitoring {len(cfg.targets)} targets  "
            "·  Ctrl-C stops both",
            soft_wrap=True,
        )

    try:
        code = eventloop.run(run_beside(monitor, board, ready))
    except KeyboardInterrupt:  # before the monitor took over the signals
        board.stop()
        code = 0
    raise typer.Exit(code)


def dashboard(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    port: PortOption = 8501,
    host: HostOption = "127.0.0.1",
) -> None:
    """Serve the dashboard (Streamlit, headless) over the config's database, read-only.

    Prints the URL and runs until Ctrl-C or SIGTERM. Run it beside `inferwatch run`, or use
    `inferwatch up` for both in one command.
    """
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
    from monitor.agent.service import Monitor  # lazy: see the module docstring
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
            code = eventloop.run(run_beside(monitor, board, ready, also=show.narrate))
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
