"""Streamed probes against a real local SSE server (the fake provider): time to first token,
tokens per second, keep-alives, errors after the 200, endless and oversized streams, `expect`."""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import streamlit as st
import yaml
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboard import charts
from monitor.agent.writer import Writer
from monitor.config.load import ConfigError
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome, ProbeResult, StreamEvent
from monitor.probing.stream import MAX_EVENTS
from monitor.store import open_database, reads
from monitor.targets.openai_chat import OpenAIChatTarget
from tests.helpers import make_config, probe_once

PATH = "/v1/chat/completions"
APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def chat(provider: FakeProvider, reply: Reply, **fields: Any) -> dict[str, Any]:
    provider.route(PATH, reply)
    return {
        "name": "chat",
        "kind": "openai-chat",
        "model": "gpt-4o-mini",
        "base_url": f"{provider.url}/v1",
        "stream": True,
        "timeout": "5s",
        **fields,
    }


def probe(target: dict[str, Any], env: dict[str, str] | None = None, **prober: Any) -> ProbeResult:
    return probe_once(make_config([target], env=env), env, **prober)["chat"]


# ---------------------------------------------------------------- time to first token, pace


def test_ttft_is_the_known_delay_before_the_first_token_within_20_ms(
    provider: FakeProvider,
) -> None:
    # The role-only chunk and two keep-alive comments arrive at once; the first token 300 ms on.
    reply = sim.openai_stream(("O", "K"), first_after=0.3, processing_comments=2)

    result = probe(chat(provider, reply))

    assert result.outcome == Outcome.OK, result.detail
    ttft = result.timings.ttft_ms
    assert ttft is not None and abs(ttft - 300) <= 20, ttft
    assert result.as_dict()["ttft_ms"] == round(ttft, 1)
    assert result.timings.ttfb_ms is not None and result.timings.ttfb_ms < 100  # head at once
    assert "first token after" in result.detail


def test_tokens_per_second_come_from_a_known_pacing(provider: FakeProvider) -> None:
    # 11 tokens 30 ms apart: 10 tokens after the first over 300 ms = 33.3 tokens/s.
    reply = sim.openai_stream(tuple("abcdefghijk"), every=0.03)

    result = probe(chat(provider, reply))

    assert result.outcome == Outcome.OK, result.detail
    assert result.tokens_per_s is not None and 30 <= result.tokens_per_s <= 34.5
    assert result.as_dict()["tokens_per_s"] == round(result.tokens_per_s, 1)
    assert result.usage_tokens == 12 + 11  # the include_usage chunk: prompt + completion


def test_the_probe_table_shows_the_first_token_and_the_pace(provider: FakeProvider) -> None:
    from rich.console import Console

    from monitor.cli.report import results_table

    result = probe(chat(provider, sim.openai_stream(tuple("abcdefghijk"), every=0.03)))
    console = Console(width=120, record=True)
    console.print(results_table([result]))

    shown = console.export_text()
    assert f"TTFT {result.timings.ttft_ms:.0f} ms" in shown
    assert f"{result.tokens_per_s:.0f} tok/s" in shown


def test_without_usage_the_content_chunks_are_counted(provider: FakeProvider) -> None:
    reply = sim.openai_stream(tuple("abcdef"), every=0.03, usage=False)

    result = probe(chat(provider, reply))

    assert result.outcome == Outcome.OK, result.detail
    assert result.tokens_per_s is not None and 30 <= result.tokens_per_s <= 34.5  # 5 / 150 ms
    assert result.usage_tokens is None


def test_the_request_asks_for_a_small_stream_with_usage(provider: FakeProvider) -> None:
    probe(chat(provider, sim.openai_stream()))
    probe(chat(provider, sim.openai_stream(), max_tokens=32))

    first, second = (json.loads(seen.body) for seen in provider.requests)
    assert first["stream"] is True and first["stream_options"] == {"include_usage": True}
    assert first["max_tokens"] == 16  # GPT-5-class models refuse fewer
    assert second["max_tokens"] == 32  # a budget set in the config is kept
    assert provider.requests[0].headers["accept"] == "text/event-stream"


def test_a_target_without_stream_sends_what_it_always_sent(provider: FakeProvider) -> None:
    result = probe(chat(provider, sim.chat_ok(model="gpt-4o-mini"), stream=False))

    body = json.loads(provider.requests[0].body)
    assert "stream" not in body and "stream_options" not in body and body["max_tokens"] == 1
    assert result.outcome == Outcome.OK
    assert result.timings.ttft_ms is None and result.tokens_per_s is None


# ---------------------------------------------------------------- what is not a token


