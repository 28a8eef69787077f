"""A throwaway Debian PostgreSQL for the tests (initdb + pg_ctl, as `.ci/run` does).

tests/conftest.py starts one for the whole run when INFERWATCH_TEST_POSTGRES_URL is not set, so
`make test` exercises PostgreSQL wherever Debian's postgresql is installed; the fault tests start
their own, which they stop and restart.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))


class Cluster:
    """A throwaway PostgreSQL on a Unix socket in `root`; `stop()`/`start()` restart it."""

    def __init__(self, root: Path, database: str = "faults"):
        self.root = root
        self.bin = BINS[-1]
        self.data = root / "data"
        with socket.socket() as s:  # a port nobody uses; only its socket file's name matters
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@/{database}?host={root}&port={self.port}"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        self._as_postgres(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        self.start()
        self._as_postgres(
            f"{self.bin}/psql -h {root} -p {self.port} -U postgres -qc 'create database {database}'"
        )

    def _as_postgres(self, command: str) -> None:
        """Run as user postgres when we are root (initdb refuses root), else as ourselves."""
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)

    def start(self) -> None:
        self._as_postgres(
            f"{self.bin}/pg_ctl -D {self.data} -l {self.root}/log -w start "
            f"-o '-p {self.port} -k {self.root} -c listen_addresses='"
        )

    def kill(self) -> None:
        """At the end of the tests: no checkpoint, nothing is kept."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m immediate -w stop")

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, as in a real restart or failover."""
        self._as_postgres(f"{self.bin}/pg_ctl -D {self.data} -m fast -w stop")


MISSING = (
    "Debian's postgresql is missing: install it (apt-get install -y postgresql), or set "
    "INFERWATCH_TEST_POSTGRES_URL to a PostgreSQL the tests may wipe"
)
