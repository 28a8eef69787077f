"""Tokens never reach the database, the output or the logs, even when a provider echoes them."""

from __future__ import annotations

import base64
import html
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.demo.simulator import FakeProvider, Reply, Seen
from monitor.domain.redact import MASK, RedactingFilter, Redactor
from monitor.domain.text import one_line
from tests.helpers import write_config
from tests.helpers_echo import FORMS, leaks

TOKEN = "hf_SECRETsecret0123456789abcdefghij"
OTHER = "sk-other-target-secret-987654321"
HEADER_KEY = "x-api-key-value-5555-abcdef"


def echo(seen: Seen) -> Reply:
    """A badly behaved provider that repeats the credentials it was sent everywhere."""
    auth = seen.headers.get("authorization", "")
    token = auth.removeprefix("Bearer ")
    # Put a token right across the 512-byte excerpt boundary, and more after it.
    body = "x" * 500 + token + f" again: {token} key={seen.headers.get('x-api-key', '')}"
    return Reply(
        410,
        {
            "error": f"token {token} is no longer supported. "
            "Please use https://router.huggingface.co instead.",
            "pad": body,
        },
        {"x-error-message": f"bad token {token}", "x-request-id": f"req-{token}"},
    )


@pytest.fixture
def leaky_setup(tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> Path:
    provider.route("/models/gpt2", echo)
    provider.route("/chat/completions", echo)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("OTHER_TOKEN", OTHER)
    monkeypatch.setenv("API_KEY", HEADER_KEY)
    return write_config(
        tmp_path / "inferwatch.yaml",
        [
            {
                "name": "legacy",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "token_env": "HF_TOKEN",
            },
            {
                "name": "chat",
                "kind": "openai-chat",
                "model": "m",
                "base_url": provider.url,
                "token_env": "OTHER_TOKEN",
                "headers": {"x-api-key": "${API_KEY}"},
            },
        ],
        database=f"sqlite:///{tmp_path / 'inferwatch.db'}",
    )


def test_it_never_stores_or_prints_a_token(
    leaky_setup: Path, tmp_path: Path, provider: FakeProvider
) -> None:
    runner = CliRunner()

    as_json = runner.invoke(app, ["probe", "--config", str(leaky_setup), "--format", "json"])
    as_table = runner.invoke(app, ["probe", "--config", str(leaky_setup)])

    assert as_json.exit_code == 0 and as_table.exit_code == 0
    # The provider really did receive and echo the tokens...
    assert any(TOKEN in r.headers.get("authorization", "") for r in provider.requests)
    # ...but nothing we produced contains them.
    db_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("inferwatch.db*"))
    for secret in (TOKEN, OTHER, HEADER_KEY):
        assert secret not in as_json.output
        assert secret not in as_table.output
        assert secret.encode() not in db_bytes
        # Not even a half-cut prefix at the 512-byte excerpt boundary.
        assert secret[:12].encode() not in db_bytes
    assert MASK in as_json.output
    assert "authorization" not in as_json.output.lower()


def test_the_excerpt_is_cut_after_redaction_so_no_prefix_leaks() -> None:
    redact = Redactor([TOKEN])
    text = "y" * 505 + TOKEN

    excerpt = redact.cut(text, 512)

    assert TOKEN[:5] not in excerpt
    assert excerpt.endswith(MASK)
    assert len(excerpt.encode()) <= 512


def test_logs_are_redacted_including_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    handler_filter = RedactingFilter(Redactor([TOKEN]))
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction"):
            logger.info("sending %s", TOKEN)
            try:
                raise ValueError(f"bad header Bearer {TOKEN}")
            except ValueError:
                logger.exception("probe failed")
    finally:
        logger.removeFilter(handler_filter)

    text = caplog.text
    assert TOKEN not in text
    assert "sending ***" in text
    assert "bad header Bearer ***" in text


def test_longer_secrets_are_masked_before_their_substrings() -> None:
    redact = Redactor(["abc12345", "abc12345-long-suffix"])

    assert redact("x abc12345-long-suffix y abc12345") == "x *** y ***"


