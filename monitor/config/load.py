"""Loading the YAML config: text -> YAML data -> interpolated data -> validated `Config`.

Every problem is collected (not just the first) and reported with the file, the line, the target
name, the field, what is wrong and what is allowed. Reading is bounded (size, nesting, aliases,
number length), so any file at all gives a `Config` or a `ConfigError` within seconds.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config.model import (
    Config,
)
from monitor.config.types import (
    DEFAULT_CONFIG_FILE,
    _brief,
    format_duration,
)
from monitor.domain.cost import frequent_probe_warning
from monitor.targets import TARGET_KINDS, TargetBase, parse_target

# ---------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a config file."""

    file: str
    message: str
    target: str | None = None
    field: str | None = None
    line: int | None = None
    window: str | None = None  # a maintenance window, by name

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.target is not None:
            parts.append(f"target {self.target!r}")
        if self.window is not None:
            parts.append(f"maintenance window {self.window!r}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return ": ".join([*parts, self.message])


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# ---------------------------------------------------------------- interpolation

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSWD|PWD|AUTH|CREDENTIAL", re.IGNORECASE)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class _Interpolation:
    env: Mapping[str, str]
    missing: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)

    def walk(self, data: Any, path: tuple[Any, ...] = ()) -> Any:
        if isinstance(data, dict):
            return {k: self.walk(v, (*path, k)) for k, v in data.items()}
        if isinstance(data, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(data)]
        if isinstance(data, str):
            # Every match ends at a '}': past the last one a search can only fail, and for a
            # string of many '${A:-' it fails slowly (each start scans to the end).
            end = data.rfind("}") + 1
            return _VAR.sub(lambda m: self._lookup(m, path), data[:end]) + data[end:]
        return data

    def _lookup(self, match: re.Match[str], path: tuple[Any, ...]) -> str:
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        if not value and default is not None:
            value = default  # like the shell: the default covers unset and empty
        elif value is None:
            self.missing.append((path, name))
            return ""
        # Header values usually carry credentials (x-api-key, ...), and so does any variable
        # named like one, wherever it is used (a ?key= in a URL, a database password).
        if value and ("headers" in path or SECRET_NAME.search(name)):
            self.secrets.add(value)
        return value


# ---------------------------------------------------------------- reading YAML, bounded

# A fleet's config is up to a few megabytes (10,000 targets are about 1.6 MB and 110,000
# values). These limits make any file, broken or hostile ("billion laughs" aliases, a
# self-referencing alias, thousands of nested brackets, a 5,000-digit number), a readable
# problem instead of a hang or a crash. Reading costs about 20 us a value, so the largest
# file allowed answers within about 5 s here; hostile expansions are refused at once (an alias is
# charged the size of what it names without being expanded).
MAX_CHARS = 4_000_000
MAX_BYTES = 4 * MAX_CHARS  # read no more than this: UTF-8 takes at most 4 bytes a character
MAX_DEPTH = 64  # lists and mappings inside each other, aliases expanded
MAX_VALUES = 200_000  # scalars, lists and mappings, aliases expanded
MAX_DIGITS = 30  # in an integer

_INT_TAG = "tag:yaml.org,2002:int"
_NOT_DIGITS = re.compile(r"^[-+]?(?:0[bxo])?|[_:]")  # sign, base prefix, separators
_TAG_NAMES = {
    "timestamp": "a date or time",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
}


