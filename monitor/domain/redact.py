"""Keep secrets out of everything we store, print, log or send.

A provider may echo a credential back in any encoding, so each secret is masked in all of them:

* character by character, each character as itself or percent-encoded (any hex case, up to three
  times over: %2F, %252F), as a JSON/Python escape (\\u002f, \\/, \\x2f, also doubled for JSON
  in JSON), as an HTML character reference (&#47; &#x2F; &sol;, also &amp;-escaped) or, for a
  space, as +. The forms may be mixed within one token;
* as base64 and base64url of the secret and of `Bearer <secret>`, at each of the three byte
  alignments, so base64 of anything that embeds the token (an `Authorization: Bearer` line,
  `user:token` Basic credentials) is caught whatever precedes it; and as hex;
* the visible start of a secret in a text cut short with "…" (a detail cut to one line);
* and, secret or not, the values of credential-like query parameters (?api_key=, &access_token=,
  X-Amz-Signature=, ...).
"""

from __future__ import annotations

import base64
import html.entities
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache

MASK = "***"
CUT_MARK = "…"  # what a text cut short ends with (classify.one_line, email subjects)
# Below this many characters, base64 and hex forms would mask ordinary text; the character
# forms of a short secret are still masked.
MIN_ENCODED = 8
# The visible start of a secret before CUT_MARK is masked from this many characters on
# (and base64/hex from this many characters of the encoding).
MIN_CUT_CHARS = 3
MIN_CUT_ENCODED = 4

_MAX_BACKSLASHES = 4  # JSON escaping doubles them: JSON in JSON in JSON has 4

_CREDENTIAL_NAME = r"token|key|secret|passw(?:or)?d|auth|signature|sig|credential|session"
_PARAM = (
    # a name with a credential word in it (api_key, access_token, X-Amz-Signature), bounded
    # so that a long run of name characters cannot make the search slow...
    rf"[\w.\[\]%-]{{0,64}}?(?:{_CREDENTIAL_NAME})[\w.\[\]%-]{{0,64}}?"
    r"(?:=|%3[dD]|\\u003[dD]))"
    # ...and its value, up to the next separator, quote, bracket, backslash or space.
    r"(?P<value>(?:(?!%26|%23|\\u0026)[^\s&;#\"'<>\\])+)"
)
# After ?, &, ; or # (or their percent or JSON escapes) or a newline; each alternative starts
# with a literal character, so the regex engine only stops at those.
_CREDENTIAL_PARAM = re.compile(
    r"(?P<lead>(?:\?|&|;|\#|\n|%26|%3[fF]|%23|\\u0026|\\u003[fF])" + _PARAM, re.IGNORECASE
)
_CREDENTIAL_PARAM_FIRST = re.compile(r"(?P<lead>" + _PARAM, re.IGNORECASE)  # at the start
# A partly written escape at the very end of a cut text: "%2", "\\u00", "&#x2", "&lowb".
_PARTIAL_ESCAPE = re.compile(
    r"(?:%[0-9a-fA-F]{0,5}|\\+(?:[uxU][0-9a-fA-F]{0,7})?"
    r"|&(?:amp;)*(?:#[xX]?[0-9a-fA-F]*|[A-Za-z0-9]*))\Z"
)


