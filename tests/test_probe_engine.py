"""The probe engine against real local servers: timings, TLS, caps, concurrency, never raising."""

from __future__ import annotations

import asyncio
import gc
import logging
import ssl
from collections.abc import Iterator

import httpx
import pytest
import trustme

from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Evidence, Outcome, RequestSpec, TransportError
from monitor.probing.engine import Prober
from tests.helpers import make_config, probe_once, raw_server


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def probe_one(spec: RequestSpec, timeout: float = 5.0, **kwargs):  # type: ignore[no-untyped-def]
    async with Prober(**kwargs) as prober:
        return await prober.probe(spec, timeout)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_provider(ca: trustme.CA) -> Iterator[FakeProvider]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    with FakeProvider(ssl_context=server_ctx) as fake:
        yield fake


def test_it_measures_phases_on_a_fresh_connection_each_time(provider: FakeProvider) -> None:
    provider.route("/x", Reply(200, "ok", delay=0.05))
    spec = RequestSpec("GET", f"{provider.url}/x")

    async def twice():  # type: ignore[no-untyped-def]
        async with Prober() as prober:
            return [await prober.probe(spec, 5), await prober.probe(spec, 5)]

    first, second = run(twice())

    for ev in (first, second):
        assert ev.status == 200
        assert ev.timings.connect_ms is not None  # a new TCP connection both times
        assert ev.timings.tls_ms is None  # plain HTTP: no TLS phase
        assert ev.timings.ttfb_ms is not None and ev.timings.ttfb_ms >= 50
        assert ev.timings.total_ms >= ev.timings.ttfb_ms >= ev.timings.connect_ms
    assert provider.max_open_connections == 1


def test_it_times_an_https_connection_and_its_handshake_apart(
    https_provider: FakeProvider, ca: trustme.CA
) -> None:
    https_provider.route("/x", Reply(200, "ok"))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    ev = run(probe_one(RequestSpec("GET", f"{https_provider.url}/x"), ssl_context=client_ctx))

    assert ev.error is None and ev.status == 200
    # TCP, then the TLS handshake as a step of its own (monitor/probing/transport.py).
    connect, tls, ttfb = ev.timings.connect_ms, ev.timings.tls_ms, ev.timings.ttfb_ms
    assert connect is not None and connect > 0
    assert tls is not None and tls > 0
    assert ttfb is not None and ttfb >= connect + tls


