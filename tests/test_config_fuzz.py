"""Hostile and fuzzed config files: each gives a `Config` or a `ConfigError`, fast, never a crash.

The loader must answer for any file, whatever it holds: a "billion laughs" of aliases, a
self-referencing alias, thousands of nested brackets, a 5,000-digit number, a binary file.
A hang is caught by an alarm inside the test, so it fails naming the case instead of stalling.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from monitor.config.load import (
    MAX_BYTES,
    MAX_CHARS,
    MAX_DEPTH,
    MAX_VALUES,
    ConfigError,
    config_warnings,
    load_config,
)
from monitor.config.model import Config
from monitor.config.types import format_duration
from tests.test_config import EXAMPLE, SECTIONS, targets_yaml

ROOT = Path(__file__).resolve().parent.parent
ENV = {"HF_TOKEN": "hf_fuzz_token", "A": "a", "HOST": "example.com"}
NAMED_LIMIT = 1.5  # seconds for one hand-made case ("within about a second")
# The largest files allowed take about a second on an idle machine; these limits leave room
# for a busy CI runner, since a hang (or quadratic time) is what they catch.
CASE_LIMIT = 5.0  # seconds for one fuzzed case
LARGE_LIMIT = 5.0  # seconds for one of the largest files allowed
FUZZ_SEED = 20240607
FUZZ_CASES = 1500


class Hang(BaseException):
    """Raised by the alarm in a case that runs too long.

    A BaseException, so that no `except Exception` inside the loader can swallow it.
    """


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def load_within(path: Path, seconds: float) -> Config | ConfigError:
    """The config, or the ConfigError; Hang if it takes longer than `seconds`."""
    with time_limit(seconds):
        try:
            return load_config(path, env=ENV)
        except ConfigError as exc:
            return exc


def used_as_check_uses_it(config: Config) -> None:
    """What `inferwatch check` does with a valid config, so a crash there is caught too."""
    config_warnings(config, env=ENV)
    redact = config.redactor()
    for t in config.targets:
        redact(t.endpoint)
        format_duration(config.interval_of(t))
        config.rules_of(t)


def billion_laughs(levels: int = 9, copies: int = 9) -> str:
    lines = ["    body:", "      a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        aliases = ", ".join([f"*a{i - 1}"] * copies)
        lines.append(f"      a{i}: &a{i} [{aliases}]")
    head = "targets:\n  - name: lol\n    kind: http\n    url: https://e.com\n"
    return head + "\n".join(lines) + "\n"


def nested_by_aliases() -> str:
    """Each anchor nests the one before 20 levels deeper: 4 + 20 + 41 levels once expanded."""
    deep = "[" * 20 + "{}" + "]" * 20
    return (
        "targets:\n  - {name: a, kind: http, url: 'https://e.com', body: {\n"
        f"      a: &a {deep},\n"
        f"      b: &b {'[' * 20}*a{']' * 20},\n"
        f"      c: {'[' * 20}*b{']' * 20}}}}}\n"
    )


def body(value: str) -> str:
    """A valid config whose one target carries `value` as its body, on line 3."""
    return f"targets:\n  - name: p\n    body: {value}\n    kind: http\n    url: https://e.com\n"


WHOAMI = "targets:\n  - {name: who, kind: hf-whoami}\n"
TOO_LARGE = WHOAMI + "# " + "x" * MAX_CHARS + "\n"

# (file content, what the message must say, the line it must name)
HOSTILE: dict[str, tuple[bytes | str, str, int]] = {
    "billion laughs": (billion_laughs(), f"more than {MAX_VALUES:,} values once aliases", 12),
    "self-referencing alias": ("x: &a [*a]\n" + WHOAMI, "alias *a is inside the list", 1),
    "self-referencing mapping": (body("&a {b: {c: *a}}"), "alias *a is inside the", 3),
    "5,000 nested lists": (body("[" * 5000 + "]" * 5000), "nested more than 64 levels deep", 3),
    "5,000 nested mappings": (
        body("{a: " * 5000 + "1" + "}" * 5000),
        "nested more than 64 levels deep",
        3,
    ),
    "100 nested block mappings": (
        WHOAMI + "".join(f"{'  ' * i}k{i}:\n" for i in range(100)),
        "nested more than 64 levels deep",
        67,
    ),
    "nesting through aliases": (nested_by_aliases(), "alias *b nests the data more than", 5),
    "401-digit interval": (
        "defaults:\n  interval: " + "9" * 401 + "\n" + WHOAMI,
        "a number 401 digits long is too large",
        2,
    ),
    "5,000-digit interval": (
        WHOAMI + "  - {name: b, kind: hf-whoami, interval: " + "9" * 5000 + "}\n",
        "a number 5000 digits long is too large",
        3,
    ),
    "401-digit failure_threshold": (
        "defaults: {failure_threshold: " + "1" * 401 + "}\n" + WHOAMI,
        "401 digits long",
        1,
    ),
    "401-digit concurrency": (WHOAMI + "concurrency: -" + "7" * 401 + "\n", "401 digits", 3),
    "401-digit hex port": (
        "alerts:\n  email: {host: h, sender: a@b, recipients: [c@d],\n"
        f"    port: 0x{'f' * 401}}}\n" + WHOAMI,
        "a number 401 digits long",
        3,
    ),
    "infinite interval": (
        "defaults: {interval: .inf}\n" + WHOAMI,
        "must be a finite time greater than zero",
        1,
    ),
    "minus infinite timeout": (
        WHOAMI + "  - {name: b, kind: hf-whoami, timeout: -.inf}\n",
        "must be a finite time",
        3,
    ),
    "nan interval": (WHOAMI + "  - {name: b, kind: hf-whoami, interval: .NaN}\n", "finite", 3),
    "overflowing float": ("retention:\n  raw: 1.0e+999\n" + WHOAMI, "finite", 2),
    "binary file": (bytes(range(256)) * 8, "not UTF-8 text (byte 128)", 2),  # \n is byte 10
    "PNG image": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "not UTF-8 text", 1),
    "invalid UTF-8 inside": (WHOAMI.encode() + b"  - {name: caf\xc3\x28}\n", "not UTF-8", 3),
    "NUL byte": (WHOAMI + "  - {name: a\0b, kind: hf-whoami}\n", "character #x0000", 3),
    "empty file": (b"", "no targets", 1),
    "only whitespace": (b"\n\n   \n", "no targets", 1),
    "a YAML list": ("- name: a\n  kind: hf-whoami\n", "the file must be a mapping", 1),
    "a YAML scalar": ("# inferwatch\nhello world\n", "the file must be a mapping", 2),
    "two documents": (WHOAMI + "---\n" + WHOAMI, "expected a single document", 3),
    "python object tag": (
        body("!!python/object/apply:os.system ['echo pwned']"),
        "could not determine a constructor",
        3,
    ),
    "impossible date": (body("{when: 2024-13-01}"), "cannot read '2024-13-01' as a date", 3),
    "timestamp tag on text": (body("!!timestamp soon"), "cannot read 'soon' as a date", 3),
    "undefined alias": (body("*nowhere"), "found undefined alias 'nowhere'", 3),
    "tab indentation": ("targets:\n\t- {name: a, kind: hf-whoami}\n", "invalid YAML", 2),
    "too large": (TOO_LARGE, f"too large: {len(TOO_LARGE):,} characters", 3),
}


@pytest.mark.parametrize(("content", "fragment", "line"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_file_is_a_config_error_naming_file_and_line(
    tmp_path: Path, content: bytes | str, fragment: str, line: int
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)

    start = time.monotonic()
    try:
        result = load_within(path, NAMED_LIMIT)
    except Hang:
        pytest.fail(f"no answer within {NAMED_LIMIT}s")
    elapsed = time.monotonic() - start

    assert isinstance(result, ConfigError), "a hostile file was accepted"
    messages = [str(p) for p in result.problems]
    assert any(fragment in m for m in messages), messages
    (problem,) = [p for p in result.problems if fragment in p.message]
    assert problem.line == line, messages
    assert str(problem).startswith(f"{path}:{line}: ")
    assert len(str(result)) < 1000, "a message must stay readable, not quote the whole file"
    assert elapsed < NAMED_LIMIT


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_file_is_refused_without_reading_it_all() -> None:
    try:
        result = load_within(Path("/dev/zero"), NAMED_LIMIT)
    except Hang:
        pytest.fail(f"no answer within {NAMED_LIMIT}s")
    assert isinstance(result, ConfigError)
    assert str(result) == (
        f"/dev/zero:1: too large: more than {MAX_BYTES:,} bytes "
        f"(a config has at most {MAX_CHARS:,} characters)"
    )


# Inputs that once took quadratic time; each may be valid or not, but must answer fast.
SLOW_BEFORE: dict[str, str] = {
    "many unclosed ${A:- in a header": targets_yaml(
        "{name: h, kind: hf-whoami, headers: {k: '" + "${A:-" * 15_000 + "'}}"
    ),
    "a duration of spaces then junk": targets_yaml(
        "{name: d, kind: hf-whoami, interval: '1" + " " * 90_000 + "x'}"
    ),
}


@pytest.mark.parametrize("text", SLOW_BEFORE.values(), ids=SLOW_BEFORE.keys())
def test_inputs_that_were_quadratic_answer_fast(tmp_path: Path, text: str) -> None:
    assert_answers_within(tmp_path, text, NAMED_LIMIT)


# Files just short of MAX_CHARS; the slowest to read have a token in every other character.
LARGEST: dict[str, str] = {
    "a 90,000-character string": targets_yaml(
        "{name: s, kind: http, url: 'https://e.com', body: '" + "x" * 90_000 + "'}"
    ),
    "a flow list of 24,000 lists": targets_yaml(
        "{name: l, kind: http, url: 'https://e.com', body: [" + "[1]," * 24_000 + "]}"
    ),
    "30 levels nested 1,000 times": targets_yaml(
        "{name: n, kind: http, url: 'https://e.com', body: ["
        + ("[" * 30 + "]" * 30 + ",") * 1000
        + "]}"
    ),
}


@pytest.mark.parametrize("text", LARGEST.values(), ids=LARGEST.keys())
def test_the_largest_files_allowed_answer_in_seconds(tmp_path: Path, text: str) -> None:
    assert_answers_within(tmp_path, text, LARGE_LIMIT)


def assert_answers_within(tmp_path: Path, text: str, seconds: float) -> None:
    assert len(text) <= MAX_CHARS
    path = tmp_path / "slow.yaml"
    path.write_text(text)
    try:
        result = load_within(path, seconds)
    except Hang:
        pytest.fail(f"no answer within {seconds}s")
    if isinstance(result, ConfigError):
        assert len(str(result)) < 1000
    else:
        used_as_check_uses_it(result)


def test_a_fleet_of_ten_thousand_targets_loads(tmp_path: Path) -> None:
    """The limits bound hostile files, not fleets: 10,000 targets (about 1.6 MB) load."""
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "defaults: {interval: 60s}\ntargets:\n"
        + "".join(
            f"  - name: model-{i:05d}\n    kind: openai-chat\n"
            f"    model: meta-llama/Llama-3.1-8B-Instruct\n"
            f"    base_url: https://router.huggingface.co/v1\n    token_env: HF_TOKEN\n"
            for i in range(10_000)
        )
    )
    config = load_within(path, 30)
    assert isinstance(config, Config), str(config)
    assert len(config.targets) == 10_000


def test_aliases_up_to_the_limits_are_fine(tmp_path: Path) -> None:
    """The limits refuse only what no config needs: 8 levels x 3 aliases is 25,000 values."""
    laughs = billion_laughs(levels=8, copies=3)
    deep = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)  # file, targets, target: 3 levels
    path = tmp_path / "ok.yaml"
    deep_target = f"  - {{name: deep, kind: http, url: 'https://e.com', body: {deep}}}\n"
    path.write_text(laughs + deep_target)
    config = load_within(path, NAMED_LIMIT)
    assert isinstance(config, Config), str(config)
    assert len(config.target("lol").body["a8"]) == 3


# ---------------------------------------------------------------- the fuzzer

SEEDS = {
    "example file": (ROOT / "inferwatch.example.yaml").read_text(),
    "issue example": EXAMPLE,
    "all sections": SECTIONS,
    "anchors and merges": (
        "defaults: &base {interval: 2m, timeout: 5s}\n"
        "targets:\n"
        "  - &web {name: web, kind: http, url: 'https://${HOST}/', headers: {k: '${A:-x}'}}\n"
        "  - {<<: *web, name: web2, interval: 5m}\n"
        "  - name: api\n"
        "    <<: [*web, *base]\n"
        "    expect: {status: [200, 204], max_latency: 2s, json_path: {a.b: 1}}\n"
    ),
}

# YAML syntax, tags, numbers and bytes that have broken YAML loaders before.
TOKENS = [
    *("&a ", "*a", "&b [*a, *a, *a]", "x: &a [*a]\n", "<<: ", "<<: *a\n", "<<: [*a, *b]"),
    *("[", "]", "{", "}", ", ", ": ", "- ", "? ", "|\n", ">-\n", "'", '"', "#", "\\", "%"),
    *("---\n", "...\n", "%YAML 1.1\n---\n", "%TAG ! tag:x,2000:\n", "!x ", "! "),
    *("!!python/object:os.system ", "!!python/object/apply:os.system [id]", "!!python/name:os"),
    *("!!binary ", "!!binary AAA=", "!!timestamp ", "!!int ", "!!float ", "!!set ", "!!omap "),
    *("!!pairs ", "!!str ", "!!map ", "!!seq ", "!!null ", "!!bool ", "!!merge ", "!<x> "),
    *("9" * 31, "9" * 401, "9" * 5000, "-" + "1" * 400, "0x" + "f" * 40, "0b" + "1" * 200),
    *("1:2:3:4:5:6:7:8:9:10:11:12:13:14:15:16", "1_0" * 200, "1.0e+999", "-.inf", ".nan"),
    *(".inf", "0", "-1", "1e400", "2024-13-45", "2024-02-30 25:61:61", "2001-12-14t21:59:43-99"),
    *("true", "~", "null", "yes", "off", "''", '""', "${A}", "${NOPE}", "${A:-", "${A:-x}", "}"),
    *("\t", "\0", "\x07", "\x85", "\u2028", "\ufeff", "\ud800", "\U0001f600", "\r", "\r\n"),
    *("[" * 100, "{a: " * 100, "- " * 100, "x" * 50_000, "a: " * 200, "\n" * 200),
]
CHARS = "ab0: -[]{},&*!|>'\"#%@`?\t\n\r\0\\\x85\u2028\ufeffé😀$"


def mutate(text: str, rng: random.Random) -> tuple[bytes, list[str]]:
    """Apply 1 to 4 random edits; return the file's bytes and what was done, for the report."""
    done = []
    for _ in range(rng.randint(1, 4)):
        edit = rng.choice(EDITS)
        text = edit(text, rng)
        done.append(edit.__name__)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.05:  # raw bytes: invalid UTF-8
        at = rng.randrange(len(data) + 1)
        data = data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[at:]
        done.append("bytes")
    return data, done


