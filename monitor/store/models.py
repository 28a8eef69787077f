"""The database schema as SQLAlchemy 2 typed ORM classes. Alembic migrations must match it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeEngine

# Named constraints, so Alembic batch migrations on SQLite can find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


class ProbeTime(TypeDecorator[datetime]):
    """A probe's time: on SQLite an integer of microseconds since 1970 (8 bytes, where the
    text form takes 26, in the row and again in the index); elsewhere a native timestamp.
    Python sees aware UTC datetimes either way, to the microsecond."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(BigInteger() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        if dialect.name == "sqlite":
            return (value - EPOCH) // MICROSECOND
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return EPOCH + int(value) * MICROSECOND
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


class Millis(TypeDecorator[float]):
    """A duration in milliseconds: on SQLite an integer of microseconds (2 to 4 bytes where a
    float takes 8); elsewhere a float. Nothing finer than a microsecond is measured anyway."""

    impl = Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Integer() if dialect.name == "sqlite" else Float())

    def process_bind_param(self, value: float | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return round(value * 1000)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None or dialect.name != "sqlite":
            return value  # type: ignore[no-any-return]
        return float(value) / 1000


class EmptyAsNull(TypeDecorator[dict[str, Any]]):
    """A JSON object stored as NULL when empty: a lean probe row carries no evidence."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> Any:
        return value or None

    def process_result_value(self, value: Any, dialect: Dialect) -> dict[str, Any]:
        return value or {}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class TargetRecord(Base):
    """A configured target, keyed by its unique name; kept when removed from the config."""

    __tablename__ = "targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    probes: Mapped[list[ProbeRecord]] = relationship(back_populates="target", passive_deletes=True)


class ProbeRecord(Base):
    """One probe's outcome and timings, and its evidence (already redacted).

    The evidence columns (url to facts) are empty in a lean row: an ok probe repeating the
    previous outcome (monitor/domain/sampling.py decides which). Empty text and NULL cost
    one byte each in SQLite, so a lean row is about 70 bytes with its index entry.
    """

    __tablename__ = "probe_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime] = mapped_column(ProbeTime())
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None]
    latency_ms: Mapped[float | None] = mapped_column(Millis())
    connect_ms: Mapped[float | None] = mapped_column(Millis())
    tls_ms: Mapped[float | None] = mapped_column(Millis())
    ttfb_ms: Mapped[float | None] = mapped_column(Millis())
    # Streamed probes: time to the first token and output tokens per second after it.
    ttft_ms: Mapped[float | None] = mapped_column(Millis())
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    # Tokens the probe cost, from the provider's `usage` (what probing costs).
    usage_tokens: Mapped[int | None]
    url: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    hint: Mapped[str] = mapped_column(Text, default="")
    warning: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(EmptyAsNull(), nullable=True, default=dict)
    body_excerpt: Mapped[str] = mapped_column(Text, default="")
    # What the answer says in structured form (replacement_url, missing_permission, retry_at...)
    facts: Mapped[dict[str, Any]] = mapped_column(EmptyAsNull(), nullable=True, default=dict)
    # Inside a maintenance window or silence: kept, but left out of uptime.
    quiet: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The agent that probed (agents.id; its region is the agent's). No foreign key: this is
    # the hot table, and agents are never deleted. NULL before agents existed.
    agent_id: Mapped[int | None]

    target: Mapped[TargetRecord] = relationship(back_populates="probes")

    # Serves "results of target X between t1 and t2", the query every view starts from.
    __table_args__ = (Index("ix_probe_results_target_id_checked_at", "target_id", "checked_at"),)


class TargetStateRecord(Base):
    """A target's state-machine state (monitor.domain.states.TargetState as JSON), for restarts."""

    __tablename__ = "target_states"

    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    # The agent whose writer owns this target's state (agents.id); a writer changes a state
    # only while it holds it (see docs/architecture.md, "Several agents"). NULL: nobody yet.
    holder: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class TargetRegionStateRecord(Base):
    """One region's own state machine for a target (monitor.domain.quorum.RegionState as
    JSON), kept by the target's holder with agents in several regions."""

    __tablename__ = "target_region_states"

    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RegionResultRecord(Base):
    """A result of another region's agent, waiting for the target's holder to decide it: the
    holder deletes the row in the transaction that folds the result (exactly once)."""

    __tablename__ = "region_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    probe_id: Mapped[int]  # probe_results.id; no foreign key, like ProbeRecord.agent_id
    region: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_region_results_target_id", "target_id"),)


class IncidentRecord(Base):
    """A failure period: opened by the first failing transition, closed by recovery."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    first_outcome: Mapped[str] = mapped_column(String(32))
    last_outcome: Mapped[str] = mapped_column(String(32))
    outcomes: Mapped[list[str]] = mapped_column(JSON, default=list)  # every state it went through
    last_alert_at: Mapped[datetime | None]  # for reminders

    __table_args__ = (Index("ix_incidents_target_id_opened_at", "target_id", "opened_at"),)

    @property
    def duration_seconds(self) -> float | None:
        return (self.closed_at - self.opened_at).total_seconds() if self.closed_at else None


class TransitionRecord(Base):
    """An accepted change of a target's state, with the probe that confirmed it."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    at: Mapped[datetime]  # the confirming probe
    started_at: Mapped[datetime]  # the first probe of the confirming run
    from_outcome: Mapped[str | None] = mapped_column(String(32))
    to_outcome: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="")
    hint: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    http_status: Mapped[int | None]
    announced: Mapped[bool]
    probe_id: Mapped[int | None] = mapped_column(
        ForeignKey("probe_results.id", ondelete="SET NULL")
    )
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    # Why it was not announced: "maintenance weekly-deploy", "silenced by #3: deploying v2".
    quiet_reason: Mapped[str | None] = mapped_column(Text)
    # The agent whose writer accepted it (agents.id; its region is the agent's).
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The regions whose confirmed states made the change (monitor/domain/quorum.py).
    regions: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Set on a regional observation: that region's own change, which the target's state did
    # not follow (no incident). NULL on every change of the target's own state.
    region: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_transitions_target_id_at", "target_id", "at"),
        # Pruning probes sets probe_id to NULL here: without an index, a scan per probe.
        Index("ix_transitions_probe_id", "probe_id"),
    )


