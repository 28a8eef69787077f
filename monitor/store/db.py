"""Engines and migrations. SQLite gets WAL, synchronous=NORMAL, a busy timeout and foreign keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

BUSY_TIMEOUT_MS = 5000
# PostgreSQL advisory lock held while migrating: agents started together on an empty database
# take turns, and the later ones find the schema at head instead of racing to create it.
MIGRATION_LOCK = 0x1F_E1_00_01


class DatabaseError(Exception):
    """The database cannot be opened or migrated; the message says which and why."""


def display_url(url: str) -> str:
    """A database URL fit to print or log: the password, if any, is masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unparsable database URL)"


def unreachable(exc: BaseException) -> bool:
    """Whether an error says the database is away (down, restarting, locked) rather than that
    it refused what was asked: the work is worth holding and trying again."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def make_engine(url: str, *, readonly: bool = False, create_folder: bool = False) -> Engine:
    """An engine for `url`; SQLite files get the pragmas, read-only ones open with mode=ro.

    A SQLite file in a folder that does not exist is refused unless `create_folder`: a typo
    in the path would otherwise start a fresh, empty history without a word.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = parsed.database or ""
    file = sqlite_path(url)
    if file is not None and not readonly and not file.parent.is_dir():
        if not create_folder:
            raise DatabaseError(
                f"the folder {file.parent} of database {file} does not exist; check the path "
                "in `database:` (a typo starts an empty history), or create it with "
                "`inferwatch db upgrade`"
            )
        file.parent.mkdir(parents=True, exist_ok=True)
    if readonly and path and path != ":memory:":
        engine = create_engine(
            f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true",
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
        )
    else:
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not readonly:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel as monitor/migrations, or the repo's alembic/."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "migrations", here.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError(f"the migration scripts are missing (looked in {here / 'migrations'})")


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent); every command that writes calls this."""
    cfg = alembic_config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":  # (SQLite: its write lock serialises)
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    except Exception as exc:
        raise DatabaseError(f"cannot migrate {engine.url.render_as_string()}: {exc}") from exc


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def open_database(url: str, *, create_folder: bool = False) -> Engine:
    """An engine with the schema at head: what every writing command starts with."""
    try:
        engine = make_engine(url, create_folder=create_folder)
    except DatabaseError:
        raise
    except Exception as exc:
        raise DatabaseError(f"cannot open database {display_url(url)}: {exc}") from exc
    upgrade(engine)
    return engine
