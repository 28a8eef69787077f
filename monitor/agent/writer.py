"""The one writer: probe results in, rows out — probes, states, transitions, incidents, alerts.

Results arrive on a queue and are written in small batches, one transaction per batch. Each
result goes through `decide` (monitor/domain/decide.py), in order, and what it decided is
written by monitor/store/writes.py in that same transaction, so a transition, its incident
change, its alert event in the outbox and the target's new state are committed together:
after a crash either all of them exist or none do, which is what makes alerts never lost and
never doubled across restarts. The writer knows no channel: the outbox renders each event
when it sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine

from monitor.agent.backlog import Backlog
from monitor.config.model import Config
from monitor.domain.alert_event import provider_status
from monitor.domain.decide import (
    Alert,
    Alerting,
    Decision,
    IncidentStep,
    OpenIncident,
    Transition,
    decide,
    regional,
    remind,
    reminder_due,
)
from monitor.domain.evidence import Outcome, ProbeResult
from monitor.domain.maintenance import Quiet, Silence, quiet_at
from monitor.domain.quorum import REPORT_WINDOW, RegionState, step_region
from monitor.domain.rollups import HOUR, Rollup, fold
from monitor.domain.sampling import LastStored, after, keeps_evidence, provider_change
from monitor.domain.states import Rules, TargetState
from monitor.domain.text import utcnow
from monitor.store import writes
from monitor.store.writes import NewAlert, RollupKey
from monitor.targets import Target

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# Seconds a batch gathers results after its first before it is written: BATCH_WAIT when one of
# them is news (not ok, another outcome or warning than the target's previous result, or a
# target whose committed state is not a settled ok: a recovery's confirming probe is an ok
# like the one before it), ROUTINE_WAIT when all repeat what their targets last said. Fewer, larger
# transactions for the results nobody waits on (issue 9, docs/benchmarks.md). With several
# regions, or results held while the database is away, every batch is quick.
BATCH_WAIT = 0.25
ROUTINE_WAIT = 1.0
RECENT_PROBES = 5
REGION_POLL = 1.0  # seconds: how often a holder takes other regions' results when idle
_IDLE = object()  # "no more items for this batch"


@dataclass(frozen=True)
class Holding:
    """The targets whose state this agent's writer should hold from now on (membership
    decides, at each heartbeat). Queued like a Config, so it applies in order with results."""

    targets: frozenset[str]
    # The regions of the live agents: with more than one, the other regions' results reach
    # the holder through the database and a quorum of regions decides (see `_fold`).
    regions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Setup:
    """What `decide` needs of one configured target, computed once per config."""

    target: Target
    rules: Rules
    alerting: Alerting
    quorum: int | None  # regions that confirm a change; None: a majority
    interval: float


class Writer:
    """Owns every write of the monitoring loop. Use `submit` from probes, `run` as a task."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        clock: Callable[[], datetime] = utcnow,
        agent_id: int | None = None,
        region: str | None = None,
    ):
        self.engine = engine
        self.config = config
        self.clock = clock
        # Results, a new Config or Holding (applied in order, by this writer), or None (close).
        self.queue: asyncio.Queue[ProbeResult | Config | Holding | None] = asyncio.Queue()
        self.states: dict[str, TargetState] = {}
        self.target_ids: dict[str, int] = {}
        self.run_id: int | None = None
        # With an agent: the targets whose state it holds (target_states.holder is its id)
        # and whose caches (state, open incident, rollups) are loaded. Its batches change
        # only these, and only while the database still says so (see `_fence`).
        self.held: set[str] | None = None
        self.alerts_written = asyncio.Event()  # wakes the outbox sender
        # Set when a queued item should not wait for a routine batch (see BATCH_WAIT); per
        # target, the outcome and warning of its last queued result, to tell news.
        self._hurry = asyncio.Event()
        self._full = asyncio.Event()  # a batch's worth is queued: stop gathering
        self._last_queued: dict[str, tuple[Outcome, str]] = {}
        self._last_holding: Holding | None = None
        # Batches that could not be committed (the database away), written when it is back.
        self.backlog = Backlog(lambda batch: self.write_batch(batch), self.alerts_written.set)
        # The open incidents as the last committed batch left them. Only this writer opens,
        # changes or closes incidents, so they are read from the database once, not per batch.
        self._open: list[OpenIncident] | None = None
        # Per target, what its last stored probe said: decides which probes keep evidence.
        self._stored: dict[str, LastStored] = {}
        # Per target that tracks providers (hf-model), the live set its stored probes last
        # showed, read once at a start or reload: what its first probe is compared with.
        self._live_at_start: dict[str, list[str]] = {}
        # The rollups of the buckets being filled, as committed. Only this writer writes
        # rollups, so each is read once (after a start, or for a late result), not per batch.
        self._rollups: dict[RollupKey, Rollup] = {}
        # This agent's region, and whether the live agents span several regions.
        self.region = region
        self.several = False
        # Per held target that has been watched from several regions: each region's own
        # state (monitor/domain/quorum.py), as committed.
        self.region_states: dict[str, dict[str, RegionState]] = {}
        # A write failed with the database away: its commit may have happened all the same
        # (the answer lost with the connection), so the caches may be behind the database.
        self._unsure = False
        self._attempt: list[str] = []  # the keys of the write whose outcome is unknown
        self._committed: set[str] = set()  # its keys, once found committed after all
        self.agent_id = agent_id

    @property
    def agent_id(self) -> int | None:
        """The agent this writer writes for (agents.id, set by the service once it has joined,
        before `start_run`): stamped on its runs, probes and transitions, and the holder it
        fences its decisions with. None (tests, tools): it holds every target, unfenced."""
        return self._agent_id

    @agent_id.setter
    def agent_id(self, agent_id: int | None) -> None:
        self._agent_id = agent_id
        # An agent holds nothing until membership's first Holding says what it holds.
        self.held = None if agent_id is None else set()
        if agent_id is not None:
            self._open = []

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config
        alerting = config.alerts
        self._windows = config.windows
        self._setup = {
            t.name: _Setup(
                t,
                config.rules_of(t),
                Alerting(config.routes_of(t), alerting.dashboard_url),
                config.quorum_of(t),
                config.interval_of(t),
            )
            for t in config.targets
        }

    # ------------------------------------------------------------ lifecycle

    def start_run(self) -> None:
        """Record this run (closing a crashed one at its last heartbeat) and load states."""
        now = self.clock()
        with self.engine.begin() as conn:
            run_id, crashed = writes.start_run(conn, now, self.agent_id)
            for last_seen in crashed:
                log.warning(
                    "the previous run stopped without a clean shutdown; no data from %s to %s",
                    last_seen.isoformat(timespec="seconds"),
                    now.isoformat(timespec="seconds"),
                )
            ids = self._sync(conn)
            # An agent holds nothing yet: membership's first Holding loads what it holds.
            states = self._load_states(conn, ids) if self.held is None else {}
            live = self._load_live(conn, ids)
        self.run_id, self.target_ids, self.states = run_id, ids, states
        self._live_at_start = live

    def stop_run(self) -> None:
        with self.engine.begin() as conn:
            writes.stop_run(conn, self.run_id, self.clock())

    def reconfigure(self, config: Config) -> None:
        """Adopt a reloaded config (blocking: the writer's own task calls it, in a thread)."""
        self.config = config
        with self.engine.begin() as conn:
            ids = self._sync(conn)
            states = self._load_states(conn, ids)
            fresh = {name: i for name, i in ids.items() if name not in self._stored}
            live = self._load_live(conn, fresh)
        self.target_ids.update(ids)
        self._live_at_start.update(live)
        for name, state in states.items():
            if self.held is None or name in self.held:
                self.states.setdefault(name, state)

    def queue_config(self, config: Config) -> None:
        """Queue a reloaded config behind the results already queued (one writer, in order)."""
        self.queue.put_nowait(config)
        self._hurry.set()

    def queue_holding(self, targets: Iterable[str], regions: Iterable[str] = ()) -> None:
        """Queue the targets to hold from now on (and the live agents' regions), behind the
        results already queued."""
        holding = Holding(frozenset(targets), frozenset(regions))
        self.queue.put_nowait(holding)
        if holding != self._last_holding:  # (membership sends the same one every heartbeat)
            self._hurry.set()
        self._last_holding = holding

    def hold(self, targets: Iterable[str], regions: Iterable[str] = ()) -> None:
        """Hold exactly `targets` (blocking: the writer's own task calls it, in a thread).

        Released ones just lose their caches: the next holder's acquisition takes the row.
        Acquired ones are taken in the database (`holder = me`), waiting for a writer still
        deciding one of them, then their state, open incident and live providers are read
        back as that writer committed them; their rollups are read when next needed.
        """
        if self.held is None or self.agent_id is None:
            return  # holds everything already
        self.several = len(set(regions) | {self.region}) > 1
        wanted = set(targets) & set(self._setup)
        self._drop(self.held - wanted)
        gained = wanted - self.held
        if not gained:
            return
        with self.engine.begin() as conn:
            ids = dict(self.target_ids)
            if gained - set(ids):
                ids.update(self._sync(conn))
            names = {ids[name]: name for name in gained}
            writes.acquire_targets(
                conn, self.agent_id, names, TargetState().to_dict(), self.clock()
            )
            states = writes.load_states(conn, names)
            incidents = writes.open_incidents(conn, names)
            regional = self._load_region_states(conn, names)
            live = self._load_live(conn, {name: ids[name] for name in gained})
        self._drop(gained)  # anything kept from an earlier holding is stale now
        self.target_ids = ids
        self.held |= gained
        self.states.update({names[i]: TargetState.from_dict(s) for i, s in states.items()})
        self.region_states.update(regional)
        self._open = sorted([*(self._open or []), *incidents], key=lambda i: (i.opened_at, i.id))
        self._live_at_start.update(live)
        log.info("now holding %d targets (+%d)", len(self.held), len(gained))

    def _drop(self, names: Iterable[str]) -> None:
        """Forget what this writer knew of targets it no longer holds."""
        gone = set(names)
        if not gone or self.held is None:
            return
        self.held -= gone
        ids = {self.target_ids[name] for name in gone if name in self.target_ids}
        for name in gone:
            self.states.pop(name, None)
            self.region_states.pop(name, None)
        self._open = [i for i in self._open or [] if i.target_id not in ids]
        self._rollups = {key: r for key, r in self._rollups.items() if key[0] not in ids}

    async def submit(self, result: ProbeResult) -> None:
        said = (result.outcome, result.warning)
        if said != self._last_queued.get(result.target) or not self._settled(result):
            self._hurry.set()  # news: written within BATCH_WAIT
        self._last_queued[result.target] = said
        self.queue.put_nowait(result)  # (unbounded: never waits)
        if self.queue.qsize() >= BATCH_SIZE:
            self._hurry.set()
            self._full.set()

    def _settled(self, result: ProbeResult) -> bool:
        """True when `result` is an ok probe of a target whose committed state is a settled ok
        (read from the loop while the writer's thread may replace `states`: a hint; a stale
        one delays a batch by ROUTINE_WAIT at most)."""
        state = self.states.get(result.target)
        return (
            result.outcome == Outcome.OK
            and state is not None
            and state.accepted == Outcome.OK
            and state.candidate == Outcome.OK
            and not state.flapping
            and state.quiet is None
        )

    async def close(self) -> None:
        """Ask `run` to write everything queued so far and return."""
        self.queue.put_nowait(None)
        self._hurry.set()

    async def run(self) -> None:
        """Wait for results, gather a batch, write it (off the event loop); stop at `close`.

        Stopping by a sentinel rather than cancellation: a cancel can be lost when it lands
        just as a queue item arrives (asyncio.wait_for on 3.11), and nothing queued may be lost.
        """
        loop = asyncio.get_running_loop()
        while True:
            # While results are held, wake for the next try even when no new result comes.
            retry = self.backlog.wait()
            if retry is None and self.several:
                retry = REGION_POLL  # other regions' results may wait for this holder
            item: object = (
                await self.queue.get() if retry is None else await self._next(loop.time() + retry)
            )
            batch: list[ProbeResult] = []
            if isinstance(item, ProbeResult):
                await self._gather(loop.time())
                batch.append(item)
                item = self._take(batch)
                if not self.queue.empty():
                    # What the batch left (behind a config, a holding or a full batch) may
                    # hold news whose signal this batch took: the next batch is quick.
                    self._hurry.set()
            if batch or (self.several and not self.backlog and item is _IDLE):
                await self._write(batch)  # (empty: only other regions' results to decide)
            elif self.backlog:
                await self.backlog.flush()
            if isinstance(item, Config):
                try:
                    await asyncio.to_thread(self.reconfigure, item)
                except Exception as exc:
                    # The database away (the config itself is adopted first): its new targets
                    # get their ids with their first batch, so the writer must not die here.
                    log.warning("the reloaded config's targets are not recorded yet (%s)", exc)
            elif isinstance(item, Holding):
                try:
                    await asyncio.to_thread(self.hold, item.targets, item.regions)
                except Exception:
                    # Membership sends the whole set again at its next heartbeat.
                    log.exception("could not take %d targets; trying again", len(item.targets))
            elif item is None:
                # Stopping: keep trying the held results until written or the stop's budget
                # runs out (the service cancels this task, and the backlog says what is lost).
                try:
                    while not await self.backlog.flush():
                        await asyncio.sleep(self.backlog.wait() or 0.0)
                except asyncio.CancelledError:
                    self.backlog.abandon()
                    raise
                return

    async def _gather(self, first_at: float) -> None:
        """Let results queue behind the first one (taken at `first_at`) for as long as the
        batch may wait (see BATCH_WAIT); the queue is then drained at once, not woken for
        every result."""
        self._full.clear()
        if self.queue.qsize() >= BATCH_SIZE:
            return
        routine = not (self.several or self.backlog or self._hurry.is_set())
        with contextlib.suppress(TimeoutError):
            if routine:
                async with asyncio.timeout_at(first_at + ROUTINE_WAIT):
                    await self._hurry.wait()  # (set too when a batch's worth is queued)
            if not self._full.is_set():
                async with asyncio.timeout_at(first_at + BATCH_WAIT):
                    await self._full.wait()
        self._hurry.clear()  # the batch takes what is queued; later news sets it again

    def _take(self, batch: list[ProbeResult]) -> ProbeResult | Config | Holding | object | None:
        """Move queued results into `batch` up to BATCH_SIZE; return the item that ended it
        (a Config, a Holding, None: close) or _IDLE."""
        while len(batch) < BATCH_SIZE:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                return _IDLE
            if not isinstance(item, ProbeResult):
                return item
            batch.append(item)
        return _IDLE

    async def _next(self, deadline: float) -> ProbeResult | Config | Holding | object | None:
        """The next queued item, or _IDLE when none comes before `deadline`."""
        with contextlib.suppress(asyncio.QueueEmpty):
            return self.queue.get_nowait()  # (no timeout to set up while results queue)
        try:
            async with asyncio.timeout_at(deadline):
                return await self.queue.get()
        except TimeoutError:
            return _IDLE

    async def _write(self, batch: list[ProbeResult]) -> None:
        """Write a batch, or hold it in the backlog (monitor/agent/backlog.py) while the
        database is away, behind the results held before it."""
        await self.backlog.write(batch)

    # ------------------------------------------------------------ the transaction

    def write_batch(self, results: Sequence[ProbeResult]) -> int:
        """Write one batch in one transaction; return how many alerts were queued.

        New states and target ids are applied to this writer only after the commit, so a
        batch that fails leaves nothing half-applied and can simply be written again. When a
        failed commit may have happened after all (the connection dropped before its answer),
        the next write first reads back what the database has (`_catch_up`).
        """
        if self._unsure:
            self._catch_up()
        if self._committed:  # what a commit with a lost answer wrote: not again
            left = [r for r in results if _key(r) not in self._committed]
            if results and not left:
                return 0
            results = left
        try:
            written = self._write_batch(results)
        except Exception:
            self._unsure, self._attempt = True, [_key(r) for r in results]
            raise
        if results:
            self._committed = set()
        return written

    def _catch_up(self) -> None:
        """After a write whose outcome is unknown: reload the caches from the database, and
        find out whether that write committed after all (the run's last committed result is
        its last one). If so, its results are not written again, whether the backlog retries
        them together or one by one."""
        with self.engine.begin() as conn:
            committed = writes.last_result(conn, self.run_id) if self.run_id else None
            self._reload(conn)
        self._unsure = False
        if self._attempt and committed == self._attempt[-1]:
            self._committed = set(self._attempt)
            log.warning(
                "the database had committed %d results whose answer was lost; not writing "
                "them again",
                len(self._attempt),
            )
        self._attempt = []

    def _reload(self, conn: Connection) -> None:
        """Read back the states, open incidents and regional states this writer decides from
        (its held targets', or all); rollups are read again when next needed."""
        names = set(self.target_ids) if self.held is None else set(self.held)
        ids = {self.target_ids[n]: n for n in names if n in self.target_ids}
        self.states = {
            ids[i]: TargetState.from_dict(state)
            for i, state in writes.load_states(conn, ids).items()
        }
        self._open = None if self.held is None else writes.open_incidents(conn, ids)
        self.region_states = self._load_region_states(conn, ids)
        self._rollups = {}

    def _write_batch(self, results: Sequence[ProbeResult]) -> int:
        now = self.clock()
        with self.engine.begin() as conn:
            ids = dict(self.target_ids)
            if {r.target for r in results} - set(ids):
                ids.update(self._sync(conn))
            known = [r for r in results if r.target in ids]  # else: removed from the config
            known, stored, evidence = self._sample(known)
            quiet = self._quiet(conn, known)
            hushed = [q is not None for q in quiet]
            # Written first: an alert lists the target's latest probes, these included.
            probe_ids = writes.insert_probes(conn, known, ids, evidence, hushed, self.agent_id)
            open_now = self._open if self._open is not None else writes.open_incidents(conn)
            waiting = self._waiting(conn)
            checked, fenced = self._fence(conn, known, open_now, ids, waiting)
            if fenced is not None:  # the rest are observations: stored above, nothing else
                open_now = [i for i in open_now if i.target_id in fenced]
                self._hand_over(conn, known, probe_ids, ids, fenced, now)
            batch = _Batch(conn, now, open_now)
            # (result, its probe's id, its region, why it was quiet), oldest first
            folding = [
                (result, probe_id, self.region, why)
                for result, probe_id, why in zip(known, probe_ids, quiet, strict=True)
                if fenced is None or ids[result.target] in fenced
            ]
            if fenced and waiting & fenced:
                folding = self._with_other_regions(conn, folding, waiting & fenced, now)
            for result, probe_id, region, why in folding:
                log.debug("probe %s: %s %s", result.target, result.outcome, result.detail)
                self._fold(batch, result, probe_id, ids, why, region)
            writes.save_states(
                conn, {ids[name]: state.to_dict() for name, state in batch.states.items()}, now
            )
            writes.save_region_states(
                conn,
                {
                    (ids[name], region): state.to_dict()
                    for name, by_region in batch.regions.items()
                    for region, state in by_region.items()
                },
                now,
            )
            rollups = self._roll_up(
                conn,
                _partials([r for r, *_ in folding], ids, [q is not None for *_, q in folding]),
            )
            self._reminders(batch, ids)
            writes.enqueue_alerts(conn, batch.alerts, now)
            writes.mark_alerted(conn, batch.alerted, now)
            if self.run_id is not None:
                writes.heartbeat(conn, self.run_id, now, _key(known[-1]) if known else None)
        self.target_ids = ids
        self._stored.update(stored)
        self._keep_rollups(rollups, now)
        self.states.update(batch.states)
        self.region_states.update(batch.regions)
        self._open = list(batch.open.values())
        if fenced is not None and checked - fenced:
            # Another agent took them (it was thought lost, or membership moved them first).
            names = {i: n for n, i in ids.items()}
            lost = {names[i] for i in checked - fenced}
            log.info("no longer holding %s: another agent took over", ", ".join(sorted(lost)))
            self._drop(lost)
        return len(batch.alerts)

    def _waiting(self, conn: Connection) -> set[int]:
        """The targets this agent holds that other regions' results wait for (one indexed
        query per batch, only while the live agents span several regions)."""
        if not self.several or self.agent_id is None or not self.held:
            return set()
        # Only those held in memory too: a released target's row still names this agent until
        # the next holder takes it, and this writer no longer has its state to decide from.
        held = {self.target_ids[name] for name in self.held if name in self.target_ids}
        return writes.waiting_region_results(conn, self.agent_id) & held

    def _hand_over(
        self,
        conn: Connection,
        results: Sequence[ProbeResult],
        probe_ids: Sequence[int],
        ids: dict[str, int],
        fenced: set[int],
        now: datetime,
    ) -> None:
        """With several regions, the results of targets another agent holds go to it (their
        holder decides them with the other regions' in its next batch)."""
        if not self.several or self.region is None:
            return
        handed = [
            (ids[r.target], probe_id)
            for r, probe_id in zip(results, probe_ids, strict=True)
            if ids[r.target] not in fenced
        ]
        writes.post_region_results(conn, handed, self.region, now)

    def _with_other_regions(
        self,
        conn: Connection,
        folding: list[tuple[ProbeResult, int, str | None, Quiet | None]],
        target_ids: set[int],
        now: datetime,
    ) -> list[tuple[ProbeResult, int, str | None, Quiet | None]]:
        """This batch's own results and the other regions' results waiting for these held
        targets, taken in this transaction, all in the order they were probed. Results of this
        agent's own region come from before it held the target (its own, or a prober's whose
        share moved): folded unless its region's state has seen a newer one already."""
        taken = [
            (result, probe_id, region)
            for region, probe_id, result in writes.take_region_results(conn, target_ids)
            if result.target in self._setup and self._news(result, region)
        ]
        # A result handed over long ago (its holder was away, or thought there was one region)
        # says nothing about now: folded at its old time it could flip the target for a moment
        # and alert in the past. Its probe row stays; the state machines skip it.
        fresh = [(r, p, g) for r, p, g in taken if not self._stale(r, now)]
        if len(fresh) < len(taken):
            log.info(
                "left %d handed-over results out of the decisions: too old", len(taken) - len(fresh)
            )
        taken = fresh
        quiet = self._quiet(conn, [result for result, *_ in taken])
        others = [
            (result, probe_id, region, why)
            for (result, probe_id, region), why in zip(taken, quiet, strict=True)
        ]
        return sorted([*folding, *others], key=lambda item: item[0].checked_at)

    def _stale(self, result: ProbeResult, now: datetime) -> bool:
        """Older than the quorum's window: no longer a report of its region."""
        interval = self._setup[result.target].interval
        return result.checked_at < now - timedelta(seconds=REPORT_WINDOW * interval)

    def _news(self, result: ProbeResult, region: str) -> bool:
        """Whether a handed-over result is newer than what its region's state has seen."""
        seen = self.region_states.get(result.target, {}).get(region)
        return seen is None or seen.last_at is None or result.checked_at > seen.last_at

    def _fence(
        self,
        conn: Connection,
        results: Sequence[ProbeResult],
        open_now: Sequence[OpenIncident],
        ids: dict[str, int],
        waiting: Iterable[int] = (),
    ) -> tuple[set[int], set[int] | None]:
        """The targets this batch may decide for, as (checked, fenced) target ids; fenced is
        None without an agent (every target). With one: of the held targets with a result or
        an open incident (reminders) here, those the database still says this agent holds,
        their state rows locked until the commit: one query per batch, whatever its size."""
        if self.held is None or self.agent_id is None:
            return set(), None
        mine = {ids[r.target] for r in results if r.target in self.held}
        mine |= {i.target_id for i in open_now}  # only held targets' incidents are kept
        mine |= set(waiting)
        return mine, writes.lock_held(conn, self.agent_id, mine)

    def _roll_up(
        self, conn: Connection, partials: dict[RollupKey, Rollup]
    ) -> dict[RollupKey, Rollup]:
        """Merge the batch into the rollups of its buckets and write them; the merged ones."""
        missing = [key for key in partials if key not in self._rollups]
        loaded = writes.load_rollups(conn, missing) if missing else {}
        # Merged into fresh copies: the kept ones change only once the batch is committed.
        merged = {}
        for key, part in partials.items():
            stored = self._rollups.get(key) or loaded.get(key)
            merged[key] = Rollup().merge(stored).merge(part) if stored else part
        writes.save_rollups(conn, merged)
        return merged

    def _keep_rollups(self, merged: dict[RollupKey, Rollup], now: datetime) -> None:
        """Keep the committed rollups; forget buckets two periods old (late results reload)."""
        self._rollups.update(merged)
        if len(self._rollups) > 4 * max(len(self.target_ids), 1):
            hour_ago, day_ago = now - timedelta(hours=2), now - timedelta(days=2)
            self._rollups = {
                key: rollup
                for key, rollup in self._rollups.items()
                if key[2] >= (hour_ago if key[1] == HOUR else day_ago)
            }

    def _sample(
        self, results: Sequence[ProbeResult]
    ) -> tuple[list[ProbeResult], dict[str, LastStored], list[bool]]:
        """The results with any provider change marked, which keep their evidence, and each
        target's record once they are stored."""
        marked: list[ProbeResult] = []
        stored: dict[str, LastStored] = {}
        evidence = []
        for result in results:
            last = stored.get(result.target) or self._stored.get(result.target)
            before: Sequence[str] | None = last.live_providers if last is not None else None
            if before is None:
                before = self._live_at_start.get(result.target)
            result = provider_change(result, before)
            kept = keeps_evidence(result, last)
            marked.append(result)
            evidence.append(kept)
            stored[result.target] = after(result, last, kept)
        return marked, stored, evidence

    def _quiet(self, conn: Connection, results: Sequence[ProbeResult]) -> list[Quiet | None]:
        """Per result, the maintenance window or silence it was taken in, if any. Silences are
        read once per batch (an indexed query), so one added by the CLI counts at once."""
        if not results:
            return []
        silences: list[Silence] = writes.silences_since(conn, min(r.checked_at for r in results))
        if not silences and not self._windows:
            return [None] * len(results)
        quiet = []
        for r in results:
            setup = self._setup.get(r.target)
            tags = setup.target.tags if setup is not None else ()
            quiet.append(quiet_at(r.target, tags, r.checked_at, self._windows, silences))
        return quiet

    def _fold(
        self,
        batch: _Batch,
        result: ProbeResult,
        probe_id: int,
        ids: dict[str, int],
        quiet: Quiet | None = None,
        region: str | None = None,
    ) -> None:
        """Decide what one result (of `region`: this agent's, or another region's handed
        over) does and write it.

        A target watched from one region steps its state directly. Once results of a second
        region arrive, each region keeps its own state and a quorum of them steps the
        target's (monitor/domain/quorum.py); a region's change the quorum does not follow is
        recorded as a regional observation."""
        setup = self._setup.get(result.target)
        if setup is None:
            return  # removed by a reload while its probe was in flight: evidence only
        name, target_id = result.target, ids[result.target]
        state = batch.states.get(name) or self.states.get(name, TargetState())
        incident = batch.open_of(target_id)
        regions = batch.regions.get(name) or self.region_states.get(name)
        stepped = None  # a target watched from one region steps its own state in decide
        confirming: tuple[str, ...] = () if region is None else (region,)
        moved = None
        if region is not None and (region != self.region or regions):
            if not regions:  # so far watched from this agent's region only: its history
                regions = {self.region or "": RegionState(state, result.checked_at)}
            moved = step_region(
                state,
                regions,
                region,
                result.outcome,
                result.checked_at,
                setup.rules,
                setup.quorum,
                setup.interval,
            )
            batch.regions[name] = moved.regions
            stepped, confirming = (moved.state, moved.change, moved.notice), moved.confirming
        decision = decide(
            result,
            setup.target.kind,
            state,
            incident,
            setup.rules,
            setup.alerting,
            quiet,
            stepped=stepped,
            regions=confirming,
        )
        if moved is not None and moved.regional is not None:
            seen = moved.regional
            transition, alerts = regional(
                result,
                setup.target.kind,
                seen.region,
                seen.change,
                seen.ends,
                setup.alerting,
                self.config.alerts.regional,
                quiet,
            )
            self._observe(batch, name, target_id, probe_id, transition, alerts)
        batch.states[name] = decision.state
        if decision.transition is not None or decision.notice is not None or decision.alerts:
            self._record(batch, name, target_id, probe_id, decision, incident, result.detail)

    def _observe(
        self,
        batch: _Batch,
        name: str,
        target_id: int,
        probe_id: int,
        transition: Transition,
        alerts: Sequence[Alert],
    ) -> None:
        """Write a regional observation and its alerts (only with `alerts.regional`)."""
        transition_id = writes.insert_transition(
            batch.conn, target_id, transition, probe_id, self.agent_id
        )
        log.info("%s: %s (regional) — %s", name, transition.label, transition.detail)
        if not alerts:
            return
        recent = writes.recent_probes(batch.conn, target_id, RECENT_PROBES)
        for alert in alerts:
            batch.enqueue(
                NewAlert(
                    replace(alert.event, recent=recent),
                    alert.channel,
                    alert.recipients,
                    target_id=target_id,
                    transition_id=transition_id,
                )
            )

    def _record(
        self,
        batch: _Batch,
        name: str,
        target_id: int,
        probe_id: int,
        decision: Decision,
        incident: OpenIncident | None,
        detail: str,
    ) -> None:
        """Write a decision that changed more than the state."""
        conn, change = batch.conn, decision.incident
        new_id = None
        if change is not None:
            if change.step is IncidentStep.OPEN:
                new_id = writes.open_incident(conn, target_id, change)
                batch.track(
                    OpenIncident(new_id, target_id, change.at, change.outcome, change.outcomes)
                )
            elif incident is not None and change.step is IncidentStep.UPDATE:
                writes.update_incident(conn, incident.id, change)
                batch.track(
                    replace(incident, last_outcome=change.outcome, outcomes=change.outcomes)
                )
            elif incident is not None:
                writes.close_incident(conn, incident.id, change.at)
                batch.forget(incident)
        transition_id = None
        if decision.transition is not None:
            transition = decision.transition
            if new_id is not None:
                transition = replace(transition, incident_id=new_id)
            transition_id = writes.insert_transition(
                conn, target_id, transition, probe_id, self.agent_id
            )
            log.info("%s: %s — %s", name, transition.label, detail)
        if decision.notice is not None:
            log.info("%s: %s", name, decision.notice)
        if not decision.alerts:
            return
        recent = writes.recent_probes(conn, target_id, RECENT_PROBES)
        for alert in decision.alerts:
            said = self._provider_status(batch, name, alert.event.at)
            event = replace(alert.event, recent=recent, provider_status=said)
            if new_id is not None:  # see Decision.opens_incident
                event = replace(event, incident_id=new_id)
            batch.enqueue(
                NewAlert(
                    event,
                    alert.channel,
                    alert.recipients,
                    target_id=target_id,
                    transition_id=transition_id if event.reason == "transition" else None,
                    incident_id=event.incident_id,
                )
            )

    def _reminders(self, batch: _Batch, ids: dict[str, int]) -> None:
        """Remind of incidents still open (after this batch's changes) when they are due."""
        every = self.config.alerts.remind_every
        if every is None:
            return
        names = {i: n for n, i in ids.items()}
        for incident in sorted(batch.open.values(), key=lambda i: i.id):
            if not reminder_due(incident.last_alert_at, batch.now, every):
                continue
            name = names.get(incident.target_id, "")
            setup = self._setup.get(name)
            if setup is None or not setup.alerting.routes:
                continue  # no longer configured, or nobody to tell
            if (batch.states.get(name) or self.states.get(name, TargetState())).quiet:
                continue  # in maintenance: its end tells, if anything changed
            latest = writes.latest_probe(batch.conn, incident.target_id)
            if latest is None:
                continue
            recent = writes.recent_probes(batch.conn, incident.target_id, RECENT_PROBES)
            for alert in remind(
                incident, setup.target.name, setup.target.kind, latest, setup.alerting
            ):
                said = self._provider_status(batch, name, alert.event.at)
                batch.enqueue(
                    NewAlert(
                        replace(alert.event, recent=recent, provider_status=said),
                        alert.channel,
                        alert.recipients,
                        target_id=incident.target_id,
                        incident_id=incident.id,
                    )
                )

    # ------------------------------------------------------------ helpers

    def _provider_status(self, batch: _Batch, name: str, at: datetime) -> str:
        """What the target's related status page says now (from the states in memory: no
        query), for its alerts."""
        setup = self._setup.get(name)
        page = setup.target.status_page if setup is not None else None
        if page is None:
            return ""
        return provider_status(page, batch.states.get(page) or self.states.get(page), at)

    def _sync(self, conn: Connection) -> dict[str, int]:
        """Ids of the configured targets (inserting new ones); the caller applies them."""
        return writes.sync_targets(conn, self.config.targets, self.config.redactor())

    def _load_live(self, conn: Connection, ids: dict[str, int]) -> dict[str, list[str]]:
        found = {}
        for name, setup in self._setup.items():
            if setup.target.tracks_providers and name in ids:
                live = writes.last_live_providers(conn, ids[name])
                if live is not None:
                    found[name] = live
        return found

    @staticmethod
    def _load_region_states(
        conn: Connection, names: dict[int, str]
    ) -> dict[str, dict[str, RegionState]]:
        """The regions' own states of these targets (id -> name), by name, as committed."""
        return {
            names[i]: {region: RegionState.from_dict(d) for region, d in by_region.items()}
            for i, by_region in writes.load_region_states(conn, names).items()
        }

    @staticmethod
    def _load_states(conn: Connection, ids: dict[str, int]) -> dict[str, TargetState]:
        by_id = {i: n for n, i in ids.items()}
        return {
            by_id[target_id]: TargetState.from_dict(state)
            for target_id, state in writes.load_states(conn).items()
            if target_id in by_id
        }


