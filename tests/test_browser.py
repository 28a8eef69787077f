"""Every dashboard page in a real browser (Debian's Chromium via Playwright) over a seeded database.

Catches what AppTest cannot: the page as served by `inferwatch dashboard`, rendered by the
frontend, with no exception box and the story's key facts visible. A full-page screenshot per
page lands in test-artifacts/. Chromium is required: CI installs it, so a missing one fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.demo.seed import SEED_TARGETS, seed
from monitor.store import open_database
from tests.test_launch import serving, start_cli, stop, wait_for

CHROMIUM = Path("/usr/bin/chromium")
# What works on this machine (no route out): no background networking, no sandbox as root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCROLLERS = '[data-testid="stMain"], [data-testid="stAppViewContainer"]'
FULL_HEIGHT = f"""() => Math.max(document.body.scrollHeight,
    ...[...document.querySelectorAll('{SCROLLERS}')].map(e => e.scrollHeight))"""
SORRY = "Something went wrong"  # the app's own catch-all message instead of a traceback

# page file name, path, text that must be visible
PAGES = [
    (
        "overview",
        "/",
        [
            "Overview",
            "Needs action",
            "gpt2-legacy",
            "llama-chat",
            "minilm-embeddings",
            "deprecated",
        ],
    ),
    ("target", "/target?name=gpt2-legacy", ["gpt2-legacy", "deprecated", "router.huggingface.co"]),
    ("incidents", "/incidents", ["Incidents", "deprecated", "token_scope"]),
    ("alerts", "/alerts", ["Alerts", "pending"]),
    ("incident", "/incident?id=2", ["status-page", "Copy as Markdown", "Recovering probe"]),
]


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`inferwatch dashboard` over two days of seeded history, on a free port."""
    import socket

    folder = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{folder / 'seeded.db'}"
    seed(open_database(url))
    config = folder / "inferwatch.yaml"
    config.write_text(
        yaml.safe_dump({"database": url, "defaults": {"interval": "5m"}, "targets": SEED_TARGETS})
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = folder / "dashboard.log"
    proc = start_cli(["dashboard", "-c", str(config), "--port", str(port)], log)
    try:
        wait_for(lambda: serving(port), proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        code, _ = stop(proc, log)
        problems = [line for line in log.read_text().splitlines() if "Traceback" in line]
        assert code == 0 and not problems, log.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium); "
            ".ci/run does. Playwright never downloads a browser here."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (--user-data-dir) itself.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.mark.parametrize(("name", "path", "visible"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_renders_without_an_error(
    dashboard_url: str, browser: object, name: str, path: str, visible: list[str]
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(dashboard_url + path, wait_until="domcontentloaded", timeout=30_000)
        # Streamlit marks the app root while the script runs; wait for a finished, connected run.
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="notRunning"]'
            '[data-test-connection-state="CONNECTED"]',
            timeout=30_000,
        )
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=10_000)
        page.wait_for_timeout(500)  # charts and fonts settle after the run
        # The page scrolls inside Streamlit's own container: grow the window to all of it.
        height = page.evaluate(FULL_HEIGHT)
        page.set_viewport_size({"width": 1400, "height": min(max(height, 1000), 8000)})
        page.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

        # Tables and charts may still be filling in after the run: wait for what must show.
        text = page.inner_text("body")
        for _ in range(40):
            if all(re.search(re.escape(expected), text) for expected in visible):
                break
            page.wait_for_timeout(250)
            text = page.inner_text("body")
        assert page.locator('[data-testid="stException"]').count() == 0, text
        assert "Traceback" not in text and SORRY not in text, text
        for expected in visible:
            assert re.search(re.escape(expected), text), f"{expected!r} not on {path}:\n{text}"
        assert not errors, errors
    finally:
        page.close()


# ---------------------------------------------------------------- the wall at 100 targets


@pytest.fixture(scope="module")
def fleet_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """`inferwatch dashboard` over 100 targets x 1 day (benchmarks/dashboard_queries.py's
    generator, through the real Writer: outages, retirements, lost token scopes, flapping)."""
    import socket
    from datetime import UTC, datetime

    from benchmarks.dashboard_queries import build_plan, config_data, generate

    folder = tmp_path_factory.mktemp("fleet")
    plan = build_plan(100, 1, 0.2, 7, datetime.now(UTC))  # a probe every 5 minutes
    db = folder / "fleet.db"
    generate(db, plan, 5000)
    config = folder / "inferwatch.yaml"
    config.write_text(yaml.safe_dump(config_data(plan, f"sqlite:///{db}"), sort_keys=False))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = folder / "dashboard.log"
    proc = start_cli(["dashboard", "-c", str(config), "--port", str(port)], log)
    try:
        wait_for(lambda: serving(port), proc, log)
        yield f"http://127.0.0.1:{port}", [t.name for t in plan.targets]
    finally:
        code, _ = stop(proc, log)
        problems = [line for line in log.read_text().splitlines() if "Traceback" in line]
        assert code == 0 and not problems, log.read_text()


ROWS = '[data-testid="stMainBlockContainer"] table.iw-t tbody tr'
# Every row's box, and whether any element scrolls: the wall must need no scrolling.
BOXES = f"""() => [...document.querySelectorAll('{ROWS}')].map(r => {{
    const b = r.getBoundingClientRect();
    return [r.querySelector('a').textContent, b.left, b.top, b.right, b.bottom];
}})"""


@pytest.mark.parametrize(
    ("name", "path"), [("overview", "/"), ("kiosk", "/?kiosk=1")], ids=["overview", "kiosk"]
)
def test_100_targets_on_the_overview_and_on_one_wall_screen(
    fleet_url: tuple[str, list[str]], browser: object, name: str, path: str
) -> None:
    base, names = fleet_url
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(base + path, wait_until="domcontentloaded", timeout=30_000)
        page.get_by_text(names[-1], exact=True).first.wait_for(timeout=30_000)
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="notRunning"]'
            '[data-test-connection-state="CONNECTED"]',
            timeout=30_000,
        )
        page.wait_for_timeout(300)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"dashboard-{name}-100-targets.png"
        page.screenshot(path=str(shot))  # the viewport: what the screen shows
        print(f"screenshot: {shot}")
        boxes = page.evaluate(BOXES)
        assert sorted(b[0] for b in boxes) == sorted(names)  # every target, once
        text = page.inner_text("body")
        assert SORRY not in text and "Traceback" not in text, text
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not errors, errors
        if name == "kiosk":
            assert not page.locator('[data-testid="stSidebar"]').is_visible()
            last = max(boxes, key=lambda b: (b[1], b[2]))  # the last row of the last column
            outside = [b for b in boxes if b[3] > 1920 or b[4] > 1080 or b[1] < 0 or b[2] < 0]
            assert not outside, f"rows off the 1920x1080 screen: {outside[:5]}"
            assert page.get_by_text(last[0], exact=True).first.is_visible()
            assert page.get_by_text(names[-1], exact=True).first.is_visible()
            assert not page.locator('[data-testid="stHeader"]').is_visible()
            # a name is a link to its target page, in the same tab
            page.get_by_role("link", name=last[0], exact=True).click()
            page.wait_for_url(f"**/target?name={last[0]}", timeout=20_000)
            page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
    finally:
        page.close()