def test_an_untrusted_certificate_is_a_tls_error(
    https_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config([{"name": "t", "kind": "http", "url": f"{https_provider.url}/x"}])

    with caplog.at_level(logging.ERROR):
        result = probe_once(config)["t"]
        gc.collect()  # an unretrieved future's error is logged when it is collected

    assert result.outcome == Outcome.TLS_ERROR
    assert "certificate" in result.detail.lower()
    assert "untrusted" in result.hint
    assert "never retrieved" not in caplog.text  # one failed handshake, no error log of its own


def test_a_huge_answer_is_read_only_up_to_the_cap(provider: FakeProvider) -> None:
    provider.route("/huge", Reply(200, stream_bytes=1024**3))  # announces and streams 1 GB

    ev = run(probe_one(RequestSpec("GET", f"{provider.url}/huge"), max_body_bytes=256 * 1024))

    assert ev.status == 200
    assert ev.body_truncated
    assert len(ev.body) == 256 * 1024


def test_a_huge_answer_to_a_model_kind_is_a_bad_response_not_a_crash(
    provider: FakeProvider,
) -> None:
    config = make_config(
        [{"name": "t", "kind": "openai-chat", "model": "m", "base_url": provider.url}]
    )
    provider.route(
        "/chat/completions", Reply(200, stream_bytes=1024**3, content_type="application/json")
    )

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "cut at the read limit" in result.detail
    assert len(result.body_excerpt.encode()) <= 512


def test_concurrency_is_bounded(provider: FakeProvider) -> None:
    provider.route("/slow", Reply(200, "ok", delay=0.1))
    targets = [{"name": f"t{i}", "kind": "http", "url": f"{provider.url}/slow"} for i in range(40)]
    config = make_config(targets, concurrency=4)

    results = probe_once(config)

    assert len(results) == 40
    assert {r.outcome for r in results.values()} == {Outcome.OK}
    assert 2 <= provider.max_open_connections <= 4


def test_garbage_instead_of_http_is_a_bad_response(provider: FakeProvider) -> None:
    provider.route("/garbage", Reply(raw=b"\x00\xffthis is not http\r\n\r\n"))
    config = make_config([{"name": "t", "kind": "http", "url": f"{provider.url}/garbage"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "not a valid HTTP answer" in result.detail


def test_a_redirect_loop_is_capped(provider: FakeProvider) -> None:
    provider.route("/loop", Reply(302, "", {"location": "/loop"}))
    config = make_config([{"name": "t", "kind": "http", "url": f"{provider.url}/loop"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "too many redirects" in result.detail
    assert len(provider.requests) == 6  # the first request and 5 redirects, then it stops


def test_redirects_are_followed_to_the_final_answer(provider: FakeProvider) -> None:
    provider.route("/old", Reply(301, "", {"location": "/new"}))
    provider.route("/new", Reply(200, "here"))
    config = make_config([{"name": "t", "kind": "http", "url": f"{provider.url}/old"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.OK
    assert result.url.endswith("/new")


def test_a_connection_dropped_mid_answer_is_recorded(provider: FakeProvider) -> None:
    provider.route("/cut", Reply(raw=b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"))
    config = make_config([{"name": "t", "kind": "http", "url": f"{provider.url}/cut"}])

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "not a valid HTTP answer" in result.detail
    assert "received 7 of 100 bytes" in result.detail


def test_every_probe_opens_its_own_connection_even_when_the_server_keeps_alive() -> None:
    requests: list[bytes] = []

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:  # answers as many requests as the client sends on this connection
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async def scenario() -> tuple[list[Evidence], int]:
        async with raw_server(keep_alive) as (url, seen), Prober(concurrency=4) as prober:
            spec = RequestSpec("GET", f"{url}/x")
            evs = [await prober.probe(spec, 5) for _ in range(3)]
            evs += await prober.probe_many([(spec, 5)] * 9)
            return evs, seen["connections"]

    evs, connections = run(scenario())

    assert {(ev.status, ev.error) for ev in evs} == {(200, None)}
    assert all(ev.timings.connect_ms is not None for ev in evs)
    assert len(requests) == connections == 12  # one fresh TCP connection per probe


def test_only_what_the_probe_sends_reaches_the_server(provider: FakeProvider) -> None:
    provider.route("/x", Reply(200, "ok", headers={"set-cookie": "session=abc"}))
    spec = RequestSpec(
        "POST", f"{provider.url}/x", headers={"user-agent": "inferwatch-test/1"}, content=b"hi"
    )

    run(probe_one(spec))

    sent = provider.requests[-1].headers
    assert sent["user-agent"] == "inferwatch-test/1"
    assert sent["accept-encoding"] == "gzip, deflate"  # only what CappedDecoder decodes
    assert "content-type" not in sent  # no label the probe did not ask for
    assert sent["connection"] == "close"  # a fresh connection every probe
    assert provider.requests[-1].body == b"hi"


@pytest.mark.parametrize(
    "spec",
    [
        RequestSpec("GET", "http://127.0.0.1:9/t/0"),
        RequestSpec(
            "POST",
            "https://api.example.com/v1/chat?x=1",
            headers={"authorization": "Bearer tok-123", "User-Agent": "inferwatch-test/1"},
            json={"model": "m", "messages": []},
        ),
        RequestSpec(
            "PUT", "http://[::1]:8080/p", headers={"accept-encoding": "identity"}, content=b"hi"
        ),
    ],
)
def test_the_request_is_the_one_the_client_would_build(spec: RequestSpec) -> None:
    """`Prober.request` skips httpx's merging with parsed URLs and merged headers it keeps;
    the request must stay the one httpx would build, probe after probe."""

    async def build() -> tuple[list[httpx.Request], httpx.Request]:
        async with Prober(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as p:
            ours = [p.request(spec, 7.5) for _ in range(3)]
            ours[0].headers["x-changed"] = "by one request"  # must not reach the next
            expected = p._client.build_request(
                spec.method,
                spec.url,
                headers=spec.headers,
                json=spec.json,
                content=spec.content,
                timeout=7.5,
            )
            return ours[1:], expected

    ours, expected = run(build())
    for request in ours:
        assert (request.method, request.url) == (expected.method, expected.url)
        assert request.headers.raw == expected.headers.raw
        assert request.content == expected.content
        assert request.extensions == expected.extensions


def test_a_bad_url_is_a_request_error_every_time() -> None:
    spec = RequestSpec("GET", "http://exa mple.com/")

    async def twice() -> list[Evidence]:
        async with Prober() as prober:
            return [await prober.probe(spec, 5), await prober.probe(spec, 5)]

    for ev in run(twice()):
        assert ev.status is None and ev.error is not None


def test_an_answer_s_cookies_are_not_even_read() -> None:
    """httpx hands every answer to the client's cookie store; ours reads nothing."""
    prober = Prober(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    response = httpx.Response(
        200,
        headers={"set-cookie": "session=abc; Path=/"},
        request=httpx.Request("GET", "http://127.0.0.1/"),
    )
    prober._client.cookies.extract_cookies(response)
    assert len(prober._client.cookies) == 0
    with pytest.raises(AttributeError):
        prober._client.cookies = {"a": "b"}  # type: ignore[assignment]


def test_a_cookie_from_one_probe_is_never_sent_with_the_next(provider: FakeProvider) -> None:
    provider.route("/x", Reply(200, "ok", headers={"set-cookie": "session=abc; Path=/"}))
    spec = RequestSpec("GET", f"{provider.url}/x")

    async def twice() -> None:
        async with Prober() as prober:
            await prober.probe(spec, 5)
            await prober.probe(spec, 5)

    run(twice())

    assert len(provider.requests) == 2
    assert [r.headers.get("cookie") for r in provider.requests] == [None, None]


def test_a_dropped_connection_is_recorded_not_retried() -> None:
    requests: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readuntil(b"\r\n\r\n"))  # then closes, no answer

    async def scenario() -> Evidence:
        async with raw_server(hang_up) as (url, _), Prober() as prober:
            return await prober.probe(RequestSpec("GET", f"{url}/x"), 5)

    ev = run(scenario())

    assert ev.error == TransportError.PROTOCOL  # not a timeout
    assert ev.error_detail == "not a valid HTTP answer: the server disconnected before answering"
    assert len(requests) == 1  # never sent again behind the probe's back


def test_a_body_that_stops_coming_is_a_body_timeout() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nsome")
        await writer.drain()
        await asyncio.sleep(2)

    async def scenario() -> Evidence:
        async with raw_server(stall) as (url, _), Prober() as prober:
            return await prober.probe(RequestSpec("GET", f"{url}/x"), 0.3)

    ev = run(scenario())

    assert ev.error == TransportError.TIMEOUT
    assert ev.error_detail == "read timeout: the body did not arrive within 0.3 s"
    assert ev.timings.ttfb_ms is not None and ev.timings.total_ms is not None


def test_a_header_that_is_not_valid_http_is_a_request_error_that_keeps_no_token(
    provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    token = "hf_SECRETtoken123"
    spec = RequestSpec("GET", f"{provider.url}/x", headers={"authorization": f"Bearer {token}\n"})

    with caplog.at_level(logging.DEBUG):
        ev = run(probe_one(spec))

    assert ev.error == TransportError.REQUEST
    assert ev.error_detail == "the request could not be sent: a header value is not valid HTTP"
    assert token not in caplog.text
    assert provider.requests == []


class _Exploding(httpx.AsyncBaseTransport):
    """An edge case no real server produces: the transport itself raises something odd."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ReadError("connection reset by peer"), TransportError.CONNECT),
        (
            httpx.ConnectError("[Errno -3] Temporary failure in name resolution getaddrinfo"),
            TransportError.DNS,
        ),
        (httpx.PoolTimeout("pool"), TransportError.TIMEOUT),
        (RuntimeError("a bug in a dependency"), TransportError.CONNECT),
        (httpx.UnsupportedProtocol("ftp"), TransportError.REQUEST),
    ],
)
def test_a_probe_never_raises(exc: Exception, error: TransportError) -> None:
    ev = run(probe_one(RequestSpec("GET", "http://example.test/"), transport=_Exploding(exc)))

    assert ev.error == error
    assert ev.status is None
    assert ev.error_detail


def test_a_prober_warms_up_on_a_local_server_before_its_first_probe(
    provider: FakeProvider,
) -> None:
    provider.route("/x", Reply(200, "ok"))

    async def scenario():  # type: ignore[no-untyped-def]
        async with Prober() as prober:  # warms up on entry
            warm = await prober.warm_up()
            ev = await prober.probe(RequestSpec("GET", f"{provider.url}/x"), 5)
        return warm, ev

    warm, ev = run(scenario())

    assert warm is not None and warm > 0  # a real request went through the real client
    assert ev.status == 200 and ev.error is None
    assert [r.path for r in provider.requests] == ["/x"]  # the warm-up never hits a target


def test_a_custom_transport_is_not_warmed_up() -> None:
    async def scenario():  # type: ignore[no-untyped-def]
        async with Prober(transport=_Exploding(RuntimeError("boom"))) as prober:
            return await prober.warm_up()

    assert run(scenario()) is None


def test_the_monitor_runs_on_uvloop_when_it_is_installed() -> None:
    import uvloop

    from monitor.agent import eventloop

    async def on_uvloop() -> bool:
        return isinstance(asyncio.get_running_loop(), uvloop.Loop)

    assert eventloop.loop_name() == "uvloop"  # a dependency on Linux
    assert eventloop.run(on_uvloop())
