"""Time every dashboard page in a real browser, from navigation until every target is present.

Builds a history ending now through the real Writer (the generator of
benchmarks/dashboard_queries.py: blips, outages, retirements, lost token scopes, flapping),
serves it with `inferwatch dashboard -c CONFIG --port P` as a child process, and loads each page
in Debian's Chromium (Playwright, /usr/bin/chromium, the flags of tests/test_browser.py). Each
load runs in a fresh browser context (no cookies, no cached assets, a new Streamlit session);
one warm-up load per page, then the median of `--loads` timed loads. Streamlit's server-side
cache (st.cache_data, 30 s) is warm after the warm-up, as it is on a wall screen.

A load is timed from `page.goto` until the page's content is present:
  Overview   the last configured target's name is visible (every row drawn; at 1,000 targets
             the list is grouped by kind, every group expanded) and the run ended;
  Kiosk      the wall view (/?kiosk=1): as Overview up to the 102 targets it lists in full;
             beyond, it lists the failing ones only: its table is drawn and the run ended;
  Target     the status band, the latency chart and the probe-log table, and the run ended;
  Incidents  the incident table and the per-outcome chart, and the run ended;
  Incident   the longest incident's page: its timeline, a table and the Markdown summary, and
             the run ended;
  Alerts     the delivery-log table, and the run ended.
"The run ended": Streamlit marks the app root data-test-script-state="notRunning".
DOM elements are document.querySelectorAll('*').length once the page is complete.

    .venv/bin/python benchmarks/dashboard_render.py                       # 100x7d and 1000x1d
    .venv/bin/python benchmarks/dashboard_render.py --scales 100x7 --loads 5
    .venv/bin/python benchmarks/dashboard_render.py --reuse               # keep the databases
    .venv/bin/python benchmarks/dashboard_render.py --pages Overview Kiosk  # some pages only

--reuse keeps databases built earlier, so their history no longer ends now. Results:
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port
from benchmarks.dashboard_queries import build_plan, config_data, generate
from monitor.store import reads
from monitor.store.db import make_engine

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [  # as tests/test_browser.py: what works on this machine (no route out)
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1920, "height": 1080}
FINISHED = (
    '[data-testid="stApp"][data-test-script-state="notRunning"]'
    '[data-test-connection-state="CONNECTED"]'
)
MAIN = '[data-testid="stMainBlockContainer"]'
TABLE = f'{MAIN} [data-testid="stDataFrame"]'
CHART = f"{MAIN} .js-plotly-plot"
KIOSK_TABLE = f"{MAIN} .iw-kiosk table"
MARKDOWN = f'{MAIN} [data-testid="stCode"]'  # the incident's "copy as Markdown" block
KIOSK_FULL = 102  # dashboard/wall.py: KIOSK_ROWS x KIOSK_COLUMNS
PAGES = ("Overview", "Kiosk", "Target", "Incidents", "Incident", "Alerts")
ERROR = '[data-testid="stException"], [data-testid="stAlertContentError"]'
TIMEOUT_MS = 180_000


@dataclass
class Scale:
    targets: int
    days: float

    @property
    def label(self) -> str:
        return f"{self.targets} targets x {self.days:g} d"


@dataclass
class Result:
    scale: str
    page: str
    samples: list[float]
    elements: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def parse_scale(text: str) -> Scale:
    targets, _, days = text.partition("x")
    return Scale(int(targets), float(days or 1))


def build(scale: Scale, reuse: bool, seed: int) -> tuple[Path, str, str]:
    """The database and config for a scale; returns (config, last target, busiest target)."""
    stem = f"render-{scale.targets}x{scale.days:g}d"
    db, config = DATA / f"{stem}.db", DATA / f"{stem}.yaml"
    plan = build_plan(scale.targets, scale.days, 1.0, seed, datetime.now(UTC))
    url = f"sqlite:///{db}"
    if reuse and db.exists() and config.exists():
        print(f"reusing {db}", flush=True)
    else:
        print(f"generating {scale.label} into {db}", flush=True)
        begin = time.perf_counter()
        counts = generate(db, plan, 5000)
        print(
            f"  {counts.probes:,} probes, {counts.alerts:,} alerts in "
            f"{time.perf_counter() - begin:.0f} s",
            flush=True,
        )
    config.write_text(yaml.safe_dump(config_data(plan, url), sort_keys=False))
    deprecated = next((t.name for t in plan.targets if t.scenario == "deprecated"), None)
    return config, plan.targets[-1].name, deprecated or plan.targets[0].name


def serve(config: Path, port: int, log: Path, source: Path | None) -> subprocess.Popen[bytes]:
    """`inferwatch dashboard` as a child process, once it answers its health check.

    `source`: a folder holding another copy of monitor/ and dashboard/ (e.g. `git archive`
    of an older commit) to serve instead of the installed one, for before/after figures.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERWATCH_")}
    if source is not None:
        env["PYTHONPATH"] = str(source.resolve())
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "dashboard", "-c", str(config), "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=source,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the dashboard exited {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                return proc
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the dashboard did not start within 60 s:\n{log.read_text()}")