def _position(text: str, rng: random.Random) -> int:
    return rng.randrange(len(text) + 1)


def insert_token(text: str, rng: random.Random) -> str:
    at = _position(text, rng)
    return text[:at] + rng.choice(TOKENS) + text[at:]


def replace_value(text: str, rng: random.Random) -> str:
    """A value after `: ` becomes a token: where a field is read, not just anywhere."""
    starts = [i + 2 for i in range(len(text) - 1) if text[i : i + 2] == ": "]
    if not starts:
        return insert_token(text, rng)
    at = rng.choice(starts)
    end = at
    while end < len(text) and text[end] not in ",}\n":
        end += 1
    return text[:at] + rng.choice(TOKENS) + text[end:]


def change_char(text: str, rng: random.Random) -> str:
    at = _position(text, rng)
    return text[:at] + rng.choice(CHARS) + text[at + 1 :]


def delete_span(text: str, rng: random.Random) -> str:
    at = _position(text, rng)
    return text[:at] + text[at + rng.randint(1, 20) :]


def _lines(edit: Callable[[list[str], int, random.Random], None]) -> Callable[..., str]:
    def on_lines(text: str, rng: random.Random) -> str:
        lines = text.split("\n")
        edit(lines, rng.randrange(len(lines)), rng)
        return "\n".join(lines)

    on_lines.__name__ = edit.__name__
    return on_lines


