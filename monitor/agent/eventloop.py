"""The event loop the monitor runs on: uvloop where it is installed, else asyncio's own.

uvloop's loop costs about 15% less CPU per probe than asyncio's (benchmarks/probe_engine.py)
and behaves the same for everything inferwatch uses (timeouts, signals, threads), but for one
thing: its `sock_connect` looks the address up again with `getaddrinfo`, which for an address
given as an IP (what aiohappyeyeballs hands it when a name has several) still goes through a
worker thread and back. Our loop answers an IP address itself, as asyncio's does.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from monitor.probing.transport import numeric_address

T = TypeVar("T")

# Objects a young collection counts before it runs (Python's default: 700). A probe makes a
# few hundred short-lived containers, so the default collected every two or three probes and
# promoted whatever the probes in flight held at that instant; older generations then grew
# and were walked again and again.
YOUNG_THRESHOLD = 20_000


def loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


@contextmanager
def long_lived_heap() -> Iterator[None]:
    """Collect less often while a long run lasts, and never walk what exists at its start
    (modules, the config, the caches built at start-up) again: `gc.freeze` leaves those to
    reference counting. Both are undone at the end, for callers that go on (tests)."""
    threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(threshold[0], YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the fastest loop available, with the collector set for a long run."""
    with long_lived_heap():
        return _run(main)


def _run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)

    class Loop(uvloop.Loop):
        async def getaddrinfo(
            self,
            host: Any,
            port: Any,
            *,
            family: int = 0,
            type: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> list[tuple[Any, ...]]:
            known = numeric_address(host, port, family, type, proto, flags)
            if known is not None:
                return known
            return await super().getaddrinfo(
                host, port, family=family, type=type, proto=proto, flags=flags
            )

    with asyncio.Runner(loop_factory=Loop) as runner:
        return runner.run(main)
