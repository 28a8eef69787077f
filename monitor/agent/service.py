"""`inferwatch run`: scheduler -> probe -> writer -> outbox, until SIGTERM/SIGINT.

SIGHUP reloads the config (targets added, removed, changed) without a restart. Shutdown stops
scheduling, lets in-flight probes finish (or cuts them off), writes what is queued, gives
pending alerts one try and exits within about 10 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from monitor.agent.listener import Listener, ListenError
from monitor.agent.membership import Membership
from monitor.agent.metrics import Metrics
from monitor.agent.registry import Identity, Registry, Replaced
from monitor.agent.scheduler import Slots, first_round_spread, make_scheduler
from monitor.agent.writer import Writer
from monitor.alerts.outbox import Sender, in_daemon_thread
from monitor.config.load import ConfigError, load_config
from monitor.config.model import Config
from monitor.domain.agents import HEARTBEAT_S, Agent
from monitor.probing.engine import Prober
from monitor.probing.pipeline import probe_one, token_for
from monitor.store.prune import cutoffs, once_per, prune
from monitor.store.writes import AgentRefused

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001  # seconds; Python's default is 0.005
PRUNE_JOB = "inferwatch:prune"  # not a valid target name, so it never collides
PRUNE_PERIOD = timedelta(days=1)
# The shutdown budget (seconds after SIGTERM). The writer gets whatever the probes leave of
# it, less what the alerts and the run record need after it.
STOP_BUDGET = 9.5
PROBE_GRACE = 3.0  # at most, for in-flight probes
CANCEL_GRACE = 0.5  # then for the ones cut off to end
ALERT_GRACE = 2.0  # reserved for the last try at pending alerts
RUN_RECORD_GRACE = 0.5  # reserved for recording the end of the run
RELOAD_LIMIT = 10.0  # a config load taking longer is abandoned (the loader answers in ~1 s)


class Monitor:
    """The long-running monitor. `run()` returns after a stop signal (or `stop()`)."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        env: Mapping[str, str],
        config_path: Path | None = None,
        prober: Prober | None = None,
        identity: Identity | None = None,
    ):
        self.config = config
        self._targets = {t.name: t for t in config.targets}  # by name: one lookup per probe
        self.config_path = config_path
        self.env = env
        self.engine = engine
        self.writer = Writer(engine, config)
        # This process as an agent (--agent/--region, else the host name, region default).
        self.registry = Registry(engine, identity or Identity.of(env=env))
        self._heart: asyncio.Task[None] | None = None
        self.sender = Sender(engine, config, env)
        self._prober = prober
        self._redact = config.redactor()
        self._stop = asyncio.Event()
        self._stopping = asyncio.Event()  # tells the sender to flush and return
        self._scheduler = make_scheduler()
        self.slots = Slots(self._scheduler, self._probe)
        # What this agent probes and holds, recomputed at each beat (monitor/agent/membership.py).
        self.membership = Membership(
            self.registry.name, self.registry.region, self.slots, self.writer
        )
        self.registry.on_beat.append(self._on_beat)
        self._prune_stop = threading.Event()
        self._background: set[asyncio.Task[None]] = set()  # prune, reloads: ended at shutdown
        self._reload_lock = asyncio.Lock()
        # /metrics and /badge/, when `metrics.listen` is set (taken at start, like `database`).
        self.metrics: Metrics | None = None
        self._listener: Listener | None = None
        if config.metrics is not None:
            self.metrics = Metrics(config.targets, lambda: self.writer.states)
            self.slots.observe_lag = self.metrics.lagged
            self.sender.attempted = self.metrics.alerted
            self._listener = Listener(
                config.metrics.listen, self.metrics, config.database, lambda: self._targets
            )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self._join()  # a refused start exits 2 before anything runs
        try:
            self._listen()
        except SystemExit:
            await in_daemon_thread(self.registry.leave)
            raise
        # Threads (the writer's, the sender's) wait at most 1 ms for the GIL instead of 5:
        # a probe's timings and the commit after an SMTP 250 are not held up by other work.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        prober = self._prober or Prober(self.config.concurrency)
        if self._prober is None:
            await prober.warm_up()  # the first scheduled probe is timed warm, like the rest
        self.prober = prober
        await asyncio.to_thread(self.writer.start_run)
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        # The sender always runs (idle without alerts), so a reload that adds alerts.email works.
        writer = asyncio.create_task(self.writer.run(), name="writer")
        sender = asyncio.create_task(
            self.sender.run(self.writer.alerts_written, self._stopping), name="sender"
        )
        self._scheduler.start()
        spread = first_round_spread(len(self.config.targets), self.config.concurrency)
        if self.registry.peers_known:
            await self._meet_peers()
        # (After the wait: its one beat and the heartbeat's must not run at once.)
        self._heart = asyncio.create_task(self._heartbeat(), name="heartbeat")
        # The writer takes what this agent holds before its first result arrives.
        self.membership.update(self.registry.live, self.config, spread)
        self.registry.targets_held = len(self.membership.holding)  # told at the first beat
        self.slots.start()
        self._scheduler.add_job(
            self._prune,
            IntervalTrigger(seconds=PRUNE_PERIOD.total_seconds()),
            id=PRUNE_JOB,
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(UTC) + timedelta(minutes=1),
            misfire_grace_time=3600,
        )
        log.info(
            "monitoring %d targets; database %s",
            len(self.config.targets),
            self.engine.url.render_as_string(hide_password=True),
        )
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(writer, sender, prober)
            sys.setswitchinterval(switch_interval)  # in-process callers (tests) get theirs back

    async def _probe(self, name: str) -> None:
        """One scheduled probe: request, judge, hand to the writer. Never raises."""
        try:
            target = self._targets.get(name)
            if target is None:
                return  # removed by a reload
            token = token_for(target, self.env)
            timeout = self.config.timeout_of(target)
            result = await probe_one(target, self.prober, timeout, token, self._redact)
            await self.writer.submit(result)
            if self.metrics is not None:  # after the submit: the result is safe whatever happens
                self.metrics.probed(result)
        except asyncio.CancelledError:
            pass  # cut off at shutdown: not a result about the target, so nothing to record
        except Exception:
            log.exception("probe of %s failed unexpectedly", name)

    async def _join(self) -> None:
        """Register this agent (off the loop); its id goes on the writer's rows."""
        try:
            agent_id = await in_daemon_thread(self.registry.join)
        except AgentRefused as exc:
            log.error("%s; nothing was run", exc)
            _exit_quietly()
            raise SystemExit(2) from None
        self.writer.agent_id = agent_id
        self.writer.region = self.registry.region

    async def _heartbeat(self) -> None:
        """Beat every HEARTBEAT_S until the stop; a database away is retried at the next beat
        (probing goes on meanwhile), and each beat's live agents go to `registry.on_beat`."""
        failing = False
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HEARTBEAT_S)
            if self._stop.is_set():
                return
            try:
                live = await in_daemon_thread(self.registry.beat)
            except Replaced as exc:  # two processes as one agent would defeat the fencing
                log.error("%s", exc)
                self.stop()
                return
            except Exception as exc:
                if not failing:
                    log.warning("heartbeat failed (%s); retrying every %gs", exc, HEARTBEAT_S)
                failing = True
                continue
            if failing:
                log.info("heartbeat back")
                failing = False
            for listener in list(self.registry.on_beat):
                try:
                    listener(live)
                except Exception:
                    log.exception("a heartbeat listener failed")

    async def _meet_peers(self) -> None:
        """In a deployment of several agents, wait one heartbeat before sharing the targets:
        agents started together (a deploy, a reboot) each joined seeing almost nobody, and the
        first would otherwise plan every target alone until its next beat, skipping probes it
        cannot fit. A start alone pays HEARTBEAT_S once; a database away just goes on."""
        log.info("waiting one heartbeat (%gs) for the other agents to join", HEARTBEAT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), HEARTBEAT_S)
        with contextlib.suppress(Exception):  # Replaced too: the first beat will say so
            await in_daemon_thread(self.registry.beat)

    def _on_beat(self, live: list[Agent]) -> None:
        """After each heartbeat: probe and hold this agent's share among the live agents."""
        self.membership.update(live, self.config)
        self.registry.targets_held = len(self.membership.holding)

    def _listen(self) -> None:
        """Serve /metrics and /badge/ before anything starts: a taken port exits with 2."""
        if self._listener is None:
            return
        try:
            self._listener.start()
        except ListenError as exc:
            log.error("%s: %s; nothing was run", self.config.source, exc)
            _exit_quietly()
            raise SystemExit(2) from None
        log.info("serving /metrics and /badge/ on %s", self._listener.listen)

    async def _prune(self) -> None:
        """The daily retention pass; off the event loop, in short per-target transactions.

        At shutdown `_prune_stop` ends it between two transactions, so it never outlives
        the monitor or ends in a cancelled thread.
        """
        raw, rolled = cutoffs(self.config.retention.raw, self.config.retention.rollups)
        with self._tracked():
            try:
                await in_daemon_thread(self.prune_once, raw, rolled)
            except asyncio.CancelledError:
                pass  # shutting down: the thread stops at its next chunk
            except Exception:
                log.exception("the daily prune failed; it will run again tomorrow")

    def prune_once(self, raw: datetime, rolled: datetime) -> bool:
        """The prune, in its thread, once a day per deployment (an advisory lock on PostgreSQL,
        and the day's run recorded in the database: the other agents skip it). Whether this
        agent ran it."""
        with once_per(self.engine, PRUNE_JOB, PRUNE_PERIOD, self.registry.agent_id) as mine:
            if not mine:
                log.info("the daily prune runs (or ran today) in another agent; skipped here")
                return False
            prune(self.engine, raw, rolled, stop=self._prune_stop)
            return True

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Registers the running task as background work that shutdown ends."""
        task = asyncio.current_task()
        if task is not None:
            self._background.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._background.discard(task)

    async def _shutdown(
        self, writer: asyncio.Task[None], sender: asyncio.Task[None], prober: Prober
    ) -> None:
        """Stop within 10 s: in-flight probes (up to 3 s), then everything queued is written,
        then pending alerts get a last try, then the run is recorded as stopped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_BUDGET
        log.info("stopping: finishing in-flight probes, writing results, sending alerts")
        self._scheduler.pause()
        self.slots.stop()
        self._prune_stop.set()
        if self._heart is not None:
            self._heart.cancel()
        # Probes count as in flight from the moment they are started, even before their
        # first step has run: one started just before the stop still gets written.
        if in_flight := self.slots.in_flight():
            _, late = await asyncio.wait(in_flight, timeout=PROBE_GRACE)
            for task in late:
                task.cancel()
            if late:  # let them end before the client closes under them
                await asyncio.wait(late, timeout=CANCEL_GRACE)
        self._scheduler.shutdown(wait=False)
        # Writer first: an alert confirmed by the last results must be in the outbox before
        # the sender's final flush reads it.
        await self.writer.close()
        write_until = deadline - ALERT_GRACE - RUN_RECORD_GRACE
        await self._finish(writer, write_until - loop.time())
        self.sender.flush_seconds = max(deadline - RUN_RECORD_GRACE - loop.time() - 0.5, 0.5)
        self._stopping.set()
        await self._finish(sender, self.sender.flush_seconds + 0.5)
        if self._background:  # prune between two chunks, a reload reading a file
            for task in self._background:
                task.cancel()
            await asyncio.wait(set(self._background), timeout=0.2)
        try:
            async with asyncio.timeout(RUN_RECORD_GRACE):
                await in_daemon_thread(self.writer.stop_run)
                await in_daemon_thread(self.registry.leave)
        except Exception:
            log.warning("could not record the end of this run; the next start will")
        if self._prober is None:
            await prober.aclose()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
        log.info("stopped")

    @staticmethod
    async def _finish(task: asyncio.Task[None], seconds: float) -> None:
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            log.error("%s did not finish in time; stopping anyway", task.get_name())
            task.cancel()
        elif not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", task.get_name(), task.exception())

    # ------------------------------------------------------------ signals and reload

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self) -> None:
        """SIGHUP: re-read the config file in the background; probing never waits for it."""
        if self.config_path is not None and not self._stop.is_set():
            asyncio.get_running_loop().create_task(self._reload(self.config_path))

    async def _reload(self, path: Path) -> None:
        """Load the file off the event loop; on any problem keep running on the old config."""
        with self._tracked():
            async with self._reload_lock:  # two quick SIGHUPs apply in order, one at a time
                try:
                    async with asyncio.timeout(RELOAD_LIMIT):
                        new = await in_daemon_thread(load_config, path, self.env)
                except ConfigError as exc:
                    for problem in exc.problems:
                        log.error("reload refused: %s", problem)
                    log.error("still running on the previous config")
                    return
                except TimeoutError:
                    log.error("reload refused: reading %s took over %gs", path, RELOAD_LIMIT)
                    return
                except asyncio.CancelledError:
                    return  # shutting down
                except Exception:
                    log.exception("reload refused: %s could not be read", path)
                    return
                if not self._stop.is_set():
                    self.apply(new)

    def apply(self, new: Config) -> None:
        """Switch to a new config: schedule added targets, drop removed ones, re-time changed."""
        if new.database != self.config.database:
            log.warning(
                "database changes take effect only after a restart; keeping %s",
                self.config.database,
            )
            new = new.model_copy(update={"database": self.config.database})
        if new.metrics != self.config.metrics:
            log.warning("metrics changes take effect only after a restart")
        if new.concurrency != self.config.concurrency:
            log.warning(
                "concurrency changes take effect after a restart; keeping %d",
                self.config.concurrency,
            )
        old_config = self.config
        old = {t.name: t for t in old_config.targets}
        self.config = new
        self._targets = {t.name: t for t in new.targets}
        # Queued behind the results already waiting, and before any probe of a new target.
        self.writer.queue_config(new)
        self.sender.config = new
        self._redact = new.redactor()
        if self.metrics is not None:
            self.metrics.configure(new.targets)  # removed targets lose their series
        for name in old.keys() - {t.name for t in new.targets}:
            log.info("%s: removed from the config; no longer probed", name)
        for target in new.targets:
            before = old.get(target.name)
            interval = new.interval_of(target)
            if before is None:
                log.info("%s: added to the config; probing every %gs", target.name, interval)
            elif old_config.interval_of(before) != interval or before != target:
                log.info("%s: changed in the config", target.name)
        # Slots: added targets of this agent's share planned, removed ones dropped, changed
        # ones re-timed; the writer holds its share of the new targets once the config is in.
        self.membership.update(self.registry.live, new)
        log.info("config reloaded: %d targets", len(new.targets))


def _exit_quietly() -> None:
    """The exit code is the report: under `inferwatch up` the monitor runs in a task, whose
    exception asyncio would otherwise also log, traceback and all."""
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
