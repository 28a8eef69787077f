"""Time the read layer (monitor/store/reads.py) on a history written by the real Writer.

Generates a synthetic history (targets answering as real providers do: blips, outages,
retirements, lost token scopes, flapping; the monitor down three times) and writes it through
monitor.agent.writer.Writer.write_batch, in large batches, so probes, rollups, states,
transitions, incidents and queued alerts are exactly what the monitor writes. Then times
every read the dashboard pages and the review commands run, each in a fresh Session on a
read-only engine, against a baseline that computes uptime from the raw probes.
Budgets: the overview under 100 ms, every page under 1 s. Results: docs/benchmarks.md.

    .venv/bin/python benchmarks/dashboard_queries.py               # 100 targets x 7 days
    .venv/bin/python benchmarks/dashboard_queries.py --days 90     # full scale, ~13M probes
    .venv/bin/python benchmarks/dashboard_queries.py --reuse       # time again, no rebuild

Generation goes at the Writer's pace: 10,000 to 16,000 results a second in batches of 5,000 on
the machine of docs/benchmarks.md, so one to two minutes for the default ~1M probes and
(not measured) a quarter of an hour or more for the full scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import random
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy
import yaml
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from monitor.agent.writer import Writer
from monitor.config.load import parse_config
from monitor.config.model import Config
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.domain.history import UPTIME_WINDOWS
from monitor.store import make_engine, open_database, reads

HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE / ".data" / "history.db"
DEFAULT_END = datetime(2026, 11, 20, 14, 37, tzinfo=UTC)  # fixed, so every run builds the same DB
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = 1_000_000
DAY_US = 86_400 * US
HOUR_US = 3_600 * US
DASHBOARD_URL = "http://localhost:8501"
RECIPIENTS = ["oncall@example.com"]

OVERVIEW_BUDGET_MS = 100.0
PAGE_BUDGET_MS = 1000.0


# ------------------------------------------------------------------ what targets answer


@dataclass(frozen=True)
class Answer:
    """One kind of answer: its outcome, status, words, and how its latency is drawn (ms)."""

    outcome: Outcome
    status: int | None
    detail: str  # "{ms}" is filled per probe
    hint: str = ""
    latency: tuple[float, float] | None = None  # uniform range; None: the target's lognormal
    facts: dict[str, Any] = field(default_factory=dict)  # as the classifier states them


GONE = (
    "https://api-inference.huggingface.co is no longer supported. "
    "Please use https://router.huggingface.co instead."
)
SCOPE = (
    "This authentication method does not have sufficient permissions to call Inference "
    "Providers on behalf of user bench-user"
)
# Codes index this list; DEPRECATED comes in two wordings (404 first, then 410), as in the seed.
ANSWERS = [
    Answer(Outcome.OK, 200, "HTTP 200 in {ms} ms"),
    Answer(
        Outcome.SLOW,
        200,
        "HTTP 200 in {ms} ms, over the 8000 ms limit",
        "the endpoint works but answers slowly; see the latency chart for a trend",
        (8000.0, 14000.0),
    ),
    Answer(
        Outcome.LOADING,
        503,
        "HTTP 503: Model {model} is currently loading",
        "the model is starting and should answer in about 20 s",
        (80.0, 300.0),
    ),
    Answer(
        Outcome.SERVER_ERROR,
        502,
        "HTTP 502: HTML page: 502 Bad Gateway",
        "the provider failed; it is not your request",
        (30.0, 900.0),
    ),
    Answer(
        Outcome.OVERLOADED,
        503,
        "HTTP 503: Service Unavailable: the model is overloaded, please retry later",
        "the provider is over capacity; it usually passes",
        (50.0, 400.0),
    ),
    Answer(
        Outcome.RATE_LIMITED,
        429,
        "HTTP 429: Rate limit reached for requests",
        "rate limited; resets in 12 s (retry-after)",
        (20.0, 120.0),
        {"retry_after_s": 12.0},
    ),
    Answer(
        Outcome.TIMEOUT,
        None,
        "ReadTimeout: no answer within 10.0 s",
        "a cold model, an overloaded provider or a network problem; raise `timeout` if answers "
        "are just slow",
        (10000.0, 10030.0),
    ),
    Answer(
        Outcome.CONNECT_ERROR,
        None,
        "ConnectError: [Errno 111] Connection refused",
        "nothing accepted the connection: is the service running and the port right?",
        (0.5, 30.0),
    ),
    Answer(
        Outcome.DEPRECATED,
        404,
        "HTTP 404: Not Found",
        "the serverless Inference API is retired; move to https://router.huggingface.co "
        "(kinds hf-inference, openai-chat or openai-embeddings)",
        (40.0, 160.0),
    ),
    Answer(
        Outcome.DEPRECATED,
        410,
        f"HTTP 410: {GONE}",
        "switch to https://router.huggingface.co (named by the provider as the replacement)",
        (40.0, 160.0),
        {"replacement_url": "https://router.huggingface.co"},
    ),
    Answer(
        Outcome.TOKEN_SCOPE,
        403,
        f"HTTP 403: {SCOPE}",
        "create a token with 'Make calls to Inference Providers' at "
        "https://huggingface.co/settings/tokens (or tick it on this token) and put it in "
        "$HF_TOKEN",
        (60.0, 250.0),
        {
            "missing_permission": "Make calls to Inference Providers",
            "missing_permission_id": "inference.serverless.write",
        },
    ),
    Answer(
        Outcome.PAYMENT_REQUIRED,
        402,
        "HTTP 402: You have exceeded your monthly included credits for Inference Providers. "
        "Subscribe to PRO to get 20x more monthly included credits.",
        "the account is out of credits or quota; add credits or raise the plan "
        "(retrying will not help)",
        (60.0, 250.0),
    ),
]
(
    OK,
    SLOW,
    LOADING,
    SERVER_ERROR,
    OVERLOADED,
    RATE_LIMITED,
    TIMEOUT,
    CONNECT_ERROR,
    GONE_404,
    GONE_410,
    TOKEN_SCOPE,
    PAYMENT,
) = range(len(ANSWERS))

# One-probe blips every target sees now and then, and what longer outages look like.
BLIP_RATE = 0.002
BLIP_CODES = (LOADING, SERVER_ERROR, TIMEOUT, RATE_LIMITED, SLOW)
BLIP_WEIGHTS = (0.4, 0.3, 0.15, 0.1, 0.05)
OUTAGE_CODES = (SERVER_ERROR, TIMEOUT, OVERLOADED, CONNECT_ERROR, RATE_LIMITED)
OUTAGE_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)
OUTAGES_PER_DAY = 0.1
FLAKY_OUTAGES_PER_DAY = 1.0

KINDS = ("hf-inference", "openai-chat", "openai-embeddings", "hf-legacy", "http", "hf-whoami")
MODELS = (
    "sentence-transformers/all-MiniLM-L6-v2",
    "meta-llama/Llama-3.1-8B-Instruct",
    "BAAI/bge-small-en-v1.5",
    "distilbert-base-uncased",
    "Qwen/Qwen2.5-7B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
)
# Special targets (one in ~11) carry a long failure period of their own, in this rotation.
SCENARIOS = ("deprecated", "token_scope", "flapping", "payment", "token_fixed")


# ------------------------------------------------------------------ the plan


@dataclass
class TargetPlan:
    id: int
    name: str
    kind: str
    model: str
    url: str  # the configured endpoint, filled in from the parsed config
    median_ms: float
    scenario: str
    flaky: bool
    excerpt: str  # what an ok answer's body starts with (the monitor keeps 512 bytes)
    episodes: list[tuple[int, int, int, float]] = field(default_factory=list)
    # (first slot, end slot, code, share of ok probes inside)


@dataclass
class Plan:
    seed: int
    start_us: int
    slot_us: int
    slots: int
    targets: list[TargetPlan]
    present: np.ndarray  # per slot: was the monitor running?
    runs: list[tuple[int, int, bool]]  # (first slot, end slot, stopped cleanly)

    @property
    def end_us(self) -> int:
        return self.start_us + self.slots * self.slot_us


def build_plan(targets: int, days: float, per_minute: float, seed: int, end: datetime) -> Plan:
    slot_us = round(60 * US / per_minute)
    if HOUR_US % slot_us:
        raise SystemExit("--per-minute must divide an hour into whole probe intervals")
    end_us = _us(end)
    end_us -= end_us % slot_us  # slots line up with hours, so do the rollups' buckets
    slots = int(days * DAY_US // slot_us)
    start_us = end_us - slots * slot_us
    per_hour = HOUR_US // slot_us
    rng = random.Random(seed)

    # The monitor was down three times: an upgrade, a restart, a crash noticed hours later.
    present = np.ones(slots, dtype=bool)
    cuts = []
    for fraction, hours, clean in ((0.22, 2.0, True), (0.57, 0.4, True), (0.78, 6.0, False)):
        a = int(fraction * slots)
        b = min(slots, a + max(1, int(hours * per_hour)))
        present[a:b] = False
        cuts.append((a, b, clean))
    runs, first = [], 0
    for a, b, clean in cuts:
        runs.append((first, a, clean))
        first = b
    runs.append((first, slots, False))  # still running: "now" is its last heartbeat

    step_ = min(11, max(2, targets // 5))
    plans = []
    for i in range(targets):
        kind = KINDS[i % len(KINDS)]
        model = MODELS[(i * 7) % len(MODELS)]
        special = i % step_ == 1
        scenario = SCENARIOS[(i // step_) % len(SCENARIOS)] if special else "healthy"
        t = TargetPlan(
            id=i + 1,
            name=f"{_stem(kind)}-{i:03d}",
            kind=kind,
            model=model,
            url="",
            median_ms=math.exp(rng.uniform(math.log(60), math.log(900))),
            scenario=scenario,
            flaky=i % 10 == 6,
            excerpt=_excerpt(kind, model, rng),
        )
        t.episodes = _episodes(t, rng, slots, slot_us, days)
        plans.append(t)
    # Shared provider outages: every router-backed target of a kind at once.
    for fraction, minutes, kind, code in (
        (0.37, 47, "hf-inference", SERVER_ERROR),
        (0.71, 18, "openai-chat", TIMEOUT),
    ):
        a = int(fraction * slots)
        b = min(slots, a + max(1, int(minutes * 60 * US // slot_us)))
        for t in plans:
            if t.kind == kind:
                t.episodes.append((a, b, code, 0.1))
    for t in plans:
        # Contract breaks win over outages that overlap them: apply them last.
        t.episodes.sort(key=lambda e: e[2] >= GONE_404)
    return Plan(seed, start_us, slot_us, slots, plans, present, runs)


def _episodes(
    t: TargetPlan, rng: random.Random, slots: int, slot_us: int, days: float
) -> list[tuple[int, int, int, float]]:
    out = []
    rate = FLAKY_OUTAGES_PER_DAY if t.flaky else OUTAGES_PER_DAY
    count = np.random.default_rng(rng.getrandbits(64)).poisson(rate * days)
    for _ in range(count):
        a = rng.randrange(slots)
        minutes = min(240.0, max(1.0, rng.lognormvariate(math.log(12), 1.0)))
        b = min(slots, a + max(1, int(minutes * 60 * US // slot_us)))
        code = rng.choices(OUTAGE_CODES, OUTAGE_WEIGHTS)[0]
        out.append((a, b, code, 0.05))

    def at(fraction: float) -> int:
        return min(slots, max(0, int(fraction * slots)))

    match t.scenario:
        case "deprecated":  # retired: 404 for a while, then 410 naming the replacement
            out += [(at(0.62), at(0.75), GONE_404, 0.0), (at(0.75), slots, GONE_410, 0.0)]
        case "token_scope":  # a token lost its Inference Providers permission yesterday
            out.append((at(0.985), slots, TOKEN_SCOPE, 0.0))
        case "token_fixed":  # the same, noticed and fixed after ~3 days
            out.append((at(0.40), at(0.43), TOKEN_SCOPE, 0.0))
        case "payment":
            out.append((at(0.993), slots, PAYMENT, 0.0))
        case "flapping":  # an hour or two of alternating answers, three times
            for f in (0.2, 0.5, 0.8):
                minutes = rng.uniform(60, 120)
                out.append((at(f), at(f) + int(minutes * 60 * US // slot_us), SERVER_ERROR, 0.5))
    return out


def _stem(kind: str) -> str:
    return {
        "hf-inference": "hf",
        "openai-chat": "chat",
        "openai-embeddings": "embed",
        "hf-legacy": "legacy",
        "http": "status",
        "hf-whoami": "token",
    }[kind]


def _excerpt(kind: str, model: str, rng: random.Random) -> str:
    """A realistic ok body excerpt: embeddings and HTML fill the 512 bytes kept."""
    if kind == "openai-chat":
        return json.dumps(
            {
                "id": f"chatcmpl-{rng.getrandbits(96):024x}",
                "object": "chat.completion",
                "created": 1763650000,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "pong"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
            }
        )
    if kind == "http":
        return ("<!DOCTYPE html><html lang=en><head><title>Status</title>" + "<div>" * 100)[:512]
    if kind == "hf-whoami":
        return json.dumps({"type": "user", "name": "bench-user", "auth": {"type": "access_token"}})
    if kind == "hf-inference" and "distilbert" in model:
        return '[[{"label":"POSITIVE","score":0.9998},{"label":"NEGATIVE","score":0.0002}]]'
    floats = ", ".join(f"{rng.uniform(-0.2, 0.2):.8f}" for _ in range(60))
    return f"[[{floats}"[:512]


# ------------------------------------------------------------------ generation


@dataclass
class Counts:
    probes: int = 0
    alerts: int = 0
    batches: int = 0


class Clock:
    """The Writer's clock: the simulated time of the batch being written."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def bench_config(plan: Plan, url: str) -> Config:
    """A config for the plan's targets, with email alerts (queued; no mail server runs)."""
    return parse_config(yaml.safe_dump(config_data(plan, url)), env={})


