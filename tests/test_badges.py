"""Status badges: the pure SVG renderer, and real GETs of /badge/ from the metrics listener over
a real SQLite history written by the monitor's own writer."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.agent.listener import Listener
from monitor.agent.metrics import Metrics
from monitor.agent.writer import Writer
from monitor.domain.badges import badge, state_badge, text_width, uptime_badge, uptime_text
from monitor.domain.evidence import CLASS_COLOUR, Outcome, ProbeResult, Timings
from monitor.store import open_database
from tests.helpers import make_config

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> tuple[list[str], list[str], str]:
    """The badge's visible texts (each drawn twice: shadow and text), fills, and title."""
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")][1::2]
    fills = [r.get("fill", "") for r in root.iter(f"{SVG}rect")]
    title = root.find(f"{SVG}title")
    assert title is not None and root.get("aria-label") == title.text
    return texts, fills, title.text or ""


# ------------------------------------------------------------------ the renderer


def test_a_badge_is_svg_with_its_words_and_colour() -> None:
    texts, fills, title = parse(badge("llama-chat", "ok", "#1a7f37"))
    assert texts == ["llama-chat", "ok"] and title == "llama-chat: ok"
    assert fills[1:3] == ["#555", "#1a7f37"]


def test_the_width_follows_the_text() -> None:
    narrow = ET.fromstring(badge("iii", "ok", "#000")).get("width")
    wide = ET.fromstring(badge("WWW", "ok", "#000")).get("width")
    assert narrow is not None and wide is not None and int(narrow) < int(wide)
    assert text_width("WWW") == pytest.approx(3 * 10.88)
    assert text_width("日本") == 22.0  # outside the table: counted wide, never clipped


def test_odd_characters_are_escaped() -> None:
    texts, _, title = parse(badge("a<b>&\"c'", "x & y", "#000"))
    assert texts == ["a<b>&\"c'", "x & y"] and title == "a<b>&\"c': x & y"


def test_state_badges_are_coloured_by_class() -> None:
    assert parse(state_badge("t", "ok"))[1][2] == CLASS_COLOUR["ok"]
    assert parse(state_badge("t", "rate_limited"))[1][2] == CLASS_COLOUR["transient"]
    texts, fills, _ = parse(state_badge("t", "deprecated"))
    assert texts == ["t", "deprecated"] and fills[2] == CLASS_COLOUR["contract"]
    texts, fills, _ = parse(state_badge("t", None))
    assert texts == ["t", "no data"] and fills[2] == CLASS_COLOUR["no_data"]


def test_uptime_is_rounded_down_and_coloured_by_threshold() -> None:
    assert uptime_text(1.0) == "100%"
    assert uptime_text(0.99999) == "99.99%"  # never 100 % when a probe failed
    assert uptime_text(0.75) == "75%"
    assert uptime_text(0.9512) == "95.12%"
    assert uptime_text(None) == "no data"
    assert parse(uptime_badge("30d", 0.995))[1][2] == CLASS_COLOUR["ok"]
    assert parse(uptime_badge("30d", 0.97))[1][2] == CLASS_COLOUR["transient"]
    assert parse(uptime_badge("30d", 0.5))[1][2] == CLASS_COLOUR["contract"]
    assert parse(uptime_badge("7d", None))[0] == ["uptime 7d", "no data"]


# ------------------------------------------------------------------ served by the listener


def result(target: str, outcome: Outcome, at: datetime) -> ProbeResult:
    return ProbeResult(
        target=target,
        kind="http",
        url="http://127.0.0.1:9/",
        checked_at=at,
        outcome=outcome,
        http_status=200 if outcome is Outcome.OK else 404,
        timings=Timings(total_ms=50.0),
        detail="",
        hint="",
        warning="",
        request_id=None,
        provider=None,
        headers={},
        body_excerpt="",
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """A listener over a history: `steady.v1_a` up 3 probes of 4, `gone` not_found, `fresh`
    configured but never probed."""
    database = f"sqlite:///{tmp_path / 'badges.db'}"
    targets = [
        {"name": name, "kind": "http", "url": f"http://127.0.0.1:9/{name}"}
        for name in ("steady.v1_a", "gone", "fresh")
    ]
    config = make_config(targets, database=database)
    writer = Writer(open_database(database), config)
    writer.start_run()
    now = datetime.now(UTC)
    outcomes = [Outcome.OK, Outcome.OK, Outcome.NOT_FOUND, Outcome.OK]
    writer.write_batch(
        [result("steady.v1_a", o, now - timedelta(seconds=4 - i)) for i, o in enumerate(outcomes)]
        + [result("gone", Outcome.NOT_FOUND, now - timedelta(seconds=s)) for s in (3, 2, 1)]
    )
    names = {t.name for t in config.targets}
    listener = Listener("127.0.0.1:0", Metrics(config.targets), database, lambda: names)
    listener.start()
    try:
        yield f"http://127.0.0.1:{listener.port}"
    finally:
        listener.stop()


def get(url: str) -> tuple[int, str, str]:
    """Status, Cache-Control and body."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = answer.read().decode()
            assert answer.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
            return answer.status, answer.headers["Cache-Control"], body
    except urllib.error.HTTPError as exc:
        return exc.code, "", exc.read().decode()


def test_state_badges_show_the_confirmed_state(served: str) -> None:
    status, cache, svg = get(f"{served}/badge/steady.v1_a/state.svg")
    texts, fills, _ = parse(svg)
    assert (status, cache) == (200, "public, max-age=60")
    assert texts == ["steady.v1_a", "ok"] and fills[2] == CLASS_COLOUR["ok"]
    texts, fills, _ = parse(get(f"{served}/badge/gone/state.svg")[2])
    assert texts == ["gone", "not_found"] and fills[2] == CLASS_COLOUR["contract"]
    texts, fills, _ = parse(get(f"{served}/badge/fresh/state.svg")[2])
    assert texts == ["fresh", "no data"] and fills[2] == CLASS_COLOUR["no_data"]


def test_uptime_badges_show_the_overviews_uptime(served: str) -> None:
    for window in ("24h", "7d", "30d"):
        status, _, svg = get(f"{served}/badge/steady.v1_a/uptime/{window}.svg")
        assert status == 200
        assert parse(svg)[0] == [f"uptime {window}", "75%"]
    assert parse(get(f"{served}/badge/gone/uptime/30d.svg")[2])[0] == ["uptime 30d", "0%"]
    assert parse(get(f"{served}/badge/fresh/uptime/24h.svg")[2])[0] == ["uptime 24h", "no data"]


def test_percent_encoded_names_resolve(served: str) -> None:
    status, _, svg = get(f"{served}/badge/steady%2Ev1%5Fa/state.svg")
    assert status == 200 and parse(svg)[0] == ["steady.v1_a", "ok"]


@pytest.mark.parametrize(
    "path",
    [
        "/badge/nobody/state.svg",
        "/badge/STEADY.V1_A/state.svg",  # names are case-sensitive
        "/badge/steady.v1_a/uptime/90d.svg",
        "/badge/steady.v1_a/uptime/1y.svg",
        "/badge/steady.v1_a/state.png",
        "/badge/..%2F..%2Fetc%2Fpasswd/state.svg",
        "/badge/%3Cscript%3E/state.svg",
        "/badge/steady.v1_a",
        "/",
    ],
)
def test_unknown_targets_windows_and_paths_answer_404(served: str, path: str) -> None:
    status, _, body = get(served + path)
    assert status == 404 and "<svg" not in body
