"""The typer app and what every command shares: consoles, options, config/database guards,
logging setup. The commands themselves live in probing.py, running.py, review.py and admin.py;
monitor/cli/__init__.py registers them on `app`, in the order `--help` lists them.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from monitor import __version__
from monitor.config.load import ConfigError, load_config
from monitor.config.model import Config
from monitor.domain.redact import RedactingFilter, Redactor
from monitor.store import DatabaseError, open_database
from monitor.store.db import sqlite_path
from monitor.targets import TargetBase

app = typer.Typer(
    help="inferwatch: watch AI model endpoints and say what changed, why, and what to do.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    epilog="Every command but demo and diagnose reads --config FILE (default inferwatch.yaml, or "
    "$INFERWATCH_CONFIG). "
    "Exit codes: 0 done, whether targets are up or down (diagnose: 1 when the model does not "
    "work); 1 runtime failure (e.g. the database cannot be opened); 2 bad config or usage.",
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


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]


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


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever sys.stderr is when a line is logged, not when the handler was made:
    a stream swapped in for a while (a test runner's) may be closed by the time a thread logs.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(config: Config | None, level: int = logging.WARNING) -> None:
    """Log lines on stderr, with every configured secret redacted. Safe to call again."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
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
