"""Delivers the outbox: pending alerts are sent, each attempt recorded, failures retried.

Each row names its channel (monitor/alerts/channels/) and holds a channel-neutral alert event,
which the channel renders when it sends. Connection failures and 4xx replies are retried with
capped backoff, so when an SMTP server comes back after an outage every alert arrives within a
minute, once. 5xx replies (and retries older than a day) mark the alert failed. Each send is
claimed (a conditional UPDATE on `status = 'pending'` that must touch one row) in the
transaction that records the server's 250, so two senders never send one alert and a crash
never doubles one (see `deliver`). The SQL is in monitor/store/writes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from monitor.alerts.channels import open_channel
from monitor.alerts.channels.base import DeliveryError, Outgoing, Transmit
from monitor.config.model import Config
from monitor.domain.alert_event import AlertEvent
from monitor.domain.text import utcnow
from monitor.store import writes
from monitor.store.db import unreachable
from monitor.store.writes import Failure, StoredAlert

log = logging.getLogger(__name__)

FIRST_RETRY = 5.0  # seconds; doubles per attempt
MAX_RETRY = 60.0
MAX_RETRY_AFTER = 3600.0  # a receiver's Retry-After is honoured up to an hour
GIVE_UP_AFTER = timedelta(hours=24)
IDLE_WAIT = 30.0
FLUSH_SECONDS = 3.0  # at shutdown, what pending alerts get before the process exits
# How an attempt ended: delivered, delivered to some recipients, to be retried, given up.
SENT, PARTIAL, RETRY, FAILED = "sent", "partial", "retry", "failed"

T = TypeVar("T")


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 5, 10, 20, 40, 60, 60…"""
    return min(FIRST_RETRY * 2.0 ** max(attempts - 1, 0), MAX_RETRY)


def outgoing(alert: StoredAlert) -> Outgoing:
    """A stored row as its channel sees it (rows from before events carry their rendering)."""
    return Outgoing(
        recipients=alert.recipients,
        message_id=alert.message_id,
        event=AlertEvent.from_json(alert.event) if alert.event else None,
        subject=alert.subject,
        body_text=alert.body_text,
        body_html=alert.body_html,
    )


