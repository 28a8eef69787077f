"""The validated config: defaults, alerts, retention and the targets, typed by kind."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from monitor.config.types import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_DATABASE,
    ENV_NAME,
    Duration,
    StrictModel,
    Threshold,
)
from monitor.domain.decide import Route
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
