"""What a channel is, and building the configured channels.

A channel turns one DeliveryRequest into one message at a receiver. `send` returns only when the receiver
accepted it, and otherwise raises DeliveryError saying whether a retry may help (EndpointGoneError for 410).
It never returns a bool to be forgotten: the outbox worker decides what a failure means for the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from monitor.netpolicy import NetworkPolicy
from monitor.notify.apprise import AppriseChannel, AppriseConfig
from monitor.notify.email import EmailChannel, EmailConfig
from monitor.notify.limits import ChannelLimits
from monitor.notify.webhook import WebhookChannel, WebhookConfig
from monitor.types import DeliveryRequest

__all__ = ["CHANNEL_CONFIGS", "Channel", "ChannelConfig", "build_channels"]

ChannelConfig = EmailConfig | WebhookConfig | AppriseConfig
CHANNEL_CONFIGS: tuple[type[EmailConfig], type[WebhookConfig], type[AppriseConfig]] = (
    EmailConfig,
    WebhookConfig,
    AppriseConfig,
)


@runtime_checkable
class Channel(Protocol):
    name: str
    limits: ChannelLimits

    async def send(self, request: DeliveryRequest) -> None:
        """Deliver; return once the receiver accepted. Raises monitor.errors.DeliveryError otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections. The channel is not used afterwards."""
        ...


def build_channels(configs: Mapping[str, ChannelConfig], *, policy: NetworkPolicy) -> dict[str, Channel]:
    """One channel per configured name. Webhook and Apprise channels check every URL against `policy` before
    sending; an Apprise URL the policy refuses without DNS is a ConfigError here already."""
    channels: dict[str, Channel] = {}
    for name, config in configs.items():
        if isinstance(config, EmailConfig):
            channels[name] = EmailChannel(name, config)
        elif isinstance(config, WebhookConfig):
            channels[name] = WebhookChannel(name, config, policy=policy)
        elif isinstance(config, AppriseConfig):
            # Apprise is imported here, for such a channel only (an optional extra).
            channels[name] = AppriseChannel(name, config, policy=policy)
        else:  # pragma: no cover - the config union admits nothing else
            raise TypeError(f"channel {name!r}: unknown channel config {type(config).__name__}")
    return channels
