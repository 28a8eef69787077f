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
