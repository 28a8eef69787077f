"""Shared fixtures: a real fake provider on 127.0.0.1, a SQLite URL, a free port, an SMTP inbox.

Plain helper functions live in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.demo.simulator import FakeProvider
from tests.pg import BINS, Cluster

_OWN_POSTGRES: list[Cluster] = []


def pytest_configure(config: pytest.Config) -> None:
    """Without INFERWATCH_TEST_POSTGRES_URL, start a throwaway PostgreSQL for the run (before
    collection: test modules read the variable when imported), so the PostgreSQL tests run
    wherever Debian's postgresql is installed instead of being skipped."""
    if os.environ.get("INFERWATCH_TEST_POSTGRES_URL") or not BINS:
        return
    # Not under pytest's tmp_path: user postgres cannot enter root's 0700 pytest folder.
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="inferwatch-pg-run-")), "inferwatch_test")
    _OWN_POSTGRES.append(cluster)
    os.environ["INFERWATCH_TEST_POSTGRES_URL"] = cluster.url


def pytest_unconfigure(config: pytest.Config) -> None:
    for cluster in _OWN_POSTGRES:
        cluster.kill()
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_provider() -> Iterator[FakeProvider]:
    """One fake provider for the whole run; `provider` hands it to each test wiped clean."""
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def provider(shared_provider: FakeProvider) -> FakeProvider:
    shared_provider.reset()
    return shared_provider


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inferwatch.db'}"


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[Any]:
    from tests.smtp import Inbox

    box = Inbox().up()
    yield box
    box.down()
