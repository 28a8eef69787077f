"""Which database the dashboard reads, and the one read-only engine over it.

INFERWATCH_CONFIG names the config (default inferwatch.yaml); INFERWATCH_DATABASE, when set,
overrides its database URL. A missing config or database file is an `Unavailable`: a message
the viewer can act on, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config.load import ConfigError, load_config
from monitor.config.model import Config
from monitor.config.types import DEFAULT_CONFIG_FILE
from monitor.domain.maintenance import Window
from monitor.store.db import display_url, make_engine
from monitor.targets.base import TargetBase

CONFIG_ENV = "INFERWATCH_CONFIG"
DATABASE_ENV = "INFERWATCH_DATABASE"
REFRESH_S = 30
START_HINT = "start the monitor with `inferwatch run`"


class Unavailable(Exception):
    """The page cannot show data, for a reason the viewer can act on (not a bug)."""

    def __init__(self, message: str, level: str = "info"):
        super().__init__(message)
        self.message = message
        self.level = level

    def show(self) -> None:
        if self.level == "error":
            st.error(self.message, icon=":material/error:")
        else:
            st.info(self.message, icon=":material/info:")


@dataclass(frozen=True)
class TargetInfo:
    """What the overview's filters and pending states need of a configured target."""

    name: str
    kind: str
    tags: tuple[str, ...] = ()
    # The state machine's thresholds (Config.rules_of): probes that confirm a change.
    failure_threshold: int = 3
    success_threshold: int = 2
    contract_threshold: int = 2
    interval_s: float | None = None  # time between probes (Config.interval_of)
    spends_tokens: bool = False  # a model kind: every probe is billed in tokens
    status_page: str | None = None  # the statuspage target naming the provider's word


@dataclass(frozen=True)
class Settings:
    database: str | None
    targets: tuple[str, ...] | None  # config order; None: every target in the database
    dashboard_url: str | None
    config_file: str
    config_problem: str | None  # why the config was not used, when it was not
    catalog: tuple[TargetInfo, ...] = ()  # the configured targets, in config order
    windows: tuple[Window, ...] = ()  # the configured maintenance windows


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def _settings(config_file: str, database_env: str | None) -> Settings:
    try:
        config = load_config(config_file)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else exc
        return Settings(database_env, None, None, config_file, str(first))
    return Settings(
        database_env or config.database,
        tuple(t.name for t in config.targets),
        config.alerts.dashboard_url,
        config_file,
        None,
        tuple(_info(config, t) for t in config.targets),
        config.windows,
    )


def _info(config: Config, target: TargetBase) -> TargetInfo:
    rules = config.rules_of(target)
    return TargetInfo(
        target.name,
        target.kind,
        tuple(target.tags),
        rules.failure_threshold,
        rules.success_threshold,
        rules.contract_threshold,
        config.interval_of(target),
        target.spends_tokens,
        target.status_page,
    )


def settings() -> Settings:
    """INFERWATCH_CONFIG names the config; INFERWATCH_DATABASE, when set, overrides its URL."""
    return _settings(
        os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE, os.environ.get(DATABASE_ENV) or None
    )


def shown_url(url: str) -> str:
    """A URL fit for the page: a SQLite file as its path, anything else as display_url shows
    it (password masked, an unparsable URL never echoed)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return display_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    return display_url(url)


def database_url() -> str:
    """The URL to read, or Unavailable saying what to do (no config, no database file)."""
    s = settings()
    if s.database is None:
        raise Unavailable(
            f"Cannot read the config {s.config_file}: {s.config_problem}. Point "
            f"{CONFIG_ENV} at your inferwatch.yaml, or {DATABASE_ENV} at the database URL.",
            level="error",
        )
    try:
        parsed = make_url(s.database)
    except ArgumentError:
        raise Unavailable(f"Not a database URL: {s.database}", level="error") from None
    path = parsed.database
    local_file = parsed.get_backend_name() == "sqlite" and path and path != ":memory:"
    if path and local_file and not Path(path).is_file():
        raise Unavailable(f"No database at {path}: {START_HINT}.")
    return s.database


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One read-only engine per database for the whole server: the dashboard never writes."""
    return make_engine(url, readonly=True)
