"""The config's vocabulary: durations and the small models that target kinds share.

The leaf of the config layer: it imports nothing of monitor, so target kinds (monitor.targets)
can use it while the Config model (monitor.config.model) uses the kinds.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

DEFAULT_CONFIG_FILE = "inferwatch.yaml"
DEFAULT_DATABASE = "sqlite:///inferwatch.db"

# ---------------------------------------------------------------- durations

# Matched after strip(): with `\s*` on both sides of an optional unit, "1   ...x" backtracks
# quadratically.
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HELP = "a duration such as 500ms, 10s, 5m, 1h or 1d (a bare number means seconds)"


def parse_duration(value: Any) -> float:
    """'500ms' / '10s' / '5m' / '1h' / '1d' / 12 -> seconds as a float."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float
            raise ValueError(f"is far too large; use {DURATION_HELP}") from None
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]  # inf if huge: see below
    else:
        raise ValueError(f"{_brief(value)} is not {DURATION_HELP}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a finite time greater than zero; use {DURATION_HELP}")
    return seconds


def _brief(value: Any, limit: int = 60) -> str:
    """repr() for a message, shortened: a value may be a 200 kB string or a huge structure."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**limit else "<huge number>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def format_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_quorum(value: Any) -> str | int:
    """`majority`, or a number of regions from 1 to 100 (see monitor/domain/quorum.py)."""
    if value == "majority":
        return "majority"
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
        return value
    raise ValueError(f"use majority or a number of regions from 1 to 100 (got {_brief(value)})")


# How many reporting regions confirm a change: "majority" or a number.
Quorum = Annotated[str | int, BeforeValidator(parse_quorum)]

# ---------------------------------------------------------------- models


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # the NAME of an environment variable


StatusCode = Annotated[int, Field(ge=100, le=599)]


class Expect(StrictModel):
    """Conditions a response must meet; any unmet one makes the probe `bad_response`."""

    status: StatusCode | list[StatusCode] | None = Field(
        default=None, description="accepted HTTP status code(s); default any 2xx"
    )
    max_latency: Duration | None = Field(
        default=None, description="slower answers pass but are reported as `slow`"
    )
    max_ttft: Duration | None = Field(
        default=None,
        description="streamed probes: a later first token passes but is reported as `slow`",
    )
    min_tokens_per_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="streamed probes: a slower pace passes but is reported as `slow`",
    )
    body_contains: str | None = Field(default=None, description="text the body must contain")
    json_path: dict[str, Any] | None = Field(
        default=None,
        description="dotted path -> expected value, e.g. {'status.indicator': 'none'}",
    )

    def accepts_status(self, status: int) -> bool:
        if self.status is None:
            return 200 <= status < 300
        allowed = self.status if isinstance(self.status, list) else [self.status]
        return status in allowed


class EmbeddingExpect(Expect):
    embedding_dim: int | None = Field(
        default=None, gt=0, description="length every returned vector must have"
    )


Threshold = Annotated[int, Field(ge=1, le=100)]
