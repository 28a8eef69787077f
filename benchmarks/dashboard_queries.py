"""Time the dashboard's queries on a synthetic history: 100 targets x 90 days x 1 probe/minute.

Generates ~13M raw probes with the hourly and daily rollups, states, transitions, incidents
and alerts the monitor would have written for them, then times every query the dashboard
pages run (dashboard/queries.py) against a baseline that computes uptime from raw probes.
Targets: the overview under 100 ms, every page under 1 s. Results: docs/benchmarks.md.

    .venv/bin/python benchmarks/dashboard_queries.py                          # full scale
    .venv/bin/python benchmarks/dashboard_queries.py --targets 10 --days 7 --verify
    .venv/bin/python benchmarks/dashboard_queries.py --reuse                  # time only

Generation writes with the stdlib sqlite3 module (the ORM would take hours for 13M rows),
after creating the schema with the real migrations; the data follows the monitor's own rules:
the state machine (monitor.domain.states.step), the incident rules of monitor.agent.writer
and the rollup sketch of monitor.domain.rollups. `--verify` checks that against the library code.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sqlite3
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

import numpy as np
import sqlalchemy
from sqlalchemy import Engine, and_, case, event, func, or_, select
from sqlalchemy.orm import Session, load_only

from dashboard import queries as q
from monitor.alerts.channels.email import AlertContext, ProbeLine, render
from monitor.domain.evidence import Outcome
from monitor.domain.rollups import (
    BASE_MS,
    BUCKETS,
    DAY,
    HOUR,
    RATIO,
    Rollup,
    bucket_of,
    decode_latency,
    fold,
)
from monitor.domain.states import DEFAULT_RULES, Change, Notice, TargetState, label, replay, step
from monitor.store import make_engine, open_database
from monitor.store.models import (
    AlertRecord,
    IncidentRecord,
    MonitorRunRecord,
    ProbeRecord,
    RollupRecord,
    TargetRecord,
    TargetStateRecord,
    TransitionRecord,
)

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
    ),
    Answer(
        Outcome.TOKEN_SCOPE,
        403,
        f"HTTP 403: {SCOPE}",
        "create a token with 'Make calls to Inference Providers' at "
        "https://huggingface.co/settings/tokens (or tick it on this token) and put it in "
        "$HF_TOKEN",
        (60.0, 250.0),
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
OUTCOME_NAMES = [str(a.outcome) for a in ANSWERS]

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
    url: str
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
            url=_url(kind, model, i),
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


def _url(kind: str, model: str, i: int) -> str:
    return {
        "hf-inference": f"https://router.huggingface.co/hf-inference/models/{model}",
        "openai-chat": "https://router.huggingface.co/v1/chat/completions",
        "openai-embeddings": f"https://router.huggingface.co/hf-inference/models/{model}"
        "/pipeline/feature-extraction",
        "hf-legacy": f"https://api-inference.huggingface.co/models/{model}",
        "http": f"https://status-{i:03d}.example.com/",
        "hf-whoami": "https://huggingface.co/api/whoami-v2",
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
    rollups: int = 0
    transitions: int = 0
    incidents: int = 0
    alerts: int = 0


class Recorder:
    """What monitor.agent.writer records for each state change, buffered for bulk inserts."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed ^ 0xA1E27)
        self.incidents: dict[int, list[Any]] = {}
        self.open: dict[int, int] = {}  # target id -> open incident id
        self.transitions: list[tuple[Any, ...]] = []
        self.alerts: list[tuple[Any, ...]] = []
        self.attempts: list[tuple[Any, ...]] = []
        self.next_transition = self.next_alert = self.next_attempt = 1

    def change(self, t: TargetPlan, probe: Probe, change: Change) -> None:
        """monitor.agent.writer.Writer._record_change, for one probe that confirmed a change."""
        status = probe.status if (probe.status or 0) >= 300 else None
        text = label(change, status)
        incident_id = self.open.get(t.id)
        failing = change.to_outcome != Outcome.OK
        if failing and incident_id is None:
            incident_id = len(self.incidents) + 1
            self.open[t.id] = incident_id
            outcome = str(change.to_outcome)
            self.incidents[incident_id] = [
                incident_id,
                t.id,
                _text(change.started_at),
                None,
                outcome,
                outcome,
                [outcome],
                None,
            ]
        elif failing:
            self.incidents[incident_id][5] = str(change.to_outcome)
            self.incidents[incident_id][6].append(str(change.to_outcome))
        elif incident_id is not None:
            self.incidents[incident_id][3] = _text(change.started_at)
            del self.open[t.id]
        transition_id = self.next_transition
        self.next_transition += 1
        self.transitions.append(
            (
                transition_id,
                t.id,
                _text(change.at),
                _text(change.started_at),
                str(change.from_outcome) if change.from_outcome else None,
                str(change.to_outcome),
                text,
                probe.detail,
                probe.hint,
                probe.status,
                change.announce,
                probe.id,
                incident_id,
            )
        )
        if change.announce:
            ctx = self._context(t, probe, "transition", text, change.to_outcome)
            ctx = replace(
                ctx,
                from_outcome=str(change.from_outcome) if change.from_outcome else None,
                since=change.started_at,
            )
            self._alert(t, ctx, transition_id, incident_id)

    def notice(self, t: TargetPlan, probe: Probe, notice: Notice) -> None:
        """monitor.agent.writer.Writer._record_notice: flapping started or stopped."""
        started = str(notice.event) == "flapping_started"
        text = (
            f"flapping ({notice.change_percent:.0%} state change over recent probes)"
            if started
            else f"stopped flapping: now {notice.state}"
        )
        reason = "flapping_started" if started else "flapping_stopped"
        ctx = self._context(t, probe, reason, text, notice.state or probe.outcome)
        self._alert(t, ctx, None, self.open.get(t.id))

    def _context(
        self, t: TargetPlan, probe: Probe, reason: str, text: str, to: Outcome | None
    ) -> AlertContext:
        return AlertContext(
            reason=reason,
            target=t.name,
            kind=t.kind,
            url=t.url,
            from_outcome=None,
            to_outcome=str(to) if to else None,
            label=text,
            at=probe.at,
            since=None,
            http_status=probe.status,
            detail=probe.detail,
            hint=probe.hint,
            warning="",
            request_id=probe.request_id,
            provider=probe.provider,
            latency_ms=probe.latency,
            recent=probe.recent,
            dashboard_url=DASHBOARD_URL,
        )

    def _alert(
        self, t: TargetPlan, ctx: AlertContext, transition_id: int | None, incident_id: int | None
    ) -> None:
        email = render(ctx)
        created = ctx.at + timedelta(milliseconds=self.rng.uniform(50, 400))  # the batch commit
        failed = self.rng.random() < 0.02  # a few bounced: the delivery log shows them
        attempts = 5 if failed else 1
        alert_id = self.next_alert
        self.next_alert += 1
        at = created
        for n in range(attempts):
            at += timedelta(seconds=1.5 if n == 0 else 30 * 2**n)
            error = "127.0.0.1:2525 refused RCPT: 550 5.1.1 no such user" if failed else ""
            self.attempts.append((self.next_attempt, alert_id, _text(at), not failed, error))
            self.next_attempt += 1
        self.alerts.append(
            (
                alert_id,
                t.id,
                transition_id,
                incident_id,
                ctx.reason,
                "email",
                json.dumps(RECIPIENTS),
                email.subject,
                email.text,
                email.html,
                f"<{uuid.UUID(int=self.rng.getrandbits(128), version=4)}@inferwatch>",
                "failed" if failed else "sent",
                attempts,
                _text(created),
                _text(at),
                None if failed else _text(at),
                error,
            )
        )
        if incident_id is not None:
            self.incidents[incident_id][7] = _text(created)


