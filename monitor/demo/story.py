"""`inferwatch demo`: the seeds' story, live, in about two minutes, with no network and no token.

A local fake provider answers for nine targets following `SCRIPT` (a pure function of the story
time: `reply_at`); a local SMTP server catches the alert emails (printed as they arrive and
saved as .eml files); the real monitor probes every few seconds with the default thresholds, so
the confirmation logic is visible; the real dashboard shows it all.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiosmtpd.controller import Controller

from monitor.config.load import load_config
from monitor.config.model import Config
from monitor.demo import simulator as sim
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.evidence import Outcome

STORY_SECONDS = 120.0  # the story's length at the default --minutes 2
PROBE_EVERY = 2.0  # story seconds between probes of a target
DEMO_TOKEN = "hf_demoNotARealTokenOnlyForTheLocalFakeProvider"  # never leaves this process
CONFIG_FILE = "inferwatch.yaml"

LEGACY_MODEL = "gpt2"
CHAT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SECOND_CHAT_MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
CLASSIFIER = "distilbert-base-uncased-finetuned-sst-2-english"
CLAUDE_MODEL = "claude-sonnet-4-5"
STATUS_PAGE = "claude-status"

TARGETS: list[dict[str, Any]] = [
    {
        "name": "minilm-embeddings",
        "kind": "hf-inference",
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "task": "feature-extraction",
        "expect": {"embedding_dim": 384},
    },
    {"name": "gpt2-legacy", "kind": "hf-legacy", "model": LEGACY_MODEL},
    {"name": "llama-chat", "kind": "openai-chat", "model": CHAT_MODEL},
    {"name": "hf-token", "kind": "hf-whoami"},
    {"name": "mistral-chat", "kind": "openai-chat", "model": SECOND_CHAT_MODEL},
    {
        "name": "sst2-classifier",
        "kind": "hf-inference",
        "model": CLASSIFIER,
        "task": "text-classification",
    },
    {"name": "llama-providers", "kind": "hf-model", "model": CHAT_MODEL},
    {
        "name": "claude-chat",
        "kind": "anthropic-messages",
        "model": CLAUDE_MODEL,
        "status_page": STATUS_PAGE,
    },
    {"name": STATUS_PAGE, "kind": "statuspage"},  # its url: demo_config
]


def legacy_ok() -> Reply:
    """The legacy serverless API before its retirement: a text-generation answer."""
    return Reply(
        200,
        [{"generated_text": "inferwatch availability probe, and then some"}],
        {"x-inference-provider": "hf-inference", "x-request-id": "Root=1-legacy-ok"},
    )


def classification_ok() -> Reply:
    body = [[{"label": "POSITIVE", "score": 0.9998}, {"label": "NEGATIVE", "score": 0.0002}]]
    return Reply(200, body, {"x-inference-provider": "hf-inference", "x-request-id": "Root=1-c"})


def claude_ok() -> Reply:
    """An Anthropic Messages answer to the one-token probe."""
    body = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": CLAUDE_MODEL,
        "content": [{"type": "text", "text": "OK"}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    return Reply(200, body, {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"})


def llama_mapping(*providers: str) -> Callable[[], Reply]:
    return lambda: sim.hf_model_mapping(CHAT_MODEL, dict.fromkeys(providers, "live"))


def token_without_inference() -> Reply:
    """whoami after someone re-created the token without 'Make calls to Inference Providers'."""
    return sim.whoami(permissions=["repo.content.read"])


@dataclass(frozen=True)
class Beat:
    """From story second `at`, `target` answers `reply()`, which the monitor judges `outcome`."""

    at: float
    target: str
    reply: Callable[[], Reply]
    outcome: Outcome
    says: str = ""  # narration printed when the beat starts; empty for silent beats


SCRIPT: tuple[Beat, ...] = (
    Beat(0, "minilm-embeddings", sim.embedding_ok, Outcome.OK),
    Beat(0, "gpt2-legacy", legacy_ok, Outcome.OK),
    Beat(0, "llama-chat", lambda: sim.chat_ok(CHAT_MODEL), Outcome.OK),
    Beat(0, "hf-token", sim.whoami, Outcome.OK),
    Beat(0, "mistral-chat", lambda: sim.chat_ok(SECOND_CHAT_MODEL, "novita"), Outcome.OK),
    Beat(0, "sst2-classifier", classification_ok, Outcome.OK),
    Beat(0, "llama-providers", llama_mapping("together", "novita"), Outcome.OK),
    Beat(0, "claude-chat", claude_ok, Outcome.OK),
    Beat(0, STATUS_PAGE, sim.statuspage_summary, Outcome.OK),
    Beat(
        12,
        "gpt2-legacy",
        sim.legacy_404,
        Outcome.DEPRECATED,
        "the legacy serverless API answers 404 for every model while auth still works "
        "(Aug 2025); a contract break, so one confirming probe and an email",
    ),
    Beat(
        22,
        "sst2-classifier",
        lambda: sim.model_loading_503(CLASSIFIER, 2.0),
        Outcome.LOADING,
        "one 503 while the model wakes up: a lone blip, recorded but never alerted",
    ),
    Beat(24, "sst2-classifier", classification_ok, Outcome.OK),
    Beat(
        35,
        "gpt2-legacy",
        sim.legacy_410,
        Outcome.DEPRECATED,
        "the whole legacy host answers 410 and names its replacement (Nov 2025); the "
        "dashboard shows the fix: switch to https://router.huggingface.co",
    ),
    Beat(
        28,
        "llama-providers",
        llama_mapping("novita"),
        Outcome.OK,
        "together stops serving Llama: the free provider mapping shows it while calls still "
        "work, so the probe stays ok but keeps a warning (providers changed: -together)",
    ),
    Beat(
        45,
        "hf-token",
        token_without_inference,
        Outcome.TOKEN_SCOPE,
        "the token is re-created without 'Make calls to Inference Providers': whoami "
        "shows it before any model call fails",
    ),
    Beat(
        52,
        "llama-chat",
        sim.router_403_scope,
        Outcome.TOKEN_SCOPE,
        "chat calls now fail with 403 for that missing permission: a token scope regression",
    ),
    Beat(
        64,
        "mistral-chat",
        sim.openai_429_rate_limit,
        Outcome.RATE_LIMITED,
        "rate limited (429, retry after 20 s): transient, so alerted only after 3 in a row",
    ),
    Beat(
        56,
        STATUS_PAGE,
        sim.statuspage_incident,
        Outcome.PROVIDER_INCIDENT,
        "Anthropic's status page reports an incident (major): the provider's own word",
    ),
    Beat(
        60,
        "claude-chat",
        sim.anthropic_529_overloaded,
        Outcome.OVERLOADED,
        "Claude answers 529 overloaded_error: transient, alerted after 3 in a row, and the "
        "email quotes the status page's incident",
    ),
    Beat(
        80,
        "mistral-chat",
        lambda: sim.chat_ok(SECOND_CHAT_MODEL, "novita"),
        Outcome.OK,
        "the rate limit resets: recovered after 2 good probes",
    ),
    Beat(
        84,
        "sst2-classifier",
        lambda: sim.model_loading_503(CLASSIFIER, 15.0),
        Outcome.LOADING,
        "the model was scaled to zero and loads for about 15 s (503 with estimated_time)",
    ),
    Beat(98, "sst2-classifier", classification_ok, Outcome.OK, "the model is loaded: recovered"),
    Beat(100, "claude-chat", claude_ok, Outcome.OK, "Claude answers again: recovered"),
    Beat(108, STATUS_PAGE, sim.statuspage_summary, Outcome.OK),
)
ENDING = (
    "the story is over; it stays as it is now: gpt2-legacy deprecated (410, with its "
    "replacement), hf-token and llama-chat missing the Inference Providers permission, "
    "llama-providers with novita alone. "
    "Look around the dashboard; Ctrl-C stops the demo"
)


def reply_at(target: str, elapsed: float) -> Reply:
    """Pure: what `target`'s fake endpoint answers `elapsed` story seconds into the demo."""
    return beat_at(target, elapsed).reply()


