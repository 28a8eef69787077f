"""`diagnose`: probe everything that can explain a model's failure, once, and print one verdict.

No config: the probes are built here as target mappings (`parse_target`), sent concurrently
through `probe_one` (the pipeline every probe takes) and weighed by the pure
`monitor/domain/diagnosis.py`. The token is read from the environment and masked by a
Redactor in every result, so it never reaches the output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.text import Text

from monitor.cli.app import Format, FormatOption, err, out, setup_logging
from monitor.cli.report import outcome_text, results_table
from monitor.config.types import DURATION_HELP, parse_duration
from monitor.domain.diagnosis import Check, Diagnosis, Role, diagnose
from monitor.domain.redact import RedactingFilter, Redactor
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_one, token_for
from monitor.targets import TargetBase, parse_target


class Kind(StrEnum):
    hf = "hf"
    openai_chat = "openai-chat"
    anthropic_messages = "anthropic-messages"
    gemini_generate = "gemini-generate"


DEFAULT_TOKEN_ENV = {
    Kind.hf: "HF_TOKEN",
    Kind.openai_chat: "OPENAI_API_KEY",
    Kind.anthropic_messages: "ANTHROPIC_API_KEY",
    Kind.gemini_generate: "GEMINI_API_KEY",
}
DEFAULT_BASE = {
    Kind.openai_chat: "https://api.openai.com/v1",
    Kind.anthropic_messages: "https://api.anthropic.com",
    Kind.gemini_generate: "https://generativelanguage.googleapis.com",
}
# The providers' Statuspage summaries, probed when the default API host is diagnosed
# (Hugging Face's page is Better Stack, which the statuspage kind does not read).
STATUS_PAGES = {
    "https://api.openai.com/v1": "https://status.openai.com/api/v2/summary.json",
    "https://api.anthropic.com": "https://status.claude.com/api/v2/summary.json",
}
HF_ROUTER = "https://router.huggingface.co"
HF_LEGACY = "https://api-inference.huggingface.co"
HF_HUB = "https://huggingface.co"

Planned = tuple[Role, dict[str, Any]]


def hf_plan(
    model: str, token_env: str, *, hub: str, router: str, legacy: str, task: str
) -> list[Planned]:
    """Every Hugging Face route a model may be called on, and what explains their failures."""
    common = {"token_env": token_env}
    plan: list[Planned] = [
        (
            Role.CALL,
            {"kind": "hf-legacy", "name": "legacy-host", "model": model, "base_url": legacy},
        ),
        (
            Role.CALL,
            {
                "kind": "hf-inference",
                "name": "router-hf-inference",
                "model": model,
                "task": task,
                "base_url": router,
            },
        ),
        (
            Role.CALL,
            {
                "kind": "openai-chat",
                "name": "router-chat",
                "model": model,
                "base_url": f"{router}/v1",
            },
        ),
        (Role.TOKEN, {"kind": "hf-whoami", "name": "whoami", "base_url": hub}),
        (
            Role.MAPPING,
            {"kind": "hf-model", "name": "provider-mapping", "model": model, "base_url": hub},
        ),
    ]
    return [(role, raw | common) for role, raw in plan]


# Each API's free lookup of one model, under its base URL.
LOOKUP_PATHS = {
    Kind.openai_chat: "/models/{model}",
    Kind.anthropic_messages: "/v1/models/{model}",
    Kind.gemini_generate: "/v1beta/models/{model}",
}


def api_plan(
    kind: Kind, model: str, token_env: str, token: str | None, *, base: str, status_page: str | None
) -> list[Planned]:
    """One provider's API: the model call, its free model lookup, its status page."""
    call = {
        "kind": str(kind),
        "name": "model-call",
        "model": model,
        "base_url": base,
        "token_env": token_env,
    }
    # The lookup sends what the model call sends (the key in the header its kind puts it in,
    # the kind's version header): a plain `http` target, only the model call needs a kind.
    headers = parse_target(call).request_headers(token)
    path = LOOKUP_PATHS[kind].format(model=model.removeprefix("models/"))  # Gemini's spelling
    lookup = {"kind": "http", "name": "model-lookup", "url": f"{base}{path}", "headers": headers}
    plan: list[Planned] = [(Role.CALL, call), (Role.LISTING, lookup)]
    page = status_page or STATUS_PAGES.get(base)
    if page:
        plan.append((Role.STATUS, {"kind": "statuspage", "name": "status-page", "url": page}))
    return plan


async def run_checks(
    plan: list[tuple[Role, TargetBase]],
    env: Mapping[str, str],
    redact: Redactor,
    timeout: float,
) -> list[Check]:
    """Every probe at once, through the one pipeline; each answer is a result, never a crash."""
    async with Prober(len(plan)) as prober:
        results = await asyncio.gather(
            *(probe_one(t, prober, timeout, token_for(t, env), redact) for _, t in plan)
        )
    return [Check(role, result) for (role, _), result in zip(plan, results, strict=True)]


