"""The agent registry: who this `inferwatch run` is, and its row in `agents`.

An agent joins at start (its row inserted, or taken over from a lost or dead one), beats every
HEARTBEAT_S (monitor/domain/agents.py) and leaves at a clean stop. The rules for a start are
`store.writes.join_agent`'s: a live agent with the same name refuses it (unless its process is
gone from this same host), and SQLite holds one agent. The calls are blocking: the service runs
them in a thread, never on the probing loop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine

from monitor import __version__
from monitor.domain.agents import Agent, Outage
from monitor.store import reads, writes

log = logging.getLogger(__name__)

DEFAULT_REGION = "default"
AGENT_ENV = "INFERWATCH_AGENT"
REGION_ENV = "INFERWATCH_REGION"
MAX_NAME, MAX_REGION, MAX_HOST = 100, 64, 255  # the agents table's columns


@dataclass(frozen=True)
class Identity:
    """This process as an agent: its name and region, and where it runs."""

    name: str
    region: str
    host: str
    pid: int
    version: str = __version__

    @classmethod
    def of(
        cls, name: str | None = None, region: str | None = None, env: Mapping[str, str] = {}
    ) -> Identity:
        """--agent/--region, else INFERWATCH_AGENT/INFERWATCH_REGION, else the host name and
        region `default`."""
        host = socket.gethostname() or "localhost"
        me = cls(
            name=(name or env.get(AGENT_ENV) or host).strip(),
            region=(region or env.get(REGION_ENV) or DEFAULT_REGION).strip(),
            host=host[:MAX_HOST],
            pid=os.getpid(),
        )
        # The columns' sizes: said at the start, not as a database error at the join.
        if not me.name or len(me.name) > MAX_NAME:
            raise ValueError(f"an agent name has 1 to {MAX_NAME} characters: {me.name!r}")
        if not me.region or len(me.region) > MAX_REGION:
            raise ValueError(f"a region has 1 to {MAX_REGION} characters: {me.region!r}")
        return me


def pid_running(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 checks, sends nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class Replaced(Exception):
    """This agent's row now belongs to a newer start of the same name."""


class Registry:
    """This agent's row: join, beat, leave; and the live agents as of the last beat.

    `on_beat` callbacks get the live agents after each beat, on the event loop (the
    membership of several agents reads them there).

    Heartbeats are written and judged in the database's time, read in the same transaction:
    a host whose clock is off neither looks lost nor sees the others lost. `clock` stands in
    for the database's clock (tests drive time with it).
    """

    def __init__(
        self, engine: Engine, identity: Identity, clock: Callable[[], datetime] | None = None
    ):
        self.engine = engine
        self.identity = identity
        self.clock = clock
        self.agent_id: int | None = None
        self.started_at: datetime | None = None  # this start's, in its row while it is ours
        self.live: list[Agent] = []
        # Other agents have used this database: a deployment of several, whose agents may be
        # starting at this same moment (see Monitor.run).
        self.peers_known = False
        self.targets_held = 0  # the number reported with each beat (the service keeps it)
        self.on_beat: list[Callable[[list[Agent]], None]] = []
        # This agent's own time without the database (domain.agents.Outage): its last beat
        # before, its first after; the peers it last saw keep their liveness a while after.
        self.outage: Outage | None = None
        self._last_beat: datetime | None = None
        self._cut_off = False

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def region(self) -> str:
        return self.identity.region

    def _now(self, conn: Connection) -> datetime:
        return self.clock() if self.clock is not None else reads.database_now(conn)

    def join(self) -> int:
        """Register this start; its agent id. Raises writes.AgentRefused."""
        me = self.identity
        with self.engine.begin() as conn:
            now = self._now(conn)
            agent_id = writes.join_agent(
                conn, me.name, me.region, me.version, me.host, me.pid, now, pid_running
            )
            self.live = writes.live_agents(conn, now)
            self.peers_known = writes.agents_known(conn) > 1
        self.agent_id, self.started_at, self._last_beat = agent_id, now, now
        log.info("agent %s (region %s) joined as #%d", me.name, me.region, agent_id)
        return agent_id

    def beat(self) -> list[Agent]:
        """The heartbeat, and who is alive now (one short transaction). Raises Replaced when
        another start has taken this agent's name over."""
        assert self.agent_id is not None, "join first"
        try:
            with self.engine.begin() as conn:
                now = self._now(conn)
                outage = self.outage
                if self._cut_off and self._last_beat is not None:  # the first beat back
                    outage = Outage(self._last_beat, now)
                if not writes.beat(conn, self.agent_id, now, self.targets_held, self.started_at):
                    raise Replaced(
                        f"agent {self.name!r} was taken over by another start (this one was "
                        "lost: no heartbeat for too long); stopping"
                    )
                live = writes.live_agents(conn, now, outage)
        except Replaced:
            raise
        except Exception:
            self._cut_off = True  # the database away (for this agent at least)
            raise
        self.outage, self._last_beat, self._cut_off = outage, now, False
        self.live = live
        return live

    def leave(self) -> None:
        """A clean stop: the other agents take this one's targets at their next beat."""
        if self.agent_id is None:
            return
        with self.engine.begin() as conn:
            writes.leave_agent(conn, self.agent_id, self._now(conn), self.started_at)