class Redactor:
    """Masks every known secret (in any encoding) and credential-like query values with ***.

    Every span that any form of any secret covers goes, so one secret inside or overlapping
    another goes whole.
    """

    def __init__(self, secrets: Iterable[str]):
        values = {s.strip() for s in secrets if s and s.strip()}
        self._secrets = [_compiled(s) for s in sorted(values)]
        # The longest text one match can cover, and how much redacting a text can make it
        # longer: masking a secret of 3+ characters never does, a credential value of 1 or 2
        # characters (in a parameter of 6+) does by at most 2/6.
        self._reach = max((s.width for s in self._secrets), default=0)
        self._growth = 3 if any(len(v) < len(MASK) for v in values) else 2

    def __call__(self, text: str) -> str:
        text = self._mask_secrets(text)
        if text.endswith(CUT_MARK) and self._secrets:
            text = self._mask_cut_start(text)
        if "=" in text or "%3" in text or "\\u003" in text:
            if first := _CREDENTIAL_PARAM_FIRST.match(text):
                text = _mask_value(first) + text[first.end() :]
            text = _CREDENTIAL_PARAM.sub(_mask_value, text)
        return text

    def cut(self, text: str, max_bytes: int) -> str:
        """Redact first, then cut to `max_bytes` of UTF-8, so no secret leaks half-cut.

        Only a start of `text` is redacted (a body may be a megabyte), long enough that what is
        kept is final: matches cut off by the end of the window lie in its last `reach`
        characters, which redact to at most `growth` times as many.
        """
        margin = self._growth * self._reach + len(MASK)
        size = max_bytes + margin
        while True:
            clean = self(text[:size])
            if size >= len(text) or len(clean) >= max_bytes + margin:
                break
            size *= 2  # masks made the window shrink below what is kept: take more
        return clean.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")

    def _mask_secrets(self, text: str) -> str:
        """Mask every span any secret's forms cover (overlapping forms of two secrets too)."""
        found = [s.pattern for s in self._secrets if s.pattern.search(text)]
        if not found:
            return text
        spans = sorted(m.span() for pattern in found for m in pattern.finditer(text))
        out, pos = [], 0
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            if next_start <= end:
                end = max(end, next_end)
                continue
            out += [text[pos:start], MASK]
            pos, (start, end) = end, (next_start, next_end)
        out += [text[pos:start], MASK, text[end:]]
        return "".join(out)

    def _mask_cut_start(self, text: str) -> str:
        """Mask the start of a secret left visible (in any encoding) just before a CUT_MARK."""
        body = text[: -len(CUT_MARK)]
        start = len(body)
        for secret in self._secrets:
            start = min(start, secret.cut_start(body))
        return text if start == len(body) else body[:start] + MASK + CUT_MARK


def _mask_value(match: re.Match[str]) -> str:
    return match.group("lead") + MASK


# ---------------------------------------------------------------- one secret, every encoding


@dataclass(frozen=True)
class _Secret:
    pattern: re.Pattern[str]  # every complete form
    chars: tuple[str, ...]  # each character in any of its forms (regexes), for cut texts
    literals: tuple[str, ...]  # the base64 and hex forms, for cut texts
    width: int  # the longest text `pattern` can match

    @cached_property
    def units(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(char) for char in self.chars)

    def cut_start(self, body: str) -> int:
        """Where a start of this secret runs into the end of `body` (len(body): nowhere)."""
        end = start = len(body)
        for literal in self.literals:  # a visible start of a base64 or hex form
            head = literal[:MIN_CUT_ENCODED]
            at = body.find(head, max(0, end - len(literal)))
            while at != -1 and at < start:
                if literal.startswith(body[at:]):
                    start = at
                    break
                at = body.find(head, at + 1)
        first, rest = self.units[0], self.units[1:]
        for match in first.finditer(body, max(0, end - self.width), start):
            pos, matched = match.end(), 1
            for unit in rest:
                step = unit.match(body, pos)
                if step is None:
                    break
                pos, matched = step.end(), matched + 1
            visible = pos == end or _PARTIAL_ESCAPE.match(body, pos) is not None
            if visible and matched >= min(MIN_CUT_CHARS, len(self.units)):
                return match.start()
        return start


@lru_cache(maxsize=256)
def _compiled(secret: str) -> _Secret:
    """All the ways to write `secret`, as one regex (cached: configs reload, secrets stay)."""
    chars = [_char_forms(c) for c in secret]
    rest = "".join(_group(forms) for forms, _ in chars[1:])
    literals = _encoded_forms(secret) if len(secret) >= MIN_ENCODED else []
    # Every top-level alternative starts with a literal character, so the regex engine skips
    # ahead to candidate positions instead of trying each one.
    alternatives = [re.escape(lit) for lit in literals if len(lit) > len(secret)]
    alternatives += [form + rest for form in chars[0][0]]
    alternatives += [re.escape(lit) for lit in literals if len(lit) <= len(secret)]
    width = max([sum(w for _, w in chars)] + [len(lit) for lit in literals])
    return _Secret(
        pattern=re.compile("|".join(alternatives)),
        chars=tuple(_group(forms) for forms, _ in chars),
        literals=tuple(literals),
        width=width,
    )


