"""Results redacted before anything is cut; facts redacted like the rest."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.domain.evidence import Evidence, Outcome, Timings, Verdict
from monitor.domain.redact import Redactor
from monitor.domain.text import MAX_DETAIL
from monitor.probing.pipeline import clean_line, to_result
from monitor.targets.http import HttpTarget
from tests.conftest import make_config
from tests.helpers_echo import FORMS, leaks

TOKEN = "hf_PIPEline0123456789abcdefXYZ/+_-"


def http_target(url: str = "http://127.0.0.1:9/") -> HttpTarget:
    target = make_config([{"name": "t", "kind": "http", "url": url}]).targets[0]
    assert isinstance(target, HttpTarget)
    return target


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
