"""The one writer: probe results in, rows out — probes, states, transitions, incidents, alerts.

Results arrive on a queue and are written in small batches, one transaction per batch. The
state machine runs here, in order, so a transition, its incident change, its rendered alert
and the target's new state are committed together: after a crash either all of them exist
or none do, which is what makes alerts never lost and never doubled across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from monitor.alerts.channels.email import AlertContext, ProbeLine, render
from monitor.alerts.outbox import pending_alert
from monitor.config.model import Config
from monitor.domain.evidence import Outcome, ProbeResult
from monitor.domain.rollups import encode_latency, fold
from monitor.domain.states import Change, FlapEvent, Notice, TargetState, label, step
from monitor.domain.text import utcnow
from monitor.store.models import (
    IncidentRecord,
    MonitorRunRecord,
    ProbeRecord,
    RollupRecord,
    TargetStateRecord,
    TransitionRecord,
)
from monitor.store.repo import probe_record, rollup_record, stored_rollup, sync_targets
from monitor.targets import TargetBase

log = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_WAIT = 0.25  # seconds to wait for more results before writing a batch
RECENT_PROBES = 5
_IDLE = object()  # "no more items for this batch"


@dataclass(frozen=True)
class IncidentAction:
    """What a change does to the target's incident: pure, so it is table-tested."""

    open: bool = False
    update: bool = False
    close: bool = False


def incident_action(change: Change, has_open: bool) -> IncidentAction:
    failing = change.to_outcome != Outcome.OK
    if failing:
        return IncidentAction(update=True) if has_open else IncidentAction(open=True)
    return IncidentAction(close=True) if has_open else IncidentAction()


def reminder_due(last_alert_at: datetime | None, now: datetime, every: float | None) -> bool:
    return (
        every is not None
        and last_alert_at is not None
        and ((now - last_alert_at).total_seconds() >= every)
    )


