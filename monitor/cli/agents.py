"""`inferwatch agents`: the registered agents, where they run, and whether they are alive."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from sqlalchemy.orm import Session

from monitor.cli.app import ConfigOption, Format, FormatOption, existing_or_exit, load_or_exit, out
from monitor.config.types import DEFAULT_CONFIG_FILE
from monitor.store import reads
from monitor.store.reads import AgentRow


def _status(agent: AgentRow) -> str:
    if agent.alive:
        return "alive"
    return "stopped" if agent.stopped_at is not None else "lost"


def agent_dict(agent: AgentRow) -> dict[str, Any]:
    return {
        "name": agent.name,
        "region": agent.region,
        "version": agent.version,
        "host": agent.host,
        "pid": agent.pid,
        "targets_held": agent.targets_held,
        "started_at": agent.started_at.isoformat(),
        "last_heartbeat": agent.heartbeat_at.isoformat(),
        "stopped_at": agent.stopped_at.isoformat() if agent.stopped_at else None,
        "alive": agent.alive,
        "status": _status(agent),
    }


def agents_table(rows: list[AgentRow], now: datetime) -> Table:
    """One agent per row, in two lines where 80 columns need it (pid and age below)."""
    table = Table(header_style="bold", title="Agents (UTC)")
    for column in ("Agent", "Region", "Version", "Host", "Held", "Last heartbeat", "Status"):
        table.add_column(column, no_wrap=column in ("Agent", "Region", "Status"))
    colour = {"alive": "green", "lost": "red", "stopped": "dim"}
    for agent in rows:
        status = _status(agent)
        ago = max((now - agent.heartbeat_at).total_seconds(), 0.0)
        table.add_row(
            agent.name,
            agent.region,
            agent.version,
            f"{agent.host}\npid {agent.pid}",
            str(agent.targets_held),
            f"{agent.heartbeat_at:%Y-%m-%d %H:%M:%S}\n{ago:.0f}s ago",
            f"[{colour[status]}]{status}[/]",
        )
    return table


def agents(
    config: ConfigOption = Path(DEFAULT_CONFIG_FILE),
    output: FormatOption = Format.table,
) -> None:
    """List the monitor's agents: name, region, version, host, targets held, last heartbeat,
    and alive / lost (no heartbeat for 15 s) / stopped (a clean stop)."""
    cfg = load_or_exit(config)
    engine = existing_or_exit(cfg)
    with Session(engine) as s:
        now = reads.database_now(s)  # the heartbeats' clock, not this host's
        rows = reads.agents(s, now)
    if output is Format.json:
        print(json.dumps([agent_dict(a) for a in rows], indent=2, ensure_ascii=False))
    elif not rows:
        out.print("no agents yet: none has run against this database", markup=False)
    else:
        out.print(agents_table(rows, now))