def beat_at(target: str, elapsed: float) -> Beat:
    """Pure: the beat in force for `target` at `elapsed` story seconds (the latest started)."""
    current = None
    for beat in SCRIPT:
        if beat.target == target and beat.at <= max(elapsed, 0.0):
            current = beat if current is None or beat.at >= current.at else current
    if current is None:
        raise KeyError(f"no target {target!r} in the demo")
    return current


def clock_text(story_seconds: float) -> str:
    minutes, seconds = divmod(max(0, int(story_seconds)), 60)
    return f"{minutes}:{seconds:02d}"


class StoryClock:
    """Story seconds since start: real seconds scaled so the story lasts `minutes`."""

    def __init__(self, minutes: float, now: Callable[[], float] = time.monotonic):
        self.scale = STORY_SECONDS / (minutes * 60.0)  # story seconds per real second
        self._now = now
        self._start = now()

    def restart(self) -> None:
        self._start = self._now()

    def story(self) -> float:
        return (self._now() - self._start) * self.scale

    def real(self, story_seconds: float) -> float:
        return story_seconds / self.scale


def demo_config(
    provider_url: str, smtp_port: int, dashboard_url: str, minutes: float
) -> dict[str, Any]:
    """The demo's config file as data: every target at the fake, thresholds left as default."""
    interval_ms = max(100, round(PROBE_EVERY * minutes * 60.0 / STORY_SECONDS * 1000))
    targets = []
    for spec in TARGETS:
        prefix = f"{provider_url}/{spec['name']}"  # one path prefix per target
        if spec["kind"] == "statuspage":  # a public page: no token
            where = {"url": f"{prefix}/api/v2/summary.json"}
        else:
            where = {"base_url": prefix, "token_env": "HF_TOKEN"}
        targets.append({**spec, **where, "interval": f"{interval_ms}ms"})
    return {
        "database": "sqlite:///inferwatch.db",
        "defaults": {"interval": f"{interval_ms}ms", "timeout": "5s"},
        "alerts": {
            "dashboard_url": dashboard_url,
            "email": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "security": "none",
                "sender": "inferwatch@demo.localhost",
                "recipients": ["you@demo.localhost"],
                "timeout": "5s",
            },
        },
        "targets": targets,
    }