class Writer:
    """Owns every write of the monitoring loop. Use `submit` from probes, `run` as a task."""

    def __init__(self, engine: Engine, config: Config, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.config = config
        self.clock = clock
        # Results, a new Config (applied in order, by this writer), or None (close).
        self.queue: asyncio.Queue[ProbeResult | Config | None] = asyncio.Queue()
        self.states: dict[str, TargetState] = {}
        self.target_ids: dict[str, int] = {}
        self.run_id: int | None = None
        self.alerts_written = asyncio.Event()  # wakes the outbox sender

    # ------------------------------------------------------------ lifecycle

    def start_run(self) -> None:
        """Record this run (closing a crashed one at its last heartbeat) and load states."""
        now = self.clock()
        with Session(self.engine) as s, s.begin():
            for crashed in s.scalars(
                select(MonitorRunRecord).where(MonitorRunRecord.stopped_at.is_(None))
            ):
                crashed.stopped_at = crashed.last_seen_at
                log.warning(
                    "the previous run stopped without a clean shutdown; no data from %s to %s",
                    crashed.last_seen_at.isoformat(timespec="seconds"),
                    now.isoformat(timespec="seconds"),
                )
            run = MonitorRunRecord(started_at=now, last_seen_at=now)
            s.add(run)
            s.flush()
            run_id, ids = run.id, self._sync(s)
            states = self._load_states(s, ids)
        self.run_id, self.target_ids, self.states = run_id, ids, states

    def stop_run(self) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(MonitorRunRecord)
                .where(MonitorRunRecord.id == self.run_id)
                .values(stopped_at=self.clock(), last_seen_at=self.clock())
            )

    def reconfigure(self, config: Config) -> None:
        """Adopt a reloaded config (blocking: the writer's own task calls it, in a thread)."""
        self.config = config
        with Session(self.engine) as s, s.begin():
            ids = self._sync(s)
            states = self._load_states(s, ids)
        self.target_ids.update(ids)
        for name, state in states.items():
            self.states.setdefault(name, state)

    def queue_config(self, config: Config) -> None:
        """Queue a reloaded config behind the results already queued (one writer, in order)."""
        self.queue.put_nowait(config)

    async def submit(self, result: ProbeResult) -> None:
        await self.queue.put(result)

    async def close(self) -> None:
        """Ask `run` to write everything queued so far and return."""
        await self.queue.put(None)

    async def run(self) -> None:
        """Wait for results, gather a batch, write it (off the event loop); stop at `close`.

        Stopping by a sentinel rather than cancellation: a cancel can be lost when it lands
        just as a queue item arrives (asyncio.wait_for on 3.11), and nothing queued may be lost.
        """
        loop = asyncio.get_running_loop()
        while True:
            item = await self.queue.get()
            batch: list[ProbeResult] = []
            deadline = loop.time() + BATCH_WAIT
            while isinstance(item, ProbeResult):
                batch.append(item)
                item = _IDLE if len(batch) >= BATCH_SIZE else await self._next(deadline)
            if batch:
                await self._write(batch)
            if isinstance(item, Config):
                await asyncio.to_thread(self.reconfigure, item)
            elif item is None:
                return

    async def _next(self, deadline: float) -> ProbeResult | Config | object | None:
        """The next queued item, or _IDLE when none comes before `deadline`."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self.queue.get()
        except TimeoutError:
            return _IDLE

    async def _write(self, batch: list[ProbeResult]) -> None:
        """Write a batch, retrying (e.g. a locked SQLite file) before giving it up.

        The retries outlast the longest a sender may hold SQLite's write lock (a guarded
        SMTP DATA, GUARDED_DATA_TIMEOUT) plus the busy timeout of each try.
        """
        for attempt, pause in enumerate((0.5, 2.0, 5.0, 10.0, None), start=1):
            try:
                alerts = await asyncio.to_thread(self.write_batch, batch)
            except Exception:
                if pause is None:
                    # States were not advanced, so the changes in this batch are detected
                    # again by the next probes; only these raw results are lost.
                    log.exception("could not write %d probe results; dropping them", len(batch))
                    return
                log.warning("writing %d results failed (try %d); retrying", len(batch), attempt)
                await asyncio.sleep(pause)
            else:
                if alerts:
                    self.alerts_written.set()
                return

    # ------------------------------------------------------------ the transaction

    def write_batch(self, results: Sequence[ProbeResult]) -> int:
        """Write one batch in one transaction; return how many alerts were queued.

        New states and target ids are applied to this writer only after the commit, so a
        batch that fails leaves nothing half-applied and can simply be written again.
        """
        now = self.clock()
        queued = 0
        states: dict[str, TargetState] = {}
        with Session(self.engine) as s, s.begin():
            ids = dict(self.target_ids)
            if {r.target for r in results} - set(ids):
                ids.update(self._sync(s))
            known = [r for r in results if r.target in ids]  # else: removed from the config
            rows = [probe_record(r, ids[r.target]) for r in known]
            s.add_all(rows)
            s.flush()
            for result, row in zip(known, rows, strict=True):
                log.debug("probe %s: %s %s", result.target, result.outcome, result.detail)
                queued += self._fold(s, result, row, ids, states)
            self._save_states(s, states, ids, now)
            self._roll_up(s, known, ids)
            queued += self._reminders(s, now, ids)
            if self.run_id is not None:
                s.execute(
                    update(MonitorRunRecord)
                    .where(MonitorRunRecord.id == self.run_id)
                    .values(last_seen_at=now)
                )
        self.target_ids = ids
        self.states.update(states)
        return queued

    def _fold(
        self,
        s: Session,
        result: ProbeResult,
        row: ProbeRecord,
        ids: dict[str, int],
        states: dict[str, TargetState],
    ) -> int:
        """Step the target's state machine with one result and record what it decided."""
        try:
            target = self.config.target(result.target)
        except KeyError:
            return 0  # removed by a reload while its probe was in flight: evidence only
        state = states.get(result.target) or self.states.get(result.target, TargetState())
        state, change, notice = step(
            state, result.outcome, result.checked_at, self.config.rules_of(target)
        )
        states[result.target] = state
        queued = 0
        if change is not None:
            queued += self._record_change(s, target, result, row, change, ids)
        if notice is not None:
            queued += self._record_notice(s, target, row, notice, ids)
        return queued

    def _record_change(
        self,
        s: Session,
        target: TargetBase,
        result: ProbeResult,
        row: ProbeRecord,
        change: Change,
        ids: dict[str, int],
    ) -> int:
        target_id = ids[target.name]
        # A status in the label explains a failure ("(410)"); a 200 carrying a verdict (whoami
        # showing a missing scope, a wrong-shaped body) would only mislead.
        status = result.http_status if (result.http_status or 0) >= 300 else None
        text = label(change, status)
        incident = self._open_incident(s, target_id)
        action = incident_action(change, incident is not None)
        if action.open:
            incident = IncidentRecord(
                target_id=target_id,
                opened_at=change.started_at,
                first_outcome=str(change.to_outcome),
                last_outcome=str(change.to_outcome),
                outcomes=[str(change.to_outcome)],
            )
            s.add(incident)
            s.flush()
        elif action.update and incident is not None:
            incident.last_outcome = str(change.to_outcome)
            incident.outcomes = [*incident.outcomes, str(change.to_outcome)]
        elif action.close and incident is not None:
            incident.closed_at = change.started_at
        transition = TransitionRecord(
            target_id=target_id,
            at=change.at,
            started_at=change.started_at,
            from_outcome=str(change.from_outcome) if change.from_outcome else None,
            to_outcome=str(change.to_outcome),
            label=text,
            detail=result.detail,
            hint=result.hint,
            http_status=result.http_status,
            announced=change.announce,
            probe_id=row.id,
            incident_id=incident.id if incident is not None else None,
        )
        s.add(transition)
        s.flush()
        log.info("%s: %s — %s", target.name, text, result.detail)
        if not change.announce:
            return 0
        ctx = self._context(
            s,
            target,
            row,
            "transition",
            text,
            from_outcome=change.from_outcome,
            to_outcome=change.to_outcome,
            at=change.at,
            since=change.started_at,
        )
        return self._enqueue(s, target, target_id, ctx, transition.id, incident)

    def _record_notice(
        self,
        s: Session,
        target: TargetBase,
        row: ProbeRecord,
        notice: Notice,
        ids: dict[str, int],
    ) -> int:
        started = notice.event is FlapEvent.STARTED
        text = (
            f"flapping ({notice.change_percent:.0%} state change over recent probes)"
            if started
            else f"stopped flapping: now {notice.state}"
        )
        log.info("%s: %s", target.name, text)
        reason = "flapping_started" if started else "flapping_stopped"
        ctx = self._context(s, target, row, reason, text, to_outcome=notice.state)
        target_id = ids[target.name]
        return self._enqueue(s, target, target_id, ctx, None, self._open_incident(s, target_id))

    def _reminders(self, s: Session, now: datetime, ids: dict[str, int]) -> int:
        every = self.config.alerts.remind_every
        if every is None or self.config.alerts.email is None:
            return 0
        names = {i: n for n, i in ids.items()}
        queued = 0
        for incident in s.scalars(select(IncidentRecord).where(IncidentRecord.closed_at.is_(None))):
            if not reminder_due(incident.last_alert_at, now, every):
                continue
            try:
                target = self.config.target(names.get(incident.target_id, ""))
            except KeyError:
                continue  # no longer configured: nobody to remind about it
            last = s.scalars(
                select(ProbeRecord)
                .where(ProbeRecord.target_id == incident.target_id)
                .order_by(ProbeRecord.checked_at.desc())
                .limit(1)
            ).first()
            if last is None:
                continue
            ctx = self._context(
                s,
                target,
                last,
                "reminder",
                f"still {incident.last_outcome}",
                to_outcome=incident.last_outcome,
                since=incident.opened_at,
                incident_opened_at=incident.opened_at,
            )
            queued += self._enqueue(s, target, incident.target_id, ctx, None, incident)
        return queued

    def _roll_up(self, s: Session, results: Sequence[ProbeResult], ids: dict[str, int]) -> None:
        """Fold the batch into hourly and daily rollups (what the dashboard reads).

        Latency counts only probes that got an answer: a timeout's "latency" is the timeout.
        """
        partials = fold(
            (
                ids[r.target],
                r.checked_at,
                str(r.outcome),
                r.timings.total_ms if r.http_status is not None else None,
            )
            for r in results
        )
        # One SELECT for every row the batch touches, not one (with an autoflush) per row.
        with s.no_autoflush:
            existing = {
                (r.target_id, r.period, r.bucket_start): r
                for r in s.scalars(
                    select(RollupRecord).where(
                        RollupRecord.target_id.in_({key[0] for key in partials}),
                        RollupRecord.bucket_start.in_({key[2] for key in partials}),
                    )
                )
            }
        for (target_id, period, start), part in partials.items():
            row = existing.get((target_id, period, start))
            if row is None:
                s.add(rollup_record(target_id, period, start, part))
            else:
                merged = stored_rollup(row).merge(part)
                row.probes, row.ok, row.counts = merged.probes, merged.ok, merged.counts
                row.latency = encode_latency(merged.latency)
                row.latency_sum, row.latency_max = merged.latency_sum, merged.latency_max

    @staticmethod
    def _save_states(
        s: Session, states: dict[str, TargetState], ids: dict[str, int], now: datetime
    ) -> None:
        """Upsert the batch's new states: one SELECT for the existing rows, not a merge each."""
        if not states:
            return
        with s.no_autoflush:
            rows = {
                r.target_id: r
                for r in s.scalars(
                    select(TargetStateRecord).where(
                        TargetStateRecord.target_id.in_([ids[n] for n in states])
                    )
                )
            }
        for name, state in states.items():
            row = rows.get(ids[name])
            if row is None:
                s.add(TargetStateRecord(target_id=ids[name], state=state.to_dict(), updated_at=now))
            else:
                row.state, row.updated_at = state.to_dict(), now

    # ------------------------------------------------------------ alerts

    def _enqueue(
        self,
        s: Session,
        target: TargetBase,
        target_id: int,
        ctx: AlertContext,
        transition_id: int | None,
        incident: IncidentRecord | None,
    ) -> int:
        recipients = self.config.recipients_of(target)
        if self.config.alerts.email is None or not recipients:
            return 0
        now = self.clock()
        s.add(
            pending_alert(
                render(ctx),
                ctx.reason,
                recipients,
                now,
                target_id=target_id,
                transition_id=transition_id,
                incident_id=incident.id if incident is not None else None,
            )
        )
        if incident is not None:
            incident.last_alert_at = now
        return 1

    def _context(
        self,
        s: Session,
        target: TargetBase,
        row: ProbeRecord,
        reason: str,
        text: str,
        *,
        from_outcome: str | None = None,
        to_outcome: str | None = None,
        at: datetime | None = None,
        since: datetime | None = None,
        incident_opened_at: datetime | None = None,
    ) -> AlertContext:
        """What an alert says, from the stored (already redacted) probe that prompted it."""
        return AlertContext(
            reason=reason,
            target=target.name,
            kind=target.kind,
            url=row.url,
            from_outcome=str(from_outcome) if from_outcome else None,
            to_outcome=str(to_outcome or row.outcome),
            label=text,
            at=at or row.checked_at,
            since=since,
            http_status=row.http_status,
            detail=row.detail,
            hint=row.hint,
            warning=row.warning,
            request_id=row.request_id,
            provider=row.provider,
            latency_ms=row.latency_ms,
            recent=self._recent(s, row.target_id),
            dashboard_url=self.config.alerts.dashboard_url,
            incident_opened_at=incident_opened_at,
        )

    def _recent(self, s: Session, target_id: int) -> tuple[ProbeLine, ...]:
        rows = s.scalars(
            select(ProbeRecord)
            .where(ProbeRecord.target_id == target_id)
            .order_by(ProbeRecord.checked_at.desc())
            .limit(RECENT_PROBES)
        )
        return tuple(
            ProbeLine(r.checked_at, r.outcome, r.http_status, r.latency_ms, r.detail) for r in rows
        )

    # ------------------------------------------------------------ helpers

    def _sync(self, s: Session) -> dict[str, int]:
        """Ids of the configured targets (inserting new ones); the caller applies them."""
        return sync_targets(s, self.config.targets, self.config.redactor())

    def _load_states(self, s: Session, ids: dict[str, int]) -> dict[str, TargetState]:
        by_id = {i: n for n, i in ids.items()}
        return {
            by_id[r.target_id]: TargetState.from_dict(r.state)
            for r in s.scalars(select(TargetStateRecord))
            if r.target_id in by_id
        }

    @staticmethod
    def _open_incident(s: Session, target_id: int) -> IncidentRecord | None:
        return s.scalars(
            select(IncidentRecord)
            .where(IncidentRecord.target_id == target_id, IncidentRecord.closed_at.is_(None))
            .order_by(IncidentRecord.opened_at.desc())
            .limit(1)
        ).first()