def test_a_role_chunk_and_keep_alives_are_no_first_token() -> None:
    def at(ms: float, data: str, event: str = "message") -> StreamEvent:
        return StreamEvent(event, data, ms)

    role = '{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
    token = '{"choices":[{"index":0,"delta":{"content":"OK"},"finish_reason":null}]}'
    done = '{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'
    events = [at(5, role), at(9, ""), at(250, token), at(260, token), at(270, done)]

    reading = OpenAIChatTarget(kind="openai-chat", name="c", model="m").read_stream(events)

    assert reading.ttft_ms == 250 and reading.last_token_ms == 260
    assert reading.output_tokens == 2 and reading.ended  # a finish reason, even without [DONE]
    assert reading.tokens_per_s == pytest.approx(100.0)  # 1 token after the first in 10 ms
    one_token = OpenAIChatTarget(kind="openai-chat", name="c", model="m").read_stream(events[:3])
    assert one_token.ttft_ms == 250 and one_token.tokens_per_s is None and not one_token.ended


def test_the_body_excerpt_shows_the_first_events_as_sent(provider: FakeProvider) -> None:
    result = probe(chat(provider, sim.openai_stream()))

    assert result.body_excerpt.startswith('data: {"id":"chatcmpl-')
    assert '"delta":{"role":"assistant"' in result.body_excerpt


# ---------------------------------------------------------------- failures after the 200


def test_an_error_event_after_the_200_is_judged_like_the_error_it_carries(
    provider: FakeProvider,
) -> None:
    result = probe(chat(provider, sim.openrouter_stream_error()))

    assert result.http_status == 200
    assert result.outcome == Outcome.SERVER_ERROR
    assert result.detail == "HTTP 200, then an error event: Provider disconnected unexpectedly"


def test_an_answer_that_is_not_a_stream_is_a_bad_response(provider: FakeProvider) -> None:
    result = probe(chat(provider, sim.chat_ok(model="gpt-4o-mini")))

    assert result.outcome == Outcome.BAD_RESPONSE
    assert result.detail == "expected an event stream, got application/json"
    assert "stream: true" in result.hint


def test_an_error_answer_to_a_streamed_request_is_read_as_ever(provider: FakeProvider) -> None:
    key = "sk-proj-streamedprobekey0123456789"
    target = chat(provider, sim.openai_401_invalid_key(), token_env="OPENAI_KEY")

    result = probe(target, env={"OPENAI_KEY": key})

    assert result.outcome == Outcome.AUTH_INVALID
    assert "Incorrect API key provided" in result.detail
    assert provider.requests[0].headers["authorization"] == f"Bearer {key}"
    assert key not in json.dumps(result.as_dict())


def test_a_stream_without_a_token_or_an_end_is_no_success(provider: FakeProvider) -> None:
    full = sim.openai_stream(("O", "K"))
    assert full.chunks is not None
    pieces = list(full.chunks)

    nothing = probe(chat(provider, Reply(200, chunks=[pieces[0], pieces[-1]])))  # role, [DONE]
    cut_off = probe(chat(provider, Reply(200, chunks=pieces[:2])))  # role, one token, closed

    assert nothing.outcome == Outcome.BAD_RESPONSE
    assert nothing.detail == "the stream sent 2 events but no content token"
    assert cut_off.outcome == Outcome.SERVER_ERROR
    assert cut_off.detail == "the stream stopped after 2 events, before its end"
    assert cut_off.timings.ttft_ms is not None  # what did arrive is kept


# ---------------------------------------------------------------- Anthropic's named events


def claude(provider: FakeProvider, reply: Reply, **fields: Any) -> dict[str, Any]:
    provider.route("/v1/messages", reply)
    return {
        "name": "chat",
        "kind": "anthropic-messages",
        "model": "claude-sonnet-4-5",
        "base_url": provider.url,
        "token_env": "ANTHROPIC_API_KEY",
        "stream": True,
        "timeout": "5s",
        **fields,
    }


ANTHROPIC_ENV = {"ANTHROPIC_API_KEY": "sk-ant-api03-streamedprobe0123456789"}


def test_anthropic_ttft_skips_the_ping_and_pace_comes_from_its_usage(
    provider: FakeProvider,
) -> None:
    # message_start, content_block_start and a ping at once; 6 text deltas, the first at
    # 250 ms, then one every 30 ms: 5 tokens over 150 ms = 33.3 tokens/s.
    reply = sim.anthropic_stream(tuple("abcdef"), first_after=0.25, every=0.03)

    result = probe(claude(provider, reply), env=ANTHROPIC_ENV)

    assert result.outcome == Outcome.OK, result.detail
    assert result.timings.ttft_ms is not None and abs(result.timings.ttft_ms - 250) <= 20
    assert result.tokens_per_s is not None and 30 <= result.tokens_per_s <= 34.5
    assert result.usage_tokens == 12 + 6  # message_start's input, message_delta's output
    sent = json.loads(provider.requests[0].body)
    assert sent["stream"] is True and sent["max_tokens"] == 16
    assert provider.requests[0].headers["accept"] == "text/event-stream"
    assert result.body_excerpt.startswith("event: message_start\ndata: {")