@_lines
def delete_line(lines: list[str], i: int, rng: random.Random) -> None:
    del lines[i]


@_lines
def duplicate_line(lines: list[str], i: int, rng: random.Random) -> None:
    lines.insert(i, lines[i])


@_lines
def swap_lines(lines: list[str], i: int, rng: random.Random) -> None:
    j = rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]


@_lines
def reindent_line(lines: list[str], i: int, rng: random.Random) -> None:
    lines[i] = rng.choice(["", " ", "  ", "    ", "\t"]) + lines[i].lstrip(" ")


@_lines
def repeat_line(lines: list[str], i: int, rng: random.Random) -> None:
    lines[i : i + 1] = [lines[i]] * rng.choice([10, 100, 1000])


def nest_value(text: str, rng: random.Random) -> str:
    depth = rng.choice([10, 63, 64, 65, 70, 300, 5000])
    opening, closing = rng.choice([("[", "]"), ("{a: ", "}")])
    at = _position(text, rng)
    return text[:at] + opening * depth + "x" + closing * depth + text[at:]


def add_laughs(text: str, rng: random.Random) -> str:
    levels, copies = rng.randint(2, 9), rng.randint(2, 12)
    laughs = billion_laughs(levels, copies).split("    body:\n", 1)[1]
    target = "  - name: l\n    kind: http\n    url: https://e.com\n    body:\n"
    return text.replace("targets:\n", "targets:\n" + target + laughs, 1)