def route_path(target: Any) -> str:
    """The path the monitor requests for a target: the fake routes on it."""
    return httpx.URL(target.endpoint).path


# ------------------------------------------------------------------ the mail catcher


class MailCatcher:
    """A local SMTP server (aiosmtpd) that saves each message as an .eml file and reports it."""

    def __init__(self, folder: Path, on_message: Callable[[str, Path], None]):
        self.folder = folder
        self.on_message = on_message
        self.count = 0
        self._lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        subject = str(message["subject"] or "(no subject)")
        with self._lock:
            self.count += 1
            slug = re.sub(r"[^A-Za-z0-9]+", "-", subject.removeprefix("[inferwatch]")).strip("-")
            path = self.folder / f"{self.count:02d}-{slug[:60]}.eml"
        path.write_bytes(envelope.content)
        self.on_message(subject, path)
        return "250 OK"

    def start(self) -> MailCatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


# ------------------------------------------------------------------ the whole demo


class Demo:
    """Everything but the monitor and the dashboard: folder, fake provider, mail, narration."""

    def __init__(
        self, folder: Path, minutes: float, dashboard_url: str, say: Callable[[str], None]
    ):
        self.folder = folder
        self.minutes = minutes
        self.dashboard_url = dashboard_url
        self.say = say
        self.clock = StoryClock(minutes)
        self.env = {**os.environ, "HF_TOKEN": DEMO_TOKEN}  # for the monitor only
        self.provider = FakeProvider()
        self.mail = MailCatcher(folder / "mail", self._mail)
        self.config_path = folder / CONFIG_FILE

    def _mail(self, subject: str, path: Path) -> None:
        self.say(f"[{clock_text(self.clock.story())}] ✉  {subject}   ({path.name})")

    def start(self) -> Config:
        """Start the fake provider and the mail catcher; write the config; return it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in ("inferwatch.db", "inferwatch.db-wal", "inferwatch.db-shm"):
            (self.folder / stale).unlink(missing_ok=True)  # each demo tells the story afresh
        for old in (self.folder / "mail").glob("*.eml"):
            old.unlink()
        self.provider.start()
        self.mail.start()
        data = demo_config(self.provider.url, self.mail.port, self.dashboard_url, self.minutes)
        header = "# Written by `inferwatch demo`: every target points at its local fake provider.\n"
        self.config_path.write_text(header + yaml.safe_dump(data, sort_keys=False))
        config = load_config(self.config_path, env=self.env)
        for target in config.targets:
            self.provider.route(route_path(target), self._replier(target.name))
        return config

    def _replier(self, name: str) -> Callable[[Seen], Reply]:
        """The fake provider's answer for `name`, at the story's current time."""
        return lambda _seen: reply_at(name, self.clock.story())

    def stop(self) -> None:
        self.mail.stop()
        self.provider.stop()

    async def narrate(self) -> None:
        """Print each beat as it starts, then the ending; runs until cancelled."""
        self.clock.restart()
        pending = sorted((b for b in SCRIPT if b.says), key=lambda b: b.at)
        ended = False
        while True:
            now = self.clock.story()
            while pending and pending[0].at <= now:
                beat = pending.pop(0)
                self.say(f"[{clock_text(beat.at)}] {beat.target}: {beat.says}")
            if not pending and not ended and now >= STORY_SECONDS:
                ended = True
                self.say(f"[{clock_text(STORY_SECONDS)}] {ENDING}")
            await asyncio.sleep(0.1)
