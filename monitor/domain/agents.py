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
from collections.abc import Callable, Iterable
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


def replaceable(
    other: Agent,
    other_host: str,
    other_pid: int,
    host: str,
    pid: int,
    now: datetime,
    pid_running: Callable[[int], bool],
) -> bool:
    """Whether a start on `host` as `pid` may take the place of the registered `other`.

    Yes when it is lost or stopped. Yes at once when it ran on this same host and its process
    is gone: a kill -9 followed by a restart must not wait LOST_AFTER_S. In a container the
    restart can even get the same pid back, which then cannot be the old process.
    """
    if not alive(other, now):
        return True
    return other_host == host and (other_pid == pid or not pid_running(other_pid))


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


def duties(
    me: str, region: str, targets: Iterable[str], agents: Iterable[Agent]
) -> tuple[set[str], set[str]]:
    """What `me` (of `region`) probes and whose state it holds, among `targets`, given the
    live agents (`me` counts as one even before its own beat is read back).

    It probes its region's share: each target is probed once per region. It holds the state of
    the targets it wins among all live agents: each state has exactly one holder, and since the
    overall winner also wins within its own region, a holder always probes what it holds.
    """
    everyone = {a.name for a in agents} | {me}
    mine = {a.name for a in agents if a.region == region} | {me}
    names = list(targets)
    return held(me, names, mine), held(me, names, everyone)
