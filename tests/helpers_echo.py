"""A hostile provider that echoes the credentials it receives in every encoding, and a detector.

`EchoServer` is a real threaded HTTP server on 127.0.0.1. A request to `/t/<form>/<status>`
answers with a redirect whose Location carries the bearer token percent-encoded in the path and
in credential-like query parameters; the redirect target answers `<status>` (after
`healthy_first` answers of 200) with the token, the x-api-key value and the header lines they
travel in, encoded as `<form>`, in the JSON error message, the body and the headers.

`leaks(text, secrets)` is the detector. It shares nothing with the redactor: it decodes a text
every way a reader could (percent-decoding, `+` as space, JSON and HTML unescaping, repeatedly and
in any order; base64, base64url and hex of every long enough run at every offset) and reports any
12-character piece of a secret found in any reading.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, unquote_plus

PIECE = 12  # a leaked piece this long (or longer) of a secret counts as a leak


# ---------------------------------------------------------------- the encodings a server echoes


def _pct(value: str, upper: bool = True) -> str:
    return "".join(f"%{b:02X}" if upper else f"%{b:02x}" for b in value.encode())


def _json_u(value: str, upper: bool = False) -> str:
    """Every character as \\uXXXX (a surrogate pair beyond U+FFFF), as JSON allows."""
    data = value.encode("utf-16-be")
    units = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return "".join(f"\\u{u:04X}" if upper else f"\\u{u:04x}" for u in units)


def _json_escaped(value: str) -> str:
    """What JSON encoders that escape slashes and punctuation produce (PHP, some Java ones)."""
    table = {"/": "\\/", "_": "\\u005f", "-": "\\u002D", "+": "\\u002b"}
    return "".join(table.get(c, c) for c in value)


def _html_named(value: str) -> str:
    table = {"/": "&sol;", "_": "&lowbar;", "+": "&plus;", ".": "&period;", ":": "&colon;"}
    return "".join(table.get(c, c) for c in value)


def _mixed(value: str) -> str:
    """Each character in another encoding, round robin."""
    ways: list[Callable[[str], str]] = [
        lambda c: c,
        lambda c: _pct(c),
        lambda c: "%25" + _pct(c)[1:].lower(),
        lambda c: _json_u(c, upper=True),
        lambda c: f"&#{ord(c)};",
        lambda c: f"&#x{ord(c):x};",
        lambda c: "\\/" if c == "/" else _pct(c, upper=False),
    ]
    return "".join(ways[i % len(ways)](c) for i, c in enumerate(value))


def _b64(value: str, url: bool = False, pad: bool = True) -> str:
    text = (base64.urlsafe_b64encode if url else base64.b64encode)(value.encode()).decode()
    return text if pad else text.rstrip("=")


# form name -> how a credential is written. Each base64 form is applied to the bare value, to
# the header value `Bearer <token>` and to the whole header line, so the token sits at all three
# byte alignments (0, 7 and 22 bytes in).
FORMS: dict[str, Callable[[str], str]] = {
    "raw": lambda v: v,
    "pct-upper": _pct,
    "pct-lower": lambda v: _pct(v, upper=False),
    "pct-quote": lambda v: quote(v, safe=""),
    "pct-double": lambda v: quote(_pct(v), safe=""),
    "pct-double-quote": lambda v: quote(quote(v, safe=""), safe=""),
    "json-u": _json_u,
    "json-u-upper": lambda v: _json_u(v, upper=True),
    "json-escaped": _json_escaped,
    "json-in-json": lambda v: _json_escaped(v).replace("\\", "\\\\"),
    "html-dec": lambda v: "".join(f"&#{ord(c)};" for c in v),
    "html-hex": lambda v: "".join(f"&#x{ord(c):X};" for c in v),
    "html-named": _html_named,
    "mixed": _mixed,
    "b64": _b64,
    "b64-nopad": lambda v: _b64(v, pad=False),
    "b64url": lambda v: _b64(v, url=True),
    "b64url-nopad": lambda v: _b64(v, url=True, pad=False),
    "b64-bearer": lambda v: _b64(f"Bearer {v}"),
    "b64url-bearer": lambda v: _b64(f"Bearer {v}", url=True, pad=False),
    "b64-header": lambda v: _b64(f"Authorization: Bearer {v}"),
    "b64url-header": lambda v: _b64(f"Authorization: Bearer {v}", url=True, pad=False),
    "b64-basic": lambda v: _b64(f"user:{v}"),
    "hex": lambda v: v.encode().hex(),
    "hex-upper": lambda v: v.encode().hex().upper(),
}

# What the answer after the redirect is (after `healthy_first` 200s); "cut": a long message.
STATUSES = ("401", "403", "500", "410", "200", "302", "401cut", "500cut")


def json_fragment(text: str) -> str:
    """`text` as the inside of a JSON string: as is when that is valid JSON (so the escapes of
    the JSON forms stay escapes), else escaped."""
    try:
        json.loads(f'"{text}"')
        return text
    except ValueError:
        return json.dumps(text)[1:-1]


class EchoServer:
    """A threaded HTTP server that reflects the credentials it is sent; a context manager."""

    def __init__(self, healthy_first: int = 0):
        self.healthy_first = healthy_first
        self.seen: list[dict[str, str]] = []
        self._answers: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        key = headers.get("x-api-key", "")
        parts = path.split("?")[0].split("/")
        with self._lock:
            self.seen.append(headers)
        if len(parts) >= 4 and parts[1] == "t":
            form, status = parts[2], parts[3]
            query = (
                f"access_token={quote(token, safe='')}&api_key={_pct(key)}"
                "&X-Amz-Signature=deadbeefcafef00d1234&X-Amz-Credential=AKIAEXAMPLE0000%2F2026"
                "&sig=c2lnbmF0dXJlLW5vdC1hLXRva2Vu&page=2"
            )
            location = f"/cb/{form}/{status}/{quote(token, safe='')}?{query}"
            return 302, {"location": location}, b""
        if len(parts) < 4 or parts[1] != "cb" or parts[2] not in FORMS:
            return 404, {}, b'{"error": "no such echo"}'
        form, wanted = parts[2], parts[3]
        with self._lock:
            served = self._answers.get(path.split("?")[0], 0)
            self._answers[path.split("?")[0]] = served + 1
        status = 200 if served < self.healthy_first else int(wanted.removesuffix("cut"))
        headers, body = echo_answer(FORMS[form], token, key)
        if wanted.endswith("cut"):
            body = cut_message_answer(FORMS[form], token)
        if served < self.healthy_first:
            # A healthy answer that still echoes every secret: not an error object, which a
            # 200 may not carry and stay ok.
            body = body.replace(b'{"error": ', b'{"echoed": ', 1)
        return status, headers, body


def echo_answer(encode: Callable[[str], str], token: str, key: str) -> tuple[dict[str, str], bytes]:
    """Headers and body carrying `token`, `key` and their header lines encoded with `encode`."""
    lines = [token, f"Bearer {token}", f"Authorization: Bearer {token}", key, f"x-api-key: {key}"]
    enc = [encode(v) for v in lines if v]
    first = enc[0] if enc else ""
    headers = {
        "content-type": "application/json",
        "x-error-message": f"bad credentials {first}",
        "x-error-code": f"invalid_token:{first}",
        "x-request-id": f"req-{first}",
        "x-inference-provider": first,
        "deprecation": "@1760000000",
        "sunset": "Sat, 31 Oct 2026 00:00:00 GMT",
        "link": f'<https://docs.example.com/auth?api_key={first}&token={first}>; rel="deprecation"',
        "location": f"/login/{first}?next={first}",
        "retry-after": first,
    }
    message = (
        f"Invalid credentials {first}. Please use https://router.example.com/v1?access_token="
        f"{first} instead. (key {enc[-1] if enc else ''})"
    )
    # The error message first (the detail and the 512-byte excerpt), then everything else, then
    # a long message that one_line cuts in the middle of an encoded token.
    long = "x" * 250 + " " + " ".join(enc)
    body = (
        '{"error": {"message": "' + json_fragment(message) + '", "type": "invalid_request_error"}'
        ', "echo": ["' + '", "'.join(json_fragment(e) for e in enc) + '"]'
        ', "detail": "' + json_fragment(long) + '"}'
    )
    return headers, body.encode()


def cut_message_answer(encode: Callable[[str], str], token: str) -> bytes:
    """A JSON error whose message is cut (at 300 characters) inside the encoded token."""
    text = encode(token)
    return json.dumps({"error": "y" * (290 - len(text) // 2) + " " + text}).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # every target at once; the default backlog of 5 stalls on SYNs

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


def _handler(echo: EchoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = echo.answer(self.path, headers)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_HEAD = _answer

    return Handler


# ---------------------------------------------------------------- the detector

_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(.)", re.S)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{24,}")


def _json_unescape(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        return _SIMPLE.get(m.group(2), m.group(2))

    # Pairs of \\uD83D\\uDE00 escapes are one character.
    return (
        _JSON_ESCAPE.sub(one, text)
        .encode("utf-16-le", "surrogatepass")
        .decode("utf-16-le", "replace")
    )


DECODERS: tuple[Callable[[str], str], ...] = (unquote, unquote_plus, html.unescape, _json_unescape)


def _text_readings(text: str, depth: int = 4) -> set[str]:
    seen = {text}
    frontier = [text]
    for _ in range(depth):
        frontier = [d for t in frontier for d in {f(t) for f in DECODERS} if d not in seen]
        seen.update(frontier)
        if not frontier:
            break
    return seen


def _binary_readings(text: str) -> set[str]:
    out = set()
    for run in _B64_RUN.findall(text):
        std = run.replace("-", "+").replace("_", "/")
        for offset in range(4):
            chunk = std[offset:]
            whole = chunk[: len(chunk) - len(chunk) % 4]  # without the last, partial group
            padded = chunk + "=" * (-len(chunk) % 4)
            for candidate in (whole, padded):
                with contextlib.suppress(binascii.Error, ValueError):
                    out.add(base64.b64decode(candidate).decode("latin-1"))
    for run in _HEX_RUN.findall(text):
        for offset in (0, 1):
            chunk = run[offset:]
            out.add(bytes.fromhex(chunk[: len(chunk) - len(chunk) % 2]).decode("latin-1"))
    return out


def readings(text: str) -> set[str]:
    """Every way a reader could decode `text`, including decoding what base64 or hex hides."""
    texts = _text_readings(text)
    for binary in {b for t in texts for b in _binary_readings(t)}:
        texts |= _text_readings(binary, depth=2)
    return texts


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets of which a piece of PIECE characters can be read in `text`."""
    found = []
    all_readings = readings(text)
    for secret in secrets:
        pieces = {secret[i : i + PIECE] for i in range(max(1, len(secret) - PIECE + 1))}
        if any(p in r for r in all_readings for p in pieces):
            found.append(secret)
    return found