CHART, TABLE = ".js-plotly-plot .main-svg", '[data-testid="stDataFrame"] canvas'
DRAWN = {"target": [CHART, TABLE], "incidents": [TABLE], "incident": [CHART, TABLE]}


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("target", "/target?name={first}"),
        ("incidents", "/incidents"),
        ("incident", "/incident?id=1"),
        ("alerts", "/alerts"),
    ],
    ids=["target", "incidents", "incident", "alerts"],
)
def test_the_other_pages_at_100_targets(
    fleet_url: tuple[str, list[str]], browser: object, name: str, path: str
) -> None:
    """A screenshot of every page at 100 targets (test-artifacts/), and no error on any."""
    base, names = fleet_url
    path = path.format(first=names[0])
    page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(base + path, wait_until="domcontentloaded", timeout=30_000)
        page.wait_for_selector('[data-testid="stMainBlockContainer"] h1', timeout=30_000)
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="notRunning"]'
            '[data-test-connection-state="CONNECTED"]',
            timeout=30_000,
        )
        main = '[data-testid="stMainBlockContainer"]'
        for drawn in DRAWN.get(name, []):  # the screenshot shows the page, not placeholders
            page.wait_for_selector(f"{main} {drawn}", state="visible", timeout=30_000)
        page.wait_for_timeout(500)  # charts settle after the run
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"dashboard-{name}-100-targets.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")
        text = page.inner_text("body")
        assert SORRY not in text and "Traceback" not in text, text
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not errors, errors
    finally:
        page.close()
