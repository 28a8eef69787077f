"""The Streamlit dashboard, as a viewer sees it: every page on a seeded database (AppTest), the
friendly messages when there is nothing to show, and the pure chart/table/format builders."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import streamlit as st
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from dashboard import charts, data, tables, wall, widgets
from dashboard import format as f
from monitor.alerts.channels import common
from monitor.demo.seed import SEED_TARGETS, seed
from monitor.domain.evidence import CLASS_COLOUR
from monitor.domain.history import state_class
from monitor.domain.states import format_span
from monitor.store import make_engine, open_database
from monitor.store import reads as q

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
NOW = datetime.now(UTC).replace(microsecond=0)  # the app reads the real clock
GREEN, AMBER, RED, GREY = "#1a7f37", "#b58100", "#cf222e", "#8c959f"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'seed.db'}"
    seed(open_database(url), now=NOW)
    return url


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No config file unless a test writes one; no cached query or engine from another test."""
    monkeypatch.setenv("INFERWATCH_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.delenv("INFERWATCH_DATABASE", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def app(monkeypatch: pytest.MonkeyPatch, database: str | None) -> AppTest:
    if database is not None:
        monkeypatch.setenv("INFERWATCH_DATABASE", database)
    return AppTest.from_file(str(APP), default_timeout=30)


def page(at: AppTest, view: str | None = None, **query: str) -> AppTest:
    """Run the app, then (when asked) open one of its pages, like following a link."""
    at.run()
    if view:
        at.query_params.update(query)
        at.switch_page(f"views/{view}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text(node: Any) -> str:
    """Everything readable under a node: markdown, captions, labels, values, table cells."""
    parts = []
    for el in node:
        if isinstance(el, Block):
            continue
        for attr in ("label", "value"):
            try:
                value = getattr(el, attr)
            except Exception:
                continue
            if isinstance(value, pd.DataFrame):
                parts.append(value.to_string())
            elif isinstance(value, str | int | float):
                parts.append(str(value))
    return "\n".join(parts)


def frame(at: AppTest, i: int = 0) -> pd.DataFrame:
    return at.dataframe[i].value


def seven_days(at: AppTest) -> AppTest:
    at.sidebar.selectbox(key="range").select("Last 7 days").run()
    assert not at.exception
    return at


# ---------------------------------------------------------------- overview


def wall_html(at: AppTest) -> str:
    """The overview's one HTML element: the flags and the target table(s)."""
    found = [h.value for h in at.main.get("html") if "iw-t" in h.value]
    assert len(found) == 1, found
    return str(found[0])


def listed(at: AppTest) -> list[str]:
    """The target names in the table(s), in the order shown."""
    link = r'<tr><td><a href="target\?name=[^"]*" target="_self">([^<]*)</a>'
    return re.findall(link, wall_html(at))


def row_of(at: AppTest, name: str) -> str:
    """One target's table row (name as escaped in the page)."""
    for row in wall_html(at).split("<tr>"):
        if f'target="_self">{name}</a>' in row and row.startswith("<td>"):
            return row
    raise AssertionError(f"{name} not listed")


def test_overview_shows_states_uptime_and_the_changes_that_need_action(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded))
    seen = text(at.main)

    # Failing first (contract, then transient), then ok, each by name.
    assert listed(at) == [
        "gpt2-legacy",
        "llama-chat",
        "bert-classifier",
        "minilm-embeddings",
        "status-page",
    ]
    assert "Needs action" in seen
    assert "Replacement: <a href='https://router.huggingface.co'>" in seen
    assert "Missing token permission: <b>Make calls to Inference Providers</b>" in seen
    assert "ok probes ÷ probes with data" in seen

    minilm = row_of(at, "minilm-embeddings")
    assert ">ok</span>" in minilm and minilm.count("100.0%") == 2
    legacy = row_of(at, "gpt2-legacy")
    assert ">deprecated</span>" in legacy and "0.0%" in legacy and "30.0%" in legacy
    chat = row_of(at, "llama-chat")
    assert ">token_scope</span>" in chat and "token scope regression (403)" in chat
    assert "recovered after" in row_of(at, "status-page")
    assert f"background:{RED}" in legacy and f"background:{GREEN}" in minilm
    # The last 24 hours: one gradient, green for minilm, red at the end for gpt2-legacy.
    assert f"linear-gradient(90deg,{GREEN} 0.00%" in minilm
    assert f"{RED} " in legacy.split("iw-b")[1]


def test_flags_on_the_overview_and_the_target_page_show_the_probes_facts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pages pass each row's facts on: a replacement URL stated only there is shown."""
    from sqlalchemy import update

    from monitor.store.models import ProbeRecord

    url = f"sqlite:///{tmp_path / 'facts.db'}"
    engine = open_database(url)
    seed(engine, now=NOW, days=1)
    facts = {"replacement_url": "https://facts.example/v1"}
    with Session(engine) as s, s.begin():
        gone = update(ProbeRecord).where(ProbeRecord.outcome == "deprecated")
        s.execute(gone.values(facts=facts))
    engine.dispose()

    at = page(app(monkeypatch, url))
    assert "Replacement: <a href='https://facts.example/v1'>" in text(at.main)
    at = page(app(monkeypatch, url), "target", name="gpt2-legacy")
    assert "Replacement: <a href='https://facts.example/v1'>" in text(at.main)


def test_the_last_change_is_shown_with_what_the_target_answers_now(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    # gpt2-legacy turned deprecated on a 404 and answers 410 since, without a new transition:
    # the flag quotes the 410, so the row must not leave the 404 alone beside it.
    at = page(app(monkeypatch, seeded))
    legacy = row_of(at, "gpt2-legacy")
    assert "(404)" in legacy
    assert "now: HTTP 410: https://api-inference.huggingface.co is no longer supported" in legacy
    assert "now:" not in row_of(at, "minilm-embeddings")  # ok: nothing to add


def _copy(seeded: str, tmp_path: Path) -> str:
    """A private copy of the seeded database, to change (SQLite's backup: the WAL too)."""
    path = tmp_path / "copy.db"
    with sqlite3.connect(seeded.removeprefix("sqlite:///")) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    return f"sqlite:///{path}"


def _set_state(url: str, names: Sequence[str] | None, **changes: Any) -> None:
    """Overwrite fields of the stored state-machine state of some (or every) target."""
    from monitor.store.models import TargetRecord, TargetStateRecord

    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        for record, name in s.execute(
            select(TargetStateRecord, TargetRecord.name).join(
                TargetRecord, TargetRecord.id == TargetStateRecord.target_id
            )
        ):
            if names is None or name in names:
                record.state = {**record.state, **changes}
    engine.dispose()


def test_the_wall_view_has_no_sidebar_larger_type_and_every_target_side_by_side(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = app(monkeypatch, seeded)
    at.query_params["kiosk"] = "1"
    page(at)
    html = wall_html(at)
    assert "iw-kiosk" in html and "iw-k" in html
    assert len(listed(at)) == len(SEED_TARGETS)
    assert not at.sidebar.selectbox and not at.sidebar.multiselect  # no controls on a wall
    chrome = [h.value for h in at.get("html") if '[data-testid="stSidebar"]' in h.value]
    assert chrome and "display:none" in chrome[0]
    assert not at.title  # the wall's own one-line heading instead
    assert "inferwatch · 5 targets" in html
    assert "ok probes ÷" not in text(at.main)  # no footnotes either
    at = app(monkeypatch, seeded)  # ?view=wall is the same
    at.query_params["view"] = "wall"
    assert "iw-kiosk" in wall_html(page(at))


def test_a_wall_with_more_targets_than_fit_lists_the_failing_ones(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    monkeypatch.setattr(wall, "KIOSK_ROWS", 1)  # a screen of two rows: 5 targets do not fit
    monkeypatch.setattr(wall, "KIOSK_COLUMNS", 2)
    at = app(monkeypatch, seeded)
    at.query_params["kiosk"] = "1"
    page(at)
    assert listed(at) == ["gpt2-legacy", "llama-chat"]
    assert "5 targets" in wall_html(at) and "3 ok targets not listed" in wall_html(at)


def test_the_wall_view_takes_its_filters_and_grouping_from_the_url(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = app(monkeypatch, seeded)
    at.query_params.update({"kiosk": "1", "state": "contract", "group": "kind"})
    page(at)
    assert listed(at) == ["gpt2-legacy", "llama-chat"]
    assert "<h4>hf-legacy · 1 target" in wall_html(at)


def test_the_overview_filters_by_state_kind_and_provider(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded))
    at.sidebar.multiselect(key="overview_state").select("contract").run()
    assert listed(at) == ["gpt2-legacy", "llama-chat"]
    assert "2 of 5 targets" in wall_html(at)
    at.sidebar.multiselect(key="overview_state").unselect("contract").run()
    at.sidebar.multiselect(key="overview_provider").select("Hugging Face").run()
    assert listed(at) == ["gpt2-legacy", "bert-classifier", "minilm-embeddings"]
    at.sidebar.multiselect(key="overview_provider").unselect("Hugging Face").run()
    at.sidebar.multiselect(key="overview_kind").select("http").run()
    assert listed(at) == ["status-page"]
    assert "Needs action" not in wall_html(at)  # the flags follow the filters


def test_the_overview_filters_and_groups_by_tag(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    tagged = {"minilm-embeddings": ["prod", "search"], "gpt2-legacy": ["legacy"]}
    targets = [{**t, "tags": tagged.get(t["name"], [])} for t in SEED_TARGETS]
    config = tmp_path / "inferwatch.yaml"
    config.write_text(yaml.safe_dump({"database": seeded, "targets": targets}))
    monkeypatch.setenv("INFERWATCH_CONFIG", str(config))

    at = page(app(monkeypatch, None))
    at.sidebar.selectbox(key="overview_group").select("tag").run()
    html = wall_html(at)
    headings = re.findall(r"<h4>([^<]*?) · (\d+) targets? ", html)
    # the groups with the worst states first (llama-chat's token_scope is untagged), then by name
    assert headings == [("(no tag)", "3"), ("legacy", "1"), ("prod", "1"), ("search", "1")]
    # each group's heading counts its targets per state
    assert re.search(r"\(no tag\) · 3 targets <span[^>]*>contract</span>&nbsp;1", html)
    at.sidebar.multiselect(key="overview_tag").select("prod").run()
    assert listed(at) == ["minilm-embeddings"]


def test_many_targets_are_grouped_by_kind_or_tag_by_default() -> None:
    assert wall.default_group(100, has_tags=True) == "none"
    assert wall.default_group(1000, has_tags=False) == "kind"
    assert wall.default_group(1000, has_tags=True) == "tag"
    assert wall.provider("hf-inference") == "Hugging Face"
    assert wall.provider("openai-chat") == "OpenAI"
    assert wall.provider("http") == "http"


def test_grouping_by_state_puts_failing_groups_first(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded))
    at.sidebar.selectbox(key="overview_group").select("state").run()
    headings = re.findall(r"<h4>([^<]*?) · (\d+) targets? ", wall_html(at))
    assert headings == [("contract", "2"), ("ok", "3")]


def test_flags_with_one_cause_are_one_flag_listing_their_targets() -> None:
    since = NOW - timedelta(hours=3)
    gone = "HTTP 410: https://api-inference.huggingface.co is no longer supported."
    hint = "switch to https://router.huggingface.co (named by the provider as the replacement)"
    flags = [
        {
            "target": f"model-{i}",
            "state": "deprecated",
            "since": since + timedelta(minutes=i),
            "detail": gone,
            "hint": hint,
            "facts": {"replacement_url": "https://router.huggingface.co"},
        }
        for i in range(5)
    ]
    flags += [
        {
            "target": name,
            "state": "token_scope",
            "since": since,
            "detail": f"HTTP 403 for {name}",  # the words differ, the cause does not
            "hint": "create a token with 'Make calls to Inference Providers'",
            "facts": {"missing_permission": "Make calls to Inference Providers"},
        }
        for name in ("chat-a", "chat-b")
    ]
    moved = {"replacement_url": "https://x.io"}
    flags.append({**flags[0], "target": "other", "hint": "use x.io", "facts": moved})

    causes = wall.group_flags(flags)

    assert [(c.state, c.key, len(c.targets)) for c in causes] == [
        ("deprecated", "https://router.huggingface.co", 5),
        ("token_scope", "Make calls to Inference Providers", 2),
        ("deprecated", "https://x.io", 1),
    ]
    assert causes[0].since == since and causes[0].targets == [f"model-{i}" for i in range(5)]
    html = wall.flags_html(causes, ZoneInfo("UTC"))
    assert html.count("iw-f") == 3 and html.count(hint) == 1
    assert "<b>5 targets</b>" in html and '<a href="target?name=model-4"' in html
    assert "<b>1 target</b>" in html
    sly = {**flags[0], "facts": {"replacement_url": "javascript:alert(1)"}}
    assert "Replacement: javascript:alert(1)" in wall.flags_html(
        wall.group_flags([sly]), ZoneInfo("UTC")
    )


def test_a_failure_being_confirmed_shows_as_pending_with_its_count(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    url = _copy(seeded, tmp_path)
    _set_state(url, ["minilm-embeddings"], candidate="server_error", streak=1)
    at = page(app(monkeypatch, url))
    minilm = row_of(at, "minilm-embeddings")
    assert ">server_error, confirming 1 of 3</span>" in minilm and "iw-o" in minilm
    # pending comes after the confirmed failures and before ok
    assert listed(at).index("minilm-embeddings") == 2

    # the thresholds are the config's (rules_of: the target's own, else the defaults)
    targets = [
        {**t, "failure_threshold": 5} if t["name"] == "minilm-embeddings" else t
        for t in SEED_TARGETS
    ]
    config = tmp_path / "inferwatch.yaml"
    config.write_text(yaml.safe_dump({"database": url, "targets": targets}))
    monkeypatch.setenv("INFERWATCH_CONFIG", str(config))
    at = page(app(monkeypatch, None))
    assert "server_error, confirming 1 of 5" in row_of(at, "minilm-embeddings")
    at.sidebar.multiselect(key="overview_state").select("pending").run()
    assert listed(at) == ["minilm-embeddings"]


def test_pending_states_and_the_no_network_test_are_pure() -> None:
    row = {"state": "ok", "candidate": "deprecated", "streak": 1}
    assert wall.shown_state(row).label == "deprecated, confirming 1 of 2"
    assert wall.shown_state({**row, "streak": 2}).label == "ok"  # confirmed: stored next probe
    new = {"state": None, "candidate": "timeout", "streak": 2}
    assert wall.shown_state(new).label == "timeout, confirming 2 of 3"
    assert wall.shown_state({"state": None, "candidate": None}).label == "no data"
    # a failing target stays failing while another failure or the recovery is confirmed
    assert wall.shown_state({"state": "timeout", "candidate": "ok", "streak": 1}).label == (
        "timeout"
    )
    moving = {"state": "server_error", "candidate": "timeout", "streak": 1}
    assert wall.shown_state(moving).label == "server_error"
    assert wall.no_network([{"candidate": "dns_error"}, {"state": None, "candidate": None}])
    assert not wall.no_network([{"candidate": "dns_error"}, {"candidate": "ok"}])
    assert not wall.no_network([{"state": None, "candidate": None}])


def test_every_target_failing_dns_says_this_machine_has_no_network(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    url = _copy(seeded, tmp_path)
    at = page(app(monkeypatch, url))
    assert not at.error
    _set_state(url, None, candidate="dns_error", streak=1)
    st.cache_data.clear()
    at = page(app(monkeypatch, url))
    assert "this machine seems to have no network" in at.error[0].value.lower()


def test_names_and_provider_words_are_escaped_everywhere_on_the_overview(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from monitor.store.models import ProbeRecord, TargetRecord

    url = _copy(seeded, tmp_path)
    engine = make_engine(url)
    evil = "<img src=x onerror=alert(1)>"
    with Session(engine) as s, s.begin():
        s.execute(
            update(TargetRecord)
            .where(TargetRecord.name == "gpt2-legacy")
            .values(name="<script>alert(1)</script>")
        )
        s.execute(
            update(ProbeRecord).where(ProbeRecord.outcome == "deprecated").values(detail=evil)
        )
    engine.dispose()

    at = page(app(monkeypatch, url))
    html = wall_html(at)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;</a>" in html  # the name, in the table and flag
    assert 'href="target?name=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row_of(
        at, "&lt;script&gt;alert(1)&lt;/script&gt;"
    )


def test_the_history_bar_is_one_gradient_with_a_stop_per_run() -> None:
    hours = ["no_data"] * 2 + ["ok"] * 20 + ["transient", "contract"]
    bar = wall.history_bar(hours)
    assert bar.count("<span") == 1
    assert f"linear-gradient(90deg,{GREY} 0.00% 8.33%,{GREEN} 8.33% 91.67%," in bar
    assert f"{AMBER} 91.67% 95.83%,{RED} 95.83% 100.00%)" in bar
    assert "title='last 24 h: ok 20 h, no data 2 h, transient 1 h, contract 1 h'" in bar


def test_current_evidence_is_short_plain_text() -> None:
    assert f.evidence("ok", 200, "HTTP 200 in 80 ms") == ""
    assert f.evidence("deprecated", 410, "HTTP 410: gone") == "now: HTTP 410: gone"
    assert f.evidence("server_error", 502, "") == "now: HTTP 502"
    assert f.evidence("timeout", None, "ReadTimeout:  no\nanswer") == "now: ReadTimeout: no answer"
    long = f.evidence("deprecated", 410, "x" * 500)
    assert len(long) == len("now: ") + 140 and long.endswith("…")
    assert f.plain("*bold* [link](http://x) $x$ <b>") == (
        "\\*bold\\* \\[link\\](http://x) \\$x\\$ \\<b\\>"
    )


def test_overview_follows_the_config_and_lists_targets_not_probed_yet(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    config = tmp_path / "inferwatch.yaml"
    targets = [
        next(t for t in SEED_TARGETS if t["name"] == "status-page"),
        next(t for t in SEED_TARGETS if t["name"] == "llama-chat"),
        {"name": "new-model", "kind": "http", "url": "https://example.invalid/"},
    ]
    alerts = {"dashboard_url": "https://status.example.com/"}
    config.write_text(yaml.safe_dump({"database": seeded, "targets": targets, "alerts": alerts}))
    monkeypatch.setenv("INFERWATCH_CONFIG", str(config))

    at = page(app(monkeypatch, None))  # the database comes from the config

    assert listed(at) == ["llama-chat", "status-page", "new-model"]  # failing first
    new = row_of(at, "new-model")
    assert ">no data</span>" in new and "not probed yet" in new and "http" in new

    at.switch_page("views/target.py").run()
    names = ["status-page", "llama-chat", "new-model"]
    assert at.selectbox(key="target").options[:3] == names  # then the unconfigured ones
    assert "https://status.example.com/target?name=status-page" in text(at.main)
    at.selectbox(key="target").select("new-model").run()
    assert not at.exception and "not probed yet" in text(at.main)


def test_overview_links_each_target_to_its_page(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded))
    assert '<a href="target?name=llama-chat" target="_self">llama-chat</a>' in wall_html(at)
    assert wall.target_href("a b&c/d'") == "target?name=a%20b%26c%2Fd%27"


def test_durations_run_to_the_real_now_not_the_rounded_cache_clock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The cache clock rounds up to the next 30 s; "5m 1s" must not read "5m 30s".
    boundary = datetime.fromtimestamp(int(NOW.timestamp()) // 30 * 30, UTC)
    url = f"sqlite:///{tmp_path / 'short.db'}"
    engine = open_database(url)
    seed(engine, now=boundary, days=20 / 1440, every=timedelta(minutes=1))
    with Session(make_engine(url, readonly=True)) as s:
        since = {r.name: r.since for r in q.overview(s, boundary)}["llama-chat"]
    assert since is not None
    real_now = boundary + timedelta(seconds=1)
    monkeypatch.setattr(data, "wall_now", lambda: real_now)

    at = page(app(monkeypatch, url))
    chat = row_of(at, "llama-chat")
    assert f"<td>{format_span((real_now - since).total_seconds())}<td>" in chat, chat

    at = page(app(monkeypatch, url), "target", name="llama-chat")
    at.switch_page("views/incidents.py").run()
    ongoing = frame(at).set_index("target").loc["llama-chat", "duration"]
    assert ongoing == f"{format_span((real_now - since).total_seconds())} so far"


# ---------------------------------------------------------------- one target


def test_target_page_opens_on_the_target_named_in_the_link(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded), "target", name="llama-chat")
    seen = text(at.main)

    assert at.selectbox(key="target").value == "llama-chat"
    assert "token_scope</span>" in seen and "Make calls to Inference Providers" in seen
    assert len(at.get("plotly_chart")) == 3  # status band, latency, outcome mix
    assert "no data" in seen.lower()  # the band's key says what grey means

    log = frame(at)
    assert {"token_scope", "ok"} <= set(log["outcome"])
    newest = log.iloc[0]
    assert newest["HTTP"] == "403" and newest["provider"] == "hf-inference"
    assert newest["request id"].startswith("Root=1-")
    assert "sufficient permissions to call Inference Providers" in newest["provider message"]
    assert "token scope regression (403)" in frame(at, 1)["change"].tolist()
    assert frame(at, 2)["ended"].tolist() == ["ongoing"]


def band_start(at: AppTest) -> datetime:
    """Where the target page's status band begins (its x axis, in UTC here)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return datetime.fromisoformat(spec["layout"]["xaxis"]["range"][0]).replace(tzinfo=UTC)


def test_the_target_page_starts_at_the_first_probe_and_fits_its_range_to_the_age(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    # Two days of history: the usual 7 days, but the band starts at the first probe, not
    # five days of grey "no data" before the target existed.
    at = page(app(monkeypatch, seeded), "target", name="minilm-embeddings")
    assert at.sidebar.selectbox(key="range").value == "Last 7 days"
    with Session(make_engine(seeded, readonly=True)) as s:
        first = q.first_probe(s, "minilm-embeddings")
    assert first is not None
    assert band_start(at) == first.replace(minute=0, second=0, microsecond=0)
    assert f"First probe {f.when(first, ZoneInfo('UTC'))}" in text(at.main)

    # Three hours of history: the last 6 hours, not a sliver at the end of a week.
    url = f"sqlite:///{tmp_path / 'young.db'}"
    seed(open_database(url), now=NOW, days=3 / 24)
    at = page(app(monkeypatch, url), "target", name="minilm-embeddings")
    assert at.sidebar.selectbox(key="range").value == "Last 6 hours"
    assert band_start(at) >= NOW - timedelta(hours=4)

    # Once the viewer picks a range, it stays picked.
    at.sidebar.selectbox(key="range").select("Last 30 days").run()
    at.selectbox(key="target").select("llama-chat").run()
    assert at.sidebar.selectbox(key="range").value == "Last 30 days"


def test_a_default_range_fits_the_targets_age() -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert widgets.range_for_age(None, now) == "Last 7 days"
    assert widgets.range_for_age(now - timedelta(hours=3), now) == "Last 6 hours"
    assert widgets.range_for_age(now - timedelta(hours=20), now) == "Last 24 hours"
    assert widgets.range_for_age(now - timedelta(days=2), now) == "Last 7 days"
    assert widgets.range_for_age(now - timedelta(days=60), now) == "Last 7 days"


def test_picking_another_target_updates_the_link(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded), "target", name="llama-chat")
    at.selectbox(key="target").select("minilm-embeddings").run()

    assert not at.exception
    assert at.query_params["name"] == "minilm-embeddings"
    assert set(frame(at)["outcome"]) == {"ok"}
    assert "ok</span>" in text(at.main)


def test_an_unknown_target_in_the_link_is_explained_not_an_error(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded), "target", name="gone-model")
    assert "No target named 'gone-model'" in at.warning[0].value
    assert at.selectbox(key="target").value in {t["name"] for t in SEED_TARGETS}


def test_probe_log_filters_by_outcome(monkeypatch: pytest.MonkeyPatch, seeded: str) -> None:
    at = page(app(monkeypatch, seeded), "target", name="bert-classifier")
    seven_days(at)
    at.multiselect(key="probe_outcomes").select("loading").run()

    assert not at.exception
    log = frame(at)
    assert set(log["outcome"]) == {"loading"} and set(log["HTTP"]) == {"503"}


# ---------------------------------------------------------------- incidents and alerts


def test_incidents_page_reviews_history_with_mttr_and_alerts(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = seven_days(page(app(monkeypatch, seeded), "incidents"))
    metrics = {m.label: m.value for m in at.metric}

    assert metrics["Incidents"] == "3" and metrics["Still open"] == "2"
    assert metrics["MTTR"] == "2h 25m"
    rows = frame(at).set_index("target")
    assert rows.loc["status-page", "duration"] == "2h 25m"
    assert rows.loc["status-page", "went through"] == "server_error"
    assert rows.loc["status-page", "alerts"] == "1 failed, 1 sent"
    assert rows.loc["gpt2-legacy", "ended"] == "ongoing"
    assert rows.loc["llama-chat", "classes"] == "contract"
    sent = frame(at, 1)
    assert set(sent["status"]) == {"sent", "pending", "failed"}
    assert "550 5.1.1 no such user" in sent["error"].str.cat()
    assert at.get("download_button")[0].proto.label == "Download CSV"
    assert "contract</span>&nbsp;2" in text(at.main) and "transient</span>&nbsp;1" in text(at.main)


def test_incidents_filter_by_target_and_outcome(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = seven_days(page(app(monkeypatch, seeded), "incidents"))
    at.multiselect(key="inc_targets").select("status-page").run()
    assert frame(at)["target"].tolist() == ["status-page"]

    at.multiselect(key="inc_targets").unselect("status-page")
    at.multiselect(key="inc_outcomes").select("deprecated").run()
    assert frame(at)["target"].tolist() == ["gpt2-legacy"]
    assert not at.exception


def test_alerts_page_shows_the_delivery_log(monkeypatch: pytest.MonkeyPatch, seeded: str) -> None:
    at = seven_days(page(app(monkeypatch, seeded), "alerts"))
    log = frame(at)

    assert set(log["status"]) == {"sent", "pending", "failed"}
    failed = log[log["status"] == "failed"].iloc[0]
    assert failed["error"] == "127.0.0.1:2525 refused RCPT: 550 5.1.1 no such user"
    assert failed["to"] == "oncall@example.com" and set(log["channel"]) == {"email"}
    assert log[log["status"] == "pending"]["next try"].str.len().min() > 0

    at.multiselect(key="alert_statuses").select("failed").run()
    assert frame(at)["status"].tolist() == ["failed"]


def test_the_delivery_log_names_the_channel_of_a_row_without_recipients() -> None:
    row = {
        "created_at": NOW,
        "target": "llama-chat",
        "subject": "[inferwatch] llama-chat: ok → server_error (500)",
        "recipients": [],  # a URL channel: its URL is a secret, never stored
        "channel": "apprise",
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": NOW,
        "sent_at": NOW,
        "last_error": "",
    }
    shown = tables.alert_frame([row], ZoneInfo("UTC")).iloc[0]
    assert shown["channel"] == "apprise" and shown["to"] == ""


def test_the_alerts_status_and_error_come_before_the_long_columns(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    # At 1440 px the subject and recipients pushed the status and the server's answer off
    # the table's right edge: the short decisive columns come first, the long ones capped.
    at = seven_days(page(app(monkeypatch, seeded), "alerts"))
    columns = list(frame(at).columns)
    assert columns[:4] == ["queued", "status", "attempts", "channel"]
    assert columns.index("error") < columns.index("next try") < columns.index("to")
    widths = {c: json.loads(at.dataframe[0].proto.columns).get(c, {}) for c in tables.ALERT_WIDTHS}
    assert {c: w.get("width") for c, w in widths.items()} == tables.ALERT_WIDTHS


def test_times_follow_the_viewers_zone(monkeypatch: pytest.MonkeyPatch, seeded: str) -> None:
    with Session(make_engine(seeded, readonly=True)) as s:
        opened = next(
            i.opened_at
            for i in q.incidents(s, NOW - timedelta(days=7), NOW, NOW)
            if i.target == "status-page"
        )
    at = app(monkeypatch, seeded)
    at.context["timezone"] = "Asia/Kolkata"
    at = seven_days(page(at, "incidents"))

    assert at.sidebar.selectbox(key="tz").value == "Asia/Kolkata"
    started = frame(at).set_index("target").loc["status-page", "started"]
    assert started == opened.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M")

    at.sidebar.selectbox(key="tz").select("UTC").run()
    assert frame(at).set_index("target").loc["status-page", "started"] == (
        opened.strftime("%Y-%m-%d %H:%M")
    )


def test_a_custom_range_is_whole_days_in_the_viewers_zone(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    at = page(app(monkeypatch, seeded), "alerts")
    at.sidebar.selectbox(key="range").select("Custom dates").run()
    assert not at.exception and at.sidebar.date_input(key="range_dates")

    berlin = ZoneInfo("Europe/Berlin")
    days = widgets.TimeRange(widgets.CUSTOM, (date(2026, 11, 1), date(2026, 11, 2)))
    start, end = days.bounds(datetime(2026, 12, 1, tzinfo=UTC), berlin)
    assert start == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert end == datetime(2026, 11, 2, 23, tzinfo=UTC)
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)  # today: up to now, not midnight
    assert days.bounds(now, berlin) == (start, now)
    assert widgets.TimeRange("Last 24 hours").bounds(now, berlin) == (now - timedelta(days=1), now)


# ---------------------------------------------------------------- nothing to show


PAGES = [None, "target", "incidents", "alerts"]


@pytest.mark.parametrize("view", PAGES)
def test_a_missing_database_is_a_friendly_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, view: str | None
) -> None:
    path = tmp_path / "nowhere" / "inferwatch.db"
    at = page(app(monkeypatch, f"sqlite:///{path}"), view)

    assert at.info[0].value == f"No database at {path}: start the monitor with `inferwatch run`."
    assert not path.parent.exists()  # read-only: looking never creates it


@pytest.mark.parametrize("view", PAGES)
def test_an_empty_database_says_no_probes_yet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, view: str | None
) -> None:
    path = tmp_path / "empty.db"
    path.touch()  # a file, but no schema: the monitor never ran
    at = page(app(monkeypatch, f"sqlite:///{path}"), view)
    assert "No probes yet" in at.info[0].value
    assert not at.error


@pytest.mark.parametrize("view", [None, "target"])
def test_a_migrated_database_without_probes_says_no_probes_yet(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, view: str | None
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    open_database(url).dispose()
    at = page(app(monkeypatch, url), view)
    assert at.info[0].value.startswith("No probes yet")


def test_without_config_or_database_it_says_how_to_point_at_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = page(app(monkeypatch, None))
    message = at.error[0].value
    assert "Cannot read the config" in message and "file not found" in message
    assert "INFERWATCH_DATABASE" in message


def test_an_unexpected_failure_is_an_apology_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, seeded: str
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(q, "overview", broken)
    at = page(app(monkeypatch, seeded))
    assert "Something went wrong" in at.error[0].value
    assert "boom" not in text(at.main)


# ---------------------------------------------------------------- pure builders


def bucket(hour: int, counts: dict[str, int], worst: str) -> dict[str, Any]:
    start = datetime(2026, 11, 20, hour, tzinfo=UTC)
    n = sum(counts.values())
    return {
        "start": start,
        "end": start + timedelta(hours=1),
        "probes": n,
        "ok": counts.get("ok", 0),
        "counts": counts,
        "worst": worst,
        "p50_ms": 50.0 if n else None,
        "p95_ms": 90.0 if n else None,
    }


BUCKETS = [
    bucket(0, {"ok": 12}, "ok"),
    bucket(1, {"ok": 10, "loading": 2}, "transient"),
    bucket(2, {}, "no_data"),
    bucket(3, {"deprecated": 12}, "contract"),
]


def test_one_palette_for_emails_and_dashboard() -> None:
    assert common.CLASS_COLOUR is CLASS_COLOUR
    assert [CLASS_COLOUR[c] for c in ("ok", "transient", "contract", "no_data")] == [
        GREEN,
        AMBER,
        RED,
        GREY,
    ]


def test_status_band_colours_blocks_by_class_and_no_data_grey() -> None:
    fig = charts.status_band(BUCKETS, ZoneInfo("UTC"))
    traces = {t.name: t for t in fig.data}

    assert list(traces) == ["ok", "transient failure", "contract break", "no data"]
    assert traces["no data"].marker.color == GREY
    assert [str(x) for x in traces["no data"].x] == ["2026-11-20 02:00:00"]
    assert "no data" in traces["no data"].hovertext[0]
    assert traces["ok"].marker.color == GREEN and len(traces["ok"].x) == 1
    assert traces["transient failure"].marker.color == AMBER
    assert traces["contract break"].marker.color == RED
    assert "loading: 2" in traces["transient failure"].hovertext[0]


def test_status_band_draws_in_the_viewers_zone() -> None:
    fig = charts.status_band(BUCKETS, ZoneInfo("Asia/Kolkata"))
    ok = next(t for t in fig.data if t.name == "ok")
    assert str(ok.x[0]) == "2026-11-20 05:30:00"


def test_latency_chart_breaks_the_line_where_there_is_no_data() -> None:
    fig = charts.latency_chart(BUCKETS, ZoneInfo("UTC"))
    p50, p95 = fig.data
    assert (p50.name, p95.name) == ("p50", "p95")
    assert list(p50.y) == [50.0, 50.0, None, 50.0] and p50.connectgaps is False


def test_outcome_bars_use_each_outcomes_class_colour() -> None:
    fig = charts.outcome_bars({"ok": 500, "token_scope": 40, "loading": 3})
    bars = fig.data[0]
    assert list(bars.y) == ["loading", "token_scope", "ok"]  # most frequent drawn on top
    assert list(bars.marker.color) == [AMBER, RED, GREEN]


def test_flags_name_the_replacement_and_the_missing_permission() -> None:
    assert f.replacement_url("", "switch to https://router.huggingface.co (named by …)") == (
        "https://router.huggingface.co"
    )
    gone = "HTTP 410: x is no longer supported. Please use https://new.example/v1 instead."
    assert f.replacement_url(gone, "") == "https://new.example/v1"
    assert f.missing_permission("create a token with 'Make calls to Inference Providers' at") == (
        "Make calls to Inference Providers"
    )
    html = f.flag_html("m", "deprecated", None, "<script>x</script>", "", ZoneInfo("UTC"))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_formatting_never_turns_no_data_into_a_number() -> None:
    assert f.percent(None) == "—" and f.percent(1.0) == "100.0%" and f.percent(0.993) == "99.3%"
    assert f.millis(None) == "—"
    assert "background:#8c959f" in f.badge(None) and "no data" in f.badge(None)
    assert f.zone("Not/AZone") == ZoneInfo("UTC")


def test_incident_csv_has_unambiguous_times_and_alert_counts() -> None:
    opened = datetime(2026, 11, 20, 9, 58, tzinfo=UTC)
    row = {
        "id": 2,
        "target": "status-page",
        "opened_at": opened,
        "closed_at": opened + timedelta(hours=2, minutes=25),
        "duration_s": 8700.0,
        "outcomes": ["server_error", "loading"],
        "alerts": [{"status": "sent"}, {"status": "failed"}],
    }
    csv = tables.incidents_csv([row], ZoneInfo("Europe/Berlin")).decode()
    header, line = csv.strip().splitlines()
    assert header.startswith("id,target,opened_at,closed_at,duration_s,duration,outcomes")
    assert "2026-11-20T10:58:00+01:00" in line and ",8700,2h 25m," in line
    assert line.endswith(",1,0,1")


def test_a_file_that_is_not_a_database_is_named_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not sqlite " * 100)
    at = page(app(monkeypatch, f"sqlite:///{path}"), "target")
    assert at.error[0].value == f"Cannot read the database {path}: file is not a database."


def test_pills_for_no_data_and_a_class_name_use_their_own_colour() -> None:
    # The overview counts "no data" targets and the Incidents page counts per class
    # ("transient", "contract"): both pills went red when any unknown word meant contract.
    assert f"background:{GREY}" in f.badge("no data")
    assert f"background:{AMBER}" in f.badge("transient")
    assert f"background:{RED}" in f.badge("contract")
    assert f"background:{AMBER}" in f.badge("loading")
    assert f"background:{GREY}" in f.badge("not-an-outcome")  # claims nothing
    assert [state_class(w) for w in ("no data", "no_data", None, "ok")] == [
        "no_data",
        "no_data",
        "no_data",
        "ok",
    ]


def test_regions_show_on_the_target_page_and_a_regional_observation_on_the_overview(
    monkeypatch: pytest.MonkeyPatch, seeded: str, tmp_path: Path
) -> None:
    """With agents in several regions: each region's own state on the target page, and the
    overview marking an open regional observation without taking it for the target's change."""
    from monitor.domain.decide import Transition
    from monitor.domain.evidence import Outcome
    from monitor.domain.quorum import RegionState
    from monitor.domain.states import TargetState
    from monitor.store import writes
    from monitor.store.models import ProbeRecord

    url = _copy(seeded, tmp_path)
    # The page judges "still reporting" by the real clock: times from now, not from the
    # module's NOW (minutes old by the time a whole suite reaches this test).
    now = datetime.now(UTC).replace(microsecond=0)
    began, last = now - timedelta(minutes=7), now - timedelta(seconds=20)
    eu = TargetState(accepted=Outcome.SERVER_ERROR, accepted_since=began)
    us = TargetState(accepted=Outcome.OK, accepted_since=now - timedelta(days=1))
    states = {
        "eu-west": RegionState(eu, last, observed=True),
        "us-east": RegionState(us, last),
        "ap-south": RegionState(us, now - timedelta(minutes=30)),
    }
    engine = make_engine(url)
    with engine.begin() as conn:
        target = q.target_id(conn, "minilm-embeddings")
        assert target is not None
        saved = {(target, name): s.to_dict() for name, s in states.items()}
        writes.save_region_states(conn, saved, now)
        regional = Transition(
            at=last,
            started_at=began,
            from_outcome="ok",
            to_outcome="server_error",
            label="eu-west: server_error (500) since earlier",
            detail="",
            hint="",
            http_status=500,
            announced=False,
            regions=("eu-west",),
            region="eu-west",
        )
        newest = select(func.max(ProbeRecord.id)).where(ProbeRecord.target_id == target)
        writes.insert_transition(conn, target, regional, probe_id=conn.scalar(newest))
    engine.dispose()
    config = tmp_path / "inferwatch.yaml"
    minilm = next(t for t in SEED_TARGETS if t["name"] == "minilm-embeddings")
    config.write_text(yaml.safe_dump({"database": url, "targets": [minilm, SEED_TARGETS[1]]}))
    monkeypatch.setenv("INFERWATCH_CONFIG", str(config))

    at = page(app(monkeypatch, None))
    row = row_of(at, "minilm-embeddings")
    assert f"background:{GREEN}'>ok</span>" in row and "regional: eu-west" in row
    assert "eu-west: server_error" not in row  # its last change is still its own
    assert "regional:" not in row_of(at, "gpt2-legacy")

    at = page(app(monkeypatch, None), "target", name="minilm-embeddings")
    seen = text(at.main)
    assert "Regions" in [h.value for h in at.subheader]
    assert (
        f"ap-south: not reporting since {f.when(now - timedelta(minutes=30), ZoneInfo('UTC'))}"
        in seen
    )
    # (markdown source: the underscore is escaped)
    assert f.plain(f"eu-west: server_error since {f.when(began, ZoneInfo('UTC'))}") in seen
    assert "us-east: ok" in seen
    changes = seven_days(at).dataframe[1].value["change"].tolist()
    assert "eu-west: server_error (500) since earlier (regional: target unchanged)" in changes

    at = page(app(monkeypatch, None), "target", name="gpt2-legacy")
    assert "Regions" not in [h.value for h in at.subheader]  # one region: no section
