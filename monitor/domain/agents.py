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
from collections.abc import Callable, Collection, Iterable, Mapping
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


@dataclass(frozen=True)
class Outage:
    """This agent's own time without the database: its last beat before it, and its first beat
    after (both in the database's time)."""

    last_beat: datetime
    back_at: datetime


def alive(agent: Agent, now: datetime, outage: Outage | None = None) -> bool:
    """Beating recently and not stopped.

    After this agent's own outage (`outage`), the peers it last saw alive stay alive until they
    have had LOST_AFTER_S of a reachable database to beat in: the database was most likely away
    for them too, and the first agent back must not take every target for one beat and turn
    the others' outage results into observations. A peer that stopped cleanly is gone at once.
    """
    if agent.stopped_at is not None:
        return False
    lost_after = timedelta(seconds=LOST_AFTER_S)
    if now - agent.heartbeat_at < lost_after:
        return True
    return (
        outage is not None
        and now - outage.back_at < lost_after
        and outage.last_beat - agent.heartbeat_at < lost_after  # alive when last seen
    )


def counted_since(now: datetime, outage: Outage | None = None) -> datetime:
    """The oldest heartbeat `alive` can count at `now`: what a store query may filter on."""
    oldest = now if outage is None else min(now, outage.last_beat)
    return oldest - timedelta(seconds=LOST_AFTER_S)


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
    me: str,
    region: str,
    targets: Iterable[str],
    agents: Iterable[Agent],
    regions_of: Mapping[str, Collection[str]] | None = None,
) -> tuple[set[str], set[str]]:
    """What `me` (of `region`) probes and whose state it holds, among `targets`, given the
    live agents (`me` counts as one even before its own beat is read back).

    It probes its region's share: each target is probed once per region, in every region
    unless `regions_of` narrows a target to some (its `regions:`). It holds the state of the
    targets it wins among the live agents of the regions that probe them: each state has
    exactly one holder, and since that winner also wins within its own region, a holder
    always probes what it holds.
    """
    region_of = {a.name: a.region for a in agents}
    region_of[me] = region
    mine = {name for name, r in region_of.items() if r == region}
    names = list(targets)
    narrowed = {t: regions_of[t] for t in names if regions_of and regions_of.get(t)}
    plain = [t for t in names if t not in narrowed]
    probe, hold = held(me, plain, mine), held(me, plain, region_of)
    for target, allowed in narrowed.items():
        if region not in allowed:
            continue  # my region does not probe it, so I cannot hold it either
        if owner(target, mine) == me:
            probe.add(target)
        if owner(target, (n for n, r in region_of.items() if r in allowed)) == me:
            hold.add(target)
    return probe, hold


def job_due(last_run_at: datetime | None, now: datetime, period: timedelta) -> bool:
    """Whether a once-per-deployment job (the daily prune) should run at `now`, given when it
    last ran (by any agent, this one included): yes unless that was within `period`, less a
    twenty-fourth of it, so one agent alone keeps its daily rhythm whatever the jitter of its
    schedule, a second agent's day skips while the first one's runs go on, and an agent that
    restarts (its first prune comes a minute after each start) does not prune again."""
    if last_run_at is None:
        return True
    return now - last_run_at >= period - period / 24
