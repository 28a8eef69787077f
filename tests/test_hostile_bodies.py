"""Hostile answers from a real local server: compression bombs, corrupt bodies, reset
connections. A probe's memory stays near the body cap and healthy probes keep their pace."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from monitor.demo.simulator import FakeProvider, Reply
from monitor.domain.evidence import Outcome, RequestSpec, TransportError
from monitor.probing.content import CappedDecoder, UndecodableBody
from monitor.probing.engine import MAX_BODY_BYTES, Prober
from tests.helpers import make_config, probe_once

GIGABYTE = 1024**3


def _gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    once = _gzip_of_zeros(GIGABYTE)  # ~1 MB on the wire, 1 GB inflated
    return {"gzip": once, "gzip, gzip": gzip.compress(once, 9)}  # the second: ~2 KB


def _peak_bytes_of(coro_factory) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    tracemalloc.start()
    try:
        result = asyncio.run(coro_factory())
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def plain_peak(provider: FakeProvider) -> int:
    """Peak traced memory of probing an ordinary 1 MiB answer (the in-process server's copies
    of the body count too): the yardstick for what a hostile answer may cost."""
    provider.route("/plain", Reply(200, bytes(MAX_BODY_BYTES)))
    asyncio.run(_probe(f"{provider.url}/plain"))  # warm-up: first-use allocations
    return _peak_bytes_of(lambda: _probe(f"{provider.url}/plain"))[1]


async def _probe(url: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    async with Prober() as prober:
        return await prober.probe(RequestSpec("GET", url), timeout)


def test_a_double_gzip_bomb_is_refused_in_a_few_megabytes(
    provider: FakeProvider, bombs: dict[str, bytes], plain_peak: int
) -> None:
    provider.route(
        "/bomb", Reply(200, bombs["gzip, gzip"], headers={"content-encoding": "gzip, gzip"})
    )

    started = time.perf_counter()
    ev, peak = _peak_bytes_of(lambda: _probe(f"{provider.url}/bomb"))
    elapsed = time.perf_counter() - started

    assert ev.status == 200  # type: ignore[attr-defined]
    assert ev.error == TransportError.PROTOCOL  # type: ignore[attr-defined]
    assert "stacked content encodings (gzip, gzip)" in ev.error_detail  # type: ignore[attr-defined]
    # Before the fix: about 2.1 GB, with every other probe stalled behind it.
    assert peak < plain_peak + 2 * MAX_BODY_BYTES, f"{peak / 1e6:.1f} vs {plain_peak / 1e6:.1f} MB"
    assert elapsed < 5


def test_a_single_gzip_bomb_is_cut_at_the_cap_in_a_few_megabytes(
    provider: FakeProvider, bombs: dict[str, bytes], plain_peak: int
) -> None:
    provider.route("/bomb", Reply(200, bombs["gzip"], headers={"content-encoding": "gzip"}))

    ev, peak = _peak_bytes_of(lambda: _probe(f"{provider.url}/bomb"))

    assert ev.error is None and ev.status == 200  # type: ignore[attr-defined]
    assert ev.body_truncated  # type: ignore[attr-defined]
    assert len(ev.body) == MAX_BODY_BYTES  # type: ignore[attr-defined]
    assert set(ev.body) == {0}  # type: ignore[attr-defined]
    # No more than an ordinary 1 MiB answer costs (before the fix: about 200 MB).
    assert peak < plain_peak + 2 * MAX_BODY_BYTES, f"{peak / 1e6:.1f} vs {plain_peak / 1e6:.1f} MB"


def test_a_redirect_carrying_a_gzip_bomb_is_followed_without_reading_it(
    provider: FakeProvider, bombs: dict[str, bytes], plain_peak: int
) -> None:
    provider.route(
        "/moved",
        Reply(302, bombs["gzip"], headers={"content-encoding": "gzip", "location": "/here"}),
    )
    provider.route("/here", Reply(200, "ok"))

    ev, peak = _peak_bytes_of(lambda: _probe(f"{provider.url}/moved"))

    assert ev.error is None and ev.status == 200  # type: ignore[attr-defined]
    assert ev.url.endswith("/here")  # type: ignore[attr-defined]
    # httpx, following it itself, read and inflated the whole redirect's body: about 1 GB.
    assert peak < plain_peak + 2 * MAX_BODY_BYTES, f"{peak / 1e6:.1f} vs {plain_peak / 1e6:.1f} MB"


def test_healthy_targets_keep_their_pace_next_to_a_bomb(
    provider: FakeProvider, bombs: dict[str, bytes]
) -> None:
    """The fault suite saw healthy targets get 4 to 7 of ~30 probes next to a double gzip."""
    provider.route(
        "/bomb", Reply(200, bombs["gzip, gzip"], headers={"content-encoding": "gzip, gzip"})
    )
    provider.route("/gzip-bomb", Reply(200, bombs["gzip"], headers={"content-encoding": "gzip"}))
    provider.route("/ok", Reply(200, "ok"))

    async def scenario() -> tuple[int, int]:
        done = {"ok": 0, "bomb": 0}
        stop = time.monotonic() + 2.0

        async def loop(path: str, key: str, pause: float) -> None:
            while time.monotonic() < stop:
                ev = await prober.probe(RequestSpec("GET", f"{provider.url}{path}"), 5)
                if key == "ok":
                    assert ev.status == 200 and ev.error is None
                done[key] += 1
                await asyncio.sleep(pause)

        async with Prober(concurrency=20) as prober:
            await asyncio.gather(
                *(loop("/ok", "ok", 0.1) for _ in range(3)),
                loop("/bomb", "bomb", 0),
                loop("/gzip-bomb", "bomb", 0),
            )
        return done["ok"], done["bomb"]

    healthy, hostile = asyncio.run(scenario())

    # Three loops of one probe per ~0.1 s for 2 s: about 60 when nothing stalls the loop.
    assert healthy >= 40, f"healthy targets got only {healthy} probes"
    assert hostile >= 4


def test_a_bomb_answer_to_a_model_kind_is_recorded_not_a_crash(
    provider: FakeProvider, bombs: dict[str, bytes]
) -> None:
    provider.route(
        "/chat/completions",
        Reply(
            200,
            bombs["gzip, gzip"],
            headers={"content-encoding": "gzip, gzip"},
            content_type="application/json",
        ),
    )
    config = make_config(
        [{"name": "t", "kind": "openai-chat", "model": "m", "base_url": provider.url}]
    )

    result = probe_once(config)["t"]

    assert result.outcome == Outcome.BAD_RESPONSE
    assert "stacked content encodings" in result.detail


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(b'{"ok": true}')),
        ("x-gzip", gzip.compress(b'{"ok": true}')),
        ("deflate", zlib.compress(b'{"ok": true}')),
        ("deflate", zlib.compress(b'{"ok": true}', wbits=-15)),  # raw DEFLATE, no zlib header
        ("identity", b'{"ok": true}'),
        ("identity, gzip", gzip.compress(b'{"ok": true}')),
    ],
)
def test_ordinary_encodings_decode(provider: FakeProvider, encoding: str, packed: bytes) -> None:
    provider.route("/x", Reply(200, packed, headers={"content-encoding": encoding}))

    ev = asyncio.run(_probe(f"{provider.url}/x"))

    assert ev.error is None
    assert ev.body == b'{"ok": true}'
    assert not ev.body_truncated


def test_a_corrupt_gzip_body_is_a_protocol_error(provider: FakeProvider) -> None:
    provider.route(
        "/x", Reply(200, b"\x1f\x8bnot really gzip", headers={"content-encoding": "gzip"})
    )

    ev = asyncio.run(_probe(f"{provider.url}/x"))

    assert ev.status == 200
    assert ev.error == TransportError.PROTOCOL
    assert "gzip body is corrupt" in ev.error_detail


def test_the_prober_asks_only_for_encodings_it_can_cap(provider: FakeProvider) -> None:
    provider.route("/x", Reply(200, "ok"))

    asyncio.run(_probe(f"{provider.url}/x"))

    assert provider.requests[-1].headers["accept-encoding"] == "gzip, deflate"


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536])
def test_the_decoder_never_outputs_past_its_cap_whatever_the_chunking(chunk: int) -> None:
    packed = gzip.compress(bytes(300_000))
    decoder = CappedDecoder("gzip", cap=100_000)
    out = b""
    for i in range(0, len(packed), chunk):
        out += decoder.feed(packed[i : i + chunk])
        assert len(out) <= 100_000
        if decoder.done:
            break

    assert len(out) == 100_000 and decoder.truncated


def test_the_decoder_refuses_stacked_codings_up_front() -> None:
    with pytest.raises(UndecodableBody, match="deflate, gzip"):
        CappedDecoder("deflate, gzip", cap=10)


@pytest.fixture
def resetting_server() -> Iterator[str]:
    """Accepts, reads the request, then resets the connection (RST, no answer)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join()
    server.close()


def test_a_reset_connection_says_so(resetting_server: str) -> None:
    config = make_config([{"name": "t", "kind": "http", "url": resetting_server}])

    result = probe_once(config)["t"]

    assert result.outcome in (Outcome.CONNECT_ERROR, Outcome.BAD_RESPONSE)
    # Was "connection failed: " with nothing after it.
    assert not result.detail.rstrip().endswith(":")
    assert "reset" in result.detail.lower() or "disconnected" in result.detail.lower()