def test_anthropic_error_event_after_the_200_is_read_as_that_error(
    provider: FakeProvider,
) -> None:
    result = probe(claude(provider, sim.anthropic_stream_error()), env=ANTHROPIC_ENV)

    assert result.http_status == 200
    assert result.outcome == Outcome.OVERLOADED
    assert result.detail == "HTTP 200, then an error event: Overloaded"
    assert "overloaded for everyone" in result.hint


def test_anthropic_stream_without_a_text_delta_is_no_success(provider: FakeProvider) -> None:
    result = probe(claude(provider, sim.anthropic_stream(())), env=ANTHROPIC_ENV)

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "but no content token" in result.detail


# ---------------------------------------------------------------- hostile streams end


def test_an_endless_stream_of_keep_alives_ends_at_the_timeout(provider: FakeProvider) -> None:
    began = time.monotonic()
    result = probe(chat(provider, sim.endless_pings(), timeout="0.5s"))

    assert result.outcome == Outcome.TIMEOUT
    assert result.detail.endswith("(HTTP 200, 0 events, no content token)")  # comments only
    assert time.monotonic() - began < 3
    assert result.latency_ms is not None and 500 <= result.latency_ms < 1000
    assert result.body_excerpt.startswith(": ping\n\n")  # what arrived before it is kept


def test_a_model_stalling_mid_answer_times_out_with_its_first_token_kept(
    provider: FakeProvider,
) -> None:
    started = sim.openai_stream(("O",), first_after=0.1)
    assert started.chunks is not None
    stalled = [*list(started.chunks)[:2], *itertools.repeat((0.05, ": keep-alive\n\n"), 40)]

    result = probe(chat(provider, Reply(200, chunks=stalled), timeout="0.5s"))

    assert result.outcome == Outcome.TIMEOUT
    assert result.timings.ttft_ms is not None and abs(result.timings.ttft_ms - 100) <= 20
    assert re.search(r"\(HTTP 200, 2 events, first token after \d+ ms\)$", result.detail)


def test_millions_of_tiny_events_end_at_the_event_cap(provider: FakeProvider) -> None:
    flood = Reply(200, chunks=itertools.repeat((0.0, "data: {}\n\n" * 500)))

    result = probe(chat(provider, flood))

    assert result.outcome == Outcome.BAD_RESPONSE
    assert result.detail.startswith(f"the stream was cut at the read limit after {MAX_EVENTS} ")


def test_one_endless_line_ends_at_the_byte_cap(provider: FakeProvider) -> None:
    line = Reply(200, chunks=itertools.repeat((0.0, "data: " + "y" * 65536)))

    result = probe(chat(provider, line), max_body_bytes=256 * 1024)

    assert result.outcome == Outcome.BAD_RESPONSE
    assert result.detail == "the stream was cut at the read limit after 0 events, before its end"


def test_an_endless_flood_ends_at_the_byte_cap(provider: FakeProvider) -> None:
    began = time.monotonic()
    result = probe(chat(provider, sim.endless_flood()), max_body_bytes=256 * 1024)

    assert result.outcome == Outcome.BAD_RESPONSE
    assert result.detail.startswith("the stream was cut at the read limit after ")
    assert time.monotonic() - began < 3


# ---------------------------------------------------------------- expect


def test_a_late_first_token_is_slow_naming_the_limit(provider: FakeProvider) -> None:
    reply = sim.openai_stream(("O", "K"), first_after=0.25)

    result = probe(chat(provider, reply, expect={"max_ttft": "100ms"}))

    assert result.outcome == Outcome.SLOW
    assert "over the max_ttft limit of 100 ms" in result.detail
    assert result.timings.ttft_ms is not None and result.timings.ttft_ms >= 240


def test_a_slow_pace_is_slow_naming_the_limit(provider: FakeProvider) -> None:
    reply = sim.openai_stream(tuple("abcde"), every=0.05)  # 20 tokens/s

    result = probe(chat(provider, reply, expect={"min_tokens_per_s": 50}))
    fast_enough = probe(chat(provider, reply, expect={"min_tokens_per_s": 10, "max_ttft": "2s"}))

    assert result.outcome == Outcome.SLOW
    assert "under the min_tokens_per_s limit of 50" in result.detail
    assert fast_enough.outcome == Outcome.OK, fast_enough.detail


