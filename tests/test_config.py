"""Config loading (YAML -> interpolation -> validation -> `Config`) and `inferwatch check`.

Every test passes its environment explicitly (`env=` or monkeypatch) and works in `tmp_path`,
so nothing depends on the real environment or working directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config.load import ConfigError, Problem, config_warnings, load_config, parse_config
from monitor.config.model import Config
from monitor.config.types import DEFAULT_CONFIG_FILE, format_duration, parse_duration
from monitor.targets import TARGET_KINDS, parse_target
from monitor.targets.base import PROBE_TEXT, USER_AGENT
from monitor.targets.hf_inference import TASK_PAYLOADS

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
ALLOWED_KINDS = ", ".join(TARGET_KINDS)  # every kind, each with a sample in KIND_SAMPLES

# The example from the issue, verbatim.
EXAMPLE = """\
database: sqlite:///inferwatch.db
defaults: {interval: 60s, timeout: 10s}
targets:
  - name: minilm-embeddings
    kind: hf-inference
    model: sentence-transformers/all-MiniLM-L6-v2
    task: feature-extraction
    token_env: HF_TOKEN
    expect: {embedding_dim: 384}
  - {name: gpt2-legacy, kind: hf-legacy, model: gpt2, token_env: HF_TOKEN}
  - {name: llama-chat, kind: openai-chat, model: meta-llama/Llama-3.1-8B-Instruct, token_env: HF_TOKEN}
  - {name: hf-token, kind: hf-whoami, token_env: HF_TOKEN, interval: 15m}
  - {name: status-page, kind: http, url: "https://status.huggingface.co/", expect: {status: 200}}
"""  # noqa: E501 (verbatim from the issue)
EXAMPLE_NAMES = ["minilm-embeddings", "gpt2-legacy", "llama-chat", "hf-token", "status-page"]
EXAMPLE_ENDPOINTS = {
    "minilm-embeddings": (
        f"https://router.huggingface.co/hf-inference/models/{MINILM}/pipeline/feature-extraction"
    ),
    "gpt2-legacy": "https://api-inference.huggingface.co/models/gpt2",
    "llama-chat": "https://router.huggingface.co/v1/chat/completions",
    "hf-token": "https://huggingface.co/api/whoami-v2",
}

# One minimal valid target of every kind (without the name).
KIND_SAMPLES: dict[str, dict[str, Any]] = {
    "http": {"kind": "http", "url": "https://example.com/health"},
    "hf-inference": {"kind": "hf-inference", "model": MINILM},
    "hf-legacy": {"kind": "hf-legacy", "model": "gpt2"},
    "openai-chat": {"kind": "openai-chat", "model": LLAMA},
    "openai-embeddings": {"kind": "openai-embeddings", "model": "BAAI/bge-small-en-v1.5"},
    "hf-whoami": {"kind": "hf-whoami"},
    "anthropic-messages": {"kind": "anthropic-messages", "model": "claude-haiku-4-5"},
    "gemini-generate": {"kind": "gemini-generate", "model": "gemini-2.0-flash"},
    "hf-model": {"kind": "hf-model", "model": LLAMA},
    "statuspage": {"kind": "statuspage", "url": "https://status.claude.com/api/v2/summary.json"},
}

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------- helpers


def load(text: str, env: dict[str, str] | None = None, file: str = "inferwatch.yaml") -> Config:
    return parse_config(text, file=file, env={} if env is None else env)


def problems_of(
    text: str, env: dict[str, str] | None = None, file: str = "inferwatch.yaml"
) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load(text, env, file)
    assert info.value.problems, "a ConfigError must list at least one problem"
    return info.value.problems


def targets_yaml(*flow_items: str, top: str = "") -> str:
    """A config text whose targets are YAML flow mappings, one per line (line 2 onwards)."""
    lines = [f"  - {item}" for item in flow_items]
    return top + "targets:\n" + "\n".join(lines) + "\n"


def target(**raw: Any) -> Any:
    return parse_target({"name": "t", **raw})


def header(headers: dict[str, str], name: str) -> list[str]:
    """Every value sent for `name` (HTTP header names are case-insensitive)."""
    return [v for k, v in headers.items() if k.lower() == name.lower()]


def plain(text: str) -> str:
    """Output without colour codes and with line wrapping undone."""
    return " ".join(_ANSI.sub("", text).split())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads os.environ: make sure nothing from the real environment leaks in."""
    for var in ("HF_TOKEN", "INFERWATCH_CONFIG", "API_KEY", "HOST", "DB_URL", "FORCE_COLOR"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# ---------------------------------------------------------------- the issue's example


def test_the_issue_example_loads_with_kinds_endpoints_and_intervals() -> None:
    config = load(EXAMPLE, env={"HF_TOKEN": "hf_secret"})

    assert [t.name for t in config.targets] == EXAMPLE_NAMES
    assert [t.kind for t in config.targets] == [
        "hf-inference",
        "hf-legacy",
        "openai-chat",
        "hf-whoami",
        "http",
    ]
    for name, endpoint in EXAMPLE_ENDPOINTS.items():
        assert config.target(name).endpoint == endpoint
    # The root URL may lose its trailing slash: both forms request the same path "/".
    assert config.target("status-page").endpoint.rstrip("/") == "https://status.huggingface.co"

    assert config.defaults.interval == 60.0
    assert config.defaults.timeout == 10.0
    intervals = {t.name: config.interval_of(t) for t in config.targets}
    assert intervals == {
        "minilm-embeddings": 60.0,
        "gpt2-legacy": 60.0,
        "llama-chat": 60.0,
        "hf-token": 900.0,
        "status-page": 60.0,
    }
    assert all(config.timeout_of(t) == 10.0 for t in config.targets)

    assert config.target("minilm-embeddings").expect.embedding_dim == 384
    assert config.target("status-page").expect.accepts_status(200)
    assert not config.target("status-page").expect.accepts_status(204)
    assert all(t.token_env == "HF_TOKEN" for t in config.targets[:4])
    assert config.target("status-page").token_env is None
    assert config.secrets == frozenset({"hf_secret"})


def test_whoami_defaults_to_15m_but_other_kinds_use_defaults_interval() -> None:
    config = load(
        targets_yaml(
            "{name: who, kind: hf-whoami, token_env: HF_TOKEN}",
            "{name: web, kind: http, url: 'https://example.com'}",
            "{name: who-fast, kind: hf-whoami, token_env: HF_TOKEN, interval: 20m}",
            top="defaults: {interval: 2m}\n",
        )
    )
    assert config.interval_of(config.target("who")) == 900.0
    assert config.interval_of(config.target("web")) == 120.0
    assert config.interval_of(config.target("who-fast")) == 1200.0


def test_defaults_apply_when_the_file_has_no_defaults_section() -> None:
    config = load(targets_yaml("{name: web, kind: http, url: 'https://example.com', timeout: 3s}"))
    web = config.target("web")
    assert config.defaults.interval == 60.0
    assert config.interval_of(web) == 60.0
    assert config.timeout_of(web) == 3.0
    assert config.concurrency == 20
    assert config.source == "inferwatch.yaml"


def test_config_target_raises_keyerror_for_an_unknown_name() -> None:
    config = load(EXAMPLE)
    with pytest.raises(KeyError):
        config.target("nope")


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("30", 30.0),
        (" 10s ", 10.0),
        ("10 s", 10.0),
        (12, 12.0),
        (0.25, 0.25),
        ("1ms", 0.001),
    ],
)
def test_parse_duration_accepts(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        *(0, 0.0, "0", "0s", "0ms", -1, -0.5, "-5s"),
        *("abc", "", "10 minutes", "1w", "5x", "1.2.3s"),
        *(True, False, None, [10], {"s": 1}),
    ],
)
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError, match=r"500ms, 10s, 5m, 1h or 1d"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_parse_duration_rejects_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_a_nan_interval_in_yaml_is_a_problem() -> None:
    problems_of(targets_yaml("{name: web, kind: http, url: 'https://example.com', interval: .nan}"))


