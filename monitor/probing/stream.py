"""Read a streamed answer: server-sent events, each with the time it arrived.

The raw bytes go through the same `CappedDecoder` as any body (the cap holds whatever a server
streams), and the decoded text through httpx-sse's `EventSource`, which applies the SSE rules
(comment lines such as `: OPENROUTER PROCESSING` are no events, multi-line data is joined). The
events are kept as they came; what they mean (which one is the first token, the usage, an error
after the 200) is the kind's knowledge (`TargetBase.read_stream`).

Reading fills the reader as it goes, so a stream cut off by the probe's timeout still leaves the
events and bytes that arrived before it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
from httpx_sse import EventSource

from monitor.domain.evidence import StreamEvent
from monitor.probing.content import CappedDecoder

# Enough events for any honest probe (a 16-token answer is about 20): a server sending
# millions of tiny events within the byte cap is cut here, not held in memory.
MAX_EVENTS = 2000


def is_event_stream(headers: httpx.Headers) -> bool:
    content_type: str = headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


class EventStreamReader:
    """One streamed answer's bytes (within `cap`) and events (with their arrival times)."""

    def __init__(self, cap: int, started: float):
        self.cap = cap
        self.started = started  # time.perf_counter() at the probe's start
        self.chunks: list[bytes] = []
        self.events: list[StreamEvent] = []
        self.truncated = False

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def read(self, response: httpx.Response) -> None:
        """Read until the stream ends, the cap or MAX_EVENTS is reached (or the caller's
        timeout cancels this). An answer that is not an event stream (an error's JSON) is read
        as a plain body, with no events."""
        decoded = self._decoded(response)
        if not is_event_stream(response.headers):
            async for _ in decoded:
                pass
            return
        # A response over the bytes already decoded and capped: httpx-sse reads text from it,
        # and no decoder of httpx's (without an output limit) runs on the raw stream.
        text = httpx.Response(
            response.status_code,
            headers={"content-type": response.headers["content-type"]},
            content=decoded,
        )
        async for sse in EventSource(text).aiter_sse():
            at_ms = (time.perf_counter() - self.started) * 1000
            self.events.append(StreamEvent(sse.event, sse.data, round(at_ms, 3)))
            if len(self.events) >= MAX_EVENTS:
                self.truncated = True
                break

    async def _decoded(self, response: httpx.Response) -> AsyncIterator[bytes]:
        decoder = CappedDecoder(response.headers.get("content-encoding"), self.cap)
        async for raw in response.aiter_raw():
            chunk = decoder.feed(raw)
            self.chunks.append(chunk)
            if chunk:
                yield chunk
            if decoder.done:
                break
        self.truncated = self.truncated or decoder.truncated
