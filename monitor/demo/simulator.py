"""A local fake provider: a real HTTP server on 127.0.0.1 that answers like the real model APIs.

Used by the tests and by `inferwatch demo`. The catalogue functions reproduce the bodies and
headers collected in ../shared/provider-errors.md exactly (string vs object `error` matters).

    with FakeProvider() as fake:
        fake.route("/models/gpt2", legacy_410())
        ...  # point a target's base_url at fake.url
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LEGACY_HOST = "https://api-inference.huggingface.co"
ROUTER = "https://router.huggingface.co"


@dataclass(frozen=True)
class Reply:
    """One canned answer. `body` may be bytes, text, or JSON-able data."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0  # seconds to wait before answering
    stream_bytes: int = 0  # stream this many zero bytes as the body instead (huge answers)
    raw: bytes | None = None  # write these bytes instead of an HTTP answer, then close
    # A streamed answer instead of `body`: (seconds to wait, text to send) pieces, sent as
    # they come in chunked encoding (may be endless: itertools.repeat). See `sse`.
    chunks: Iterable[tuple[float, str]] | None = None

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or "application/json"


@dataclass(frozen=True)
class Seen:
    """A request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Reply | Sequence[Reply] | Callable[[Seen], Reply]


class FakeProvider:
    """A threaded HTTP(S) server with programmable routes; use as a context manager."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"):
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.open_connections = 0
        self.max_open_connections = 0
        self._server = _Server((host, 0), _handler_for(self))
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"{self.scheme}://{host}:{port}"

    def route(self, path: str, reply: Route) -> None:
        """Answer `path` (any method) with a reply, a sequence (last repeats) or a function."""
        with self._lock:
            self.routes[path] = reply
            self._served[path] = 0

    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def reset(self, settle: float = 2.0) -> None:
        """Forget every route, request and connection count (one server, many tests).

        Connections still closing from before are waited for (up to `settle` seconds), so
        `max_open_connections` counts only what comes after.
        """
        deadline = time.monotonic() + settle
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self.routes.clear()
            self.requests.clear()
            self._served.clear()
            self.max_open_connections = self.open_connections

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reply_for(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            route = self.routes.get(seen.path)
            count = self._served.get(seen.path, 0)
            self._served[seen.path] = count + 1
        if route is None:
            return router_404_not_deployed()
        if isinstance(route, Reply):
            return route
        if callable(route):
            return route(seen)
        return route[min(count, len(route) - 1)]

    def _connection(self, delta: int) -> None:
        with self._lock:
            self.open_connections += delta
            self.max_open_connections = max(self.max_open_connections, self.open_connections)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-answer (capped reads, timeouts) are expected here


def _handler_for(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fake-provider"

        def setup(self) -> None:
            fake._connection(+1)
            super().setup()

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                fake._connection(-1)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            seen = Seen(
                method=self.command,
                path=self.path.split("?")[0],
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            reply = fake.reply_for(seen)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.raw is not None:
                self.wfile.write(reply.raw)
                self.close_connection = True
                return
            if reply.chunks is not None:
                self._stream(reply, reply.chunks)
                return
            body, content_type = reply.encoded()
            self.send_response(reply.status)
            self.send_header("content-type", content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            size = reply.stream_bytes or len(body)
            self.send_header("content-length", str(size))
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            if self.command == "HEAD":
                return
            if reply.stream_bytes:
                _stream_zeros(self.wfile, reply.stream_bytes)
            else:
                self.wfile.write(body)

        def _stream(self, reply: Reply, chunks: Iterable[tuple[float, str]]) -> None:
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type or "text/event-stream")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("transfer-encoding", "chunked")
            self.send_header("connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for wait, text in chunks:
                    if wait:
                        time.sleep(wait)
                    if data := text.encode():  # an empty chunk would end the stream
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                return  # the prober stopped reading (its cap or timeout): that is the point

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer

    return Handler


def _stream_zeros(out: Any, size: int, chunk: int = 64 * 1024) -> None:
    block = b"0" * chunk
    sent = 0
    try:
        while sent < size:
            out.write(block[: min(chunk, size - sent)])
            sent += chunk
    except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
        return  # the reader stopped at its cap and hung up: that is the point


# ------------------------------------------------------------------ healthy answers


def embedding_ok(dim: int = 384) -> Reply:
    """hf-inference feature-extraction: one pooled vector."""
    return Reply(200, [round(0.01 * (i % 97) - 0.4, 4) for i in range(dim)], _hf_headers())


def openai_embeddings_ok(dim: int = 384, model: str = "m") -> Reply:
    vector = [round(0.01 * (i % 89) - 0.3, 4) for i in range(dim)]
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": model,
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    return Reply(200, body, {"x-request-id": "req_emb_1"})


def chat_ok(model: str = "meta-llama/Llama-3.1-8B-Instruct", provider: str = "together") -> Reply:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1760000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "OK"},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    }
    return Reply(200, body, {"x-inference-provider": provider, "x-request-id": "req_chat_1"})


def whoami(
    role: str = "fineGrained",
    permissions: Sequence[str] = ("repo.content.read", "inference.serverless.write"),
    global_permissions: Sequence[str] = (),
    user: str = "harshalhonde",
) -> Reply:
    """whoami-v2 for an access token; fine-grained ones carry their permission lists."""
    token: dict[str, Any] = {
        "displayName": "rag-backend-inference",
        "role": role,
        "createdAt": "2025-08-01T10:00:00.000Z",
    }
    if role == "fineGrained":
        token["fineGrained"] = {
            "canReadGatedRepos": True,
            "global": list(global_permissions),
            "scoped": [
                {"entity": {"type": "user", "name": user}, "permissions": list(permissions)}
            ],
        }
    body = {
        "type": "user",
        "id": "66a0c0ffee",
        "name": user,
        "fullname": user,
        "isPro": False,
        "orgs": [],
        "auth": {"type": "access_token", "accessToken": token},
    }
    return Reply(200, body, {"x-request-id": "Root=1-whoami"})


def ok_text(text: str = "All Systems Operational") -> Reply:
    return Reply(200, text, content_type="text/html; charset=utf-8")


# ------------------------------------------------------------------ the legacy serverless host


def _hf_headers(request_id: str = "Root=1-68a2f1c0-0d1e2f3a4b5c6d7e8f901234") -> dict[str, str]:
    return {
        "x-inference-provider": "hf-inference",
        "x-powered-by": "huggingface-moon",
        "x-request-id": request_id,
    }


def legacy_404() -> Reply:
    """Aug 2025: every model 404s while auth still works."""
    return Reply(404, "Not Found", _hf_headers(), content_type="text/plain")


def legacy_401_no_token() -> Reply:
    return Reply(401, {"error": "Invalid username or password."}, _hf_headers())


def legacy_410(variant: str = "plain") -> Reply:
    """Nov 2025: the whole host retired. Carries x-amz-cf-id but no x-request-id."""
    message = {
        "plain": f"{LEGACY_HOST} is no longer supported. Please use {ROUTER} instead.",
        "slash": f"{LEGACY_HOST}/ is no longer supported. Please use {ROUTER}/ instead.",
        "hf-inference": f"{LEGACY_HOST} is no longer supported. Please use "
        f"{ROUTER}/hf-inference instead.",
    }[variant]
    return Reply(
        410,
        {"error": message},
        {"x-amz-cf-id": "Xq3k1Z7vYc0m2s9bT4aR8pW6nD5eL1uJ0hG3fK2iO9yQ7tC=="},
    )


# ------------------------------------------------------------------ router.huggingface.co


def router_401_invalid() -> Reply:
    return Reply(
        401,
        {"error": "Invalid credentials in Authorization header"},
        {"x-request-id": "Root=1-401"},
    )


def router_401_no_token() -> Reply:
    """Body unconfirmed upstream; the probe knows it sent no token."""
    return Reply(401, {"error": "Unauthorized"}, {"x-request-id": "Root=1-401-none"})


def router_403_scope(user: str = "harshalhonde") -> Reply:
    message = (
        "This authentication method does not have sufficient permissions to call "
        f"Inference Providers on behalf of user {user}"
    )
    return Reply(
        403, {"error": message}, {"X-Error-Message": message, "x-request-id": "Root=1-403"}
    )


def router_400_model_not_supported(model: str) -> Reply:
    body = {
        "error": {
            "message": f"The requested model '{model}' is not supported by any provider you have "
            "enabled.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_supported",
        }
    }
    return Reply(400, body, {"x-request-id": "Root=1-400"})


def router_400_provider_unmapped(provider: str = "together") -> Reply:
    return Reply(400, {"error": f"Model not supported by provider {provider}"})


def router_404_not_deployed() -> Reply:
    return Reply(404, "Not Found", {"x-request-id": "Root=1-404"}, content_type="text/plain")


def router_410_model_deprecated() -> Reply:
    return Reply(
        410,
        {
            "error": "The requested model is deprecated and no longer supported by "
            "provider hf-inference"
        },
        _hf_headers(),
    )


CREDITS_2025 = (
    "You have exceeded your monthly included credits for Inference Providers. Subscribe to PRO "
    "to get 20x more monthly included credits."
)
CREDITS_2026 = (
    "You have depleted your monthly included credits. Purchase pre-paid credits to continue "
    "using Inference Providers. Alternatively, subscribe to PRO to get 20x more included credits."
)


def router_402_credits(year: int = 2026) -> Reply:
    message = CREDITS_2025 if year == 2025 else CREDITS_2026
    return Reply(402, {"error": message}, {"x-request-id": "Root=1-402"})


def model_loading_503(model: str, estimated_time: float = 20.0) -> Reply:
    return Reply(
        503,
        {"error": f"Model {model} is currently loading", "estimated_time": estimated_time},
        _hf_headers(),
    )


def gated_403(model: str) -> Reply:
    message = (
        f"Access to model {model} is restricted. You must have access to it and be "
        "authenticated to access it. Please log in."
    )
    return Reply(403, {"error": message}, {"X-Error-Code": "GatedRepo", "X-Error-Message": message})


def hub_429() -> Reply:
    return Reply(
        429,
        {"error": "You have exceeded our hourly quotas for action: api."},
        {"RateLimit": '"api";r=0;t=293', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'},
    )


def gateway_504_html() -> Reply:
    page = (
        "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway "
        "Time-out</h1></center></body></html>"
    )
    return Reply(504, page, content_type="text/html")


# ------------------------------------------------------------------ other OpenAI-style APIs


def openai_401_invalid_key() -> Reply:
    body = {
        "error": {
            "message": "Incorrect API key provided: sk-abc***. You can find your API "
            "key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    return Reply(401, body, {"x-request-id": "req_401"})


def openai_404_deprecated(model: str = "text-davinci-003") -> Reply:
    body = {
        "error": {
            "message": f"The model `{model}` has been deprecated, learn more here: "
            "https://platform.openai.com/docs/deprecations",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    return Reply(404, body, {"x-request-id": "req_404dep"})


def openai_404_unknown(model: str = "gpt-9") -> Reply:
    body = {
        "error": {
            "message": f"The model `{model}` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    return Reply(404, body, {"x-request-id": "req_404"})


def openai_429_insufficient_quota() -> Reply:
    body = {
        "error": {
            "message": "You exceeded your current quota, please check your plan and "
            "billing details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    return Reply(429, body, {"x-request-id": "req_quota"})


def openai_429_rate_limit() -> Reply:
    body = {
        "error": {
            "message": "Rate limit reached for requests",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    return Reply(
        429,
        body,
        {
            "x-request-id": "req_rl",
            "retry-after": "20",
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20s",
        },
    )


def tgi_429_overloaded() -> Reply:
    return Reply(429, {"error": "Model is overloaded", "error_type": "overloaded"})


def anthropic_529_overloaded() -> Reply:
    return Reply(
        529,
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        },
    )


def anthropic_400_billing() -> Reply:
    return Reply(
        400,
        {
            "type": "error",
            "error": {
                "type": "billing_error",
                "message": "Your credit balance is too low to access the Anthropic API.",
            },
        },
    )


def anthropic_403_permission() -> Reply:
    return Reply(
        403,
        {
            "type": "error",
            "error": {
                "type": "permission_error",
                "message": "Your API key does not have permission to use the specified resource.",
            },
        },
    )


def vllm_404_unknown(model: str) -> Reply:
    return Reply(
        404,
        {
            "error": {
                "message": f"The model `{model}` does not exist.",
                "type": "NotFoundError",
                "param": None,
                "code": 404,
            }
        },
    )


def gemini_400_bad_key() -> Reply:
    return Reply(
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
            }
        },
    )


def server_500() -> Reply:
    return Reply(500, {"error": "Internal Server Error"})


def unhealthy_503() -> Reply:
    """TGI /health when the backend is down: a 503 that is not a model loading."""
    return Reply(503, {"error": "unhealthy", "error_type": "healthcheck"})


# ---------------------------------------------------------------- Hub provider mappings


def hf_model_mapping(
    model: str = "meta-llama/Llama-3.1-8B-Instruct",
    providers: dict[str, str] | None = None,
    as_list: bool = False,
) -> Reply:
    """`GET /api/models/{id}?expand[]=inferenceProviderMapping`: {provider: status}, as the
    dict keyed by provider, or (`as_list`) as list endpoints give it."""
    states = {"together": "live", "novita": "live"} if providers is None else providers
    entries = {
        name: {
            "status": status,
            "providerId": f"{name}/{model.split('/')[-1]}",
            "task": "conversational",
        }
        for name, status in states.items()
    }
    mapping: Any = (
        [{"provider": name, **entry} for name, entry in entries.items()] if as_list else entries
    )
    return Reply(
        200,
        {"_id": "66a0c1b2d3e4f5a6b7c8d9e0", "id": model, "inferenceProviderMapping": mapping},
        {"x-request-id": "Root=1-mapping"},
    )


# ---------------------------------------------------------------- provider status pages

INCIDENT = {
    "id": "9x8r7kq2mz4p",
    "name": "Elevated errors on Claude Opus 4",
    "status": "investigating",
    "impact": "major",
    "shortlink": "https://stspg.io/9x8r7kq2mz4p",
    "created_at": "2026-11-30T12:03:11.000Z",
    "started_at": "2026-11-30T12:03:00.000Z",
}


def statuspage_summary(
    indicator: str = "none",
    incidents: list[dict[str, Any]] | None = None,
    maintenances: list[dict[str, Any]] | None = None,
    component_status: str = "operational",
) -> Reply:
    """An Atlassian Statuspage `/api/v2/summary.json` (status.claude.com, OpenAI's page)."""
    description = {
        "none": "All Systems Operational",
        "minor": "Partially Degraded Service",
        "major": "Partial System Outage",
        "critical": "Major System Outage",
        "maintenance": "Service Under Maintenance",
    }.get(indicator, indicator)
    body = {
        "page": {
            "id": "tymt9n04zgry",
            "name": "Anthropic",
            "url": "https://status.claude.com",
            "time_zone": "Etc/UTC",
            "updated_at": "2026-11-30T12:05:42.310Z",
        },
        "status": {"indicator": indicator, "description": description},
        "components": [
            {"id": "k8w3r7g0qp1x", "name": "claude.ai", "status": "operational"},
            {"id": "0qbwn08sd68x", "name": "Claude API", "status": component_status},
        ],
        "incidents": incidents or [],
        "scheduled_maintenances": maintenances or [],
    }
    return Reply(200, body, {"content-type": "application/json; charset=utf-8"})


def statuspage_incident(indicator: str = "major") -> Reply:
    return statuspage_summary(indicator, [{**INCIDENT, "impact": indicator}], None, "major_outage")


def statuspage_maintenance() -> Reply:
    work = {
        "id": "m41nt3n4nc3x",
        "name": "Database upgrade",
        "status": "in_progress",
        "impact": "maintenance",
        "shortlink": "https://stspg.io/m41nt3n4nc3x",
        "scheduled_for": "2026-11-30T12:00:00.000Z",
        "scheduled_until": "2026-11-30T13:00:00.000Z",
    }
    return statuspage_summary("maintenance", None, [work], "under_maintenance")


def statuspage_moved(location: str = "https://status.example.com/") -> Reply:
    """A page that moved: 301 to an HTML page (the source moved, not an outage)."""
    return Reply(
        301,
        "<html><body>Moved Permanently</body></html>",
        {"location": location},
        content_type="text/html; charset=utf-8",
    )


def statuspage_html() -> Reply:
    """HTML where the JSON was (a page rebuilt on another vendor)."""
    return Reply(200, "<!doctype html><html><title>Status</title></html>", content_type="text/html")


# ---------------------------------------------------------------- streamed answers (SSE)
# The shapes of ../shared/provider-errors.md "Streaming": OpenAI-style `data:` chunks ending in
# `data: [DONE]` (with include_usage, a last chunk with empty choices and the usage); comment
# lines as keep-alives (OpenRouter's `: OPENROUTER PROCESSING`); Anthropic's named events with
# `ping` keep-alives and `event: error` after the 200.


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event: JSON data (compact, as providers send it) or text as it is."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def _paced(pieces: Sequence[str], first_after: float, every: float) -> list[tuple[float, str]]:
    """The first piece after `first_after` seconds, each next one `every` seconds later."""
    return [(first_after if i == 0 else every, piece) for i, piece in enumerate(pieces)]


def openai_stream(
    tokens: Sequence[str] = ("O", "K", "."),
    *,
    model: str = "gpt-4o-mini-2024-07-18",
    first_after: float = 0.0,
    every: float = 0.0,
    usage: bool = True,
    processing_comments: int = 0,
) -> Reply:
    """A chat completion streamed: a role-only chunk at once, `processing_comments` keep-alive
    comments, the tokens (the first after `first_after` s, then one every `every` s), the
    finish chunk, the usage chunk (include_usage) and [DONE]."""

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(
            {
                "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
                "object": "chat.completion.chunk",
                "created": 1760000000,
                "model": model,
                "system_fingerprint": "fp_44709d6fcb",
                "choices": [choice] if extra.get("usage") is None else [],
                **extra,
            }
        )

    head = [(0.0, chunk({"role": "assistant", "content": "", "refusal": None}))]
    head += [(0.0, ": OPENROUTER PROCESSING\n\n")] * processing_comments
    words = _paced([chunk({"content": t}) for t in tokens], first_after, every)
    tail = [(0.0, chunk({}, "length"))]
    if usage:
        counts = {"prompt_tokens": 12, "completion_tokens": len(tokens)}
        counts["total_tokens"] = 12 + len(tokens)
        tail.append((0.0, chunk({}, usage=counts)))
    tail.append((0.0, sse("[DONE]")))
    return Reply(200, chunks=head + words + tail, headers={"x-request-id": "req_stream_1"})


def openrouter_stream_error() -> Reply:
    """OpenRouter's mid-stream failure: a 200, a token, then a chunk carrying `error` with
    finish_reason "error" (the status cannot change once the stream has begun)."""
    failure = {
        "id": "cmpl-abc123",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "openai/gpt-4o-mini",
        "provider": "openai",
        "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    ok = openai_stream(("O",), usage=False)
    assert ok.chunks is not None
    return Reply(200, chunks=[*list(ok.chunks)[:2], (0.0, sse(failure))])


def anthropic_stream(
    tokens: Sequence[str] = ("O", "K", "."),
    *,
    model: str = "claude-sonnet-4-5-20250929",
    first_after: float = 0.0,
    every: float = 0.0,
    pings: bool = True,
) -> Reply:
    """A Messages answer streamed: message_start (input usage), content_block_start, a ping,
    text deltas (paced like `openai_stream`), content_block_stop, message_delta with the
    output usage, message_stop."""
    message: dict[str, Any] = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    text_block = {"type": "text", "text": ""}
    block = {"type": "content_block_start", "index": 0, "content_block": text_block}
    head = [
        (0.0, sse({"type": "message_start", "message": message}, "message_start")),
        (0.0, sse(block, "content_block_start")),
    ]
    if pings:
        head.append((0.0, 'event: ping\ndata: {"type": "ping"}\n\n'))
    deltas = [
        sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
            "content_block_delta",
        )
        for t in tokens
    ]
    done = {"stop_reason": "max_tokens", "stop_sequence": None}
    tail = [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {"type": "message_delta", "delta": done, "usage": {"output_tokens": len(tokens)}},
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return Reply(
        200,
        chunks=head + _paced(deltas, first_after, every) + [(0.0, t) for t in tail],
        headers={"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy"},
    )


def anthropic_stream_error(kind: str = "overloaded_error", message: str = "Overloaded") -> Reply:
    """The 200 was sent, then the provider failed: `event: error` (here after a ping)."""
    ok = anthropic_stream(())
    assert ok.chunks is not None
    # Anthropic's documented error event, spaces after the separators as it shows it.
    error = "event: error\ndata: " + json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}}
    )
    error += "\n\n"
    return Reply(200, chunks=[*list(ok.chunks)[:3], (0.0, error)], headers=ok.headers)


def endless_pings(every: float = 0.05) -> Reply:
    """A stream that never ends and never says anything: keep-alive comments forever."""
    return Reply(200, chunks=itertools.repeat((every, ": ping\n\n")))


def endless_flood(size: int = 64 * 1024) -> Reply:
    """A stream that never ends and floods: large data events as fast as the socket takes."""
    event = sse("x" * size)
    return Reply(200, chunks=itertools.repeat((0.0, event)))