def test_a_token_pasted_with_a_newline_is_stripped_and_never_echoed(provider: FakeProvider) -> None:
    from tests.helpers import make_config, probe_once

    provider.route("/models/gpt2", Reply(200, [[0.1]]))
    env = {"HF_TOKEN": TOKEN + "\n"}
    config = make_config(
        [
            {
                "name": "t",
                "kind": "hf-legacy",
                "model": "gpt2",
                "base_url": provider.url,
                "token_env": "HF_TOKEN",
            }
        ],
        env=env,
    )

    result = probe_once(config, env)["t"]

    assert result.outcome == "ok"
    assert provider.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


def test_escaped_forms_of_a_secret_are_masked_too() -> None:
    redact = Redactor([TOKEN + "\n"])
    assert TOKEN not in redact(f"Illegal header value b'Bearer {TOKEN}\\\\n'")
    assert TOKEN not in redact(f"value {TOKEN!r}")


def test_keys_interpolated_into_urls_never_reach_the_database(
    tmp_path: Path, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AIzaSyD-secret-gemini-key-0123456789"
    monkeypatch.setenv("GEMINI_API_KEY", key)
    provider.route("/v1/models", Reply(200, {"models": []}))
    cfg = write_config(
        tmp_path / "c.yaml",
        [
            {
                "name": "gemini",
                "kind": "http",
                "url": f"{provider.url}/v1/models?key=${{GEMINI_API_KEY}}",
            }
        ],
        database=f"sqlite:///{tmp_path / 'k.db'}",
    )
    runner = CliRunner()

    check = runner.invoke(app, ["check", "-c", str(cfg)])
    probe = runner.invoke(app, ["probe", "-c", str(cfg), "-f", "json"])

    assert provider.requests[-1].path == "/v1/models"  # the key was really sent...
    assert key not in check.output and key not in probe.output  # ...and shown nowhere
    db = b"".join(p.read_bytes() for p in tmp_path.glob("k.db*"))
    assert key.encode() not in db and b"key=***" in db


def test_a_database_password_is_never_printed(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "c.yaml",
        [{"name": "a", "kind": "http", "url": "http://a/"}],
        database="postgresql+psycopg://monitor:pg-s3cret-pw@127.0.0.1:1/inferwatch",
    )
    result = CliRunner().invoke(app, ["check", "-c", str(cfg)])
    assert result.exit_code == 0 and "pg-s3cret-pw" not in result.output and "***" in result.output


# ---------------------------------------------------------------- encoded echoes of a secret

SLASHY = "sk-proj-Ab3/Cd+Ef0_12gH-45/IjKl+MnOpQr"  # `/`, `+`, `-`, `_`: encoded differently
UNICODE = "pässwörd-ünïcode-€-😀-0123"


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("secret", [TOKEN, SLASHY, UNICODE])
def test_every_encoding_of_a_secret_is_masked(form: str, secret: str) -> None:
    text = f"before {FORMS[form](secret)} after"

    clean = Redactor([secret])(text)

    assert leaks(clean, [secret]) == []
    assert clean.startswith("before ") and clean.endswith(" after") and MASK in clean


@pytest.mark.parametrize(
    "echo",
    [
        json.dumps({"token": UNICODE}),  # \u00e4 and a surrogate pair for the emoji
        repr(UNICODE.encode()),  # b'p\xc3\xa4...'
        quote(quote(UNICODE)),
        html.escape(UNICODE).encode("ascii", "xmlcharrefreplace").decode(),
    ],
)
def test_a_non_ascii_secret_is_masked_in_its_escaped_forms(echo: str) -> None:
    assert leaks(Redactor([UNICODE])(echo), [UNICODE]) == []


def test_mixed_encodings_within_one_token_are_masked() -> None:
    ways = [
        lambda c: c,
        lambda c: f"%{ord(c):02x}",
        lambda c: f"%25{ord(c):02X}",
        lambda c: f"\\u{ord(c):04X}",
        lambda c: f"\\\\u{ord(c):04x}",
        lambda c: f"&#{ord(c)};",
        lambda c: f"&#X{ord(c):x}",
        lambda c: f"&amp;#{ord(c)};",
        lambda c: "\\/" if c == "/" else c,
    ]
    for shift in range(len(ways)):
        text = "".join(ways[(i + shift) % len(ways)](c) for i, c in enumerate(SLASHY))
        assert Redactor([SLASHY])(f"<{text}>") == "<***>", text


@pytest.mark.parametrize("prefix", ["", "x", "xy", "Bearer ", "Authorization: Bearer ", "user:"])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_anything_that_embeds_the_token_is_masked(
    prefix: str, encode: Callable[[bytes], bytes]
) -> None:
    for suffix in ("", "\n", '", "more": 1}'):
        blob = encode(f"{prefix}{SLASHY}{suffix}".encode()).decode()
        for text in (blob, blob.rstrip("="), f"id={blob}.", f"Basic {blob}"):
            assert leaks(Redactor([SLASHY])(text), [SLASHY]) == [], text


def test_short_secrets_are_masked_as_text_but_not_as_base64() -> None:
    redact = Redactor(["pw1234"])

    assert redact("pw1234 %70%771234 &#112;w1234 \\u0070w1234") == "*** *** *** ***"
    # base64 and hex of 6 characters look too much like ordinary text to mask.
    assert redact("cHcxMjM0 707731323334") == "cHcxMjM0 707731323334"


def test_secrets_that_overlap_in_the_text_are_masked_whole() -> None:
    redact = Redactor(["foo-bar-baz-qux1", "zzfoo-bar"])

    assert redact("[zzfoo-bar-baz-qux1]") == "[***]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://x/cb?access_token=abc123&page=2", "https://x/cb?access_token=***&page=2"),
        (
            "https://s3.example.com/b/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIA%2F2026%2Fus&X-Amz-Signature=0fe1ab&x-id=GetObject",
            "https://s3.example.com/b/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=***&X-Amz-Signature=***&x-id=GetObject",
        ),
        ('<https://docs/x?API_KEY=k1>; rel="next"', '<https://docs/x?API_KEY=***>; rel="next"'),
        (
            "https://app/cb#access_token=t0k&token_type=bearer&state=s",
            "https://app/cb#access_token=***&token_type=***&state=s",
        ),
        ("/a;jsessionid=xyz;p=1", "/a;jsessionid=***;p=1"),
        ("?sig=abc%2B%3D&se=2026", "?sig=***&se=2026"),
        ("?password=hunter2 and ?passwd=x", "?password=*** and ?passwd=***"),
        (
            "/login?next=%2Fcb%3Fapi_key%3Dk2%26page%3D2",
            "/login?next=%2Fcb%3Fapi_key%3D***%26page%3D2",
        ),
        (
            '{"url": "https:\\/\\/x\\/cb?sig=abc\\u0026auth=def\\u0026p=1"}',
            '{"url": "https:\\/\\/x\\/cb?sig=***\\u0026auth=***\\u0026p=1"}',
        ),
        ("access_token=abc&expires_in=3600", "access_token=***&expires_in=3600"),
        ("line\nclient_secret=s3&x=1", "line\nclient_secret=***&x=1"),
        ("a?b=1&amp;password=hunter2&amp;user=bob", "a?b=1&amp;password=***&amp;user=bob"),
    ],
)
def test_credential_like_query_values_are_masked(text: str, expected: str) -> None:
    assert Redactor([])(text) == expected
    assert Redactor([TOKEN])(text) == expected