def load(
    browser: Any, url: str, page_name: str, last_target: str, targets: int
) -> tuple[float, int]:
    """One load in a fresh context: seconds until the content is present, DOM elements."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        begin = time.perf_counter()
        page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
        if page_name == "Overview" or (page_name == "Kiosk" and targets <= KIOSK_FULL):
            page.get_by_text(last_target, exact=True).first.wait_for(timeout=TIMEOUT_MS)
        elif page_name == "Kiosk":
            page.wait_for_selector(KIOSK_TABLE, timeout=TIMEOUT_MS)
        else:
            wanted = {
                "Target": [CHART, TABLE],
                "Incidents": [TABLE, CHART],
                "Incident": [CHART, TABLE, MARKDOWN],
                "Alerts": [TABLE],
            }
            for selector in wanted[page_name]:
                page.wait_for_selector(selector, timeout=TIMEOUT_MS)
        page.wait_for_selector(FINISHED, timeout=TIMEOUT_MS)
        elapsed = time.perf_counter() - begin
        if page.locator(ERROR).count():
            raise SystemExit(f"{page_name} shows an error:\n{page.inner_text(MAIN)[:2000]}")
        elements = int(page.evaluate("document.querySelectorAll('*').length"))
        return elapsed, elements
    finally:
        context.close()


def longest_incident(config: Path) -> int:
    """The id of the history's longest incident (the Incident page's worst case)."""
    url = yaml.safe_load(config.read_text())["database"]
    engine = make_engine(url, readonly=True)
    try:
        with Session(engine) as session:
            rows = reads.incidents(session, now=datetime.now(UTC))
    finally:
        engine.dispose()
    if not rows:
        raise SystemExit("the generated history has no incident to time")
    return max(rows, key=lambda row: row.duration_s).id


def time_pages(
    config: Path,
    scale: Scale,
    last: str,
    target: str,
    loads: int,
    source: Path | None,
    only: Sequence[str] = PAGES,
) -> list[Result]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = config.with_suffix(".log")
    proc = serve(config, port, log, source)
    base = f"http://127.0.0.1:{port}"
    pages = {
        "Overview": "/",
        "Kiosk": "/?kiosk=1",
        "Target": f"/target?name={target}",
        "Incidents": "/incidents",
        "Incident": f"/incident?id={longest_incident(config)}",
        "Alerts": "/alerts",
    }
    pages = {k: v for k, v in pages.items() if k in only}
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for name, path in pages.items():
                load(browser, base + path, name, last, scale.targets)  # warm-up: imports, caches
                samples, elements = [], 0
                for _ in range(loads):
                    seconds, elements = load(browser, base + path, name, last, scale.targets)
                    samples.append(seconds)
                results.append(Result(scale.label, name, samples, elements))
                r = results[-1]
                shown = ", ".join(f"{s:.2f}" for s in samples)
                print(
                    f"  {name:<10} median {r.median:6.2f} s  ({shown})  {elements:,} elements",
                    flush=True,
                )
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scales",
        nargs="+",
        default=["100x7", "1000x1"],
        help="TARGETSxDAYS of history each (%(default)s)",
    )
    parser.add_argument("--loads", type=int, default=3, help="timed loads per page (%(default)s)")
    parser.add_argument("--reuse", action="store_true", help="keep databases built before")
    parser.add_argument("--seed", type=int, default=7, help="random seed (%(default)s)")
    parser.add_argument(
        "--source", type=Path, help="serve monitor/ and dashboard/ from this folder instead"
    )
    parser.add_argument(
        "--pages", nargs="+", choices=PAGES, default=list(PAGES), help="pages to time (all)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    logging.getLogger("monitor").setLevel(logging.ERROR)
    if args.source is not None:
        print(f"serving the dashboard from {args.source}", flush=True)
    print(
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}, Chromium {CHROMIUM}, viewport "
        f"{VIEWPORT['width']}x{VIEWPORT['height']}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    DATA.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for scale in map(parse_scale, args.scales):
        config, last, target = build(scale, args.reuse, args.seed)
        print(f"timing {scale.label} (last target {last}, target page {target})", flush=True)
        results += time_pages(config, scale, last, target, args.loads, args.source, args.pages)

    print(f"\n{'scale':<22} {'page':<10} {'median s':>9} {'DOM elements':>13}")
    for r in results:
        print(f"{r.scale:<22} {r.page:<10} {r.median:9.2f} {r.elements:13,}")
    print(f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "scale": r.scale,
                        "page": r.page,
                        "samples_s": r.samples,
                        "elements": r.elements,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