@dataclass(frozen=True)
class Probe:
    """The few facts about one probe that a transition or an alert repeats."""

    id: int
    at: datetime
    outcome: Outcome
    status: int | None
    latency: float
    detail: str
    hint: str
    request_id: str | None
    provider: str | None
    recent: tuple[ProbeLine, ...]


def generate(path: Path, plan: Plan) -> Counts:
    """Create the schema with the migrations, then bulk-load the whole history."""
    if path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    open_database(f"sqlite:///{path}").dispose()

    db = sqlite3.connect(path, isolation_level=None)
    # Only for the load: a crash would just mean generating again.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MB: keeps the index's insertion points hot
    db.execute("PRAGMA temp_store=MEMORY")

    counts = Counts()
    recorder = Recorder(plan.seed)
    states = {t.id: TargetState() for t in plan.targets}
    created = _text(_dt(plan.start_us) - timedelta(days=3))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO targets (id, name, kind, url, created_at, updated_at) VALUES (?,?,?,?,?,?)",
        [(t.id, t.name, t.kind, t.url, created, created) for t in plan.targets],
    )
    db.execute("COMMIT")

    started = time.perf_counter()
    next_id = 1
    first_day = plan.start_us - plan.start_us % DAY_US
    chunks = range(first_day, plan.end_us, DAY_US)
    for n_chunk, day_us in enumerate(chunks):
        a = max(0, (day_us - plan.start_us) // plan.slot_us)
        b = min(plan.slots, (day_us + DAY_US - plan.start_us) // plan.slot_us)
        slots = np.arange(a, b)[plan.present[a:b]]
        if not len(slots):
            continue
        day = _Day(plan, day_us, slots, next_id)
        for t in plan.targets:
            day.fill(t)
        for t in plan.targets:
            states[t.id] = day.run_states(t, states[t.id], recorder)
        db.execute("BEGIN")
        counts.probes += _insert(db, "probe_results", 17, day.probe_rows())
        counts.rollups += _insert(db, "probe_rollups", 9, day.rollup_rows())
        counts.transitions += _insert(db, "transitions", 13, recorder.transitions)
        counts.alerts += _insert(db, "alerts", 17, recorder.alerts)
        _insert(db, "alert_attempts", 5, recorder.attempts)
        db.execute("COMMIT")
        recorder.transitions, recorder.alerts, recorder.attempts = [], [], []
        next_id += len(slots) * len(plan.targets)
        if n_chunk % 10 == 9 or day_us + DAY_US >= plan.end_us:
            spent = time.perf_counter() - started
            print(
                f"  day {n_chunk + 1}/{len(chunks)}: {counts.probes:,} probes "
                f"({counts.probes / spent:,.0f}/s)",
                flush=True,
            )

    end = _text(_dt(plan.end_us))
    db.execute("BEGIN")
    counts.incidents = _insert(db, "incidents", 8, _incident_rows(recorder))
    db.executemany(
        "INSERT INTO target_states (target_id, state, updated_at) VALUES (?,?,?)",
        [(i, json.dumps(s.to_dict()), end) for i, s in states.items()],
    )
    # A crashed run is closed at its last heartbeat (Writer.start_run); the last one is live.
    runs = []
    for n, (a, b, clean) in enumerate(plan.runs):
        seen = _dt(plan.start_us + b * plan.slot_us)
        stopped = None if b == plan.slots else seen + timedelta(seconds=1) if clean else seen
        began = _dt(plan.start_us + a * plan.slot_us) - timedelta(seconds=2)
        runs.append((n + 1, _text(began), _text(seen), stopped and _text(stopped)))
    db.executemany("INSERT INTO monitor_runs VALUES (?,?,?,?)", runs)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return counts


def _incident_rows(recorder: Recorder) -> Iterator[tuple[Any, ...]]:
    for row in recorder.incidents.values():
        yield (*row[:6], json.dumps(row[6]), row[7])


def _insert(db: sqlite3.Connection, table: str, width: int, rows: Any) -> int:
    cursor = db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", rows)
    return max(cursor.rowcount, 0)


class _Day:
    """One UTC day of every target: outcomes, latencies and times as arrays (targets x slots)."""

    def __init__(self, plan: Plan, day_us: int, slots: np.ndarray, first_id: int) -> None:
        self.plan, self.day_us, self.slots, self.first_id = plan, day_us, slots, first_id
        n, count = len(slots), len(plan.targets)
        self.codes = np.zeros((count, n), dtype=np.int8)
        self.latency = np.zeros((count, n))
        self.at_us = np.zeros((count, n), dtype=np.int64)
        self.bucket = np.zeros((count, n), dtype=np.int16)
        self.status = np.zeros((count, n), dtype=np.int16)  # 0: no answer

    def fill(self, t: TargetPlan) -> None:
        plan, row = self.plan, t.id - 1
        rng = np.random.default_rng([plan.seed, t.id, self.day_us // DAY_US])
        n = len(self.slots)
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
        latency = np.round(latency, 1)
        status = np.array([a.status or 0 for a in ANSWERS], dtype=np.int16)[codes]

        # Probes of one round are spread over the interval, in target order, a little jittered.
        offset = int((row / len(plan.targets)) * 0.9 * plan.slot_us)
        jitter = rng.integers(0, max(1, plan.slot_us // 50), n)
        self.at_us[row] = plan.start_us + self.slots * plan.slot_us + offset + jitter
        self.codes[row], self.latency[row], self.status[row] = codes, latency, status
        self.bucket[row] = _buckets(latency)

    def run_states(self, t: TargetPlan, state: TargetState, recorder: Recorder) -> TargetState:
        """Step the real state machine; skip the long runs of ok where nothing can change."""
        row = t.id - 1
        codes = self.codes[row]
        bad = np.flatnonzero(codes != OK)
        n, k = len(codes), 0
        window = DEFAULT_RULES.flap_window
        while k < n:
            if (
                state.accepted == Outcome.OK
                and state.candidate == Outcome.OK
                and not state.flapping
                and len(state.recent) == window
                and all(state.recent)
            ):
                i = np.searchsorted(bad, k)
                j = int(bad[i]) if i < len(bad) else n
                if j > k:
                    # Steady: more ok probes only lengthen the streak.
                    state = replace(state, streak=state.streak + (j - k))
                    k = j
                    continue
            code = int(codes[k])
            state, change, notice = step(state, ANSWERS[code].outcome, self._at(row, k))
            if change is not None:
                recorder.change(t, self._probe(t, k), change)
            if notice is not None:
                recorder.notice(t, self._probe(t, k), notice)
            k += 1
        return state

    def _at(self, row: int, k: int) -> datetime:
        return _dt(int(self.at_us[row, k]))

    def _id(self, row: int, k: int) -> int:
        return self.first_id + k * len(self.plan.targets) + row

    def _detail(self, t: TargetPlan, code: int, ms: float) -> str:
        return ANSWERS[code].detail.format(ms=f"{ms:.0f}", model=t.model)

    def _probe(self, t: TargetPlan, k: int) -> Probe:
        row = t.id - 1
        code, ms = int(self.codes[row, k]), float(self.latency[row, k])
        answer = ANSWERS[code]
        recent = tuple(
            ProbeLine(
                self._at(row, i),
                OUTCOME_NAMES[self.codes[row, i]],
                int(self.status[row, i]) or None,
                float(self.latency[row, i]),
                self._detail(t, int(self.codes[row, i]), float(self.latency[row, i])),
            )
            for i in range(k, max(-1, k - 5), -1)
        )
        answered = answer.status is not None
        return Probe(
            id=self._id(row, k),
            at=self._at(row, k),
            outcome=answer.outcome,
            status=answer.status,
            latency=ms,
            detail=self._detail(t, code, ms),
            hint=answer.hint,
            request_id=_request_id(self._id(row, k)) if answered else None,
            provider=_provider(t) if answered else None,
            recent=recent,
        )

    def probe_rows(self) -> Iterator[tuple[Any, ...]]:
        """probe_results rows in the order the writer inserts them: by time, then target."""
        targets = self.plan.targets
        stamps = [_texts(self.at_us[t.id - 1]) for t in targets]
        codes = self.codes.tolist()
        latency = self.latency.tolist()
        statics = []
        for t in targets:
            provider = _provider(t)
            per_code = []
            for code, answer in enumerate(ANSWERS):
                templated = "{ms}" in answer.detail
                per_code.append(
                    (
                        answer.status,
                        None if templated else self._detail(t, code, 0.0),
                        answer.detail.replace("{ms}", "{:.0f}") if templated else "",
                        answer.hint,
                        _headers_template(t, answer),
                        t.excerpt if code in (OK, SLOW) else _error_body(answer),
                        provider if answer.status else None,
                    )
                )
            statics.append((t.id, t.url, per_code))
        row_id = self.first_id
        for k in range(len(self.slots)):
            for row, (target_id, url, per_code) in enumerate(statics):
                code = codes[row][k]
                ms = latency[row][k]
                status, detail, template, hint, headers, body, provider = per_code[code]
                if detail is None:
                    detail = template.format(ms)
                connect = 3.0 + (row_id % 13) * 0.7
                if status is None:
                    rid = None
                    header_json = "{}"
                    timings = (None, None, None)
                    if code == TIMEOUT:
                        timings = (round(connect, 1), round(connect + 9.5, 1), None)
                else:
                    rid = _request_id(row_id)
                    header_json = headers % rid
                    timings = (round(connect, 1), round(connect + 9.5, 1), round(ms - 1.5, 1))
                yield (
                    row_id,
                    target_id,
                    stamps[row][k],
                    OUTCOME_NAMES[code],
                    status,
                    ms,
                    *timings,
                    url,
                    detail,
                    hint,
                    "",
                    rid,
                    provider,
                    header_json,
                    body,
                )
                row_id += 1

    def rollup_rows(self) -> Iterator[tuple[Any, ...]]:
        """Hourly and daily rollups, as monitor.domain.rollups.fold would make them from the probes.

        In the order the writer creates them (the table's physical order, which decides how
        many pages a query touches): each hour's rows as the hour begins, target by target,
        and a target's daily row right after its first hourly row of the day.
        """
        hour = ((self.at_us - self.day_us) // HOUR_US).astype(np.int64)
        day_text = _text(_dt(self.day_us))[:10]
        width = len(ANSWERS)
        hourly: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        daily: dict[int, tuple[int, tuple[Any, ...]]] = {}
        for t in self.plan.targets:
            row = t.id - 1
            codes, h = self.codes[row].astype(np.int64), hour[row]
            answered = self.status[row] > 0
            lat, ha = self.latency[row][answered], h[answered]
            counts = np.bincount(h * width + codes, minlength=24 * width).reshape(24, width)
            hist = np.bincount(
                ha * BUCKETS + self.bucket[row][answered], minlength=24 * BUCKETS
            ).reshape(24, BUCKETS)
            sums = np.bincount(ha, weights=lat, minlength=24)
            maxima = np.zeros(24)
            np.maximum.at(maxima, ha, lat)
            hours = np.flatnonzero(counts.sum(axis=1))
            for hh in hours:
                start = f"{day_text} {hh:02d}:00:00.000000"
                hourly[int(hh)].append(
                    _rollup(t.id, "h", start, counts[hh], hist[hh], sums[hh], maxima[hh])
                )
            whole_day = (counts.sum(axis=0), hist.sum(axis=0), float(lat.sum()), maxima.max())
            daily[t.id] = (
                int(hours[0]),
                _rollup(t.id, "d", f"{day_text} 00:00:00.000000", *whole_day),
            )
        for hh in sorted(hourly):
            for rollup in hourly[hh]:
                yield rollup
                first_hour, day_row = daily[rollup[0]]
                if first_hour == hh:
                    yield day_row


def _rollup(
    target_id: int,
    period: str,
    start: str,
    counts: np.ndarray,
    hist: np.ndarray,
    latency_sum: float,
    latency_max: float,
) -> tuple[Any, ...]:
    by_outcome: dict[str, int] = {}
    for code in np.flatnonzero(counts):
        name = OUTCOME_NAMES[code]  # both DEPRECATED wordings count as one outcome
        by_outcome[name] = by_outcome.get(name, 0) + int(counts[code])
    probes = int(counts.sum())
    return (
        target_id,
        period,
        start,
        probes,
        int(counts[OK]),
        json.dumps(by_outcome),
        json.dumps({str(b): int(hist[b]) for b in np.flatnonzero(hist)}),
        float(latency_sum),
        float(latency_max),
    )


def _buckets(latency: np.ndarray) -> np.ndarray:
    """monitor.domain.rollups.bucket_of, vectorised; values next to an edge ask it directly."""
    with np.errstate(divide="ignore"):
        x = np.log(np.maximum(latency, 1e-9) / BASE_MS) / math.log(RATIO)
    out = np.minimum(BUCKETS - 1, 1 + np.floor(x)).astype(np.int16)
    out[latency < BASE_MS] = 0
    edge = np.flatnonzero(np.abs(x - np.round(x)) < 1e-9)
    for i in edge:
        out[i] = bucket_of(float(latency[i]))
    return out


def _headers_template(t: TargetPlan, answer: Answer) -> str:
    """The kept response headers as the ORM's JSON column stores them; %s is the request id."""
    if answer.status is None:
        return "{}"
    headers = {
        "content-type": "text/html; charset=utf-8" if t.kind == "http" else "application/json",
        "x-request-id": "%s",
    }
    if t.kind != "http":
        headers["x-inference-provider"] = "hf-inference"
        headers["x-compute-type"] = "gpu"
    if answer.outcome == Outcome.RATE_LIMITED:
        headers["retry-after"] = "12"
    return json.dumps(headers)


def _error_body(answer: Answer) -> str:
    if answer.status is None:
        return ""
    return json.dumps({"error": answer.detail.split(": ", 1)[-1][:300]})


def _provider(t: TargetPlan) -> str | None:
    return None if t.kind == "http" else "hf-inference"


def _request_id(probe_id: int) -> str:
    mixed = (probe_id * 0x9E3779B97F4A7C15) & (2**96 - 1)
    return f"Root=1-{probe_id:08x}-{mixed:024x}"


def _us(at: datetime) -> int:
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _text(at: datetime) -> str:
    """How SQLAlchemy's DateTime stores an (aware, via UTCDateTime) datetime on SQLite."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _texts(us: np.ndarray) -> list[str]:
    return [s.replace("T", " ") for s in np.datetime_as_string(us.astype("datetime64[us]"))]


# ------------------------------------------------------------------ verification


def verify(url: str) -> None:
    """Recompute rollups and transitions with the library code from the stored raw probes."""
    engine = make_engine(url, readonly=True)
    with Session(engine) as s:
        # The busiest target (flapping, outages), one failing now, and a quiet one.
        busiest = s.scalar(
            select(TargetRecord.name)
            .join(TransitionRecord)
            .group_by(TargetRecord.name)
            .order_by(func.count().desc())
            .limit(1)
        )
        states = s.execute(
            select(TargetRecord.name, TargetStateRecord.state).join(TargetStateRecord)
        )
        failing = [name for name, state in states if state["accepted"] not in (None, "ok")]
        picks = {busiest, *failing[:1], q.target_names(s)[0]}
        for name in sorted(picks):
            target_id = s.scalar(select(TargetRecord.id).where(TargetRecord.name == name))
            probes = s.execute(
                select(
                    ProbeRecord.checked_at,
                    ProbeRecord.outcome,
                    ProbeRecord.latency_ms,
                    ProbeRecord.http_status,
                )
                .where(ProbeRecord.target_id == target_id)
                .order_by(ProbeRecord.checked_at)
            ).all()
            expected = fold(
                (target_id, at, outcome, ms if status is not None else None)
                for at, outcome, ms, status in probes
            )
            stored = {
                (r.target_id, r.period, r.bucket_start): r
                for r in s.scalars(select(RollupRecord).where(RollupRecord.target_id == target_id))
            }
            assert set(expected) == set(stored), f"{name}: rollup buckets differ"
            for key, roll in expected.items():
                row = stored[key]
                assert (row.probes, row.ok, row.counts) == (roll.probes, roll.ok, roll.counts), key
                assert {int(b): n for b, n in row.latency.items()} == roll.latency, key
                assert math.isclose(row.latency_sum, roll.latency_sum, rel_tol=1e-9), key
                assert row.latency_max == roll.latency_max, key
            _, changes = replay((Outcome(o), at) for at, o, _, _ in probes)
            recorded = s.execute(
                select(TransitionRecord.at, TransitionRecord.to_outcome)
                .where(TransitionRecord.target_id == target_id)
                .order_by(TransitionRecord.at)
            ).all()
            assert [(c.at, str(c.to_outcome)) for c in changes] == [tuple(r) for r in recorded]
            print(
                f"  verified {name}: {len(probes):,} probes, {len(stored):,} rollups, "
                f"{len(recorded)} transitions match monitor.domain.rollups.fold and "
                "monitor.domain.states.replay"
            )
    engine.dispose()


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
    blocks = q.timeline(s, name, start, end)
    return (
        blocks,
        q.outcome_mix(blocks),
        q.probe_log(s, name, start, end, limit=200),
        q.transitions(s, start, end, target=name),
        q.incidents(s, start, end, end, targets=[name]),
        q.gaps(s, start, end),  # the page notes when the monitor was not running
    )


def incidents_page(s: Session, start: datetime, end: datetime) -> tuple[Any, ...]:
    rows = q.incidents(s, start, end, end)
    return rows, q.incident_stats(rows)


def naive_uptime(s: Session, now: datetime) -> dict[str, list[Any]]:
    """The baseline: uptime per target and window straight from the raw probes."""
    return {
        window: s.execute(
            select(
                ProbeRecord.target_id,
                func.sum(case((ProbeRecord.outcome == Outcome.OK, 1), else_=0)),
                func.count(),
            )
            .where(ProbeRecord.checked_at >= now - span)
            .group_by(ProbeRecord.target_id)
        ).all()
        for window, span in q.UPTIME_WINDOWS.items()
    }


# Candidate fixes, measured next to the originals (dashboard/ is not changed from here).


def incidents_light(s: Session, start: datetime, end: datetime, now: datetime) -> list[Any]:
    """incidents() reading only the five alert columns it shows, not the email bodies."""
    found = list(
        s.execute(
            select(IncidentRecord, TargetRecord.name)
            .join(TargetRecord)
            .where(
                IncidentRecord.opened_at < end,
                (IncidentRecord.closed_at.is_(None)) | (IncidentRecord.closed_at >= start),
            )
            .order_by(IncidentRecord.opened_at.desc())
        )
    )
    by_incident: dict[int, list[dict[str, Any]]] = defaultdict(list)
    columns = [getattr(AlertRecord, key) for key in ALERT_KEYS]
    for incident_id, *values in s.execute(
        select(AlertRecord.incident_id, *columns)
        .where(AlertRecord.incident_id.in_([i.id for i, _ in found]))
        .order_by(AlertRecord.created_at)
    ):
        by_incident[incident_id].append(dict(zip(ALERT_KEYS, values, strict=True)))
    return [
        q.IncidentRow(
            id=i.id,
            target=name,
            opened_at=i.opened_at,
            closed_at=i.closed_at,
            duration_s=((i.closed_at or now) - i.opened_at).total_seconds(),
            outcomes=list(i.outcomes),
            first_outcome=i.first_outcome,
            last_outcome=i.last_outcome,
            alerts=by_incident.get(i.id, []),
        )
        for i, name in found
    ]


# What incidents() keeps of each alert (as of this writing): everything but the bodies.
ALERT_KEYS = ("id", "created_at", "subject", "status", "attempts", "reason", "last_error")


def _hourly_latency(s: Session, ids: list[int], now: datetime) -> Any:
    return s.execute(
        select(RollupRecord.target_id, RollupRecord.probes, RollupRecord.latency).where(
            RollupRecord.period == HOUR,
            RollupRecord.target_id.in_(ids),
            RollupRecord.bucket_start >= now - timedelta(hours=24),
        )
    )


def latency_24h_dicts(
    s: Session, ids: list[int], now: datetime
) -> tuple[dict[int, Rollup], dict[int, int]]:
    """_latency_24h adding the stored histograms up as they are, one Rollup per target."""
    merged: dict[int, dict[str, int]] = defaultdict(dict)
    probes: dict[int, int] = defaultdict(int)
    for target_id, n, hist in _hourly_latency(s, ids, now):
        probes[target_id] += n
        total = merged[target_id]
        for b, count in hist.items():
            total[b] = total.get(b, 0) + count
    return {i: Rollup(latency=decode_latency(h)) for i, h in merged.items()}, probes


def latency_24h_today(
    s: Session, ids: list[int], now: datetime
) -> tuple[dict[int, Rollup], dict[int, int]]:
    """latency_24h_dicts reading today's daily rollup instead of today's hourly ones.

    The same buckets exactly (a day's rollup is the sum of its hours), from ~half the rows:
    the hourly rows are only needed for the part of the window before midnight.
    """
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = s.execute(
        select(RollupRecord.target_id, RollupRecord.probes, RollupRecord.latency).where(
            RollupRecord.target_id.in_(ids),
            or_(
                and_(RollupRecord.period == DAY, RollupRecord.bucket_start == today),
                and_(
                    RollupRecord.period == HOUR,
                    RollupRecord.bucket_start >= now - timedelta(hours=24),
                    RollupRecord.bucket_start < today,
                ),
            ),
        )
    )
    merged: dict[int, dict[str, int]] = defaultdict(dict)
    probes: dict[int, int] = defaultdict(int)
    for target_id, n, hist in rows:
        probes[target_id] += n
        total = merged[target_id]
        for b, count in hist.items():
            total[b] = total.get(b, 0) + count
    return {i: Rollup(latency=decode_latency(h)) for i, h in merged.items()}, probes


def overview_fixed(s: Session, now: datetime) -> list[q.Flag]:
    """The overview page with latency_24h_today in place of _latency_24h (patched in memory)."""
    with patch.object(q, "_latency_24h", latency_24h_today):
        return q.flags(q.overview(s, now))


def probe_log_guided(
    s: Session,
    target: str,
    start: datetime,
    end: datetime,
    outcomes: Sequence[str],
    limit: int = 200,
) -> list[ProbeRecord]:
    """probe_log(outcomes=...) reading raw probes only in the hours whose rollups saw them.

    The original walks every probe of the range to find a rare outcome (the index has no
    outcome); the hourly rollups' counts say where to look.
    """
    target_id = s.scalar(select(TargetRecord.id).where(TargetRecord.name == target))
    hours = s.execute(
        select(RollupRecord.bucket_start, RollupRecord.counts)
        .where(
            RollupRecord.target_id == target_id,
            RollupRecord.period == HOUR,
            RollupRecord.bucket_start >= start.replace(minute=0, second=0, microsecond=0),
            RollupRecord.bucket_start < end,
        )
        .order_by(RollupRecord.bucket_start.desc())
    ).all()
    found: list[ProbeRecord] = []
    for at, counts in hours:
        if len(found) >= limit:
            break
        if not any(counts.get(o) for o in outcomes):
            continue
        found += s.scalars(
            select(ProbeRecord)
            .where(
                ProbeRecord.target_id == target_id,
                ProbeRecord.checked_at >= max(at, start),
                ProbeRecord.checked_at < min(at + timedelta(hours=1), end),
                ProbeRecord.outcome.in_(outcomes),
            )
            .order_by(ProbeRecord.checked_at.desc())
            .limit(limit - len(found))
        )
    return found


def alert_log_light(s: Session, start: datetime, end: datetime, limit: int = 500) -> list[Any]:
    """alert_log() with the bodies deferred (loaded when a row is opened) and a page size."""
    return list(
        s.execute(
            select(AlertRecord, TargetRecord.name)
            .options(
                load_only(
                    AlertRecord.id,
                    AlertRecord.target_id,
                    AlertRecord.reason,
                    AlertRecord.subject,
                    AlertRecord.status,
                    AlertRecord.attempts,
                    AlertRecord.created_at,
                    AlertRecord.sent_at,
                    AlertRecord.last_error,
                )
            )
            .outerjoin(TargetRecord)
            .where(AlertRecord.created_at >= start, AlertRecord.created_at < end)
            .order_by(AlertRecord.id.desc())
            .limit(limit)
        )
    )


def run_benchmarks(
    url: str, runs: int, baseline_runs: int, target: str | None
) -> tuple[list[Timing], dict[str, Any]]:
    engine = make_engine(url, readonly=True)
    with Session(engine) as s:
        now = s.scalar(select(func.max(MonitorRunRecord.last_seen_at)))
        if target is None:  # the busiest target: the most history to draw
            target = s.scalar(
                select(TargetRecord.name)
                .join(TransitionRecord)
                .group_by(TargetRecord.name)
                .order_by(func.count().desc(), TargetRecord.name)
                .limit(1)
            )
        overview_rows = q.overview(s, now)
        id_of = {name: i for name, i in s.execute(select(TargetRecord.name, TargetRecord.id))}
        ids = list(id_of.values())
        states = s.execute(select(TargetStateRecord.target_id, TargetStateRecord.state))
        failing = {i: st["accepted"] for i, st in states if st["accepted"] not in (None, "ok")}
        _check_candidates(s, ids, now)
    info: dict[str, Any] = {"now": now, "target": target, "failing": len(failing)}
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
        lambda s: q.flags(q.overview(s, now)),
        OVERVIEW_BUDGET_MS,
    )
    add(page, "  overview()", lambda s: q.overview(s, now))
    add(page, "  flags()", lambda s: q.flags(overview_rows))
    add(page, "  _uptimes() (24h/7d/30d/90d)", lambda s: q._uptimes(s, ids, now))
    add(page, "  _latency_24h()", lambda s: q._latency_24h(s, ids, now))
    add(page, "  candidate: _latency_24h, plain dicts", lambda s: latency_24h_dicts(s, ids, now))
    add(
        page,
        "  candidate: plain dicts + today's daily row",
        lambda s: latency_24h_today(s, ids, now),
    )
    add(page, "  candidate: overview() + flags() with it", lambda s: overview_fixed(s, now))
    add(page, "  _last_transitions()", lambda s: q._last_transitions(s, ids))
    add(
        page, f"  _latest_probes() ({len(failing)} failing)", lambda s: q._latest_probes(s, failing)
    )
    add(page, "  gaps(90d) (monitor down)", lambda s: q.gaps(s, now - timedelta(days=90), now))

    for window, span in q.UPTIME_WINDOWS.items():
        page, a = f"Target {window}", now - span
        add(page, "all six  [page]", lambda s, a=a: target_page(s, target, a, now), PAGE_BUDGET_MS)
        blocks = add(page, "  timeline()", lambda s, a=a: q.timeline(s, target, a, now))
        mix = add(page, "  outcome_mix()", lambda s, b=blocks: q.outcome_mix(b))
        add(page, "  probe_log(limit=200)", lambda s, a=a: q.probe_log(s, target, a, now))
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
                lambda s, a=a, o=o: q.probe_log(s, target, a, now, outcomes=o),
            )
            candidate = partial(probe_log_guided, target=target, start=a, end=now, outcomes=o)
            same(
                engine, partial(q.probe_log, target=target, start=a, end=now, outcomes=o), candidate
            )
            add(page, "    candidate: the same via rollups", candidate)
        add(page, "  transitions(target)", lambda s, a=a: q.transitions(s, a, now, target))
        add(
            page,
            "  incidents(targets=[target])",
            lambda s, a=a: q.incidents(s, a, now, now, [target]),
        )
        add(page, "  gaps()", lambda s, a=a: q.gaps(s, a, now))

    for days in (30, 90):
        page, a = f"Incidents {days}d", now - timedelta(days=days)
        add(
            page,
            "incidents() + stats  [page]",
            lambda s, a=a: incidents_page(s, a, now),
            PAGE_BUDGET_MS,
        )
        rows = add(page, "  incidents()", lambda s, a=a: q.incidents(s, a, now, now))
        add(page, "  incident_stats()", lambda s, r=rows: q.incident_stats(r))
        add(
            page,
            "  candidate: incidents(), no bodies",
            lambda s, a=a: incidents_light(s, a, now, now),
        )

    for days in (7, 30, 90):
        page, a = f"Alerts {days}d", now - timedelta(days=days)
        add(page, "alert_log()  [page]", lambda s, a=a: q.alert_log(s, a, now), PAGE_BUDGET_MS)
        add(page, "  candidate: no bodies, limit 500", lambda s, a=a: alert_log_light(s, a, now))

    if baseline_runs:
        samples, result = measure(engine, lambda s: naive_uptime(s, now), baseline_runs)
        timings.append(Timing("Baseline", "uptime from raw probes (4 windows)", samples, None))
        print(f"  {'Baseline':<14} {'uptime from raw probes':<46} {timings[-1].median:9.1f} ms")
        info["baseline_check"] = _compare_uptimes(overview_rows, result, id_of)
    engine.dispose()
    return timings, info


def same(engine: Engine, original: Callable[..., Any], candidate: Callable[..., Any]) -> None:
    """Say so when a candidate does not return what the original does (by row ids)."""
    with Session(engine) as s:
        a, b = original(s), candidate(s)
    if [getattr(r, "id", r) for r in a] != [getattr(r, "id", r) for r in b]:
        print(f"  WARNING: {candidate} differs from {original}")


def _check_candidates(s: Session, ids: list[int], now: datetime) -> None:
    """A candidate fix is only worth timing if it returns what the original does."""
    latency, probes = q._latency_24h(s, ids, now)
    for candidate in (latency_24h_dicts, latency_24h_today):
        other, other_probes = candidate(s, ids, now)
        same = dict(probes) == dict(other_probes) and {
            i: r.latency for i, r in latency.items()
        } == {i: r.latency for i, r in other.items()}
        print(f"  {candidate.__name__} returns what _latency_24h does: {same}")
    a = now - timedelta(days=90)
    same = q.incidents(s, a, now, now) == incidents_light(s, a, now, now)
    print(f"  incidents_light returns what incidents() does: {same}")


def explain(url: str, target: str | None) -> None:
    """Print the SQL each page runs, with SQLite's plan for it: which index serves what."""
    engine = make_engine(url, readonly=True)
    seen: list[tuple[str, Any]] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))
    with Session(engine) as s:
        now = s.scalar(select(func.max(MonitorRunRecord.last_seen_at)))
        target = target or q.target_names(s)[0]
        start = now - timedelta(days=30)
        seen.clear()
        q.overview(s, now)
        target_page(s, target, start, now)
        incidents_page(s, start, now)
        q.alert_log(s, start, now)
        q.gaps(s, start, now)
        raw = s.connection().connection.dbapi_connection
        for statement, params in seen:
            print(" ".join(statement.split())[:160])
            for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params):
                print(f"    {row[3]}")
    engine.dispose()


def _compare_uptimes(
    rows: Sequence[q.TargetRow], naive: dict[str, list[Any]], ids: dict[str, int]
) -> float:
    """Largest gap between rollup and raw uptime (rollups count whole hours/days)."""
    worst = 0.0
    for window, found in naive.items():
        raw = {target_id: ok / n for target_id, ok, n in found if n}
        for r in rows:
            if r.uptime[window] is not None and ids[r.name] in raw:
                worst = max(worst, abs(r.uptime[window] - raw[ids[r.name]]))
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
        uptimes = next(t for t in timings if "_uptimes" in t.query)
        whole = next(t for t in timings if t.page == "Overview")
        print(
            f"\nbaseline / rollups: {base.median / uptimes.median:,.0f}x the uptime query, "
            f"{base.median / whole.median:,.0f}x the whole overview "
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
    parser.add_argument("--days", type=float, default=90, help="days of history (%(default)s)")
    parser.add_argument(
        "--per-minute", type=float, default=1.0, help="probes per target per minute (%(default)s)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (%(default)s)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per query (%(default)s)")
    parser.add_argument(
        "--baseline-runs", type=int, default=3, help="runs of the raw baseline; 0 skips it"
    )
    parser.add_argument("--target", help="target for the target page (default: the busiest)")
    parser.add_argument(
        "--verify", action="store_true", help="check the data against monitor.domain.rollups/states"
    )
    parser.add_argument("--explain", action="store_true", help="print each page's query plans")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

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
            f"into {args.db}"
        )
        begin = time.perf_counter()
        plan = build_plan(args.targets, args.days, args.per_minute, args.seed, DEFAULT_END)
        counts = generate(args.db, plan)
        print(
            f"generated in {time.perf_counter() - begin:.0f} s: {counts.probes:,} probes, "
            f"{counts.rollups:,} rollups, {counts.transitions:,} transitions, "
            f"{counts.incidents:,} incidents, {counts.alerts:,} alerts; "
            f"{_mb(args.db):,.0f} MB"
        )
    if args.verify:
        verify(url)
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
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _mb(path: Path) -> float:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    ) / (1024 * 1024)


if __name__ == "__main__":
    sys.exit(main())