EDITS = [
    *(insert_token, insert_token, replace_value, replace_value, change_char, delete_span),
    *(delete_line, duplicate_line, swap_lines, reindent_line, repeat_line, nest_value),
    add_laughs,
]


def test_fuzzed_configs_give_a_config_or_a_config_error_in_time(tmp_path: Path) -> None:
    rng = random.Random(FUZZ_SEED)
    failures: list[str] = []
    outcomes = {"valid": 0, "refused": 0}
    seeds = list(SEEDS.items())
    started = time.monotonic()
    for case in range(FUZZ_CASES):
        seed_name, seed = seeds[case % len(seeds)]
        data, edits = mutate(seed, rng)
        path = tmp_path / f"case-{case}.yaml"
        path.write_bytes(data)
        where = f"case {case} ({seed_name}: {', '.join(edits)}; {len(data)} bytes, {path})"
        try:
            result = load_within(path, CASE_LIMIT)
            if isinstance(result, ConfigError):
                outcomes["refused"] += 1
                assert result.problems, "a ConfigError without a problem"
                for problem in result.problems:
                    assert problem.file == str(path) and problem.message, problem
                    assert str(problem).startswith(f"{path}:"), problem
            else:
                outcomes["valid"] += 1
                used_as_check_uses_it(result)
        except Hang:
            failures.append(f"{where}: no answer within {CASE_LIMIT}s")
        except Exception as exc:  # anything but a Config or a ConfigError is the bug sought
            failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        path.unlink()  # keep only failing cases, to reproduce them
    elapsed = time.monotonic() - started

    assert not failures, f"{len(failures)} of {FUZZ_CASES} cases failed:\n" + "\n".join(
        failures[:20]
    )
    # The fuzzer must reach validation, not stop at YAML syntax every time.
    assert outcomes["valid"] > FUZZ_CASES // 20, outcomes
    assert outcomes["refused"] > FUZZ_CASES // 2, outcomes
    assert elapsed < 60, f"{FUZZ_CASES} cases took {elapsed:.0f}s"


# ---------------------------------------------------------------- through the real CLI


def inferwatch() -> list[str]:
    """The installed `inferwatch` script next to this Python, as a user runs it."""
    script = Path(sys.executable).parent / "inferwatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor"]


CLI_CASES = [
    "billion laughs",
    "self-referencing alias",
    "5,000 nested lists",
    "5,000-digit interval",
    "binary file",
]


@pytest.mark.parametrize("case", CLI_CASES)
def test_check_refuses_a_hostile_file_with_exit_2_and_no_traceback(
    tmp_path: Path, case: str
) -> None:
    content, fragment, line = HOSTILE[case]
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)

    started = time.monotonic()
    result = subprocess.run(
        [*inferwatch(), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 2, result.stderr
    err = " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout
    assert f"error: {path}:{line}: " in err
    assert fragment in err
    assert "nothing was run" in err
    assert elapsed < 10, f"took {elapsed:.1f}s"
