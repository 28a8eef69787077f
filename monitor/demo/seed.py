"""A realistic history written through the real Writer: for dashboard tests, screenshots, demos.

Two days of the seeds' story, one probe every 5 minutes per target: embeddings healthy; the
legacy API answering 404 then 410; a chat model whose token loses the Inference Providers
permission; a status page with an outage and a recovery; a model that blips 503 while loading.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from monitor.agent.writer import Writer
from monitor.config.load import parse_config
from monitor.config.model import Config
from monitor.domain.evidence import Outcome, ProbeResult, Timings
from monitor.store import writes

SEED_TARGETS: list[dict[str, Any]] = [
    {
        "name": "minilm-embeddings",
        "kind": "hf-inference",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "token_env": "HF_TOKEN",
        "expect": {"embedding_dim": 384},
    },
    {"name": "gpt2-legacy", "kind": "hf-legacy", "model": "gpt2", "token_env": "HF_TOKEN"},
    {
        "name": "llama-chat",
        "kind": "openai-chat",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "token_env": "HF_TOKEN",
    },
    {"name": "status-page", "kind": "http", "url": "https://status.huggingface.co/"},
    {
        "name": "bert-classifier",
        "kind": "hf-inference",
        "model": "distilbert-base-uncased",
        "task": "text-classification",
        "token_env": "HF_TOKEN",
    },
]
GONE = (
    "https://api-inference.huggingface.co is no longer supported. "
    "Please use https://router.huggingface.co instead."
)
SCOPE = (
    "This authentication method does not have sufficient permissions to call Inference "
    "Providers on behalf of user harshalhonde"
)
ANSWERS: dict[Outcome, tuple[int | None, str, str]] = {
    Outcome.OK: (200, "HTTP 200", ""),
    Outcome.NOT_FOUND: (404, "HTTP 404: Not Found", ""),
    Outcome.DEPRECATED: (
        410,
        f"HTTP 410: {GONE}",
        "switch to https://router.huggingface.co (named by the provider as the replacement)",
    ),
    Outcome.TOKEN_SCOPE: (
        403,
        f"HTTP 403: {SCOPE}",
        "create a token with 'Make calls to Inference Providers' at "
        "https://huggingface.co/settings/tokens (or tick it on this token) and "
        "put it in $HF_TOKEN",
    ),
    Outcome.SERVER_ERROR: (
        502,
        "HTTP 502: HTML page: 502 Bad Gateway",
        "the provider failed; it is not your request",
    ),
    Outcome.LOADING: (
        503,
        "HTTP 503: Model distilbert-base-uncased is currently loading",
        "the model is starting and should answer in about 20 s",
    ),
}
# The structured facts the classifier gives with these answers (see FACT_KEYS in
# monitor/domain/evidence.py), so the seeded history reads like a live one.
FACTS: dict[Outcome, dict[str, Any]] = {
    Outcome.DEPRECATED: {"replacement_url": "https://router.huggingface.co"},
    Outcome.TOKEN_SCOPE: {
        "missing_permission": "Make calls to Inference Providers",
        "missing_permission_id": "inference.serverless.write",
    },
    Outcome.LOADING: {"estimated_time_s": 20.0},
}


def _fixed(at: datetime) -> Callable[[], datetime]:
    """A clock stopped at `at` (the seeded history is written as if it happened then)."""
    return lambda: at


def seed_config(database: str, email: bool = True) -> Config:
    import yaml

    data: dict[str, Any] = {
        "database": database,
        "defaults": {"interval": "5m"},
        "targets": SEED_TARGETS,
    }
    if email:
        data["alerts"] = {
            "dashboard_url": "http://localhost:8501",
            "email": {
                "host": "127.0.0.1",
                "port": 2525,
                "security": "none",
                "sender": "inferwatch@example.com",
                "recipients": ["oncall@example.com"],
            },
        }
    return parse_config(yaml.safe_dump(data), env={})


def outcome_at(name: str, i: int, steps: int) -> Outcome:
    """The story: what target `name` answered at step i of `steps`."""
    f = i / steps
    if name == "gpt2-legacy":
        return Outcome.OK if f < 0.3 else Outcome.DEPRECATED  # 404 first, 410 from f >= 0.6
    if name == "llama-chat":
        return Outcome.OK if f < 0.75 else Outcome.TOKEN_SCOPE
    if name == "status-page":
        return Outcome.SERVER_ERROR if 0.4 <= f < 0.45 else Outcome.OK
    if name == "bert-classifier":
        return Outcome.LOADING if i % 97 == 0 else Outcome.OK
    return Outcome.OK


def _result(name: str, kind: str, outcome: Outcome, at: datetime, i: int, f: float) -> ProbeResult:
    status, detail, hint = ANSWERS[outcome]
    facts = FACTS.get(outcome, {})
    if name == "gpt2-legacy" and outcome == Outcome.DEPRECATED and f < 0.6:
        status, detail, facts = 404, "HTTP 404: Not Found", {}  # names no replacement
        hint = (
            "the serverless Inference API is retired; move to https://router.huggingface.co "
            "(kinds hf-inference, openai-chat or openai-embeddings)"
        )
    latency = 40.0 + (i * 37 % 60) + (400.0 if outcome == Outcome.LOADING else 0.0)
    if outcome == Outcome.OK:
        detail = f"HTTP 200 in {latency:.0f} ms"
    return ProbeResult(
        target=name,
        kind=kind,
        url=f"https://example.invalid/{name}",
        checked_at=at,
        outcome=outcome,
        http_status=status,
        timings=Timings(3.0, 8.0, latency - 5, latency),
        detail=detail,
        hint=hint,
        warning="",
        request_id=f"Root=1-{i:08x}",
        provider="hf-inference" if name != "status-page" else None,
        headers={},
        body_excerpt=detail[:80],
        facts=dict(facts),
    )


def seed(
    engine: Engine,
    now: datetime | None = None,
    days: float = 2.0,
    every: timedelta = timedelta(minutes=5),
    config: Config | None = None,
) -> Config:
    """Write `days` of history ending at `now` through the real Writer; return the config."""
    now = now or datetime.now(UTC)
    config = config or seed_config(engine.url.render_as_string(hide_password=False))
    steps = int(timedelta(days=days) / every)
    start = now - steps * every
    writer = Writer(engine, config, clock=lambda: start)
    writer.start_run()
    kinds = {t.name: t.kind for t in config.targets}
    batch: list[ProbeResult] = []
    for i in range(steps):
        at = start + i * every
        writer.clock = _fixed(at)
        for name, kind in kinds.items():
            batch.append(_result(name, kind, outcome_at(name, i, steps), at, i, i / steps))
        if len(batch) >= 100:
            writer.write_batch(batch)
            batch = []
    if batch:
        writer.write_batch(batch)
    writer.stop_run()
    # A delivery log with every status: the oldest alert sent, one failed, the rest pending.
    with engine.begin() as conn:
        writes.stage_delivery_log(conn)
    return config