@pytest.mark.parametrize(
    "value",
    [
        *(10**400, -(10**400), 10**5000, float("-inf"), "9" * 400, "9" * 400 + "d"),
        *("1" + " " * 50_000 + "x", "5" * 100_000 + "q"),
    ],
    ids=[
        *("int-401-digits", "negative-int", "int-5001-digits", "minus-inf", "400-nines"),
        *("400-nines-days", "spaces-then-junk", "long-junk"),
    ],
)
def test_parse_duration_raises_only_value_error_quickly_and_briefly(value: Any) -> None:
    """No OverflowError from float(huge int), no quadratic regex, no 100 kB message."""
    with pytest.raises(ValueError, match=r"500ms, 10s, 5m, 1h or 1d") as info:
        parse_duration(value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        *((0.5, "500ms"), (1, "1s"), (10, "10s"), (90, "90s"), (1.5, "1.5s")),
        *((60, "1m"), (900, "15m"), (3600, "1h"), (86400, "1d")),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ---------------------------------------------------------------- endpoints


def test_every_kind_has_a_sample_here() -> None:
    assert set(KIND_SAMPLES) == set(TARGET_KINDS)


@pytest.mark.parametrize(
    ("raw", "endpoint"),
    [
        (
            {"kind": "hf-inference", "model": MINILM},
            f"https://router.huggingface.co/hf-inference/models/{MINILM}/pipeline/feature-extraction",
        ),
        (
            {"kind": "hf-inference", "model": MINILM, "task": "feature-extraction"},
            f"https://router.huggingface.co/hf-inference/models/{MINILM}/pipeline/feature-extraction",
        ),
        (
            {"kind": "hf-inference", "model": MINILM, "task": "sentence-similarity"},
            f"https://router.huggingface.co/hf-inference/models/{MINILM}/pipeline/sentence-similarity",
        ),
        (
            {"kind": "hf-inference", "model": "distilbert/sst2", "task": "text-classification"},
            "https://router.huggingface.co/hf-inference/models/distilbert/sst2",
        ),
        (
            {"kind": "hf-inference", "model": "gpt2", "task": "text-generation"},
            "https://router.huggingface.co/hf-inference/models/gpt2",
        ),
        (
            {"kind": "hf-inference", "model": "bert-base-uncased", "task": "fill-mask"},
            "https://router.huggingface.co/hf-inference/models/bert-base-uncased",
        ),
        (
            {"kind": "hf-legacy", "model": "gpt2"},
            "https://api-inference.huggingface.co/models/gpt2",
        ),
        (
            {"kind": "openai-chat", "model": LLAMA},
            "https://router.huggingface.co/v1/chat/completions",
        ),
        (
            {"kind": "openai-embeddings", "model": "BAAI/bge-small-en-v1.5"},
            "https://router.huggingface.co/v1/embeddings",
        ),
        ({"kind": "hf-whoami"}, "https://huggingface.co/api/whoami-v2"),
        (
            {"kind": "http", "url": "https://example.com/health"},
            "https://example.com/health",
        ),
    ],
)
def test_endpoint_of_each_kind(raw: dict[str, Any], endpoint: str) -> None:
    assert target(**raw).endpoint == endpoint


@pytest.mark.parametrize(
    ("raw", "endpoint"),
    [
        (
            {"kind": "openai-chat", "model": "m", "base_url": "http://localhost:8080/v1"},
            "http://localhost:8080/v1/chat/completions",
        ),
        (
            {"kind": "openai-chat", "model": "m", "base_url": "http://localhost:8080/v1/"},
            "http://localhost:8080/v1/chat/completions",
        ),
        (
            {"kind": "openai-embeddings", "model": "m", "base_url": "https://api.example.com/v1/"},
            "https://api.example.com/v1/embeddings",
        ),
        (
            {"kind": "hf-inference", "model": "org/m", "base_url": "https://proxy.example.com/"},
            "https://proxy.example.com/hf-inference/models/org/m/pipeline/feature-extraction",
        ),
        (
            {
                "kind": "hf-inference",
                "model": "org/m",
                "task": "summarization",
                "base_url": "https://proxy.example.com",
            },
            "https://proxy.example.com/hf-inference/models/org/m",
        ),
        (
            {"kind": "hf-legacy", "model": "gpt2", "base_url": "http://127.0.0.1:9000/"},
            "http://127.0.0.1:9000/models/gpt2",
        ),
        (
            {"kind": "hf-whoami", "base_url": "https://hub.example.org/"},
            "https://hub.example.org/api/whoami-v2",
        ),
    ],
)
def test_base_url_override_and_trailing_slash(raw: dict[str, Any], endpoint: str) -> None:
    assert target(**raw).endpoint == endpoint


@pytest.mark.parametrize(
    "url",
    ["https://example.com/health/", "https://example.com/search?next=/"],
    ids=["path-with-trailing-slash", "query-ending-in-slash"],
)
def test_http_url_is_probed_exactly_as_written(url: str) -> None:
    assert target(kind="http", url=url).endpoint == url


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("http", "url", "ftp://example.com/file"),
        ("http", "url", "example.com/health"),
        ("http", "url", "https://"),
        ("openai-chat", "base_url", "localhost:8080"),
    ],
)
def test_non_http_urls_are_rejected(kind: str, field: str, value: str) -> None:
    raw = {**KIND_SAMPLES[kind], field: value}
    items = ", ".join(f"{k}: {v!r}" for k, v in raw.items())
    (problem,) = problems_of(targets_yaml(f"{{name: t, {items}}}"))
    assert problem.field == field
    assert problem.target == "t"
    assert value in problem.message


# ---------------------------------------------------------------- build_request


# The kinds whose provider takes the key in its own header rather than a Bearer token.
KEY_HEADERS = {"anthropic-messages": "x-api-key", "gemini-generate": "x-goog-api-key"}