def diagnose_command(
    model: Annotated[
        str, typer.Argument(help="The model id, e.g. meta-llama/Llama-3.1-8B-Instruct.")
    ],
    kind: Annotated[
        Kind,
        typer.Option(
            "--kind",
            "-k",
            help="Which API: hf (every Hugging Face route) or one provider's API.",
        ),
    ] = Kind.hf,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help="NAME of the environment variable holding the token (default per kind: "
            "HF_TOKEN, OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="The API's base URL (openai-chat, anthropic, gemini)."),
    ] = None,
    status_page: Annotated[
        str | None,
        typer.Option("--status-page", help="A Statuspage /api/v2/summary.json to read as well."),
    ] = None,
    task: Annotated[
        str,
        typer.Option("--task", help="hf: the hf-inference task to call the model with."),
    ] = "feature-extraction",
    hub_url: Annotated[
        str,
        typer.Option("--hub-url", envvar="HF_ENDPOINT", help="hf: the Hub (or a mirror of it)."),
    ] = HF_HUB,
    router_url: Annotated[
        str, typer.Option("--router-url", help="hf: the router (or a proxy in front of it).")
    ] = HF_ROUTER,
    legacy_url: Annotated[
        str, typer.Option("--legacy-url", help="hf: the retired serverless host.")
    ] = HF_LEGACY,
    timeout: Annotated[
        str, typer.Option("--timeout", help=f"Limit for each probe: {DURATION_HELP}.")
    ] = "10s",
    output: FormatOption = Format.table,
) -> None:
    """Find out why a model does not answer: probe every route and check at once, then say
    what works, what is broken, the most likely cause first and the exact fix.

    Needs no config. Exit codes: 0 the model works, 1 it does not (the verdict says why),
    2 usage error.
    """
    env = os.environ
    token_env = token_env or DEFAULT_TOKEN_ENV[kind]
    token = (env.get(token_env) or "").strip() or None
    redact = Redactor([token] if token else [])
    setup_logging(None)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(redact))
    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        _usage(f"--timeout: {exc}")
    if kind is Kind.hf:
        if base_url:
            _usage("--base-url is for one provider's API; for hf use --router-url/--hub-url")
        raw = hf_plan(
            model, token_env, hub=hub_url, router=router_url, legacy=legacy_url, task=task
        )
        if status_page:
            raw.append(
                (Role.STATUS, {"kind": "statuspage", "name": "status-page", "url": status_page})
            )
    else:
        base = (base_url or DEFAULT_BASE[kind]).rstrip("/")
        try:
            raw = api_plan(kind, model, token_env, token, base=base, status_page=status_page)
        except (ValidationError, ValueError) as exc:
            _usage(redact(f"model-call: {_problems(exc)}"))
    plan = [(role, _target(spec, redact)) for role, spec in raw]

    checks = asyncio.run(run_checks(plan, env, redact, seconds))
    verdict = diagnose(model, checks)
    if output is Format.json:
        print(json.dumps(diagnosis_json(verdict, checks), indent=2, ensure_ascii=False))
    else:
        out.print(results_table([c.result for c in checks]))
        out.print(verdict_text(verdict, token_env if token is None else None))
    raise typer.Exit(0 if verdict.works else 1)


def _target(raw: dict[str, Any], redact: Redactor) -> TargetBase:
    try:
        return parse_target(raw)
    except (ValidationError, ValueError) as exc:
        _usage(redact(f"{raw['name']}: {_problems(exc)}"))


def _problems(exc: ValueError) -> str:
    """A target's validation errors on one line, each naming its field."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _usage(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(2)


def diagnosis_json(verdict: Diagnosis, checks: list[Check]) -> dict[str, Any]:
    return verdict.as_dict() | {
        "probes": [c.result.as_dict() | {"role": str(c.role)} for c in checks]
    }


def verdict_text(verdict: Diagnosis, unset_env: str | None) -> Text:
    """The verdict under the probes' table: headline, works, broken, causes with fixes."""
    text = Text()
    text.append(verdict.headline + "\n", style="bold green" if verdict.works else "bold red")
    if verdict.working:
        text.append("works:  ", style="bold")
        text.append(", ".join(r.target for r in verdict.working) + "\n")
    if verdict.broken:
        text.append("broken: ", style="bold")
        for i, r in enumerate(verdict.broken):
            text.append(", " if i else "")
            text.append(r.target + " (")
            text.append_text(outcome_text(str(r.outcome)))
            text.append(")")
        text.append("\n")
    if verdict.providers:
        text.append("live providers: ", style="bold")
        text.append(", ".join(verdict.providers) + "\n")
    if verdict.causes:
        label = "why the rest fails" if verdict.works else "causes, most likely first"
        text.append(f"{label}:\n", style="bold")
    for n, cause in enumerate(verdict.causes, 1):
        text.append(f"  {n}. {cause.title}", style="bold" if n == 1 else "")
        text.append(f"  [{', '.join(cause.evidence)}]\n", style="dim")
        text.append(f"     → {cause.fix}\n", style="cyan")
    if unset_env:
        text.append(f"(no token: {unset_env} is not set in this environment)\n", style="yellow")
    return text