class _Batch:
    """One batch's working set: new states, the open incidents as they change, the alerts."""

    def __init__(self, conn: Connection, now: datetime, open_incidents: list[OpenIncident]):
        self.conn = conn
        self.now = now
        self.states: dict[str, TargetState] = {}
        self.regions: dict[str, dict[str, RegionState]] = {}  # targets watched from several
        self.open = {i.id: i for i in open_incidents}  # oldest first
        # A target's incident is its newest open one.
        self.latest = {i.target_id: i.id for i in open_incidents}
        self.alerts: list[NewAlert] = []
        self.alerted: set[int] = set()  # incidents told about in this batch

    def open_of(self, target_id: int) -> OpenIncident | None:
        incident_id = self.latest.get(target_id)
        return None if incident_id is None else self.open[incident_id]

    def track(self, incident: OpenIncident) -> None:
        self.open[incident.id] = incident
        self.latest[incident.target_id] = incident.id

    def forget(self, incident: OpenIncident) -> None:
        self.open.pop(incident.id, None)
        if self.latest.get(incident.target_id) == incident.id:
            del self.latest[incident.target_id]

    def enqueue(self, alert: NewAlert) -> None:
        self.alerts.append(alert)
        if alert.incident_id is not None:
            self.alerted.add(alert.incident_id)
            told = self.open.get(alert.incident_id)
            if told is not None:
                self.open[alert.incident_id] = replace(told, last_alert_at=self.now)


def _key(result: ProbeResult) -> str:
    """A result's key within its run (a target is never probed twice at one instant)."""
    return f"{result.target}@{result.checked_at.isoformat()}"


def _partials(
    results: Sequence[ProbeResult], ids: dict[str, int], quiet: Sequence[bool]
) -> dict[tuple[int, str, datetime], Rollup]:
    """The batch folded into hourly and daily rollups (what the dashboard reads).

    Latency counts only probes that got an answer: a timeout's "latency" is the timeout.
    Probes inside maintenance are only counted apart: uptime leaves them out.
    """
    return fold(
        (
            (
                ids[r.target],
                r.checked_at,
                str(r.outcome),
                r.timings.total_ms if r.http_status is not None else None,
            )
            for r, q in zip(results, quiet, strict=True)
            if not q
        ),
        quiet=[(ids[r.target], r.checked_at) for r, q in zip(results, quiet, strict=True) if q],
    )