@pytest.mark.parametrize("kind", sorted(KIND_SAMPLES))
def test_authorization_header_is_sent_only_with_a_token(kind: str) -> None:
    t = target(**KIND_SAMPLES[kind])
    name = KEY_HEADERS.get(kind, "authorization")
    value = "hf_tok123" if kind in KEY_HEADERS else "Bearer hf_tok123"

    with_token = t.build_request("hf_tok123")
    assert header(with_token.headers, name) == [value]
    assert with_token.token_sent

    for no_token in (None, ""):
        spec = t.build_request(no_token)
        assert header(spec.headers, name) == []
        assert header(spec.headers, "authorization") == []
        assert not spec.token_sent
        assert spec.url == t.endpoint
        assert header(spec.headers, "user-agent") == [USER_AGENT]


def test_openai_chat_sends_one_user_message_and_max_tokens_1() -> None:
    spec = target(kind="openai-chat", model=LLAMA).build_request("tok")
    assert spec.method == "POST"
    assert spec.url == "https://router.huggingface.co/v1/chat/completions"
    assert spec.json == {
        "model": LLAMA,
        "messages": [{"role": "user", "content": "Say OK."}],
        "max_tokens": 1,
    }


def test_openai_chat_prompt_is_the_one_user_message() -> None:
    spec = target(kind="openai-chat", model="m", prompt="ping").build_request(None)
    assert spec.json["messages"] == [{"role": "user", "content": "ping"}]
    assert spec.json["max_tokens"] == 1


@pytest.mark.parametrize("task", sorted(TASK_PAYLOADS))
def test_hf_inference_sends_the_minimal_payload_of_its_task(task: str) -> None:
    spec = target(kind="hf-inference", model="org/m", task=task).build_request(None)
    assert spec.method == "POST"
    assert spec.json == TASK_PAYLOADS[task]


def test_payload_replaces_the_default_body() -> None:
    spec = target(kind="hf-legacy", model="gpt2", payload={"inputs": "hi"}).build_request(None)
    assert spec.json == {"inputs": "hi"}
    assert target(kind="hf-legacy", model="gpt2").build_request(None).json == {"inputs": PROBE_TEXT}


def test_openai_embeddings_body_and_whoami_method() -> None:
    spec = target(kind="openai-embeddings", model="e5").build_request(None)
    assert (spec.method, spec.json) == ("POST", {"model": "e5", "input": PROBE_TEXT})
    whoami = target(kind="hf-whoami").build_request("tok")
    assert (whoami.method, whoami.json, whoami.content) == ("GET", None, None)


def test_http_target_sends_method_headers_and_json_body() -> None:
    t = target(
        kind="http",
        url="https://example.com/api",
        method="POST",
        body={"q": 1},
        headers={"x-api-key": "k"},
        follow_redirects=False,
    )
    spec = t.build_request(None)
    assert spec.method == "POST"
    assert spec.content == b'{"q": 1}'
    assert header(spec.headers, "content-type") == ["application/json"]
    assert header(spec.headers, "x-api-key") == ["k"]
    assert spec.follow_redirects is False
    assert target(kind="http", url="https://e.com", body="raw").build_request(None).content == (
        b"raw"
    )


def test_user_headers_replace_defaults_case_insensitively() -> None:
    t = target(
        kind="openai-chat",
        model="m",
        headers={"User-Agent": "my-agent", "Authorization": "Bearer explicit"},
    )
    headers = t.build_request("from-token-env").headers
    assert header(headers, "user-agent") == ["my-agent"]
    assert len(header(headers, "authorization")) == 1


# ---------------------------------------------------------------- file-level errors


def test_yaml_syntax_error_reports_the_line() -> None:
    text = "targets:\n  - name: a\n\tkind: http\n"
    (problem,) = problems_of(text)
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML:")
    assert str(problem).startswith("inferwatch.yaml:3: invalid YAML")


def test_unclosed_flow_list_is_a_yaml_error() -> None:
    (problem,) = problems_of("targets: [{name: a, kind: http, url: 'https://e.com'}\n")
    assert "invalid YAML" in problem.message
    assert problem.line is not None


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "targets: []\n", "targets:\n"])
def test_empty_file_or_no_targets_is_a_problem(text: str) -> None:
    (problem,) = problems_of(text)
    assert problem.field == "targets"
    assert problem.target is None


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_file_must_be_a_mapping(text: str) -> None:
    (problem,) = problems_of(text)
    assert "must be a mapping" in problem.message
    assert "targets" in problem.message


def test_unknown_top_level_key_is_rejected_with_did_you_mean() -> None:
    text = targets_yaml("{name: a, kind: http, url: 'https://e.com'}", top="databse: x\n")
    (problem,) = problems_of(text)
    assert problem.field == "databse"
    assert problem.target is None
    assert "unknown field (did you mean 'database'?)" in problem.message
    assert (
        "allowed: database, defaults, concurrency, alerts, retention, metrics, maintenance, targets"
        in (problem.message)
    )


def test_a_misspelled_targets_key_is_reported() -> None:
    text = "target:\n  - {name: a, kind: http, url: 'https://e.com'}\n"
    messages = [str(p) for p in problems_of(text)]
    assert any("'target'" in m and "did you mean 'targets'" in m for m in messages)


@pytest.mark.parametrize("line", ["source: other.yaml", "secrets: [hunter2]"])
def test_internal_fields_are_not_accepted_as_top_level_keys(line: str) -> None:
    problems_of(targets_yaml("{name: a, kind: http, url: 'https://e.com'}", top=f"{line}\n"))


def test_unknown_key_in_defaults_is_rejected_with_did_you_mean() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com'}", top="defaults: {intrval: 5s}\n"
    )
    (problem,) = problems_of(text)
    assert problem.field == "defaults.intrval"
    assert "did you mean 'interval'" in problem.message
    assert "allowed: interval, timeout" in problem.message


def test_bad_defaults_duration_names_the_field() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com'}", top="defaults: {timeout: soon}\n"
    )
    (problem,) = problems_of(text)
    assert problem.field == "defaults.timeout"
    assert "'soon' is not a duration" in problem.message


# Every top-level section, written in block style so each key has its own line.
SECTIONS = """\
# inferwatch
database: sqlite:///x.db
concurrency: 10
defaults:
  interval: 1m
  timeout: 5s
alerts:
  dashboard_url: https://iw.example
  email:
    host: smtp.example
    sender: iw@example.com
    recipients: [ops@example.com]
retention: {raw: 30d}
targets:
  - {name: a, kind: hf-whoami}
"""


