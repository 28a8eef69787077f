"""A plain `pip install .` must carry the migrations, so installed users can create databases."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_migrations_and_the_console_script(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("inferwatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()

    assert "monitor/migrations/env.py" in names
    assert "monitor/migrations/script.py.mako" in names
    migrations = {
        n for n in names if n.startswith("monitor/migrations/versions/") and n.endswith(".py")
    }
    assert migrations == {
        f"monitor/migrations/versions/{p.name}" for p in (ROOT / "alembic/versions").glob("*.py")
    }
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "inferwatch = monitor.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
