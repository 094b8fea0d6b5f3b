"""What a channel is, and building the configured channels.

A channel turns one DeliveryRequest into one message at a receiver. `send` returns only when the receiver
accepted it, and otherwise raises DeliveryError saying whether a retry may help (EndpointGoneError for 410).
It never returns a bool to be forgotten: the outbox worker decides what a failure means for the delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from monitor.netpolicy import NetworkPolicy
from monitor.notify.email import EmailChannel, EmailConfig
from monitor.notify.limits import ChannelLimits
from monitor.notify.webhook import WebhookChannel, WebhookConfig
from monitor.types import DeliveryRequest

__all__ = ["CHANNEL_CONFIGS", "Channel", "ChannelConfig", "build_channels"]

ChannelConfig = EmailConfig | WebhookConfig
CHANNEL_CONFIGS: tuple[type[EmailConfig], type[WebhookConfig]] = (EmailConfig, WebhookConfig)


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
    """One channel per configured name. Webhook channels check every URL against `policy` before sending."""
    channels: dict[str, Channel] = {}
    for name, config in configs.items():
        if isinstance(config, EmailConfig):
            channels[name] = EmailChannel(name, config)
        elif isinstance(config, WebhookConfig):
            channels[name] = WebhookChannel(name, config, policy=policy)
        else:  # pragma: no cover - the config union admits nothing else
            raise TypeError(f"channel {name!r}: unknown channel config {type(config).__name__}")
    return channels
