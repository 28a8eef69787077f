"""Alert channels, one module each: how an alert event is rendered and delivered.

A channel implements `Channel` (monitor/alerts/channels/base.py); the outbox finds it by the
name stored in `alerts.channel`, through `open_channel`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from monitor.alerts.channels import apprise, email, slack, webhook
from monitor.alerts.channels.base import Channel, DeliveryError
from monitor.config.model import Config

# name -> the channel as configured: (config, env, timeout cap) -> Channel, or DeliveryError
# when the config does not set it up.
CHANNELS: dict[str, Callable[[Config, Mapping[str, str], float | None], Channel]] = {
    "email": email.channel,
    "apprise": apprise.channel,
    "webhook": webhook.channel,
    "slack": slack.channel,
}


def open_channel(
    name: str, config: Config, env: Mapping[str, str], timeout: float | None = None
) -> Channel:
    """The channel an outbox row names, set up from the current config."""
    make = CHANNELS.get(name)
    if make is None:
        raise DeliveryError(f"unknown alert channel {name!r}", permanent=True)
    return make(config, env, timeout)