class _Refused(yaml.MarkedYAMLError):
    """A file the loader will not read to the end; `problem` says why, `problem_mark` where."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, measuring the document while composing it.

    The composer sees every node and alias once; the size and depth an alias stands for are
    known from its anchor, so a billion laughs is refused after a few dozen aliases, before
    the constructor or anything after it (interpolation, validation) walks the expansion.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0  # lists and mappings open around the current node
        self._values = 0
        self._open: set[str] = set()  # anchors of the lists and mappings being composed
        self._measure: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
        if isinstance(event, yaml.AliasEvent):
            return self._compose_alias(event)
        collection = not isinstance(event, yaml.ScalarEvent)
        if collection:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    f"lists and mappings nested more than {MAX_DEPTH} levels deep",
                    event.start_mark,
                )
        if event.anchor is not None:
            self._open.add(event.anchor)
        node = super().compose_node(parent, index)
        self._open.discard(event.anchor)
        if collection:
            self._depth -= 1
        if isinstance(node, yaml.ScalarNode):
            _check_scalar(node)
            self._measure[id(node)] = (1, 0)
        else:
            children = [
                self._measure[id(n)]
                for item in node.value  # type: ignore[union-attr]  # a collection node here
                for n in (item if isinstance(item, tuple) else (item,))
            ]
            self._measure[id(node)] = (
                1 + sum(values for values, _ in children),
                1 + max((depth for _, depth in children), default=0),
            )
        self._count(1, event.start_mark)
        return node

    def _compose_alias(self, event: yaml.AliasEvent) -> Any:
        if event.anchor in self._open:
            raise _Refused(
                f"alias *{event.anchor} is inside the list or mapping it names "
                "(it would contain itself forever)",
                event.start_mark,
            )
        # The anchored node, or PyYAML's undefined-alias error (it accepts None for both).
        node = super().compose_node(None, None)  # type: ignore[arg-type]
        values, depth = self._measure[id(node)]
        if self._depth + depth > MAX_DEPTH:
            raise _Refused(
                f"alias *{event.anchor} nests the data more than {MAX_DEPTH} levels deep",
                event.start_mark,
            )
        self._count(values, event.start_mark)
        return node

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise _Refused(
                f"more than {MAX_VALUES:,} values once aliases (*name) are expanded; "
                "a config needs far fewer",
                mark,
            )

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        # PyYAML lets through whatever Python raises for a value it cannot build: ValueError
        # for 2024-13-01, AttributeError for `!!timestamp soon`, IndexError for `!!int ''`,
        # KeyError for `!!bool maybe`.
        except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as exc:
            kind = _TAG_NAMES.get(str(node.tag).rsplit(":", 1)[-1], str(node.tag))
            detail = f" ({exc})" if isinstance(exc, ValueError) else ""
            message = f"cannot read {_brief(node.value)} as {kind}{detail}"
            raise _Refused(message, node.start_mark) from None


def _check_scalar(node: yaml.ScalarNode) -> None:
    """Refuse integers too long to mean anything, before int() spends time on them."""
    if node.tag == _INT_TAG:
        digits = len(_NOT_DIGITS.sub("", node.value))
        if digits > MAX_DIGITS:
            raise _Refused(
                f"a number {digits} digits long is too large (at most {MAX_DIGITS} digits; "
                "quote it if it is text)",
                node.start_mark,
            )


def _too_large(file: str, text: str | bytes, size: str) -> ConfigError:
    """The problem names the line where the limit is passed."""
    if isinstance(text, str):
        line = text.count("\n", 0, MAX_CHARS) + 1
    else:
        line = text.count(b"\n", 0, MAX_CHARS) + 1
    message = f"too large: {size} (a config has at most {MAX_CHARS:,} characters)"
    return ConfigError([Problem(file, message, line=line)])


def _read_yaml(text: str, file: str) -> tuple[Any, yaml.Node | None]:
    """YAML text -> (data, root node), or ConfigError naming the line; bounded in time."""
    if len(text) > MAX_CHARS:
        raise _too_large(file, text, f"{len(text):,} characters")
    try:
        loader = _BoundedLoader(text)  # the reader refuses control characters right here
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        char = ord(exc.character) if isinstance(exc.character, str) else exc.character
        where = text.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: character #x{char:04x} is not allowed ({exc.reason})"
        raise ConfigError([Problem(file, message, line=where)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line: int | None = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        if not isinstance(exc, _Refused):
            problem = f"invalid YAML: {_context(exc, line)}{problem}"
        raise ConfigError([Problem(file, problem, line=line)]) from None
    return data, root


def _context(exc: yaml.YAMLError, line: int | None) -> str:
    """PyYAML's 'while scanning a quoted scalar' and where that began, to go before the problem."""
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if not context:
        return ""
    where = f" on line {mark.line + 1}" if mark and mark.line + 1 != line else ""
    return f"{context}{where}, "


def _key_lines(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """Path of every key and list item (keys as written, indexes as str) -> its 1-based line.

    Built after construction, when merge keys (`<<: *base`) are already flattened in: a merged
    key has the line where its anchor wrote it.
    """
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines[(*path, key.value)] = key.start_mark.line + 1
                    walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, str(i))] = item.start_mark.line + 1
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())  # bounded: the loader refused more than MAX_VALUES / MAX_DEPTH
    return lines