ORDINARY = [
    "HTTP 410: https://api-inference.huggingface.co is no longer supported. "
    "Please use https://router.huggingface.co instead.",
    "switch to https://router.huggingface.co (named by the provider as the replacement)",
    "HTTP 429: rate limited; retry after 20 s (Retry-After)",
    "limit=100, remaining=0, reset=30",
    "100;w=60",
    "application/json; charset=utf-8",
    '<https://router.huggingface.co/v1/models?page=2&per_page=10>; rel="next"',
    "https://api.example.com/v1/models?retries=3&timeout=10s#section",
    json.dumps([round(0.01 * (i % 97) - 0.4, 4) for i in range(64)]),
    # Pieces of the token, and its usual neighbours, but never the token.
    f"tokens start with {TOKEN[:6]}, e.g. {TOKEN[:5]}xxxx",
    f"Bearer {TOKEN[:10]} {TOKEN[-10:]}",
    f"%{ord(TOKEN[0]):02X}%{ord(TOKEN[1]):02X} &#{ord(TOKEN[0])}; \\u{ord(TOKEN[0]):04x}",
    base64.b64encode(b"Bearer hf_someone-else-entirely-0000").decode(),
    base64.b64encode(TOKEN[:5].encode()).decode(),
    TOKEN[:8].encode().hex(),
    "Root=1-67d0e2c9-5e7f0a7a3b2c1d0e9f8a7b6c",
    "a.b*c+d?(e)[f]{g}|h^$ aXb",
    "see the documentation…",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor([TOKEN, SLASHY, "a.b*c+d?(e)[f]{g}|h^$\\"])(text) == text


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_line_cut_inside_an_encoded_token_shows_none_of_it(form: str) -> None:
    redact = Redactor([SLASHY])
    lead = "HTTP 401: bad token "
    text = lead + FORMS[form](SLASHY) + " (more)"
    for keep in range(1, len(text) - len(lead) - 1):
        line = one_line(text, limit=len(lead) + keep + 1)  # `keep` characters of it, then …
        clean = redact(line)
        assert leaks(clean, [SLASHY]) == [], line
        assert clean.startswith(lead) and clean.endswith("…")


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_excerpt_cut_never_shows_part_of_an_encoded_token(form: str) -> None:
    redact = Redactor([SLASHY, TOKEN])
    # Masks shrink the text a lot: the 512 bytes kept come from far into it.
    text = " ".join(FORMS[form](s) for s in [SLASHY, TOKEN] * 12)
    for shift in range(0, 80, 9):
        excerpt = redact.cut("z" * shift + text, 512)
        assert leaks(excerpt, [SLASHY, TOKEN]) == []
        assert len(excerpt.encode()) <= 512


def test_cutting_redacts_only_a_window_but_keeps_what_redacting_everything_keeps() -> None:
    rng = random.Random(7)
    pieces = [FORMS[f](s) for f in FORMS for s in (SLASHY, TOKEN)]
    pieces += ["?api_key=abcdef&page=2 ", "é", "x" * 40, " ", "\n", "hf_", "%2", "&#"]
    redact = Redactor([SLASHY, TOKEN])
    for _ in range(200):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 80)))
        for size in (0, 7, 100, 512, 1500):
            whole = redact(text).encode()[:size].decode(errors="ignore")
            assert redact.cut(text, size) == whole


def test_a_megabyte_body_is_cut_without_redacting_all_of_it() -> None:
    redact = Redactor([TOKEN])
    body = f'{{"echo": "{FORMS["b64-header"](TOKEN)}", "data": "' + "0" * 1024 * 1024 + '"}'

    started = time.perf_counter()
    excerpt = redact.cut(body, 512)

    assert time.perf_counter() - started < 0.05
    assert excerpt.startswith('{"echo": "') and MASK in excerpt and leaks(excerpt, [TOKEN]) == []


def test_logged_redirects_do_not_show_an_encoded_token(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction.encoded")
    handler_filter = RedactingFilter(Redactor([SLASHY]))
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="test.redaction.encoded"):
            logger.info("redirected to %s", f"https://x/cb/{quote(SLASHY, safe='')}?state=1")
    finally:
        logger.removeFilter(handler_filter)

    assert "redirected to https://x/cb/***?state=1" in caplog.text