class Sender:
    """Sends due alerts from the outbox table through their channels."""

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
        # Told (channel, status) after each recorded attempt: the /metrics alert counter.
        self.attempted: Callable[[str, str], None] = lambda channel, status: None

    def due(self) -> list[int]:
        with self.engine.connect() as conn:
            return writes.due_alerts(conn, self.clock())

    def seconds_until_next(self) -> float:
        with self.engine.connect() as conn:
            nxt = writes.next_attempt_at(conn)
        if nxt is None:
            return IDLE_WAIT
        return min(max((nxt - self.clock()).total_seconds(), 0.0), IDLE_WAIT)

    def deliver(self, alert_id: int, timeout: float | None = None) -> bool:
        """One attempt at one alert (blocking: run it in a thread). True when sent to all.

        Exactly once: the alert is claimed (a conditional UPDATE that must touch one row) in
        a transaction opened just before the channel's irrevocable step (SMTP DATA), and the
        server's 250 is recorded in that same transaction at once. On SQLite the transaction
        takes the write lock up front (BEGIN IMMEDIATE), so recording never waits behind the
        writer's batch: a crash can double an alert only in the short window between the
        server's acceptance and the commit (milliseconds; the retry carries the same
        Message-ID). A crash before the
        250 rolls the claim back, and the alert is sent by the next run.
        """
        with self.engine.connect() as conn:
            alert = writes.load_alert(conn, alert_id)
        if alert is None or alert.status != "pending":
            return False
        created = alert.created_at
        try:
            channel = open_channel(alert.channel, self.config, self.env, timeout)
            row = outgoing(alert)
            message = channel.render(row)
        except DeliveryError as exc:
            return self._record(alert_id, exc, created, alert.channel)
        except Exception as exc:
            # One alert that cannot be rendered must not hold up the others behind it.
            log.exception("could not render alert %s", alert_id)
            error = DeliveryError(f"could not render the alert: {exc}", permanent=False)
            return self._record(alert_id, error, created, alert.channel)
        accepted: list[bool] = []

        def guard(transmit: Transmit, partial: DeliveryError | None) -> None:
            with self.engine.connect() as conn:
                writes.begin_writing(conn)
                if not writes.claim_alert(conn, alert_id):
                    raise _AlreadyHandled  # another sender got there first: nothing sent
                # Written ahead, so that after the 250 only the COMMIT is left to do; any
                # other answer (or a crash) rolls all of it back.
                self._record_accepted(conn, alert_id, partial, created)
                if transmit():
                    conn.commit()
                    accepted.append(partial is None)
                    self.attempted(alert.channel, SENT if partial is None else PARTIAL)

        try:
            channel.send(message, row, guard)
        except _AlreadyHandled:
            return False
        except DeliveryError as exc:
            return self._record(alert_id, exc, created, alert.channel)
        if accepted and accepted[0]:
            to = f" to {', '.join(alert.recipients)}" if alert.channel == "email" else ""
            log.info("alert sent by %s%s: %s", alert.channel, to, alert.subject)
        return bool(accepted and accepted[0])

    def _record_accepted(
        self, conn: Connection, alert_id: int, partial: DeliveryError | None, created: datetime
    ) -> None:
        """The far end took the message (attempts already counted by the claim)."""
        now = self.clock()
        writes.add_attempt(conn, alert_id, now, ok=partial is None, error=str(partial or ""))
        if partial is None:
            writes.record_sent(conn, alert_id, now)
        else:
            attempts = writes.alert_attempts(conn, alert_id) or 1
            failure = self._failure(alert_id, partial, created, now, attempts)
            writes.record_failure(conn, alert_id, failure, only_pending=False)

    def _record(self, alert_id: int, error: DeliveryError, created: datetime, channel: str) -> bool:
        """A failed attempt: logged, and retried later unless it is permanent or too old."""
        now = self.clock()
        with self.engine.begin() as conn:
            # The write first: on SQLite a transaction that reads first may not get the lock.
            writes.add_attempt(conn, alert_id, now, ok=False, error=str(error))
            attempts = writes.alert_attempts(conn, alert_id)
            assert attempts is not None
            failure = self._failure(alert_id, error, created, now, attempts + 1)
            writes.record_failure(conn, alert_id, failure, only_pending=True)
        self.attempted(channel, FAILED if failure.next_attempt_at is None else RETRY)
        return False

    @staticmethod
    def _failure(
        alert_id: int, error: DeliveryError, created: datetime, now: datetime, attempts: int
    ) -> Failure:
        """The retry policy: when to try again, or that it failed for good."""
        if error.permanent or now - created >= GIVE_UP_AFTER:
            log.error("alert %s failed for good: %s", alert_id, error)
            retry_at = None
        else:
            delay = retry_delay(attempts)
            if error.retry_after is not None:  # the receiver's wish, within our cap
                delay = min(max(delay, error.retry_after), MAX_RETRY_AFTER)
            retry_at = now + timedelta(seconds=delay)
            log.warning("alert %s not sent (%s); retrying in %.0f s", alert_id, error, delay)
        return Failure(str(error), attempts, retry_at, tuple(error.retry_only))

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
            except Exception as exc:
                # e.g. the database locked past its busy timeout: the outbox keeps the alerts,
                # so log it and try again shortly rather than stop sending for good. A database
                # that is away says so in one line (the writer logs the outage itself).
                if unreachable(exc):
                    log.warning(
                        "the alert sender cannot reach the database (%s); retrying in %.0f s",
                        type(exc).__name__,
                        FIRST_RETRY,
                    )
                else:
                    log.exception("the alert sender hit an error; retrying in %.0f s", FIRST_RETRY)
                wait = FIRST_RETRY
            await _first_of(wake, stopping, timeout=max(wait, 0.05))
        try:
            await self.flush(self.flush_seconds)
        except Exception as exc:
            message = "could not flush pending alerts; they stay queued for the next start"
            if unreachable(exc):
                log.warning("%s (the database is away: %s)", message, type(exc).__name__)
            else:
                log.exception(message)

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
