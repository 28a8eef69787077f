"""Decode a response body within a byte budget, whatever the server claims it sent.

httpx's own decoders inflate each network chunk without a limit, so a few kilobytes of
`Content-Encoding: gzip, gzip` become gigabytes on the event-loop thread before any cap
applies. Here every zlib call is told how much output it may produce (`max_length`), so one
probe's body costs at most about `cap` bytes of memory and a bounded amount of CPU.
"""

from __future__ import annotations

import zlib

# What the prober advertises: only what we can decode within a budget (no br, no zstd).
ACCEPT_ENCODING = "gzip, deflate"
_IGNORED = {"", "identity"}


class UndecodableBody(Exception):
    """The body cannot be decoded: corrupt data, or an encoding stack we refuse."""


class CappedDecoder:
    """Decodes at most one content coding (gzip or deflate) and never outputs past `cap`.

    Stacked codings (`gzip, gzip`) are refused: no real provider sends them, and each extra
    layer multiplies what a small answer can expand to. Unknown codings (br, zstd: we never
    ask for them) pass the bytes through undecoded, as httpx does.
    """

    def __init__(self, content_encoding: str | None, cap: int):
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c not in _IGNORED]
        if len(codings) > 1:
            raise UndecodableBody(
                f"stacked content encodings ({', '.join(codings)}) are not decoded"
            )
        self.coding = codings[0] if codings else None
        self.cap = cap
        self.size = 0
        self.truncated = False
        self._zlib: zlib._Decompress | None = None
        self._deflate_first = True
        if self.coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self.coding == "deflate":
            self._zlib = zlib.decompressobj()

    @property
    def done(self) -> bool:
        """True once the cap is reached or the compressed stream has ended."""
        return self.truncated or (self._zlib is not None and self._zlib.eof)

    def feed(self, raw: bytes) -> bytes:
        """Decode one raw chunk; at most the bytes still left under the cap come out."""
        if self.done:
            return b""
        room = self.cap - self.size
        if self._zlib is None:
            out = raw[:room]
            self.truncated = len(raw) > room
        else:
            out = self._inflate(raw, room + 1)  # one byte more tells "there is more"
            if len(out) > room or self._zlib.unconsumed_tail:
                out, self.truncated = out[:room], True
        self.size += len(out)
        return out

    def _inflate(self, raw: bytes, limit: int) -> bytes:
        assert self._zlib is not None
        try:
            out = self._zlib.decompress(raw, limit)
        except zlib.error as exc:
            # "deflate" is sometimes raw DEFLATE without the zlib header (httpx allows it too).
            if self.coding == "deflate" and self._deflate_first:
                self._deflate_first = False
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._inflate(raw, limit)
            raise UndecodableBody(f"the {self.coding} body is corrupt: {exc}") from exc
        self._deflate_first = False
        return out
