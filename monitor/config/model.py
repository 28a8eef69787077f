"""The validated config: defaults, alerts, retention and the targets, typed by kind."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, field_validator, model_validator

from monitor.config.types import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_DATABASE,
    ENV_NAME,
    Duration,
    Quorum,
    StrictModel,
    Threshold,
    format_duration,
)
from monitor.domain.decide import Route
from monitor.domain.maintenance import WEEKDAYS, Every, Window
from monitor.domain.redact import Redactor
from monitor.domain.states import Rules
from monitor.targets import Target, TargetBase


class DefaultsModel(StrictModel):
    interval: Duration = Field(default=60.0, description="time between probes")
    timeout: Duration = Field(default=10.0, description="limit for the whole probe")
    failure_threshold: Threshold = Field(
        default=3, description="transient failures in a row before the state changes"
    )
    success_threshold: Threshold = Field(
        default=2, description="successes in a row before a failing target is recovered"
    )
    contract_threshold: Threshold = Field(
        default=2,
        description="probes that confirm a contract break (1 = at once, 2 = one confirming)",
    )
    quorum: Quorum = Field(
        default="majority",
        description=(
            "with agents in several regions: how many reporting regions must confirm a "
            "change (majority, or a number)"
        ),
    )


class EmailSettings(StrictModel):
    host: str = Field(min_length=1, description="SMTP server")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username_env: str | None = Field(default=None, pattern=ENV_NAME)
    password_env: str | None = Field(default=None, pattern=ENV_NAME)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From address")
    recipients: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    timeout: Duration = Field(default=15.0, description="limit for one SMTP conversation")

    @model_validator(mode="after")
    def _login_pair(self) -> EmailSettings:
        if bool(self.username_env) != bool(self.password_env):
            raise ValueError("username_env and password_env go together: set both or neither")
        return self


class WebhookSettings(StrictModel):
    url: str = Field(
        pattern=r"^https?://\S+$",
        description="where each alert is POSTed as JSON (${VAR} allowed; kept secret)",
    )
    secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="NAME of the variable whose value signs each body (HMAC-SHA256)",
    )
    timeout: Duration = Field(default=10.0, description="limit for one POST")


class SlackSettings(StrictModel):
    webhook_url_env: str = Field(
        pattern=ENV_NAME, description="NAME of the variable holding the incoming-webhook URL"
    )
    timeout: Duration = Field(default=10.0, description="limit for one POST")


class AppriseSettings(StrictModel):
    urls_env: str = Field(
        pattern=ENV_NAME,
        description="NAME of the variable holding space-separated Apprise URLs",
    )


class AlertSettings(StrictModel):
    dashboard_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", description="base URL for links in alerts"
    )
    remind_every: Duration | None = Field(
        default=None, description="re-send while an incident stays open (off by default)"
    )
    regional: bool = Field(
        default=False,
        description=(
            "also alert on a change seen by fewer regions than the quorum "
            "(a regional observation; recorded either way)"
        ),
    )
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None
    slack: SlackSettings | None = None
    apprise: AppriseSettings | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The configured channels' names, in a fixed order."""
        return tuple(name for name in CHANNEL_NAMES if getattr(self, name) is not None)

    @field_validator("remind_every", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return None if value in (False, "off", "never", None) else value


# Every channel a config can name (a module each in monitor/alerts/channels/).
CHANNEL_NAMES = ("email", "webhook", "slack", "apprise")


class MetricsSettings(StrictModel):
    listen: str = Field(
        pattern=r"^[^\s:]*:\d{1,5}$",
        description="host:port for /metrics and /badge/ (e.g. 127.0.0.1:9464)",
    )


class RecurrenceModel(StrictModel):
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = Field(
        default=None, description="the day it starts (default: every day)"
    )
    at: str = Field(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local start time, HH:MM (24 h)"
    )
    tz: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("at", mode="before")
    @classmethod
    def _sexagesimal(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320.
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
            return f"{value // 60:02d}:{value % 60:02d}"
        return value

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value


class MaintenanceWindow(StrictModel):
    """A planned window: probes still run, nothing is sent, uptime leaves it out."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="shown everywhere")
    targets: list[str] = Field(default_factory=list, description="target names it covers")
    tags: list[str] = Field(default_factory=list, description="or: tags it covers")
    start: datetime | None = Field(default=None, description="once, at this time (with its zone)")
    every: RecurrenceModel | None = Field(default=None, description="or: every week or day")
    duration: Duration = Field(description="how long each occurrence lasts")

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError('needs a zone, e.g. "2026-12-01T22:00:00Z" or "...T23:00:00+01:00"')
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> MaintenanceWindow:
        if (self.start is None) == (self.every is None):
            raise ValueError("give either start (once) or every (recurring), not both or neither")
        if self.every is not None:
            period = 86400.0 if self.every.weekday is None else 7 * 86400.0
            if self.duration > period:
                raise ValueError(
                    f"duration {format_duration(self.duration)} is longer than the "
                    f"{format_duration(period)} between occurrences"
                )
        return self

    def window(self) -> Window:
        every = self.every
        return Window(
            name=self.name,
            duration=timedelta(seconds=self.duration),
            targets=frozenset(self.targets),
            tags=frozenset(self.tags),
            start=self.start,
            every=Every(
                at=time.fromisoformat(every.at),
                tz=every.tz,
                weekday=None if every.weekday is None else WEEKDAYS.index(every.weekday),
            )
            if every is not None
            else None,
        )


class RetentionSettings(StrictModel):
    raw: Duration = Field(default=30 * 86400.0, description="how long raw probes are kept")
    rollups: Duration = Field(
        default=400 * 86400.0, description="how long hourly and daily rollups are kept"
    )


class Config(StrictModel):
    database: str = Field(default=DEFAULT_DATABASE, description="SQLAlchemy URL")
    defaults: DefaultsModel = Field(default_factory=DefaultsModel)
    concurrency: int = Field(
        default=20, ge=1, le=1000, description="probes in flight at once, at most"
    )
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    metrics: MetricsSettings | None = None
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    targets: list[Target] = Field(default_factory=list)  # each validated by parse_target

    # Set by `parse_config`; never read from YAML.
    _source: str = PrivateAttr(default=DEFAULT_CONFIG_FILE)
    _secrets: frozenset[str] = PrivateAttr(default=frozenset())

    @property
    def source(self) -> str:
        """The file this config came from, for messages."""
        return self._source

    @property
    def secrets(self) -> frozenset[str]:
        """Token values and values interpolated into headers: redacted everywhere."""
        return self._secrets

    @property
    def windows(self) -> tuple[Window, ...]:
        """The maintenance windows, as monitor/domain/maintenance.py reads them."""
        return tuple(m.window() for m in self.maintenance)

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    def interval_of(self, target: TargetBase) -> float:
        return target.interval or target.default_interval or self.defaults.interval

    def timeout_of(self, target: TargetBase) -> float:
        return target.timeout or self.defaults.timeout

    def rules_of(self, target: TargetBase) -> Rules:
        """The state-machine thresholds for a target: its own, else `defaults`."""
        d = self.defaults
        return Rules(
            failure_threshold=target.failure_threshold or d.failure_threshold,
            success_threshold=target.success_threshold or d.success_threshold,
            contract_threshold=target.contract_threshold or d.contract_threshold,
        )

    def quorum_of(self, target: TargetBase) -> int | None:
        """How many reporting regions confirm a change of the target: None for a majority."""
        quorum = target.quorum if target.quorum is not None else self.defaults.quorum
        return None if quorum == "majority" else int(quorum)

    def redactor(self) -> Redactor:
        return Redactor(self.secrets)

    def routes_of(self, target: TargetBase) -> tuple[Route, ...]:
        """The channels a target's alerts go to, with their recipients (a new channel adds
        its route here; the writer and the outbox stay as they are)."""
        routes = []
        for name in self.alerts.channels:
            if target.channels is not None and name not in target.channels:
                continue
            if name == "email":
                recipients = self.recipients_of(target)
                if recipients:
                    routes.append(Route("email", tuple(recipients)))
            else:
                # A URL is a secret: the delivery log names the channel, not where it went.
                routes.append(Route(name, ()))
        return tuple(routes)

    def recipients_of(self, target: TargetBase) -> list[str]:
        email = self.alerts.email
        return list(target.recipients or (email.recipients if email else []))