def config_data(plan: Plan, url: str) -> dict[str, Any]:
    """The config of bench_config as YAML data (benchmarks/dashboard_render.py serves it)."""
    targets: list[dict[str, Any]] = []
    for t in plan.targets:
        entry: dict[str, Any] = {"name": t.name, "kind": t.kind}
        if t.kind == "http":
            entry["url"] = f"https://status-{t.id - 1:03d}.example.com/"
        elif t.kind != "hf-whoami":
            entry["model"] = t.model
        targets.append(entry)
    return {
        "database": url,
        "defaults": {"interval": f"{plan.slot_us / US:g}s"},
        "targets": targets,
        "alerts": {
            "dashboard_url": DASHBOARD_URL,
            "email": {
                "host": "127.0.0.1",
                "port": 2525,
                "security": "none",
                "sender": "inferwatch@example.com",
                "recipients": RECIPIENTS,
            },
        },
    }


def generate(path: Path, plan: Plan, batch: int) -> Counts:
    """Create the schema with the migrations, then write the history through the Writer.

    One Writer per monitor run: a run that stopped cleanly calls stop_run, a crashed one does
    not (the next start_run closes it at its last heartbeat), the last one is still running.
    Batches never span two runs.
    """
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    engine = open_database(url)
    config = bench_config(plan, url)
    for t in plan.targets:
        t.url = config.target(t.name).endpoint
    run_of = np.full(plan.slots, -1, dtype=np.int32)
    for n, (a, b, _clean) in enumerate(plan.runs):
        run_of[a:b] = n
    per_batch = max(1, batch // len(plan.targets))  # slots per batch

    clock = Clock(_dt(plan.start_us))
    writer: Writer | None = None
    run = -1
    counts = Counts()
    started = time.perf_counter()
    first_day = plan.start_us - plan.start_us % DAY_US
    chunks = range(first_day, plan.end_us, DAY_US)
    for n_chunk, day_us in enumerate(chunks):
        a = max(0, (day_us - plan.start_us) // plan.slot_us)
        b = min(plan.slots, (day_us + DAY_US - plan.start_us) // plan.slot_us)
        slots = np.arange(a, b)[plan.present[a:b]]
        day = _Day(plan, day_us, slots)
        for t in plan.targets:
            day.fill(t)
        k = 0
        while k < len(slots):
            if run_of[slots[k]] != run:
                if writer is not None:
                    _end_run(writer, plan, run, clock)
                run = int(run_of[slots[k]])
                clock.now = _dt(plan.start_us + plan.runs[run][0] * plan.slot_us) - timedelta(
                    seconds=2
                )
                writer = Writer(engine, config, clock=clock)
                writer.start_run()
            j = k + 1
            while j < len(slots) and j - k < per_batch and run_of[slots[j]] == run:
                j += 1
            results = day.results(k, j)
            clock.now = max(r.checked_at for r in results)
            assert writer is not None
            counts.alerts += writer.write_batch(results)
            counts.probes += len(results)
            counts.batches += 1
            k = j
        if n_chunk % 10 == 9 or day_us + DAY_US >= plan.end_us:
            spent = time.perf_counter() - started
            print(
                f"  day {n_chunk + 1}/{len(chunks)}: {counts.probes:,} probes "
                f"({counts.probes / spent:,.0f}/s through Writer.write_batch)",
                flush=True,
            )
    if writer is not None:
        _end_run(writer, plan, run, clock)
    engine.dispose()
    return counts


def _end_run(writer: Writer, plan: Plan, run: int, clock: Clock) -> None:
    _first, end, clean = plan.runs[run]
    if clean and end < plan.slots:
        clock.now = _dt(plan.start_us + end * plan.slot_us) + timedelta(seconds=1)
        writer.stop_run()


class _Day:
    """One UTC day of every target: outcomes, latencies and times as arrays (targets x slots)."""

    def __init__(self, plan: Plan, day_us: int, slots: np.ndarray) -> None:
        self.plan, self.day_us, self.slots = plan, day_us, slots
        n, count = len(slots), len(plan.targets)
        self.codes = np.zeros((count, n), dtype=np.int8)
        self.latency = np.zeros((count, n))
        self.at_us = np.zeros((count, n), dtype=np.int64)

    def fill(self, t: TargetPlan) -> None:
        plan, row = self.plan, t.id - 1
        rng = np.random.default_rng([plan.seed, t.id, self.day_us // DAY_US])
        n = len(self.slots)
        if not n:
            return
        codes = np.zeros(n, dtype=np.int8)
        blips = np.flatnonzero(rng.random(n) < BLIP_RATE)
        codes[blips] = rng.choice(BLIP_CODES, size=len(blips), p=BLIP_WEIGHTS)
        twice = blips[(codes[blips] == LOADING) & (rng.random(len(blips)) < 0.5)] + 1
        codes[twice[twice < n]] = LOADING  # a cold start often fails two probes
        first, last = self.slots[0], self.slots[-1]
        for a, b, code, ok_share in t.episodes:
            if b <= first or a > last:
                continue
            lo, hi = np.searchsorted(self.slots, [a, b])
            codes[lo:hi] = code
            if ok_share:
                codes[lo:hi][rng.random(hi - lo) < ok_share] = OK

        # Latency: the target's lognormal with a daily rhythm; failures draw their own range.
        hours = ((self.slots * plan.slot_us + plan.start_us) % DAY_US) / HOUR_US
        rhythm = 1 + 0.15 * np.sin(2 * np.pi * (hours - 9) / 24)
        latency = t.median_ms * rhythm * rng.lognormal(0.0, 0.3, n)
        for code in np.unique(codes):
            spread = ANSWERS[code].latency
            if spread is not None:
                mask = codes == code
                latency[mask] = rng.uniform(*spread, mask.sum())

        # Probes of one round are spread over the interval, in target order, a little jittered.
        offset = int((row / len(plan.targets)) * 0.9 * plan.slot_us)
        jitter = rng.integers(0, max(1, plan.slot_us // 50), n)
        self.at_us[row] = plan.start_us + self.slots * plan.slot_us + offset + jitter
        self.codes[row], self.latency[row] = codes, np.round(latency, 1)

    def results(self, k: int, j: int) -> list[ProbeResult]:
        """The probe results of slots k..j-1 (positions in this day), round by round."""
        out = []
        # Only these slots' columns: converting the whole day per batch is quadratic in targets.
        codes = self.codes[:, k:j].tolist()
        latency, at_us = self.latency[:, k:j].tolist(), self.at_us[:, k:j].tolist()
        for i in range(j - k):
            for t in self.plan.targets:
                row = t.id - 1
                out.append(_result(t, ANSWERS[codes[row][i]], latency[row][i], at_us[row][i]))
        return out


def _result(t: TargetPlan, answer: Answer, ms: float, at_us: int) -> ProbeResult:
    """One probe as the pipeline hands it to the writer (evidence already redacted)."""
    at = _dt(at_us)
    connect = 3.0 + (at_us // 1000 % 13) * 0.7
    answered = answer.status is not None
    if answered:
        timings = Timings(round(connect, 1), round(connect + 9.5, 1), round(ms - 1.5, 1), ms)
        request_id = _request_id(at_us)
    elif answer.outcome == Outcome.TIMEOUT:
        timings = Timings(round(connect, 1), round(connect + 9.5, 1), None, ms)
        request_id = None
    else:
        timings = Timings(None, None, None, ms)
        request_id = None
    return ProbeResult(
        target=t.name,
        kind=t.kind,
        url=t.url,
        checked_at=at,
        outcome=answer.outcome,
        http_status=answer.status,
        timings=timings,
        detail=answer.detail.format(ms=f"{ms:.0f}", model=t.model),
        hint=answer.hint,
        warning="",
        request_id=request_id,
        provider=_provider(t) if answered else None,
        headers=_headers(t, answer, request_id),
        body_excerpt=t.excerpt if answer.status == 200 else _error_body(answer),
        facts=dict(answer.facts),
    )


def _headers(t: TargetPlan, answer: Answer, request_id: str | None) -> dict[str, str]:
    """The response headers the monitor keeps."""
    if answer.status is None or request_id is None:
        return {}
    headers = {
        "content-type": "text/html; charset=utf-8" if t.kind == "http" else "application/json",
        "x-request-id": request_id,
    }
    if t.kind != "http":
        headers["x-inference-provider"] = "hf-inference"
        headers["x-compute-type"] = "gpu"
    if answer.outcome == Outcome.RATE_LIMITED:
        headers["retry-after"] = "12"
    return headers


def _error_body(answer: Answer) -> str:
    if answer.status is None:
        return ""
    return json.dumps({"error": answer.detail.split(": ", 1)[-1][:300]})


def _provider(t: TargetPlan) -> str | None:
    return None if t.kind == "http" else "hf-inference"


def _request_id(at_us: int) -> str:
    mixed = (at_us * 0x9E3779B97F4A7C15) & (2**96 - 1)
    return f"Root=1-{at_us // US:08x}-{mixed:024x}"


def _us(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# ------------------------------------------------------------------ timing


@dataclass
class Timing:
    page: str
    query: str
    samples: list[float]
    rows: int | None = None
    budget: float | None = None  # ms, for page totals

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.samples, 95))

    @property
    def best(self) -> float:
        return min(self.samples)


def measure(engine: Engine, fn: Callable[[Session], Any], runs: int) -> tuple[list[float], Any]:
    """Warm up once, then time `runs` calls, each in a fresh Session as a page render would."""
    with Session(engine) as s:
        result = fn(s)
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        with Session(engine) as s:
            fn(s)
        samples.append((time.perf_counter() - begin) * 1000)
    return samples, result


def _size(result: Any) -> int | None:
    if isinstance(result, tuple):
        return None
    return len(result) if hasattr(result, "__len__") else None


def target_page(s: Session, name: str, start: datetime, end: datetime) -> tuple[Any, ...]:
    """What the Target page loads (dashboard/views/target.py, through dashboard/data.py)."""
    blocks = reads.timeline(s, name, start, end)
    return (
        blocks,
        reads.outcome_mix(blocks),
        reads.probe_log(s, name, start, end, limit=200),
        reads.transitions(s, start, end, target=name),
        reads.incidents(s, start, end, end, targets=[name]),
        reads.gaps(s, start, end),  # the page notes when the monitor was not running
    )


def incidents_page(s: Session, start: datetime, end: datetime) -> tuple[Any, ...]:
    rows = reads.incidents(s, start, end, end)
    return rows, reads.incident_stats(rows)


def run_benchmarks(
    url: str, runs: int, baseline_runs: int, target: str | None
) -> tuple[list[Timing], dict[str, Any]]:
    engine = make_engine(url, readonly=True)
    with Session(engine) as s:
        now = reads.last_seen(s)
        if now is None:
            raise SystemExit(f"{url} has no monitor run: generate it first")
        overview_rows = reads.overview(s, now)
        if target is None:  # the busiest target: the most history to draw
            changes = Counter(name for _, name in reads.transitions(s))
            target = min(changes, key=lambda n: (-changes[n], n))
    failing = sum(r.state not in (None, str(Outcome.OK)) for r in overview_rows)
    info: dict[str, Any] = {"now": now, "target": target, "failing": failing}
    timings: list[Timing] = []

    def add(page: str, name: str, fn: Callable[[Session], Any], budget: float | None = None) -> Any:
        samples, result = measure(engine, fn, runs)
        timings.append(Timing(page, name, samples, _size(result), budget))
        print(f"  {page:<14} {name:<46} {timings[-1].median:9.1f} ms", flush=True)
        return result

    page = "Overview"
    add(
        page,
        "overview() + flags()  [page]",
        lambda s: reads.flags(reads.overview(s, now)),
        OVERVIEW_BUDGET_MS,
    )
    add(page, f"  overview() ({failing} failing)", lambda s: reads.overview(s, now))
    add(page, "  flags()", lambda s: reads.flags(overview_rows))
    add(page, "  target_names()", reads.target_names)
    add(page, "  gaps(90d) (monitor down)", lambda s: reads.gaps(s, now - timedelta(days=90), now))

    for window, span in UPTIME_WINDOWS.items():
        page, a = f"Target {window}", now - span
        add(page, "all six  [page]", lambda s, a=a: target_page(s, target, a, now), PAGE_BUDGET_MS)
        blocks = add(page, "  timeline()", lambda s, a=a: reads.timeline(s, target, a, now))
        mix = add(page, "  outcome_mix()", lambda s, b=blocks: reads.outcome_mix(b))
        add(page, "  probe_log(limit=200)", lambda s, a=a: reads.probe_log(s, target, a, now))
        # The log can be filtered to outcomes of the mix: failures, or one rare outcome.
        failures = [o for o in mix if o != Outcome.OK] or [str(Outcome.OK)]
        rare = failures[-1:]
        for what, o in (
            (f"failures: {len(failures)} outcomes", failures),
            (f"rarest: {rare[0]}, {mix.get(rare[0], 0)} probes", rare),
        ):
            add(
                page,
                f"  probe_log({what})",
                lambda s, a=a, o=o: reads.probe_log(s, target, a, now, outcomes=o),
            )
        add(page, "  transitions(target)", lambda s, a=a: reads.transitions(s, a, now, target))
        add(
            page,
            "  incidents(targets=[target])",
            lambda s, a=a: reads.incidents(s, a, now, now, [target]),
        )
        add(page, "  gaps()", lambda s, a=a: reads.gaps(s, a, now))

    for days in (30, 90):
        page, a = f"Incidents {days}d", now - timedelta(days=days)
        add(
            page,
            "incidents() + stats  [page]",
            lambda s, a=a: incidents_page(s, a, now),
            PAGE_BUDGET_MS,
        )

    for days in (7, 30, 90):
        page, a = f"Alerts {days}d", now - timedelta(days=days)
        add(
            page,
            "alerts(limit=500)  [page]",
            lambda s, a=a: reads.alerts(s, a, now, limit=reads.ALERT_LOG_LIMIT),
            PAGE_BUDGET_MS,
        )

    # The review commands' defaults: `inferwatch transitions` / `alerts` (7d), `incidents` (30d).
    page = "CLI"
    week, month = now - timedelta(days=7), now - timedelta(days=30)
    add(page, "transitions --since 7d", lambda s: reads.transitions(s, week))
    add(
        page,
        "incidents --since 30d",
        lambda s: reads.incidents(s, month, now=now, with_alerts=False),
    )
    add(page, "alerts --since 7d (no limit)", lambda s: reads.alerts(s, week))

    if baseline_runs:
        samples, result = measure(engine, lambda s: reads.raw_uptime(s, now), baseline_runs)
        timings.append(Timing("Baseline", "uptime from raw probes (4 windows)", samples, None))
        print(f"  {'Baseline':<14} {'uptime from raw probes':<46} {timings[-1].median:9.1f} ms")
        info["baseline_check"] = _compare_uptimes(overview_rows, result)
    engine.dispose()
    return timings, info


def explain(url: str, target: str | None) -> None:
    """Print the SQL each page runs, with SQLite's plan for it: which index serves what."""
    engine = make_engine(url, readonly=True)
    seen: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))
    with Session(engine) as s:
        now = reads.last_seen(s)
        if now is None:
            raise SystemExit(f"{url} has no monitor run: generate it first")
        target = target or reads.target_names(s)[0]
        start = now - timedelta(days=30)
        seen.clear()
        reads.overview(s, now)
        target_page(s, target, start, now)
        incidents_page(s, start, now)
        reads.alerts(s, start, now, limit=reads.ALERT_LOG_LIMIT)
        raw = s.connection().connection.dbapi_connection
        assert raw is not None
        for statement, params in list(seen):
            print(" ".join(statement.split())[:160])
            for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params):
                print(f"    {row[3]}")
    engine.dispose()


def _compare_uptimes(
    rows: Sequence[reads.TargetRow], raw: dict[str, dict[str, tuple[int, int]]]
) -> float:
    """Largest gap between rollup and raw uptime (rollups count whole hours/days)."""
    worst = 0.0
    for window, found in raw.items():
        for r in rows:
            ok, n = found.get(r.name, (0, 0))
            if r.uptime[window] is not None and n:
                worst = max(worst, abs(r.uptime[window] - ok / n))
    return worst


def report(timings: list[Timing], info: dict[str, Any]) -> bool:
    print()
    print(f"now = {info['now']:%Y-%m-%d %H:%M} UTC, target page for {info['target']}")
    print(
        f"{'page':<14} {'query (ms)':<46} {'median':>8} {'p95':>8} {'min':>8} {'rows':>6}  budget"
    )
    ok = True
    for t in timings:
        verdict = ""
        if t.budget is not None:
            # Judged on the median; the p95 says how much a busy machine adds.
            met = t.median < t.budget
            ok &= met
            verdict = f"< {t.budget:.0f}: {'met' if met else 'NOT MET'}"
            verdict += "" if t.p95 < t.budget else " (p95 over)"
        rows = "" if t.rows is None else str(t.rows)
        print(
            f"{t.page:<14} {t.query:<46} {t.median:8.1f} {t.p95:8.1f} {t.best:8.1f} {rows:>6}"
            f"  {verdict}"
        )
    base = next((t for t in timings if t.page == "Baseline"), None)
    if base is not None:
        whole = next(t for t in timings if t.page == "Overview")
        print(
            f"\nbaseline / rollups: {base.median / whole.median:,.0f}x the whole overview "
            f"(largest uptime difference {info['baseline_check']:.4f}: rollups count whole "
            "hours/days)"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nall budgets met (median): {'yes' if ok else 'NO'}; load average now {load}")
    return ok


# ------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="SQLite file (%(default)s)")
    parser.add_argument("--reuse", action="store_true", help="skip generation if --db exists")
    parser.add_argument("--targets", type=int, default=100, help="targets (%(default)s)")
    parser.add_argument("--days", type=float, default=7, help="days of history (%(default)s)")
    parser.add_argument(
        "--per-minute", type=float, default=1.0, help="probes per target per minute (%(default)s)"
    )
    parser.add_argument(
        "--batch", type=int, default=5000, help="results per Writer.write_batch (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (%(default)s)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per query (%(default)s)")
    parser.add_argument(
        "--baseline-runs", type=int, default=3, help="runs of the raw baseline; 0 skips it"
    )
    parser.add_argument("--target", help="target for the target page (default: the busiest)")
    parser.add_argument("--explain", action="store_true", help="print each page's query plans")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    # The writer logs each change at INFO and each crashed run at WARNING: not news here.
    logging.getLogger("monitor").setLevel(logging.ERROR)
    url = f"sqlite:///{args.db}"
    print(
        f"{platform.processor() or platform.machine()}, {_cores()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    if args.reuse and args.db.exists():
        print(f"reusing {args.db} ({_mb(args.db):,.0f} MB)")
    else:
        print(
            f"generating {args.targets} targets x {args.days:g} days x {args.per_minute:g}/min "
            f"into {args.db}, {args.batch} results per write_batch"
        )
        begin = time.perf_counter()
        plan = build_plan(args.targets, args.days, args.per_minute, args.seed, DEFAULT_END)
        counts = generate(args.db, plan, args.batch)
        print(
            f"generated in {time.perf_counter() - begin:.0f} s: {counts.probes:,} probes in "
            f"{counts.batches:,} batches, {counts.alerts:,} alerts queued; "
            f"{_mb(args.db):,.0f} MB"
        )
    if args.explain:
        explain(url, args.target)
    print(f"timing ({args.runs} runs after one warm-up; baseline {args.baseline_runs} runs)")
    timings, info = run_benchmarks(url, args.runs, args.baseline_runs, args.target)
    ok = report(timings, info)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "now": info["now"].isoformat(),
                    "target": info["target"],
                    "timings": [
                        {
                            "page": t.page,
                            "query": t.query.strip(),
                            "median_ms": t.median,
                            "p95_ms": t.p95,
                            "min_ms": t.best,
                            "rows": t.rows,
                        }
                        for t in timings
                    ],
                },
                indent=2,
            )
        )
    return 0 if ok else 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _mb(path: Path) -> float:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    ) / (1024 * 1024)


if __name__ == "__main__":
    sys.exit(main())
