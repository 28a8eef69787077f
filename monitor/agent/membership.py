"""Which targets this agent probes, and whose state its writer holds, as agents come and go.

At its start and after each heartbeat (monitor/agent/registry.py hands it the live agents),
an agent recomputes its duties with the pure rules of monitor/domain/agents.py: it probes its
region's rendezvous share of the targets (each target once per region) and holds the state of
its share among all live agents (each state exactly once). The probe set goes to the `Slots`
as a reload would (new targets planned, dropped ones removed); the state set goes to the
writer's queue as a `Holding`, behind the results already queued, where the writer takes the
gained targets in the database and forgets the released ones. The whole set is sent at every
beat, so a writer that lost a target (another agent took it) or failed to take one catches up
at the next beat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from monitor.agent.scheduler import FIRST_ROUND_SPREAD, Slots
from monitor.agent.writer import Writer
from monitor.config.model import Config
from monitor.domain.agents import Agent, duties
from monitor.targets import Target

log = logging.getLogger(__name__)


class Membership:
    """This agent's duties; `update` applies them (on the event loop, where `Slots` lives)."""

    def __init__(self, name: str, region: str, slots: Slots, writer: Writer):
        self.name = name
        self.region = region
        self.slots = slots
        self.writer = writer
        self.probing: set[str] = set()
        self.holding: frozenset[str] = frozenset()
        self._planned: dict[str, tuple[float, Target]] = {}  # what each probe was planned from
        self._unprobed: set[str] = set()  # narrowed to regions no live agent runs in (told)

    def update(
        self, live: Sequence[Agent], config: Config, spread: float = FIRST_ROUND_SPREAD
    ) -> None:
        """Apply the duties for these live agents and this config (also after a reload)."""
        targets = {t.name: t for t in config.targets}
        regions_of = {t.name: t.regions for t in config.targets if t.regions}
        probe, hold = duties(self.name, self.region, targets, live, regions_of)
        self._tell_unprobed(regions_of, {a.region for a in live} | {self.region})
        for name in self.probing - probe:
            self.slots.remove(name)
            self._planned.pop(name, None)
        for name in sorted(probe):
            target = targets[name]
            planned = (config.interval_of(target), target)
            if self._planned.get(name) != planned:  # new to this agent, or changed by a reload
                self.slots.plan(name, planned[0], spread)
                self._planned[name] = planned
        if probe != self.probing or hold != self.holding:
            log.info(
                "agent %s: probing %d targets, holding %d (of %d; live agents: %d)",
                self.name,
                len(probe),
                len(hold),
                len(targets),
                len({a.name for a in live} | {self.name}),
            )
        self.probing, self.holding = probe, frozenset(hold)
        self.writer.queue_holding(hold, {a.region for a in live} | {self.region})

    def _tell_unprobed(self, regions_of: dict[str, list[str]], live: set[str]) -> None:
        """Say once (per change) which targets no live agent probes: their `regions:` name
        only regions where none runs (a typo, or a region down)."""
        unprobed = {name for name, regions in regions_of.items() if not live & set(regions)}
        for name in sorted(unprobed - self._unprobed):
            log.warning(
                "target %s is probed in regions %s only, and no live agent runs there: nobody "
                "probes it (live regions: %s)",
                name,
                ", ".join(regions_of[name]),
                ", ".join(sorted(live)),
            )
        self._unprobed = unprobed