def test_the_sections_config_is_valid() -> None:
    assert load(SECTIONS).concurrency == 10


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "fragment"),
    [
        ("database: sqlite", "databse: sqlite", 2, "databse", "did you mean 'database'"),
        ("database: sqlite:///x.db", "database: not a url", 2, "database", "not a database URL"),
        ("database: sqlite:///x.db", "database: ${DB_URL}", 2, "database", "DB_URL is not set"),
        ("concurrency: 10", "concurrency: 0", 3, "concurrency", "greater than or equal to 1"),
        ("  timeout: 5s", "  timeout: soon", 6, "defaults.timeout", "'soon' is not a duration"),
        ("  interval: 1m", "  intrval: 1m", 5, "defaults.intrval", "did you mean 'interval'"),
        ("defaults:\n  interval: 1m\n  timeout: 5s\n", "defaults: 5\n", 4, "defaults", "dict"),
        ("https://iw.example", "localhost:8501", 8, "alerts.dashboard_url", "'localhost:8501'"),
        ("    host: smtp.example\n", "", 9, "alerts.email.host", "is required"),
        ("[ops@example.com]", "[ops]", 12, "alerts.email.recipients.0", "'ops' is not allowed"),
        ("{raw: 30d}", "{raw: 0}", 13, "retention.raw", "greater than zero"),
        ("  - {name: a, kind: hf-whoami}\n", "", 14, "targets", "no targets"),
        ("  - {name: a, kind: hf-whoami}\n", "  web\n", 14, "targets", "must be a list"),
    ],
    ids=[
        *("unknown-key", "bad-database", "database-variable", "concurrency"),
        *("defaults-field", "defaults-unknown", "defaults-not-mapping", "alerts-field"),
        *("alerts-missing", "alerts-list-item", "retention", "no-targets", "targets-not-list"),
    ],
)
def test_top_level_problems_carry_the_line_of_their_key(
    old: str, new: str, line: int, field: str, fragment: str
) -> None:
    """The README promises file:line for every problem; a missing field gets its mapping's."""
    assert old in SECTIONS
    (problem,) = problems_of(SECTIONS.replace(old, new))
    assert (problem.line, problem.field, problem.target) == (line, field, None)
    assert fragment in problem.message
    assert str(problem).startswith(f"inferwatch.yaml:{line}: field '{field}': ")


@pytest.mark.parametrize(
    ("text", "line"),
    [("", 1), ("\n\n# only a comment\n", 1), ("# note\n- a\n- b\n", 2), ("\n42\n", 2)],
    ids=["empty", "comment", "list", "scalar"],
)
def test_file_level_problems_name_a_line_too(text: str, line: int) -> None:
    (problem,) = problems_of(text)
    assert problem.line == line
    assert str(problem).startswith(f"inferwatch.yaml:{line}: ")


def test_yaml_errors_say_what_was_being_read_and_where_it_began() -> None:
    (problem,) = problems_of("targets:\n  - {name: 'a, kind: hf-whoami}\n")
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML: while scanning a quoted scalar on line 2, ")


def test_a_duplicate_anchor_names_both_lines() -> None:
    (problem,) = problems_of("targets:\n  - &a {name: a, kind: hf-whoami}\n  - &a {name: b}\n")
    assert problem.line == 3
    assert "duplicate anchor 'a'; first occurrence on line 2" in problem.message


def test_anchors_aliases_and_merge_keys_keep_working() -> None:
    text = """\
defaults: &base {interval: 2m, timeout: 5s}
targets:
  - &web {name: web, kind: http, url: 'https://e.com', headers: &team {x-team: ops}}
  - {<<: *web, name: web2, interval: 5m}
  - name: api
    <<: [*web, *base]
    url: https://api.example.com
    headers: *team
  - {name: who, kind: hf-whoami, expect: {status: &ok [200, 204]}}
  - {name: who2, kind: hf-whoami, expect: {status: *ok}, <<: *base, timeout: 1s}
"""
    config = load(text)
    assert config.defaults.interval == 120.0
    assert [t.name for t in config.targets] == ["web", "web2", "api", "who", "who2"]
    web2, api, who2 = config.target("web2"), config.target("api"), config.target("who2")
    assert (web2.kind, web2.url, web2.interval) == ("http", "https://e.com", 300.0)
    assert web2.headers == {"x-team": "ops"}
    assert (api.url, api.interval, api.timeout) == ("https://api.example.com", 120.0, 5.0)
    assert api.headers == {"x-team": "ops"}
    assert (who2.interval, who2.timeout) == (120.0, 1.0)  # an explicit key beats the merge
    assert who2.expect.status == config.target("who").expect.status == [200, 204]


def test_a_problem_in_a_merged_value_names_a_line() -> None:
    text = "defaults: &base {interval: soon}\ntargets:\n  - {name: a, kind: hf-whoami}\n"
    text += "retention: {<<: *base}\n"
    problems = problems_of(text)
    assert [(p.field, p.line) for p in problems] == [
        ("defaults.interval", 1),
        ("retention.interval", 1),  # written on line 1, merged in on line 4
    ]


def test_load_config_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert "file not found" in problem.message
    assert "--config" in problem.message


def test_load_config_directory_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    (problem,) = info.value.problems
    assert problem.file == str(tmp_path)
    assert "cannot read" in problem.message


def test_load_config_reports_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "inferwatch.yaml"
    path.write_bytes(b"targets:\n  - {name: caf\xe9, kind: http, url: 'https://e.com'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    (problem,) = info.value.problems
    assert problem.line == 2
    assert str(problem) == f"{path}:2: not UTF-8 text (byte 23); is this a binary file?"


def test_load_config_reads_the_file_and_records_its_source(tmp_path: Path) -> None:
    path = tmp_path / "watch.yaml"
    path.write_text(EXAMPLE)
    config = load_config(path, env={})
    assert config.source == str(path)
    assert [t.name for t in config.targets] == EXAMPLE_NAMES


def test_config_error_message_lists_every_problem() -> None:
    text = targets_yaml("{name: a, kind: hf-legacy}", "{name: b, kind: openai-chat}")
    with pytest.raises(ConfigError) as info:
        load(text)
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    assert len(info.value.problems) == 2


# ---------------------------------------------------------------- target errors


def test_unknown_target_key_is_rejected_with_did_you_mean_and_allowed_fields() -> None:
    (problem,) = problems_of(targets_yaml("{name: a, kind: openai-chat, model: m, tokn_env: X}"))
    assert (problem.target, problem.field, problem.line) == ("a", "tokn_env", 2)
    assert "unknown field (did you mean 'token_env'?)" in problem.message
    assert "allowed: name, interval" in problem.message
    assert "model, base_url, payload, prompt" in problem.message
    assert "default_interval" not in problem.message


def test_unknown_key_inside_expect_is_rejected_with_did_you_mean() -> None:
    (problem,) = problems_of(
        targets_yaml(
            f"{{name: a, kind: hf-inference, model: {MINILM}, expect: {{embeding_dim: 3}}}}"
        )
    )
    assert problem.field == "expect.embeding_dim"
    assert "did you mean 'embedding_dim'" in problem.message


def test_embedding_dim_is_unknown_on_an_http_target() -> None:
    (problem,) = problems_of(
        targets_yaml("{name: a, kind: http, url: 'https://e.com', expect: {embedding_dim: 3}}")
    )
    assert problem.field == "expect.embedding_dim"
    assert "unknown field" in problem.message


@pytest.mark.parametrize(
    ("kind", "hint"),
    [("hf-inferense", "hf-inference"), ("openai_chat", "openai-chat"), ("hf-whoam", "hf-whoami")],
)
def test_unknown_kind_suggests_the_closest_and_lists_all(kind: str, hint: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: a, kind: {kind}, model: m}}"))
    assert (problem.target, problem.field, problem.line) == ("a", "kind", 2)
    assert f"'{kind}' is not a target kind (did you mean '{hint}'?)" in problem.message
    assert f"allowed: {ALLOWED_KINDS}" in problem.message