def _line_at(lines: Mapping[tuple[str, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of `loc`, else of its nearest written parent (a missing field: its mapping)."""
    path = tuple(str(p) for p in loc)
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


# ---------------------------------------------------------------- validation


def _allowed_fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _unknown_field_message(name: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown field"
    allowed = _allowed_fields(model)
    close = difflib.get_close_matches(str(name), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown field{hint}; allowed: {', '.join(allowed)}"


def _model_for(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Walk a pydantic error location to the model that owns its last field."""
    model: Any = root
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            return None
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model  # type: ignore[no-any-return]  # narrowed to a BaseModel class above


def _pydantic_problems(
    exc: ValidationError,
    file: str,
    model: type[BaseModel],
    prefix: tuple[Any, ...] = (),
    target: str | None = None,
    line: int | None = None,
    lines: Mapping[tuple[str, ...], int] | None = None,
) -> list[Problem]:
    """One problem per pydantic error; on `line`, or where `lines` says its field is written."""
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = _unknown_field_message(str(loc[-1]), _model_for(model, loc[:-1]))
        elif err["type"] == "missing":
            msg = "is required"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        elif err["type"] == "string_pattern_mismatch":
            msg = f"{_brief(err['input'])} is not allowed here ({_pattern_help(loc[-1])})"
        elif err["type"] == "literal_error":
            msg = f"{_brief(err['input'])} is not allowed; {msg[0].lower()}{msg[1:]}"
        else:
            msg = f"{msg} (got {_brief(err.get('input'))})" if "input" in err else msg
        fld = ".".join(str(p) for p in (*prefix, *loc)) or None
        at = _line_at(lines, (*prefix, *loc)) if lines is not None else line
        problems.append(Problem(file, msg, target=target, field=fld, line=at))
    return problems


def _pattern_help(field_name: Any) -> str:
    if field_name == "token_env":
        return "the NAME of an environment variable, e.g. HF_TOKEN, not the token itself"
    if field_name == "name":
        return "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 100"
    return "see the config reference"


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    file = str(path)
    env = os.environ if env is None else env
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # not all of a huge file, or of /dev/zero
        if len(raw) > MAX_BYTES:
            raise _too_large(file, raw, f"more than {MAX_BYTES:,} bytes")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(file, "file not found; create it (see README) or pass --config FILE")]
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        message = f"not UTF-8 text (byte {exc.start}); is this a binary file?"
        raise ConfigError([Problem(file, message, line=line)]) from None
    except OSError as exc:
        raise ConfigError([Problem(file, f"cannot read: {exc.strerror or exc}")]) from None
    return parse_config(text, file=file, env=env, base_dir=path.parent)


def parse_config(
    text: str,
    file: str = DEFAULT_CONFIG_FILE,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    env = os.environ if env is None else env
    data, root = _read_yaml(text, file)
    start = root.start_mark.line + 1 if root is not None else 1  # the file's first value
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [Problem(file, "the file must be a mapping with a 'targets:' list", line=start)]
        )

    interp = _Interpolation(env)
    data = interp.walk(data)
    raw_targets = data.get("targets")
    key_lines = _key_lines(root)
    targets_line = key_lines.get(("targets",), start)
    lines = {  # index of each item under `targets:` -> its line
        i: key_lines.get(("targets", str(i)), targets_line)
        for i in range(len(raw_targets) if isinstance(raw_targets, list) else 0)
    }
    problems: list[Problem] = []

    def name_of(i: int) -> str:
        item = raw_targets[i] if isinstance(raw_targets, list) and i < len(raw_targets) else None
        name = item.get("name") if isinstance(item, dict) else None
        return name if isinstance(name, str) else f"#{i + 1}"

    broken: set[int] = set()  # targets with a missing ${VAR}: their other errors would be noise
    for loc, var in interp.missing:
        in_target = len(loc) > 1 and loc[0] == "targets" and isinstance(loc[1], int)
        if in_target:
            broken.add(loc[1])
        fld = loc[2:] if in_target else loc
        problems.append(
            Problem(
                file,
                f"environment variable {var} is not set (used as ${{{var}}}; "
                f"set it, or write ${{{var}:-default}})",
                target=name_of(loc[1]) if in_target else None,
                field=".".join(str(p) for p in fld) or None,
                line=lines.get(loc[1]) if in_target else _line_at(key_lines, loc),
            )
        )

    top = {k: v for k, v in data.items() if k != "targets"}
    try:
        config = Config.model_validate({**top, "targets": []})
    except ValidationError as exc:
        problems += _in_windows(
            _pydantic_problems(exc, file, Config, lines=key_lines), data.get("maintenance")
        )
        config = None
    if config is not None and not any(loc[:1] == ("database",) for loc, _ in interp.missing):
        try:
            make_url(config.database)
        except ArgumentError:
            problems.append(
                Problem(
                    file,
                    f"{_brief(config.database, 100)} is not a database URL (e.g. "
                    "sqlite:///inferwatch.db or postgresql+psycopg://user@host/db)",
                    field="database",
                    line=_line_at(key_lines, ("database",)),
                )
            )

    targets = []
    if raw_targets is None or raw_targets == []:
        problems.append(
            Problem(
                file,
                "no targets: add a 'targets:' list with at least one target "
                "(see inferwatch.example.yaml)",
                field="targets",
                line=targets_line,
            )
        )
    elif not isinstance(raw_targets, list):
        problems.append(
            Problem(file, "must be a list of targets", field="targets", line=targets_line)
        )
    else:
        problems += _duplicate_names(raw_targets, file, lines)
        kinds = {t.get("name"): t.get("kind") for t in raw_targets if isinstance(t, dict)}
        for i, raw in enumerate(raw_targets):
            name, line = name_of(i), lines.get(i)
            if not isinstance(raw, dict):
                problems.append(
                    Problem(file, "each target must be a mapping", target=name, line=line)
                )
                continue
            if i in broken:
                continue
            try:
                target = parse_target(raw)
            except ValidationError as exc:
                kind_model = TARGET_KINDS.get(str(raw.get("kind")))
                problems += _pydantic_problems(
                    exc, file, kind_model or TargetBase, target=name, line=line
                )
                continue
            except ValueError as exc:  # unknown or missing kind
                problems.append(Problem(file, str(exc), target=name, field="kind", line=line))
                continue
            problems += [
                Problem(file, msg, target=name, field=fld, line=line)
                for fld, msg in target.config_errors()
            ]
            if config is not None:
                problems += [
                    Problem(file, msg, target=name, field="channels", line=line)
                    for msg in _unconfigured_channels(target, config)
                ]
            problems += [
                Problem(file, msg, target=name, field="status_page", line=line)
                for msg in _status_page_problems(target.status_page, kinds)
            ]
            targets.append(target)

    if config is not None and isinstance(raw_targets, list):
        problems += _window_scope_problems(config, raw_targets, file, key_lines)

    if problems or config is None:
        problems.sort(key=lambda p: p.line or 0)  # file order (stable within a line)
        raise ConfigError(problems)

    config = config.model_copy(
        update={"targets": targets, "database": _resolve_sqlite_path(config.database, base_dir)}
    )
    config._source = file
    password = make_url(config.database).password
    config._secrets = frozenset(
        interp.secrets
        | _token_values(targets, env)
        | _channel_secrets(config, env)
        | ({str(password)} if password else set())
    )
    return config


def _in_windows(problems: list[Problem], raw_windows: Any) -> list[Problem]:
    """Problems under `maintenance:` name their window ("maintenance.0.duration" becomes window
    'weekly-deploy', field 'duration')."""
    named = []
    for p in problems:
        parts = (p.field or "").split(".")
        if len(parts) >= 2 and parts[0] == "maintenance" and parts[1].isdigit():
            i = int(parts[1])
            item = raw_windows[i] if isinstance(raw_windows, list) and i < len(raw_windows) else {}
            name = item.get("name") if isinstance(item, dict) else None
            window = name if isinstance(name, str) else f"#{i + 1}"
            p = replace(p, window=window, field=".".join(parts[2:]) or None)
        named.append(p)
    return named


def _window_scope_problems(
    config: Config, raw_targets: list[Any], file: str, lines: Mapping[tuple[str, ...], int]
) -> list[Problem]:
    """A window must name known targets and tags (a typo would silence nothing), once each.
    Checked against the targets as written, so a target with an error of its own is not
    also reported as unknown."""
    raw = [t for t in raw_targets if isinstance(t, dict)]
    names = {t["name"] for t in raw if isinstance(t.get("name"), str)}
    tags = {
        tag
        for t in raw
        if isinstance(t.get("tags"), list)
        for tag in t["tags"]
        if isinstance(tag, str)
    }
    problems = []
    seen: set[str] = set()
    for i, window in enumerate(config.maintenance):
        where = {"file": file, "window": window.name}
        if window.name in seen:
            line = _line_at(lines, ("maintenance", i, "name"))
            problems.append(
                Problem(**where, message="duplicate window name", field="name", line=line)
            )
        seen.add(window.name)
        for j, name in enumerate(window.targets):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                line = _line_at(lines, ("maintenance", i, "targets", j))
                message = f"{name!r} is not a configured target{hint}"
                problems.append(Problem(**where, message=message, field="targets", line=line))
        for j, tag in enumerate(window.tags):
            if tag not in tags:
                have = ", ".join(sorted(tags)) or "none"
                line = _line_at(lines, ("maintenance", i, "tags", j))
                message = f"no target has the tag {tag!r} (tags in use: {have})"
                problems.append(Problem(**where, message=message, field="tags", line=line))
    return problems


def _unconfigured_channels(target: Any, config: Config) -> list[str]:
    missing = [c for c in target.channels or () if c not in config.alerts.channels]
    if not missing:
        return []
    have = ", ".join(config.alerts.channels) or "none"
    return [
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not configured under "
        f"alerts: (configured: {have})"
    ]


def _status_page_problems(page: str | None, kinds: Mapping[Any, Any]) -> list[str]:
    """`status_page` must name a statuspage target (checked against the targets as written,
    so a page target with an error of its own is not also called unknown)."""
    if page is None:
        return []
    if page not in kinds:
        pages = [str(n) for n, kind in kinds.items() if kind == "statuspage"]
        close = difflib.get_close_matches(page, pages, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [f"{page!r} is not a configured target{hint}; add a target of kind statuspage"]
    if kinds[page] != "statuspage":
        return [f"{page!r} is a {kinds[page]} target; status_page must name a statuspage target"]
    return []


def _channel_secrets(config: Config, env: Mapping[str, str]) -> set[str]:
    """Where alerts go is a credential too: a webhook URL, its signing key, Slack's hook URL
    and every Apprise URL (they carry tokens in their paths)."""
    alerts = config.alerts
    values = set()
    if alerts.webhook is not None:
        values.add(alerts.webhook.url)
        if alerts.webhook.secret_env:
            values.add(env.get(alerts.webhook.secret_env, ""))
    if alerts.slack is not None:
        values.add(env.get(alerts.slack.webhook_url_env, "").strip())
    if alerts.apprise is not None:
        values.update(env.get(alerts.apprise.urls_env, "").split())
    return {v for v in values if v}


def _duplicate_names(raw_targets: list[Any], file: str, lines: dict[int, int]) -> list[Problem]:
    """Checked on the raw names, so a duplicate is reported even if its twin has other errors."""
    first_seen: dict[str, int] = {}
    problems = []
    for i, raw in enumerate(raw_targets):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_seen:
            problems.append(
                Problem(
                    file,
                    f"duplicate name (first used on line {lines.get(first_seen[name])}); "
                    "names must be unique",
                    target=name,
                    field="name",
                    line=lines.get(i),
                )
            )
        first_seen.setdefault(name, i)
    return problems


def _token_values(targets: list[Any], env: Mapping[str, str]) -> set[str]:
    values = {env[t.token_env] for t in targets if t.token_env and env.get(t.token_env)}
    return values | {v.strip() for v in values}


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """Relative SQLite paths are relative to the config file, not the working directory."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # reported when the engine is made, with the URL in the message
    path = parsed.database
    if base_dir is None or parsed.get_backend_name() != "sqlite" or not path:
        return url
    if path == ":memory:" or path.startswith("file:") or Path(path).is_absolute():
        return url
    return parsed.set(database=str((base_dir / path).resolve())).render_as_string(
        hide_password=False
    )


def config_warnings(config: Config, env: Mapping[str, str] | None = None) -> list[Problem]:
    """Things that work but are probably not what the user wants."""
    env = os.environ if env is None else env
    warnings = []
    unset: dict[str, list[str]] = {}
    for t in config.targets:
        if t.token_env and not env.get(t.token_env):
            unset.setdefault(t.token_env, []).append(t.name)
    padded = sorted(
        {
            t.token_env
            for t in config.targets
            if t.token_env and (env.get(t.token_env) or "").strip() != (env.get(t.token_env) or "")
        }
    )
    for var in padded:
        warnings.append(
            Problem(
                config.source,
                f"environment variable {var} has spaces or a newline around "
                "the token; inferwatch strips them",
                field="token_env",
            )
        )
    for var, names in unset.items():
        warnings.append(
            Problem(
                config.source,
                f"environment variable {var} is not set: requests will carry no token and "
                f"will likely fail as auth_missing (used by {', '.join(names)})",
                field="token_env",
            )
        )
    for t in config.targets:
        if config.timeout_of(t) >= config.interval_of(t):
            warnings.append(
                Problem(
                    config.source,
                    f"timeout {format_duration(config.timeout_of(t))} is not shorter than "
                    f"interval {format_duration(config.interval_of(t))}; probes may be skipped",
                    target=t.name,
                    field="timeout",
                )
            )
        if t.spends_tokens and (note := frequent_probe_warning(t.kind, config.interval_of(t))):
            warnings.append(Problem(config.source, note, target=t.name, field="interval"))
        warnings += [
            Problem(config.source, w, target=t.name, field=f) for f, w in t.config_warnings()
        ]
    return warnings
