"""What probing costs: tokens per probe from the provider's `usage`, stored, and priced per month
by `inferwatch check`, which also warns about model targets probed more often than a minute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain import cost
from monitor.store import reads, save_results, sync_targets
from monitor.store.db import open_database
from tests.helpers import make_config, probe_once, write_config

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
ENV = {"HF_TOKEN": "hf_costtest0123456789abcdef"}
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


def chat(base: str, **more: object) -> dict[str, object]:
    return {
        "name": "chat",
        "kind": "openai-chat",
        "base_url": base,
        "model": LLAMA,
        "token_env": "HF_TOKEN",
        **more,
    }


def test_a_probe_records_the_tokens_its_provider_billed_and_stores_them(
    provider: FakeProvider, db_url: str
) -> None:
    config = make_config([chat(provider.url)], env=ENV, database=db_url)
    provider.route("/chat/completions", sim.chat_ok())  # usage: 12 prompt + 1 completion

    result = probe_once(config, ENV)["chat"]

    assert result.usage_tokens == 13
    assert result.as_dict()["usage_tokens"] == 13
    engine = open_database(db_url)
    with Session(engine) as session, session.begin():
        save_results(session, [result], sync_targets(session, config.targets, config.redactor()))
    with Session(engine) as session:
        assert reads.recent_usage(session, "chat") == [13]


def test_embeddings_report_their_usage_and_a_total_is_summed_when_missing(
    provider: FakeProvider,
) -> None:
    embed = {**chat(provider.url), "name": "embed", "kind": "openai-embeddings", "model": "m"}
    config = make_config([chat(provider.url), embed], env=ENV)
    answer = sim.chat_ok()
    no_total = {**answer.body, "usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    provider.route("/chat/completions", Reply(200, no_total))
    provider.route("/embeddings", sim.openai_embeddings_ok(384))  # usage: 4 tokens

    results = probe_once(config, ENV)

    assert results["chat"].usage_tokens == 10
    assert results["embed"].usage_tokens == 4


@pytest.mark.parametrize(
    "reply",
    [
        sim.openai_429_rate_limit(),
        Reply(200, {"choices": [{"message": {"content": "OK"}}]}),  # no usage block
        Reply(200, {"choices": [{"message": {}}], "usage": {"total_tokens": "13"}}),
        Reply(200, {"choices": [{"message": {}}], "usage": {"total_tokens": True}}),
    ],
    ids=["error answer", "no usage", "usage as text", "usage as bool"],
)
def test_no_figure_is_made_up(provider: FakeProvider, reply: Reply) -> None:
    config = make_config([chat(provider.url)], env=ENV)
    provider.route("/chat/completions", reply)

    assert probe_once(config, ENV)["chat"].usage_tokens is None


def test_the_monthly_figure_is_the_probes_of_thirty_days() -> None:
    assert cost.tokens_per_month(13, 60) == 13 * 43_200
    assert cost.tokens_per_month(13, 300) == 13 * 8_640
    assert cost.tokens_per_probe([13, 40, 14]) == 14  # the median: one long answer is not typical
    assert cost.tokens_per_probe([]) is None
    assert cost.cost_line(13, 60) == "13 tokens a probe, about 561,600 a month at this interval"


def _config(tmp_path: Path, provider: FakeProvider, chat_every: str) -> Path:
    return write_config(
        tmp_path / "inferwatch.yaml",
        [
            chat(provider.url, interval=chat_every),
            {
                "name": "page",
                "kind": "http",
                "url": f"{provider.url}/status",
                "interval": "20s",
                "timeout": "5s",
            },
        ],
        database="sqlite:///probes.db",
    )


def test_check_warns_about_a_model_probed_more_often_than_a_minute(
    provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV["HF_TOKEN"])
    path = _config(tmp_path, provider, chat_every="30s")

    result = CliRunner().invoke(app, ["check", "-c", str(path)])

    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, result.stderr  # the http target every 20 s costs nothing
    assert "target 'chat': field 'interval'" in warnings[0]
    assert "spends tokens on every probe" in warnings[0]
    assert "every 30 s" in warnings[0]
    # No probe yet: no figure, and check did not create the database to find that out.
    assert "cost: not measured yet" in result.stdout
    assert not (tmp_path / "probes.db").exists()


def test_run_logs_the_same_warning_at_start(provider: FakeProvider, tmp_path: Path) -> None:
    """`run` logs config_warnings at start (monitor/cli/running.py): the cost warning is one."""
    from monitor.config.load import config_warnings, load_config

    config = load_config(_config(tmp_path, provider, chat_every="30s"), env=ENV)

    notes = [str(w) for w in config_warnings(config, ENV)]
    assert [n for n in notes if "spends tokens on every probe" in n] == [
        n for n in notes if "target 'chat'" in n
    ]
    assert len(notes) == 1


def test_check_prices_a_month_of_probes_from_the_last_measured_ones(
    provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV["HF_TOKEN"])
    monkeypatch.chdir(tmp_path)
    path = _config(tmp_path, provider, chat_every="5m")
    provider.route("/chat/completions", sim.chat_ok())
    provider.route("/status", sim.ok_text())
    probed = CliRunner().invoke(app, ["probe", "-c", str(path), "--format", "json"])
    assert probed.exit_code == 0, probed.output
    assert {r["target"]: r["usage_tokens"] for r in json.loads(probed.stdout)} == {
        "chat": 13,
        "page": None,
    }

    result = CliRunner().invoke(app, ["check", "-c", str(path)])

    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert "cost: 13 tokens a probe, about 112,320 a month at this interval" in result.stdout
    assert result.stdout.count("cost:") == 1  # the http target spends no tokens


def test_the_target_page_shows_what_probing_the_target_costs(
    provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    db_url = f"sqlite:///{tmp_path / 'probes.db'}"
    path = _config(tmp_path, provider, chat_every="5m")
    path.write_text(path.read_text().replace("sqlite:///probes.db", db_url))
    provider.route("/chat/completions", sim.chat_ok())
    provider.route("/status", sim.ok_text())
    config = make_config(
        [chat(provider.url, interval="5m"), {"name": "page", "kind": "http", "url": provider.url}],
        env=ENV,
    )
    results = list(probe_once(config, ENV).values())
    with Session(engine := open_database(db_url)) as session, session.begin():
        save_results(session, results, sync_targets(session, config.targets, config.redactor()))
    engine.dispose()
    monkeypatch.setenv("INFERWATCH_CONFIG", str(path))
    monkeypatch.delenv("INFERWATCH_DATABASE", raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()

    def captions(name: str) -> list[str]:
        at = AppTest.from_file(str(DASHBOARD), default_timeout=30)
        at.run()
        at.query_params.update(name=name)
        at.switch_page("views/target.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return [c.value for c in at.caption]

    assert "Probe cost: 13 tokens a probe, about 112,320 a month at this interval." in captions(
        "chat"
    )
    assert not [c for c in captions("page") if c.startswith("Probe cost")]
    st.cache_data.clear()
    st.cache_resource.clear()