@pytest.mark.parametrize("kind", ["banana", "5", "null-kind"])
def test_unknown_kind_without_a_close_match_still_lists_the_kinds(kind: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: a, kind: {kind}}}"))
    assert problem.field == "kind"
    assert "did you mean" not in problem.message
    assert f"allowed: {ALLOWED_KINDS}" in problem.message


def test_missing_kind_is_required_and_lists_the_kinds() -> None:
    (problem,) = problems_of(targets_yaml("{name: a, model: m}"))
    assert (problem.target, problem.field) == ("a", "kind")
    assert problem.message == f"is required; one of: {ALLOWED_KINDS}"


@pytest.mark.parametrize("kind", ["hf-inference", "hf-legacy", "openai-chat", "openai-embeddings"])
def test_missing_model_is_required(kind: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: a, kind: {kind}}}"))
    assert (problem.target, problem.field, problem.message) == ("a", "model", "is required")


def test_missing_url_and_missing_name_are_required() -> None:
    problems = problems_of(
        targets_yaml("{name: a, kind: http}", "{kind: http, url: 'https://e.com'}")
    )
    assert [(p.target, p.field, p.message) for p in problems] == [
        ("a", "url", "is required"),
        ("#2", "name", "is required"),
    ]


@pytest.mark.parametrize("model", ["/gpt2", "has space", "''"])
def test_malformed_model_id_is_rejected(model: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: a, kind: hf-legacy, model: {model}}}"))
    assert problem.field == "model"


@pytest.mark.parametrize(
    ("duration", "fragment"),
    [
        ("10 minutes", "'10 minutes' is not a duration such as 500ms, 10s, 5m, 1h or 1d"),
        ("abc", "'abc' is not a duration"),
        ("0", "greater than zero"),
        ("-5", "greater than zero"),
        ("true", "expected a duration"),
    ],
)
@pytest.mark.parametrize("field", ["interval", "timeout"])
def test_bad_target_duration_names_target_and_field(
    field: str, duration: str, fragment: str
) -> None:
    (problem,) = problems_of(
        targets_yaml(f"{{name: web, kind: http, url: 'https://e.com', {field}: {duration}}}")
    )
    assert (problem.target, problem.field) == ("web", field)
    assert fragment in problem.message


def test_bad_max_latency_inside_expect() -> None:
    (problem,) = problems_of(
        targets_yaml("{name: web, kind: http, url: 'https://e.com', expect: {max_latency: fast}}")
    )
    assert problem.field == "expect.max_latency"


def test_duplicate_target_names_are_rejected_with_both_lines() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com'}",
        "{name: b, kind: http, url: 'https://e.com'}",
        "{name: a, kind: hf-legacy, model: gpt2}",
    )
    (problem,) = problems_of(text)
    assert (problem.target, problem.field, problem.line) == ("a", "name", 4)
    assert "duplicate name (first used on line 2)" in problem.message


def test_duplicate_name_is_reported_even_if_the_first_target_is_invalid() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com', interval: soon}",
        "{name: a, kind: http, url: 'https://e.com'}",
    )
    assert any("duplicate name" in p.message for p in problems_of(text))


@pytest.mark.parametrize("value", ["hf-abc123", "HF TOKEN", "1TOKEN", "$HF_TOKEN"])
def test_token_env_must_be_a_variable_name_not_a_token(value: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: who, kind: hf-whoami, token_env: '{value}'}}"))
    assert (problem.target, problem.field) == ("who", "token_env")
    assert f"'{value}' is not allowed here" in problem.message
    assert "the NAME of an environment variable, e.g. HF_TOKEN" in problem.message


@pytest.mark.parametrize("value", ["HF_TOKEN", "_X", "hf_abc123", "MY_TOKEN_2"])
def test_token_env_accepts_variable_names(value: str) -> None:
    config = load(targets_yaml(f"{{name: who, kind: hf-whoami, token_env: {value}}}"))
    assert config.target("who").token_env == value


@pytest.mark.parametrize("name", ["bad name", "-leading-dash", "x" * 101, "a/b"])
def test_target_name_pattern(name: str) -> None:
    (problem,) = problems_of(targets_yaml(f"{{name: '{name}', kind: hf-whoami}}"))
    assert problem.field == "name"
    assert "letters, digits" in problem.message


def test_embedding_dim_on_another_task_is_rejected() -> None:
    (problem,) = problems_of(
        targets_yaml(
            f"{{name: sim, kind: hf-inference, model: {MINILM}, task: sentence-similarity, "
            "expect: {embedding_dim: 384}}"
        )
    )
    assert problem.target == "sim"
    assert problem.field == "expect.embedding_dim"
    assert "applies only to task feature-extraction" in problem.message


def test_embedding_dim_problem_names_its_field() -> None:
    (problem,) = problems_of(
        targets_yaml(
            "{name: sim, kind: hf-inference, model: m, task: fill-mask, expect: {embedding_dim: 3}}"
        )
    )
    assert problem.field == "expect.embedding_dim"


def test_embedding_dim_must_be_positive() -> None:
    (problem,) = problems_of(
        targets_yaml("{name: e, kind: openai-embeddings, model: m, expect: {embedding_dim: 0}}")
    )
    assert problem.field == "expect.embedding_dim"


def test_unknown_task_lists_the_allowed_tasks() -> None:
    (problem,) = problems_of(targets_yaml("{name: a, kind: hf-inference, model: m, task: t2i}"))
    assert problem.field == "task"
    assert "'t2i' is not allowed" in problem.message
    assert "'feature-extraction'" in problem.message
    assert "'text2text-generation'" in problem.message


def test_a_target_that_is_not_a_mapping() -> None:
    (problem,) = problems_of(targets_yaml("{name: a, kind: hf-whoami}", "just-a-string"))
    assert (problem.target, problem.line) == ("#2", 3)
    assert "each target must be a mapping" in problem.message


BAD_TARGETS = {
    "unknown key": ("{name: t1, kind: http, url: 'https://e.com', methd: GET}", "methd"),
    "unknown kind": ("{name: t1, kind: htp, url: 'https://e.com'}", "kind"),
    "missing kind": ("{name: t1, url: 'https://e.com'}", "kind"),
    "missing model": ("{name: t1, kind: hf-legacy}", "model"),
    "bad duration": ("{name: t1, kind: hf-whoami, interval: 5 min}", "interval"),
    "token value": ("{name: t1, kind: hf-whoami, token_env: hf-abc123}", "token_env"),
    "bad url": ("{name: t1, kind: http, url: 'nope'}", "url"),
    "bad method": ("{name: t1, kind: http, url: 'https://e.com', method: FETCH}", "method"),
    "missing var": (
        "{name: t1, kind: http, url: 'https://e.com', headers: {k: '${NOPE}'}}",
        "headers.k",
    ),
    "embedding_dim on task": (
        "{name: t1, kind: hf-inference, model: m, task: fill-mask, expect: {embedding_dim: 3}}",
        "expect.embedding_dim",
    ),
}


