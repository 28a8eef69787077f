"""Delivers the outbox: pending alerts are sent, each attempt recorded, failures retried.

Connection failures and 4xx replies are retried with capped backoff, so when an SMTP server
comes back after an outage every alert arrives within a minute, once. 5xx replies (and
retries older than a day) mark the alert failed. Each send is claimed (a conditional UPDATE
on `status = 'pending'` that must touch one row) in the transaction that records the server's
250, so two senders never send one alert and a crash never doubles one (see `deliver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.orm import Session

from monitor.alerts.channels.email import DeliveryError, RenderedEmail, Transmit, send
from monitor.config.model import Config
from monitor.domain.text import utcnow
from monitor.store.models import AlertAttemptRecord, AlertRecord

log = logging.getLogger(__name__)

FIRST_RETRY = 5.0  # seconds; doubles per attempt
MAX_RETRY = 60.0
GIVE_UP_AFTER = timedelta(hours=24)
IDLE_WAIT = 30.0
FLUSH_SECONDS = 3.0  # at shutdown, what pending alerts get before the process exits

T = TypeVar("T")


def pending_alert(
    email: RenderedEmail,
    reason: str,
    recipients: list[str],
    now: datetime,
    *,
    target_id: int | None = None,
    transition_id: int | None = None,
    incident_id: int | None = None,
) -> AlertRecord:
    """A new outbox row, due now, with its own Message-ID (the dedupe key for mail servers)."""
    return AlertRecord(
        target_id=target_id,
        transition_id=transition_id,
        incident_id=incident_id,
        reason=reason,
        channel="email",
        recipients=list(recipients),
        subject=email.subject,
        body_text=email.text,
        body_html=email.html,
        message_id=f"<{uuid.uuid4()}@inferwatch>",
        status="pending",
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 5, 10, 20, 40, 60, 60…"""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY)