def _group(forms: list[str]) -> str:
    return "(?:" + "|".join(forms) + ")"


def _hex(value: int, digits: int) -> str:
    """`value` in hex, either case: 2f -> 2[fF]."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{value:0{digits}x}")


_BACKSLASHES = rf"\\\\{{0,{_MAX_BACKSLASHES - 1}}}"  # one backslash, then up to 3 more
_SHORT_ESCAPES = {"/": "/", '"': '"', "'": "'", "\\": "\\\\", "\n": "n", "\t": "t", "\r": "r"}
_NAMED: dict[str, list[str]] = {}
for _name, _char in html.entities.html5.items():
    _NAMED.setdefault(_char, []).append(_name)


def _char_forms(char: str) -> tuple[list[str], int]:
    """Regexes for one character in each encoding (each starting with a literal), and the
    longest text they match."""
    code = ord(char)
    data = char.encode("utf-8", errors="surrogatepass")
    amp = "&(?:amp;){0,2}"  # &#47; as is, or HTML-escaped once or twice more
    forms = [
        re.escape(char),
        "".join(rf"%(?:25){{0,2}}{_hex(b, 2)}" for b in data),
        rf"{amp}#0{{0,4}}{code};?",
        rf"{amp}#[xX]0{{0,4}}{_hex(code, 1)};?",
    ]
    widths = [len(char), 7 * len(data), 15 + len(str(code)), 16 + len(f"{code:x}")]
    if code < 0x10000:
        forms.append(rf"{_BACKSLASHES}u{_hex(code, 4)}")
        widths.append(_MAX_BACKSLASHES + 5)
    else:  # JSON writes a surrogate pair, Python \U0001f600
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(rf"{_BACKSLASHES}u{_hex(high, 4)}{_BACKSLASHES}u{_hex(low, 4)}")
        forms.append(rf"{_BACKSLASHES}U{_hex(code, 8)}")
        widths += [2 * (_MAX_BACKSLASHES + 5), _MAX_BACKSLASHES + 9]
    # Python's repr of bytes (and of str below U+0100): \x2f, per UTF-8 byte.
    forms.append("".join(rf"{_BACKSLASHES}x{_hex(b, 2)}" for b in data))
    widths.append((_MAX_BACKSLASHES + 3) * len(data))
    if char in _SHORT_ESCAPES:
        forms.append(_BACKSLASHES + re.escape(_SHORT_ESCAPES[char]))
        widths.append(_MAX_BACKSLASHES + 2)
    if char == " ":
        forms.append(r"\+")
        widths.append(1)
    for name in _NAMED.get(char, ()):
        forms.append(amp + re.escape(name))
        widths.append(10 + len(name))
    return forms, max(widths)


def _encoded_forms(secret: str) -> list[str]:
    """Base64/base64url cores of the secret and of `Bearer <secret>`, and hex; longest first."""
    found = set()
    for value in (f"Bearer {secret}".encode(), secret.encode()):
        n = len(value)
        for k in range(3):  # the value starts 0, 1 or 2 bytes into a 3-byte group
            encoded = base64.b64encode(bytes(k) + value).decode()
            # The characters that depend on the value's bits only: 6-bit groups from the
            # first that starts at bit 8k to the last that ends by bit 8(k + n).
            first, end = -(-8 * k // 6), 8 * (k + n) // 6
            core = encoded[first:end]
            found |= {core, core.replace("+", "-").replace("/", "_")}
    hexed = secret.encode().hex()
    found |= {hexed, hexed.upper()}
    return sorted(found, key=lambda f: (-len(f), f))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record's final message."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message or record.exc_info:
            if record.exc_info:
                clean += "\n" + self.redactor(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = clean, None
        return True