@pytest.mark.parametrize(
    ("item", "field"),
    [
        pytest.param(
            *BAD_TARGETS[case],
            id=case,
        )
        for case in BAD_TARGETS
    ],
)
def test_each_problem_string_names_file_target_and_field(item: str, field: str) -> None:
    (problem,) = problems_of(targets_yaml(item), file="conf/watch.yaml")
    text = str(problem)
    assert text.startswith("conf/watch.yaml:2: ")
    assert "target 't1'" in text
    assert f"field '{field}'" in text


def test_several_problems_are_all_reported_in_file_order() -> None:
    text = """\
concurrency: 0
colour: blue
targets:
  - {name: a, kind: hf-inferense, model: m}
  - {name: b, kind: hf-legacy}
  - {name: c, kind: http, url: "https://e.com", interval: 10 minutes}
  - {name: d, kind: openai-chat, model: m, modle: x}
  - {name: ok, kind: http, url: "https://e.com"}
  - {name: ok, kind: hf-whoami, token_env: hf-abc123}
  - {name: e, kind: http, url: "https://e.com", headers: {k: "${API_KEY}"}}
"""
    problems = problems_of(text, env={})
    got = [(p.line, p.target, p.field) for p in problems]
    assert got == [
        (1, None, "concurrency"),  # top-level problems carry the line of their key too
        (2, None, "colour"),
        (4, "a", "kind"),
        (5, "b", "model"),
        (6, "c", "interval"),
        (7, "d", "modle"),
        (9, "ok", "name"),  # the duplicate is reported even though its twin has errors too
        (9, "ok", "token_env"),
        (10, "e", "headers.k"),
    ]


def test_several_problems_in_one_target_are_all_reported() -> None:
    problems = problems_of(targets_yaml("{kind: hf-legacy, modle: gpt2, interval: 0}"))
    assert sorted(p.field for p in problems) == ["interval", "model", "modle", "name"]


# ---------------------------------------------------------------- interpolation


def test_variables_are_replaced_inside_strings() -> None:
    config = load(
        targets_yaml(
            "{name: '${NAME}', kind: http, url: 'https://${HOST}:${PORT}/v1/health', "
            "timeout: '${TIMEOUT}'}"
        ),
        env={"NAME": "web", "HOST": "example.com", "PORT": "8443", "TIMEOUT": "3s"},
    )
    web = config.target("web")
    assert web.endpoint == "https://example.com:8443/v1/health"
    assert web.timeout == 3.0


@pytest.mark.parametrize(
    ("expr", "env", "result"),
    [
        ("${HOST:-fallback.example}", {}, "fallback.example"),
        ("${HOST:-fallback.example}", {"HOST": "set.example"}, "set.example"),
        ("x${HOST:-}y.example", {}, "xy.example"),
        ("${HOST}", {"HOST": "plain.example"}, "plain.example"),
    ],
)
def test_variable_with_default(expr: str, env: dict[str, str], result: str) -> None:
    config = load(targets_yaml(f"{{name: web, kind: http, url: 'https://{expr}/'}}"), env=env)
    assert config.target("web").endpoint == f"https://{result}/"  # an http url is kept as written


def test_default_is_used_when_the_variable_is_set_but_empty() -> None:
    config = load(
        targets_yaml("{name: web, kind: http, url: 'https://e.com', headers: {k: '${K:-dflt}'}}"),
        env={"K": ""},
    )
    assert config.target("web").headers == {"k": "dflt"}


def test_defaults_section_and_database_are_interpolated(tmp_path: Path) -> None:
    text = targets_yaml(
        "{name: web, kind: http, url: 'https://e.com'}",
        top="database: ${DB_URL}\ndefaults: {interval: '${EVERY:-5m}'}\n",
    )
    config = load(text, env={"DB_URL": "postgresql://db.example/iw"})
    assert config.database == "postgresql://db.example/iw"
    assert config.defaults.interval == 300.0


def test_non_string_values_are_left_alone() -> None:
    config = load(
        targets_yaml("{name: web, kind: http, url: 'https://e.com', expect: {status: [200, 204]}}")
    )
    assert config.target("web").expect.status == [200, 204]


def test_missing_variable_names_variable_target_and_field() -> None:
    text = targets_yaml(
        "{name: web, kind: http, url: 'https://e.com'}",
        "{name: api, kind: openai-chat, model: m, headers: {x-api-key: '${API_KEY}'}}",
    )
    (problem,) = problems_of(text, env={"OTHER": "x"})
    assert (problem.target, problem.field, problem.line) == ("api", "headers.x-api-key", 3)
    assert "environment variable API_KEY is not set" in problem.message
    assert "${API_KEY:-default}" in problem.message
    text_form = str(problem)
    assert "target 'api'" in text_form
    assert "field 'headers.x-api-key'" in text_form
    assert "API_KEY" in text_form


def test_missing_variable_in_url_is_reported_with_its_field() -> None:
    problems = problems_of(targets_yaml("{name: web, kind: http, url: 'https://${HOST}/'}"))
    missing = [p for p in problems if "environment variable HOST is not set" in p.message]
    assert [(p.target, p.field) for p in missing] == [("web", "url")]


def test_missing_variable_at_top_level_has_no_target() -> None:
    text = targets_yaml("{name: web, kind: hf-whoami}", top="database: ${DB_URL}\n")
    (problem,) = problems_of(text)
    assert (problem.target, problem.field) == (None, "database")
    assert "DB_URL" in problem.message


def test_every_missing_variable_is_reported() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com', headers: {k1: '${ONE}', k2: '${TWO}'}}",
        "{name: b, kind: hf-whoami, headers: {k: '${THREE}'}}",
    )
    problems = problems_of(text)
    assert [(p.target, p.field) for p in problems] == [
        ("a", "headers.k1"),
        ("a", "headers.k2"),
        ("b", "headers.k"),
    ]
    assert ["ONE" in problems[0].message, "TWO" in problems[1].message] == [True, True]
    assert "THREE" in problems[2].message


def test_targets_given_as_a_missing_variable_is_a_problem_not_a_crash() -> None:
    problems = problems_of("targets: ${TARGETS}\n")
    assert any("TARGETS" in p.message for p in problems)


# ---------------------------------------------------------------- secrets


def test_secrets_hold_tokens_and_header_values_but_not_url_values() -> None:
    text = targets_yaml(
        "{name: api, kind: openai-chat, model: m, token_env: HF_TOKEN, "
        "base_url: 'https://${HOST}/v1', headers: {x-api-key: 'key-${API_KEY}', x-plain: literal}}",
        "{name: web, kind: http, url: 'https://${HOST}/health', "
        "headers: {x-fallback: '${MISSING_KEY:-fallback-secret}'}}",
        "{name: who, kind: hf-whoami, token_env: OTHER_TOKEN}",
    )
    env = {"HF_TOKEN": "hf_tokenvalue", "API_KEY": "k123", "HOST": "internal.example"}
    config = load(text, env=env)
    assert config.secrets == frozenset({"hf_tokenvalue", "k123", "fallback-secret"})
    assert config.target("api").headers["x-api-key"] == "key-k123"
    assert "internal.example" not in config.secrets
    assert "literal" not in config.secrets