class Sender:
    """Sends due alerts from the outbox table through the configured email server."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        env: Mapping[str, str],
        clock: Callable[[], datetime] = utcnow,
    ):
        self.engine = engine
        self.config = config
        self.env = env
        self.clock = clock
        self.flush_seconds = FLUSH_SECONDS  # the shutdown sets what its budget leaves

    def due(self) -> list[int]:
        with Session(self.engine) as s:
            return list(
                s.scalars(
                    select(AlertRecord.id)
                    .where(AlertRecord.status == "pending")
                    .where(AlertRecord.next_attempt_at <= self.clock())
                    .order_by(AlertRecord.id)
                )
            )

    def seconds_until_next(self) -> float:
        with Session(self.engine) as s:
            nxt = s.scalar(
                select(func.min(AlertRecord.next_attempt_at)).where(AlertRecord.status == "pending")
            )
        if nxt is None:
            return IDLE_WAIT
        return min(max((nxt - self.clock()).total_seconds(), 0.0), IDLE_WAIT)

    def deliver(self, alert_id: int, timeout: float | None = None) -> bool:
        """One attempt at one alert (blocking: run it in a thread). True when sent to all.

        Exactly once: the alert is claimed (a conditional UPDATE that must touch one row) in
        a transaction opened just before the SMTP DATA command, and the server's 250 is
        recorded in that same transaction at once. On SQLite the transaction takes the write
        lock up front (BEGIN IMMEDIATE), so recording never waits behind the writer's batch:
        a crash can double an alert only in the microseconds between the 250 and the commit
        (and the retry then carries the same Message-ID). A crash before the 250 rolls the
        claim back, and the alert is sent by the next run.
        """
        settings = self.config.alerts.email
        with Session(self.engine) as s:
            alert = s.get(AlertRecord, alert_id)
            if alert is None or alert.status != "pending":
                return False
            message = RenderedEmail(alert.subject, alert.body_text, alert.body_html)
            recipients, message_id, created = alert.recipients, alert.message_id, alert.created_at
            subject = alert.subject
        if settings is None:
            error = DeliveryError("no alerts.email server is configured", permanent=False)
            return self._record(alert_id, error, created)
        if timeout is not None:
            settings = settings.model_copy(update={"timeout": min(settings.timeout, timeout)})
        accepted: list[bool] = []

        def guard(transmit: Transmit, partial: DeliveryError | None) -> tuple[int, bytes]:
            with self.engine.connect() as conn:
                _begin_writing(conn)
                claimed = conn.execute(
                    update(AlertRecord)
                    .where(AlertRecord.id == alert_id, AlertRecord.status == "pending")
                    .values(attempts=AlertRecord.attempts + 1)
                )
                if claimed.rowcount != 1:
                    raise _AlreadyHandled  # another sender got there first: no DATA sent
                # Written ahead, so that after the 250 only the COMMIT is left to do; any
                # other answer (or a crash) rolls all of it back.
                self._record_accepted(conn, alert_id, partial, created)
                code, answer = transmit()
                if code == 250:
                    conn.commit()
                    accepted.append(partial is None)
                return code, answer

        try:
            send(settings, self.env, recipients, message, message_id, guard=guard)
        except _AlreadyHandled:
            return False
        except DeliveryError as exc:
            return self._record(alert_id, exc, created)
        if accepted and accepted[0]:
            log.info("alert sent to %s: %s", ", ".join(recipients), subject)
        return bool(accepted and accepted[0])

    def _record_accepted(
        self, conn: Connection, alert_id: int, partial: DeliveryError | None, created: datetime
    ) -> None:
        """The server took the message (attempts already counted by the claim)."""
        now = self.clock()
        conn.execute(
            insert(AlertAttemptRecord).values(
                alert_id=alert_id, at=now, ok=partial is None, error=str(partial or "")
            )
        )
        values: dict[str, Any]
        if partial is None:
            values = {"status": "sent", "sent_at": now, "last_error": ""}
        else:
            attempts = conn.scalar(select(AlertRecord.attempts).where(AlertRecord.id == alert_id))
            values = self._failure_values(alert_id, partial, created, now, attempts or 1)
        conn.execute(update(AlertRecord).where(AlertRecord.id == alert_id).values(**values))

    def _record(self, alert_id: int, error: DeliveryError, created: datetime) -> bool:
        """A failed attempt: logged, and retried later unless it is permanent or too old."""
        now = self.clock()
        with Session(self.engine) as s, s.begin():
            s.add(AlertAttemptRecord(alert_id=alert_id, at=now, ok=False, error=str(error)))
            alert = s.get(AlertRecord, alert_id)
            assert alert is not None
            values = self._failure_values(alert_id, error, created, now, alert.attempts + 1)
            s.execute(
                update(AlertRecord)
                .where(AlertRecord.id == alert_id, AlertRecord.status == "pending")
                .values(**values)
            )
        return False

    @staticmethod
    def _failure_values(
        alert_id: int, error: DeliveryError, created: datetime, now: datetime, attempts: int
    ) -> dict[str, Any]:
        values: dict[str, Any] = {"last_error": str(error), "attempts": attempts}
        if error.retry_only:
            values["recipients"] = list(error.retry_only)  # the rest already have it
        if error.permanent or now - created >= GIVE_UP_AFTER:
            values["status"] = "failed"
            log.error("alert %s failed for good: %s", alert_id, error)
        else:
            delay = retry_delay(attempts)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            log.warning("alert %s not sent (%s); retrying in %.0f s", alert_id, error, delay)
        return values

    async def run(self, wake: asyncio.Event, stopping: asyncio.Event | None = None) -> None:
        """Send what is due, then sleep until the next retry or a new alert; when `stopping`
        is set, give what is due one last try within `flush_seconds` and return.

        Sends run in a daemon thread: a hung SMTP server can delay the shutdown by at most the
        flush time, and a send is never started twice concurrently (no cancel mid-send).
        """
        stopping = stopping or asyncio.Event()
        while not stopping.is_set():
            wake.clear()
            try:
                for alert_id in await asyncio.to_thread(self.due):
                    if stopping.is_set():
                        break
                    await in_daemon_thread(self.deliver, alert_id)
                wait = await asyncio.to_thread(self.seconds_until_next)
            except Exception:
                # e.g. the database locked past its busy timeout: the outbox keeps the alerts,
                # so log it and try again shortly rather than stop sending for good.
                log.exception("the alert sender hit an error; retrying in %.0f s", FIRST_RETRY)
                wait = FIRST_RETRY
            await _first_of(wake, stopping, timeout=max(wait, 0.05))
        try:
            await self.flush(self.flush_seconds)
        except Exception:
            log.exception("could not flush pending alerts; they stay queued for the next start")

    async def flush(self, seconds: float) -> None:
        """One attempt at each due alert while time remains; the rest stay queued for next time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        for alert_id in await asyncio.to_thread(self.due):
            remaining = deadline - loop.time()
            if remaining <= 0.5:
                break
            try:
                async with asyncio.timeout(remaining):
                    await in_daemon_thread(self.deliver, alert_id, remaining - 0.25)
            except TimeoutError:
                break


class _AlreadyHandled(Exception):
    """The claim touched no row: the alert was sent or given up on meanwhile."""


def _begin_writing(conn: Connection) -> None:
    """Open a transaction that already holds the right to write. SQLite has one writer lock:
    take it now (BEGIN IMMEDIATE), so the commit after the server's 250 never waits behind
    the writer's batch. PostgreSQL locks the claimed row instead, which blocks nobody else."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _first_of(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def in_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """Like asyncio.to_thread, but the thread never keeps the process alive at exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (fn(*args), None)
        except BaseException as exc:
            outcome = (None, exc)
        # The loop may be gone (the process is exiting): the outcome is recorded in the
        # database by `fn` itself, so there is no one left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, *outcome)

    threading.Thread(target=work, name="inferwatch-smtp", daemon=True).start()
    return await asyncio.shield(future)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
