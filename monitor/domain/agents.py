"""Pure: which agents are alive, and which agent of a region probes which target.

Several `inferwatch run --agent NAME --region REGION` processes share one PostgreSQL. Each
beats a heartbeat into `agents` every HEARTBEAT_S; an agent is alive while its last beat is
younger than LOST_AFTER_S and it has not stopped. Within a region the targets are shared by
rendezvous hashing (highest random weight) over the region's live agents: every agent computes
the same owner for a target from the same membership, with no coordination, and when an agent
joins or leaves only the targets it gains or loses move (about 1/n of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

HEARTBEAT_S = 5.0  # how often an agent beats (and re-reads who else is alive)
LOST_AFTER_S = 3 * HEARTBEAT_S  # no beat for this long: lost, its targets move


@dataclass(frozen=True)
class Agent:
    """An agent as the registry stores it."""

    name: str
    region: str
    heartbeat_at: datetime
    stopped_at: datetime | None = None


def alive(agent: Agent, now: datetime) -> bool:
    """Beating recently and not stopped."""
    return agent.stopped_at is None and now - agent.heartbeat_at < timedelta(seconds=LOST_AFTER_S)


def _weight(agent: str, target: str) -> int:
    digest = hashlib.blake2b(f"{agent}\0{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(target: str, agents: Iterable[str]) -> str | None:
    """The agent (of one region's live ones) that probes `target`; None when there is none."""
    return max(agents, key=lambda agent: (_weight(agent, target), agent), default=None)


def held(me: str, targets: Iterable[str], region_agents: Iterable[str]) -> set[str]:
    """The targets `me` probes, given its region's live agents (`me` counts as one of them)."""
    members = set(region_agents) | {me}
    return {t for t in targets if owner(t, members) == me}