class AlertRecord(Base):
    """The outbox: a fully rendered message, written in the transaction that caused it."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.id", ondelete="CASCADE"))
    transition_id: Mapped[int | None] = mapped_column(
        ForeignKey("transitions.id", ondelete="SET NULL")
    )
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(32))  # transition, reminder, flapping, test
    channel: Mapped[str] = mapped_column(String(32))  # email
    recipients: Mapped[list[str]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)  # dedupe key for MTAs
    # The channel-neutral alert event (what changed, evidence, facts); channels render it.
    event: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(16))  # pending, sent, failed
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        Index("ix_alerts_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_alerts_created_at", "created_at"),
        Index("ix_alerts_transition_id", "transition_id"),
        Index("ix_alerts_incident_id", "incident_id"),
    )


class AlertAttemptRecord(Base):
    """One delivery attempt of an alert: the delivery log."""

    __tablename__ = "alert_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    ok: Mapped[bool]
    error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_alert_attempts_alert_id", "alert_id"),)


class MonitorRunRecord(Base):
    """One run of `inferwatch run`; the time between runs is a gap ("no data"), not uptime."""

    __tablename__ = "monitor_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]  # heartbeat: a crashed run ends here
    stopped_at: Mapped[datetime | None]
    # The agent that ran it (agents.id): a start closes only its own agent's crashed runs.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # The last result its writer committed ("target@checked_at"), with each batch: a batch
    # retried after the commit's answer was lost skips what that commit already wrote.
    last_result: Mapped[str | None] = mapped_column(String(160))


class AgentRecord(Base):
    """One `inferwatch run` agent of a deployment: who it is, where, and whether it lives.

    An agent is alive while its heartbeat is recent (monitor/domain/agents.py says how
    recent); a second agent with a live one's name refuses to start.
    """

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    region: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    targets_held: Mapped[int] = mapped_column(default=0, server_default="0")


class DeploymentJobRecord(Base):
    """When a once-per-deployment job (the daily prune) last ran, in the database's time: an
    agent that takes the job's lock skips it when another ran it within its period."""

    __tablename__ = "deployment_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_run_at: Mapped[datetime]
    agent_id: Mapped[int | None]  # no foreign key, like ProbeRecord.agent_id


class RollupRecord(Base):
    """Counts per outcome and a latency sketch for one target over one hour ('h') or day ('d')."""

    __tablename__ = "probe_rollups"

    target_id: Mapped[int] = mapped_column(
        ForeignKey("targets.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(1), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(primary_key=True)
    probes: Mapped[int]
    ok: Mapped[int]
    counts: Mapped[dict[str, Any]]  # outcome -> probes
    latency: Mapped[dict[str, Any]]  # histogram bucket (monitor.domain.rollups) -> probes
    latency_sum: Mapped[float]
    latency_max: Mapped[float]
    # Probes inside a maintenance window or silence: counted here only, so uptime (ok /
    # probes) leaves them out and the band can show the time as maintenance.
    quiet: Mapped[int] = mapped_column(default=0, server_default="0")

    # The overview reads one period for all targets over a time range.
    __table_args__ = (Index("ix_probe_rollups_period_bucket_start", "period", "bucket_start"),)


class SilenceRecord(Base):
    """A silence added at run time (`inferwatch silence add`): the writer reads the ones in
    force with each batch, so a running monitor obeys it at once."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str | None] = mapped_column(String(100))  # a target's name, or
    tag: Mapped[str | None] = mapped_column(String(100))  # every target with this tag
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]  # `silence end` moves it to the moment it was ended
    ended_at: Mapped[datetime | None]  # when it was ended by hand

    # The writer's "silences not over yet", each batch.
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)