def test_unused_environment_values_are_not_secrets() -> None:
    config = load(EXAMPLE, env={"HF_TOKEN": "hf_x", "AWS_SECRET": "not-used"})
    assert config.secrets == frozenset({"hf_x"})
    assert load(EXAMPLE, env={}).secrets == frozenset()


# ---------------------------------------------------------------- database path


def test_relative_sqlite_path_is_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "inferwatch.yaml").write_text(EXAMPLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(folder / "inferwatch.yaml", env={})
    assert config.database == f"sqlite:///{(folder / 'inferwatch.db').resolve()}"

    monkeypatch.chdir(folder)
    relative = load_config("inferwatch.yaml", env={})
    assert relative.database == f"sqlite:///{(folder / 'inferwatch.db').resolve()}"


@pytest.mark.parametrize(
    "database",
    [
        "sqlite:////var/lib/inferwatch/iw.db",
        "sqlite:///:memory:",
        "sqlite://",
        "postgresql+psycopg://u@db.example/iw",
    ],
)
def test_other_database_urls_are_kept(tmp_path: Path, database: str) -> None:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(targets_yaml("{name: a, kind: hf-whoami}", top=f"database: '{database}'\n"))
    assert load_config(path, env={}).database == database


def test_default_database_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(targets_yaml("{name: a, kind: hf-whoami}"))
    expected = f"sqlite:///{(tmp_path / 'inferwatch.db').resolve()}"
    assert load_config(path, env={}).database == expected


def test_parse_config_without_base_dir_keeps_the_url() -> None:
    assert load(EXAMPLE).database == "sqlite:///inferwatch.db"


def test_relative_sqlite_url_with_a_driver_is_resolved(tmp_path: Path) -> None:
    path = tmp_path / "inferwatch.yaml"
    path.write_text(
        targets_yaml("{name: a, kind: hf-whoami}", top="database: sqlite+pysqlite:///x.db\n")
    )
    assert load_config(path, env={}).database == (
        f"sqlite+pysqlite:///{(tmp_path / 'x.db').resolve()}"
    )


# ---------------------------------------------------------------- warnings


def test_warns_once_per_unset_token_env_variable_naming_its_targets() -> None:
    config = load(EXAMPLE)
    warnings = config_warnings(config, env={})
    token = [w for w in warnings if w.field == "token_env"]
    assert len(token) == 1
    assert "environment variable HF_TOKEN is not set" in token[0].message
    assert "used by minilm-embeddings, gpt2-legacy, llama-chat, hf-token" in token[0].message
    assert config_warnings(config, env={"HF_TOKEN": "hf_x"}) == []


def test_an_empty_token_variable_counts_as_unset() -> None:
    config = load(EXAMPLE)
    assert any("HF_TOKEN" in w.message for w in config_warnings(config, env={"HF_TOKEN": ""}))


def test_warns_when_timeout_is_not_shorter_than_interval() -> None:
    config = load(
        targets_yaml("{name: web, kind: http, url: 'https://e.com', interval: 5s, timeout: 5s}")
    )
    (warning,) = config_warnings(config, env={})
    assert (warning.target, warning.field) == ("web", "timeout")
    assert "timeout 5s is not shorter than interval 5s" in warning.message


def test_warns_about_whoami_polled_too_often_or_without_token() -> None:
    config = load(targets_yaml("{name: who, kind: hf-whoami, interval: 1m}"))
    fields = sorted(w.field for w in config_warnings(config, env={}))
    assert fields == ["interval", "token_env"]


# ---------------------------------------------------------------- inferwatch check


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_check_accepts_the_example_and_names_every_target(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "inferwatch.yaml", EXAMPLE)
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")

    result = runner.invoke(app, ["check", "--config", "inferwatch.yaml"])

    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert "inferwatch.yaml is valid: 5 targets" in out
    assert "1 hf-inference, 1 hf-legacy, 1 openai-chat, 1 hf-whoami, 1 http" in out
    for name in EXAMPLE_NAMES:
        assert name in out
    for endpoint in EXAMPLE_ENDPOINTS.values():
        assert endpoint in out
    assert "hf-token (hf-whoami, every 15m)" in out
    assert "llama-chat (openai-chat, every 1m)" in out
    assert f"database: sqlite:///{(tmp_path / 'inferwatch.db').resolve()}" in out
    assert "warning" not in result.stderr
    assert "hf_from_env" not in result.output


def test_check_warns_about_an_unset_token_env_but_exits_0(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "inferwatch.yaml", EXAMPLE)

    result = runner.invoke(app, ["check"])

    assert result.exit_code == 0, result.output
    err = plain(result.stderr)
    assert "warning:" in err
    assert "environment variable HF_TOKEN is not set" in err
    assert "used by minilm-embeddings, gpt2-legacy, llama-chat, hf-token" in err
    assert "is valid" in plain(result.stdout)


def test_check_reports_every_problem_on_stderr_and_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = targets_yaml(
        "{name: a, kind: hf-inferense, model: m}",
        "{name: b, kind: hf-legacy}",
        "{name: c, kind: http, url: 'https://e.com', interval: soon}",
        "{name: d, kind: hf-whoami, token_env: hf-abc123}",
        "{name: e, kind: http, url: 'https://e.com', headers: {k: '${API_KEY}'}}",
        top="colour: blue\n",
    )
    write(tmp_path / "bad.yaml", text)
    expected = [str(p) for p in problems_of(text, env={}, file="bad.yaml")]
    assert len(expected) == 6

    result = runner.invoke(app, ["check", "-c", "bad.yaml"])

    assert result.exit_code == 2
    err = plain(result.stderr)
    for problem in expected:
        assert f"error: {plain(problem)}" in err
    assert "bad.yaml: 6 problems; nothing was run." in err
    assert "did you mean 'hf-inference'" in err
    assert "is valid" not in result.stdout


def test_check_names_file_target_and_field_for_a_missing_variable(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = targets_yaml("{name: api, kind: hf-whoami, headers: {k: '${API_KEY}'}}")
    write(tmp_path / "inferwatch.yaml", text)

    result = runner.invoke(app, ["check"])

    assert result.exit_code == 2
    err = plain(result.stderr)
    assert "inferwatch.yaml:2: target 'api': field 'headers.k': environment variable API_KEY" in err
    assert "1 problem; nothing was run." in err


def test_check_on_a_missing_file_exits_2(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check", "--config", "nope.yaml"])
    assert result.exit_code == 2
    err = plain(result.stderr)
    assert "nope.yaml: file not found" in err
    assert "nothing was run" in err
    assert result.stdout == ""


def test_check_uses_inferwatch_yaml_by_default(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_CONFIG_FILE == "inferwatch.yaml"
    missing = runner.invoke(app, ["check"])
    assert missing.exit_code == 2
    assert "inferwatch.yaml: file not found" in plain(missing.stderr)

    write(tmp_path / "inferwatch.yaml", targets_yaml("{name: only-one, kind: hf-whoami}"))
    found = runner.invoke(app, ["check"])
    assert found.exit_code == 0, found.output
    assert "only-one" in found.stdout


def test_check_honours_config_option_and_environment_variable(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "inferwatch.yaml", targets_yaml("{name: from-default, kind: hf-whoami}"))
    write(tmp_path / "a" / "one.yaml", targets_yaml("{name: from-option, kind: hf-whoami}"))
    write(tmp_path / "b" / "two.yaml", targets_yaml("{name: from-env, kind: hf-whoami}"))

    by_option = runner.invoke(app, ["check", "-c", "a/one.yaml"])
    assert by_option.exit_code == 0, by_option.output
    assert "from-option" in by_option.stdout
    assert "from-default" not in by_option.stdout

    monkeypatch.setenv("INFERWATCH_CONFIG", "b/two.yaml")
    by_env = runner.invoke(app, ["check"])
    assert by_env.exit_code == 0, by_env.output
    assert "from-env" in by_env.stdout
    assert "from-default" not in by_env.stdout

    option_wins = runner.invoke(app, ["check", "--config", "a/one.yaml"])
    assert "from-option" in option_wins.stdout
    assert "from-env" not in option_wins.stdout


@pytest.mark.parametrize("command", [["check"], ["probe"], ["db", "upgrade"]])
def test_every_command_takes_config_and_refuses_a_bad_one(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "inferwatch.yaml", targets_yaml("{name: fine, kind: hf-whoami}"))

    missing = runner.invoke(app, [*command, "--config", "other/missing.yaml"])
    assert missing.exit_code == 2
    assert "other/missing.yaml: file not found" in plain(missing.stderr)

    write(tmp_path / "bad.yaml", targets_yaml("{name: b, kind: hf-legacy}"))
    bad = runner.invoke(app, [*command, "-c", "bad.yaml"])
    assert bad.exit_code == 2
    assert "bad.yaml:2: target 'b': field 'model': is required" in plain(bad.stderr)
    assert not (tmp_path / "inferwatch.db").exists()


def test_check_prints_the_endpoint_verbatim(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "https://example.com/search?filter[name]=x"
    write(tmp_path / "inferwatch.yaml", targets_yaml(f"{{name: web, kind: http, url: '{url}'}}"))
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 0
    assert url in result.stdout


@pytest.mark.parametrize(
    ("top", "field", "fragment"),
    [
        ("database: not a url\n", "database", "is not a database URL"),
        ("alerts: {dashboard_url: 'localhost:8501'}\n", "alerts.dashboard_url", "localhost:8501"),
        (
            "alerts: {email: {host: h, sender: a@b, recipients: [c@d], username_env: U}}\n",
            "alerts.email",
            "username_env and password_env go together",
        ),
    ],
)
def test_settings_that_could_never_work_are_config_errors(
    top: str, field: str, fragment: str
) -> None:
    (problem,) = problems_of(targets_yaml("{name: web, kind: hf-whoami}", top=top))
    assert problem.field == field
    assert fragment in problem.message


def test_an_impossible_expected_status_is_rejected() -> None:
    problems = problems_of(
        targets_yaml("{name: web, kind: http, url: 'https://e.com', expect: {status: 999}}")
    )
    assert problems and all(p.field.startswith("expect.status") for p in problems)
    assert any("less than or equal to 599" in p.message for p in problems)


# ---------------------------------------------------------------- alert channels

CHANNELS_TOP = (
    "alerts:\n"
    "  webhook: {url: 'https://hooks.example.com/iw?key=${HOOK_KEY}', secret_env: SIGN_KEY}\n"
    "  slack: {webhook_url_env: SLACK_URL}\n"
    "  apprise: {urls_env: APPRISE_URLS}\n"
)
CHANNEL_ENV = {
    "HOOK_KEY": "k-123",
    "SIGN_KEY": "s3cret-sign",
    "SLACK_URL": "https://hooks.slack.com/services/T0/B0/XXXX",
    "APPRISE_URLS": "ntfy://ntfy.example/topic-secret  discord://111/tok-222",
}


def test_every_configured_channel_is_a_route_unless_a_target_narrows_them() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com'}",
        "{name: b, kind: http, url: 'https://e.com', channels: [slack]}",
        top=CHANNELS_TOP,
    )
    config = parse_config(text, env=CHANNEL_ENV)

    assert config.alerts.channels == ("webhook", "slack", "apprise")
    assert [r.channel for r in config.routes_of(config.target("a"))] == [
        "webhook",
        "slack",
        "apprise",
    ]
    assert [r.channel for r in config.routes_of(config.target("b"))] == ["slack"]
    # Where a URL-addressed channel sends is a secret: its route names no recipient.
    assert all(r.recipients == () for r in config.routes_of(config.target("a")))


def test_channel_urls_and_keys_are_secrets() -> None:
    config = parse_config(
        targets_yaml("{name: a, kind: http, url: 'https://e.com'}", top=CHANNELS_TOP),
        env=CHANNEL_ENV,
    )
    assert {
        "https://hooks.example.com/iw?key=k-123",
        "s3cret-sign",
        "https://hooks.slack.com/services/T0/B0/XXXX",
        "ntfy://ntfy.example/topic-secret",
        "discord://111/tok-222",
    } <= config.secrets


def test_a_target_naming_an_unconfigured_channel_is_refused_with_its_line() -> None:
    text = targets_yaml(
        "{name: a, kind: http, url: 'https://e.com'}",
        "{name: b, kind: http, url: 'https://e.com', channels: [email, slack]}",
        top="alerts:\n  slack: {webhook_url_env: SLACK_URL}\n",
    )
    (problem,) = problems_of(text)
    assert (problem.target, problem.field, problem.line) == ("b", "channels", 5)
    assert "email is not configured under alerts:" in problem.message
    assert "configured: slack" in problem.message


def test_an_unknown_channel_name_is_refused() -> None:
    text = targets_yaml("{name: a, kind: http, url: 'https://e.com', channels: [pager]}")
    (problem,) = problems_of(text)
    assert problem.target == "a" and problem.field is not None
    assert problem.field.startswith("channels")


# ---------------------------------------------------------------- several regions


def test_quorum_is_majority_by_default_or_a_number_per_target() -> None:
    config = load(
        targets_yaml(
            "{name: a, kind: hf-legacy, model: gpt2}",
            "{name: b, kind: hf-legacy, model: gpt2, quorum: 1, regions: [eu-west, us-east]}",
            top="defaults: {quorum: 2}\nalerts: {regional: true}\n",
        )
    )
    a, b = config.targets
    assert config.quorum_of(a) == 2 and config.quorum_of(b) == 1
    assert b.regions == ["eu-west", "us-east"] and a.regions is None
    assert config.alerts.regional is True
    assert load(targets_yaml("{name: a, kind: hf-legacy, model: gpt2}")).quorum_of(a) is None


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("{name: a, kind: hf-legacy, model: gpt2, quorum: 0}", "quorum"),
        ("{name: a, kind: hf-legacy, model: gpt2, quorum: most}", "quorum"),
        ("{name: a, kind: hf-legacy, model: gpt2, regions: []}", "regions"),
    ],
)
def test_a_bad_quorum_or_regions_names_the_line_target_and_field(item: str, field: str) -> None:
    (problem,) = problems_of(targets_yaml(item))
    assert problem.line == 2 and problem.target == "a" and field in problem.field