def test_expect_limits_are_checked_in_the_config() -> None:
    target = {"name": "c", "kind": "openai-chat", "model": "m", "stream": True}
    config = make_config([target | {"expect": {"max_ttft": "2s", "min_tokens_per_s": 20}}])
    assert config.targets[0].expect.max_ttft == 2.0

    with pytest.raises(ConfigError) as err:
        make_config([target | {"expect": {"min_tokens_per_s": 0}}])
    assert "min_tokens_per_s" in str(err.value)


def test_the_readme_streamed_example_is_a_valid_config() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Streamed probes", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None

    (target,) = make_config(yaml.safe_load(block.group(1))).targets

    assert isinstance(target, OpenAIChatTarget) and target.stream
    assert target.expect.max_ttft == 2.0 and target.expect.min_tokens_per_s == 20
    assert target.build_request("sk-test").json["max_tokens"] == 16


@pytest.mark.parametrize(
    ("target", "fix"),
    [
        ({"kind": "openai-chat", "model": "m"}, "set stream: true"),
        ({"kind": "http", "url": "https://example.com/health"}, "remove it"),
    ],
)
def test_stream_limits_on_a_target_that_does_not_stream_are_a_config_error(
    target: dict[str, Any], fix: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make_config([{"name": "t", **target, "expect": {"max_ttft": "2s"}}])
    assert str(err.value) == (
        f"test.yaml:2: target 't': field 'expect.max_ttft': applies only to streamed probes: {fix}"
    )


# ---------------------------------------------------------------- stored and charted

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


def stored_pace(db_url: str, provider: FakeProvider) -> Writer:
    """Ten streamed probes in the hour T0 (TTFT 100..1000 ms) and one plain probe, written
    by the real writer into SQLite migrated by Alembic."""
    config = make_config([chat(provider, sim.openai_stream(tuple("abc"), every=0.01))])
    streamed = probe_once(config)["chat"]
    assert streamed.timings.ttft_ms is not None
    results = [
        replace(
            streamed,
            checked_at=T0 + timedelta(minutes=i),
            timings=replace(streamed.timings, ttft_ms=100.0 * (i + 1)),
            tokens_per_s=float(10 + i),
        )
        for i in range(10)
    ]
    writer = Writer(open_database(db_url), config)
    writer.start_run()
    writer.write_batch(results)
    return writer


def test_ttft_and_pace_are_stored_and_read_per_hour(db_url: str, provider: FakeProvider) -> None:
    writer = stored_pace(db_url, provider)

    with Session(writer.engine) as s:
        hours = reads.stream_pace(s, "chat", T0 - timedelta(hours=1), T0 + timedelta(hours=2))
        other = reads.stream_pace(s, "no-such-target", T0, T0 + timedelta(hours=1))

    assert [b.start for b in hours] == [T0 + timedelta(hours=h) for h in (-1, 0, 1)]
    before, busy, after = hours
    assert before.probes == 0 and before.ttft_p50_ms is None  # an hour without: a gap
    assert busy.probes == 10
    assert busy.ttft_p50_ms == pytest.approx(500) and busy.ttft_p95_ms == pytest.approx(1000)
    assert busy.tokens_per_s_p50 == pytest.approx(14)
    assert after.probes == 0 and other == []


def test_the_stream_chart_draws_ttft_p50_p95_and_the_pace() -> None:
    at = [T0, T0 + timedelta(hours=1)]
    buckets = [
        {"start": at[0], "ttft_p50_ms": 300.0, "ttft_p95_ms": 900.0, "tokens_per_s_p50": 40.0},
        {"start": at[1], "ttft_p50_ms": None, "ttft_p95_ms": None, "tokens_per_s_p50": None},
    ]

    fig = charts.stream_chart(buckets, ZoneInfo("UTC"))

    lines = {t.name: list(t.y) for t in fig.data}
    assert lines == {
        "TTFT p50": [300.0, None],
        "TTFT p95": [900.0, None],
        "tokens/s p50": [40.0, None],
    }


def test_the_target_page_shows_the_ttft_chart_of_a_streamed_target(
    db_url: str, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stored_pace(db_url, provider)
    monkeypatch.setenv("INFERWATCH_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("INFERWATCH_DATABASE", db_url)
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.query_params.update({"name": "chat"})
    at.switch_page("views/target.py").run()

    assert not at.exception, [e.value for e in at.exception]
    assert "Time to first token" in [h.value for h in at.subheader]
