"""Regions in every view: `inferwatch transitions`, the overview's reads, each region's own
state, the channels' renderings of regional alerts, and the prune of untaken region results.

The rows come from real writers: three region writers on PostgreSQL (tests/test_agents_regions.py's
`Fleet`), and on SQLite through the store's own writes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dashboard import format as f
from dashboard import tables, wall
from monitor.alerts.channels import apprise as apprise_channel
from monitor.alerts.channels import email, slack, webhook
from monitor.alerts.channels.common import evidence_rows
from monitor.cli import app
from monitor.domain.alert_event import AlertEvent
from monitor.domain.evidence import CLASS_COLOUR
from monitor.store import open_database, reads, writes
from monitor.store.models import AlertRecord, RegionResultRecord
from monitor.store.prune import prune
from tests.helpers import write_config
from tests.test_agents_ownership import URL, needs_pg, pg, rows, targets_config  # noqa: F401
from tests.test_agents_regions import OK, S500, Fleet, regions_config
from tests.test_loop_writer import T0

runner = CliRunner()
UTC_ZONE = ZoneInfo("UTC")


def eu_alone(engine: Engine, regional: bool = False) -> Fleet:
    """eu fails alone for six minutes after two good ones: a regional observation."""
    fleet = Fleet(engine, regions_config(regional=True) if regional else regions_config())
    for minute in range(2):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    for minute in range(2, 8):
        fleet.probe(minute, eu=S500, us=OK, ap=OK)
    return fleet


def majority(engine: Engine) -> Fleet:
    """Every region fails: confirmed by the first two (a majority), then all recover."""
    fleet = Fleet(engine, regions_config())
    fleet.probe(0, eu=OK, us=OK, ap=OK)
    for minute in range(1, 6):
        fleet.probe(minute, eu=S500, us=S500, ap=S500)
    for minute in range(6, 9):
        fleet.probe(minute, eu=OK, us=OK, ap=OK)
    return fleet


def transitions_cli(tmp_path: Path, *extra: str) -> str:
    config = write_config(
        tmp_path / "c.yaml", [{"name": "t", "kind": "hf-legacy", "model": "gpt2"}], database=URL
    )
    result = runner.invoke(
        app,
        ["transitions", "-c", str(config), "--since", "2026-10-01", *extra],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    return result.stdout


# ---------------------------------------------------------------- the CLI


@needs_pg
def test_transitions_json_names_the_confirming_regions_and_the_observed_one(
    pg: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    fleet = eu_alone(pg)
    found = json.loads(transitions_cli(tmp_path, "-f", "json"))

    assert [(r["to_outcome"], r["observed_region"]) for r in found] == [
        ("server_error", "eu"),
        ("ok", None),
    ]
    regional, own = found
    assert regional["regions"] == ["eu"] and regional["label"].startswith("eu: server_error")
    # `agent` / `region`: the holder whose writer accepted both rows, not the observed region.
    assert {regional["region"], own["region"]} == {fleet.holder}
    assert regional["agent"] == own["agent"] == f"agent-{fleet.holder}"
    assert isinstance(own["regions"], list) and own["regions"]

    table = transitions_cli(tmp_path)
    assert "regional: eu only, target unchanged" in table
    assert table.count("regional:") == 1  # the target's own change is not marked


@needs_pg
def test_a_change_several_regions_confirmed_names_them_in_the_table(
    pg: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    majority(pg)
    found = json.loads(transitions_cli(tmp_path, "-f", "json"))
    failing = next(r for r in found if r["to_outcome"] == "server_error")
    assert len(failing["regions"]) == 2 and failing["observed_region"] is None
    assert f"confirmed by {', '.join(failing['regions'])}" in transitions_cli(tmp_path)


# ---------------------------------------------------------------- reads


@needs_pg
def test_the_overview_ignores_regional_rows_and_flags_the_open_observation(
    pg: Engine,  # noqa: F811
) -> None:
    eu_alone(pg)
    with Session(pg) as s:
        (row,) = reads.overview(s, T0 + timedelta(minutes=8))
        everything = reads.transitions(s)
        with pg.connect() as conn:
            target_id = reads.target_id(conn, "t")
            assert target_id is not None
            deciding = reads.latest_deciding_probe(conn, target_id, to_ok=False)

    assert row.state == "ok" and row.since is not None
    # The newest transition row is eu's observation; the last change of the target is not.
    assert everything[0][0].region == "eu"
    assert row.last_change_at == everything[1][0].at and not row.last_change.startswith("eu")
    assert row.regional == ("eu",)
    assert deciding is None  # no change of the target away from ok: eu's is not one


@needs_pg
def test_each_regions_own_state_and_whether_it_still_reports(pg: Engine) -> None:  # noqa: F811
    eu_alone(pg)
    last = T0 + timedelta(minutes=7)
    with Session(pg) as s:
        now = reads.region_states(s, intervals={"t": 60}, now=last + timedelta(seconds=30))
        later = reads.region_states(s, ["t"], {"t": 60}, now=last + timedelta(minutes=5))
        unknown = reads.region_states(s, ["t"], now=last)
        none = reads.region_states(s, ["nope"], {"t": 60}, now=last)

    by = {r.region: r for r in now["t"]}
    assert list(by) == ["ap", "eu", "us"]
    assert by["eu"].state == "server_error" and by["eu"].observed and by["eu"].reporting
    assert by["eu"].since is not None and by["eu"].since < last and by["eu"].last_at == last
    assert by["us"].state == by["ap"].state == "ok"
    assert not by["us"].observed and by["us"].reporting
    # Five minutes later (more than two intervals) nobody reports; without an interval: unknown.
    assert [r.reporting for r in later["t"]] == [False] * 3
    assert [r.reporting for r in unknown["t"]] == [None] * 3
    assert none == {}


def test_one_region_has_no_regional_rows_and_no_flag(tmp_path: Path) -> None:
    from monitor.agent.writer import Writer
    from tests.test_loop_writer import result

    engine = open_database(f"sqlite:///{tmp_path / 'one.db'}")
    writer = Writer(engine, targets_config(), clock=lambda: T0)
    writer.start_run()
    for minute in range(4):
        writer.write_batch([result("t", OK, T0 + timedelta(minutes=minute))])
    with Session(engine) as s:
        assert reads.region_states(s, intervals={"t": 60}) == {}
        (row,) = reads.overview(s, T0 + timedelta(minutes=5))
    assert row.regional == () and row.last_change.startswith("first probe")
    assert wall.regional_flag({"regional": row.regional}) == ""


# ---------------------------------------------------------------- dashboard (pure parts)


def test_region_lines_and_the_walls_regional_flag() -> None:
    at = datetime(2026, 11, 30, 12, 3, tzinfo=UTC)
    lines = [
        f.region_line(
            {"region": "eu-west", "state": "server_error", "since": at, "reporting": True}, UTC_ZONE
        ),
        f.region_line(
            {"region": "us-east", "state": "ok", "since": at, "reporting": True}, UTC_ZONE
        ),
        f.region_line(
            {"region": "ap-south", "state": "ok", "last_at": at, "reporting": False}, UTC_ZONE
        ),
        f.region_line({"region": "sa", "state": None, "observed": False}, UTC_ZONE),
    ]
    assert lines == [
        "eu-west: server_error since 2026-11-30 12:03",
        "us-east: ok",
        "ap-south: not reporting since 2026-11-30 12:03",
        "sa: no confirmed state yet",
    ]
    observed = {"region": "eu", "state": "server_error", "since": at, "observed": True}
    assert "regional observation" in f.region_line(observed, UTC_ZONE)

    row = {"name": "t<x>", "state": "ok", "regional": ("eu", "a<b")}
    entry = wall.entries([row])[0]
    html = wall.table_html([entry], at, UTC_ZONE)
    assert "regional: eu, a&lt;b" in html and "a<b" not in html
    # The target's own pill keeps the colour of its own state.
    assert f"background:{CLASS_COLOUR['ok']}'>ok</span> <span class='iw-d'" in html
    assert "regional:" in wall.table_html([entry], at, UTC_ZONE, kiosk=True)

    frame = tables.transition_frame(
        [
            {
                "at": at,
                "target": "t",
                "label": "eu: ok → server_error (500)",
                "to_outcome": "server_error",
                "http_status": 500,
                "detail": "",
                "announced": False,
                "region": "eu",
            },
            {
                "at": at,
                "target": "t",
                "label": "first probe: ok",
                "to_outcome": "ok",
                "http_status": None,
                "detail": "",
                "announced": False,
                "region": None,
            },
        ],
        UTC_ZONE,
    )
    assert frame["change"].tolist() == [
        "eu: ok → server_error (500) (regional: target unchanged)",
        "first probe: ok",
    ]


# ---------------------------------------------------------------- channels


def stored_events(engine: Engine) -> list[AlertEvent]:
    return [AlertEvent.from_json(a.event) for a in rows(engine, AlertRecord)]


@needs_pg
def test_a_regional_alert_reads_as_one_regions_view_on_every_channel(
    pg: Engine,  # noqa: F811
) -> None:
    eu_alone(pg, regional=True)
    (event,) = stored_events(pg)
    assert event.reason == "regional" and event.regions == ("eu",)

    assert ("Seen from", "eu only") in evidence_rows(event)
    mail = email.render(event)
    assert mail.subject.startswith("[inferwatch] t: eu: server_error")
    assert "t (hf-legacy): eu: server_error" in mail.text
    assert "one region's own view (eu): the target's state" in mail.text
    assert re.search(r"^  Seen from: +eu only$", mail.text, re.MULTILINE), mail.text
    assert "one region's own view (eu)" in mail.html and "t: eu: server_error" in mail.html

    message = slack.render(event)
    blocks = json.dumps(message["attachments"][0]["blocks"], ensure_ascii=False)
    assert "t: eu: server_error" in blocks and "one region's own view (eu)" in blocks
    assert "Seen from" in blocks and "eu only" in blocks

    note = apprise_channel.render(event)
    assert "one region's own view (eu)" in note.body and "Seen from: eu only" in note.body
    assert note.kind == "warning"  # the target itself is not failing
    assert re.search(r"; confirmed 2026-11-01 09:0\d:00 UTC \(", note.body)  # not "utc"

    payload = webhook.payload(event)
    assert payload["reason"] == payload["event"] == "regional"
    assert payload["regions"] == ["eu"]


@needs_pg
def test_a_change_confirmed_by_several_regions_names_them_on_every_channel(
    pg: Engine,  # noqa: F811
) -> None:
    majority(pg)
    failing, recovered = stored_events(pg)
    confirming = ", ".join(failing.regions)
    assert len(failing.regions) == 2

    assert ("Confirmed by", confirming) in evidence_rows(failing)
    assert f"  Confirmed by:  {confirming}\n" in email.render(failing).text
    assert confirming in email.render(failing).html
    assert confirming in json.dumps(slack.render(failing), ensure_ascii=False)
    assert f"Confirmed by: {confirming}" in apprise_channel.render(failing).body
    assert webhook.payload(recovered)["regions"] == list(recovered.regions)
    # One region alone (or none) adds no line.
    alone = dataclasses.replace(failing, regions=("eu",))
    assert not any(name == "Confirmed by" for name, _ in evidence_rows(alone))


# ---------------------------------------------------------------- prune


def test_prune_deletes_region_results_nobody_took_within_a_day(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'prune.db'}")
    with engine.begin() as conn:
        target = writes.sync_targets(conn, targets_config().targets)["t"]
        now = reads.database_now(conn)
        writes.post_region_results(conn, [(target, 1), (target, 2)], "eu", now - timedelta(days=2))
        writes.post_region_results(conn, [(target, 3)], "us", now - timedelta(hours=1))
    old = now - timedelta(days=400)

    dry = prune(engine, old, old, dry_run=True)
    report = prune(engine, old, old)

    assert dry.region_results == 2 and report.region_results == 2
    with engine.connect() as conn:
        left = conn.execute(select(RegionResultRecord.probe_id)).scalars().all()
        assert left == [3]
        assert conn.scalar(select(func.count()).select_from(RegionResultRecord)) == 1
    # An explicit cutoff wins (what an operator's prune would pass).
    assert prune(engine, old, old, handed_cutoff=now).region_results == 1
