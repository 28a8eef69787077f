"""One composition of one probe (`pipeline.probe_one`), used by the monitor and the CLI alike;
results redacted before anything is cut; facts redacted like the rest."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.agent.service import Monitor
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider
from monitor.domain.evidence import Evidence, Outcome, ProbeResult, RequestSpec, Timings, Verdict
from monitor.domain.redact import Redactor
from monitor.domain.text import MAX_DETAIL
from monitor.probing.engine import Prober
from monitor.probing.pipeline import clean_line, probe_one, to_result
from monitor.store import open_database
from monitor.targets.http import HttpTarget
from tests.helpers import make_config
from tests.helpers_echo import FORMS, leaks

TOKEN = "hf_PIPEline0123456789abcdefXYZ/+_-"


def http_target(url: str = "http://127.0.0.1:9/") -> HttpTarget:
    target = make_config([{"name": "t", "kind": "http", "url": url}]).targets[0]
    assert isinstance(target, HttpTarget)
    return target


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def with_prober(target: HttpTarget, redact: Redactor, token: str | None = None) -> Any:
    async with Prober(2) as prober:
        return await probe_one(target, prober, 2.0, token, redact)


# ---------------------------------------------------------------- probe_one


def test_probe_one_probes_and_judges(provider: FakeProvider) -> None:
    provider.route("/gone", sim.legacy_410())
    result = run(with_prober(http_target(f"{provider.url}/gone"), Redactor([])))

    assert result.outcome == Outcome.DEPRECATED
    assert result.hint.startswith("switch to https://router.huggingface.co ")
    assert result.facts == {"replacement_url": "https://router.huggingface.co"}


def test_probe_one_turns_a_request_that_cannot_be_built_into_a_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: HttpTarget, token: str | None) -> RequestSpec:
        raise RuntimeError(f"cannot build with {token}")

    monkeypatch.setattr(HttpTarget, "build_request", broken)

    result = run(with_prober(http_target(), Redactor([TOKEN]), token=TOKEN))

    assert result.outcome == Outcome.BAD_RESPONSE
    assert result.detail == "inferwatch could not build the request: cannot build with ***"
    assert result.http_status is None


def test_probe_one_survives_a_prober_that_raises() -> None:
    class Broken:
        async def probe(self, spec: RequestSpec, timeout: float) -> Evidence:
            raise ValueError("boom")

    result = run(probe_one(http_target(), Broken(), 1.0, None, Redactor([])))  # type: ignore[arg-type]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "inferwatch could not probe: boom" in result.detail


def test_probe_one_lets_cancellation_through() -> None:
    class Slow:
        async def probe(self, spec: RequestSpec, timeout: float) -> Evidence:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

    async def main() -> None:
        task = asyncio.create_task(probe_one(http_target(), Slow(), 1.0, None, Redactor([])))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_the_monitor_probes_through_probe_one(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduled probe is the same composition: a request that cannot be built is a
    result handed to the writer, not a lost probe."""
    provider.route("/ok", sim.ok_text())
    config = make_config(
        [{"name": "t", "kind": "http", "url": f"{provider.url}/ok"}],
        database=f"sqlite:///{tmp_path / 'm.db'}",
    )
    engine = open_database(config.database)
    submitted: list[ProbeResult] = []

    async def main() -> None:
        monitor = Monitor(config, engine, env={})

        async def submit(result: ProbeResult) -> None:
            submitted.append(result)

        monkeypatch.setattr(monitor.writer, "submit", submit)
        async with Prober(2) as prober:
            monitor.prober = prober
            await monitor._probe("t")
            monkeypatch.setattr(HttpTarget, "build_request", lambda self, token: 1 / 0)
            await monitor._probe("t")

    run(main())
    engine.dispose()

    assert [r.outcome for r in submitted] == [Outcome.OK, Outcome.BAD_RESPONSE]
    assert "could not build the request: division by zero" in submitted[1].detail


# ---------------------------------------------------------------- redact, then cut


def evidence(**kw: Any) -> Evidence:
    return Evidence(
        url="http://x/",
        method="POST",
        started_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        token_sent=True,
        timings=Timings(total_ms=5.0),
        **kw,
    )


def test_details_are_cut_to_one_line_of_max_detail_characters() -> None:
    verdict = Verdict(Outcome.CLIENT_ERROR, detail="HTTP 400: " + "x" * 1000, hint="h" * 500)

    result = to_result(http_target(), evidence(status=400), verdict, Redactor([]))

    assert result.detail == ("HTTP 400: " + "x" * 1000)[: MAX_DETAIL - 1] + "…"
    assert len(result.hint) == MAX_DETAIL and result.hint.endswith("…")
    assert to_result(
        http_target(), evidence(), Verdict(Outcome.OK, "short"), Redactor([])
    ).detail == ("short")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_token_where_the_line_is_cut_is_masked_whole(form: str) -> None:
    """Wherever the cut would fall in the encoded token, the token is masked first."""
    redact = Redactor([TOKEN])
    encoded = FORMS[form](TOKEN)
    for lead in range(MAX_DETAIL - len(encoded) - 20, MAX_DETAIL + 2, 3):
        text = "y" * max(lead, 0) + " " + encoded + " and then " + "z" * 400
        line = clean_line(text, redact)
        assert leaks(line, [TOKEN]) == [], (lead, line[-60:])
        assert len(line) == MAX_DETAIL and line.endswith("…")
        if lead + len(encoded) < MAX_DETAIL - 10:  # the whole token was before the cut
            assert "***" in line


def test_a_megabyte_message_is_cut_without_redacting_all_of_it() -> None:
    redact = Redactor([TOKEN])
    text = ("word " * 200_000) + TOKEN
    started = time.perf_counter()
    line = clean_line(text, redact)
    assert time.perf_counter() - started < 0.5
    assert len(line) == MAX_DETAIL and line.endswith("…")


def test_fact_strings_are_redacted_and_stay_json() -> None:
    url = f"https://new.example/v1?access_token={TOKEN}"
    verdict = Verdict(
        Outcome.DEPRECATED,
        detail="HTTP 410",
        facts={
            "replacement_url": url,
            "retry_after_s": 2.5,
            "estimated_time_s": float("nan"),
            "nested": {"k": [TOKEN]},
        },
    )

    result = to_result(http_target(), evidence(status=410), verdict, Redactor([TOKEN]))

    assert result.facts == {
        "replacement_url": "https://new.example/v1?access_token=***",
        "retry_after_s": 2.5,
        "estimated_time_s": None,  # NaN is not JSON
        "nested": {"k": ["***"]},
    }
    assert json.loads(json.dumps(result.facts, allow_nan=False)) == result.facts


def test_facts_are_not_printed_by_the_probe_command() -> None:
    """`inferwatch probe --format json` keeps its fields; facts go to the store."""
    verdict = Verdict(Outcome.DEPRECATED, facts={"replacement_url": "https://x"})
    result = to_result(http_target(), evidence(status=410), verdict, Redactor([]))
    assert "facts" not in result.as_dict()
