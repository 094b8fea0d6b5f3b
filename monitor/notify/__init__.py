"""Alert delivery: channels (email, webhook with presets), the alert payload, templates, and the outbox worker.

payload.py    the versioned alert payload (JSON Schema in alert-payload.schema.json)
templates.py  Jinja2 sandbox rendering (text, HTML, digest; subject lines)
signing.py    Standard Webhooks signatures
presets.py    Slack, Discord, Teams, Mattermost, ntfy body shapes
email.py      EmailConfig + EmailChannel (SMTP)
webhook.py    WebhookConfig + WebhookChannel (HTTP POST)
apprise.py    AppriseConfig + AppriseChannel (Apprise URLs; the apprise package is an optional extra)
base.py       the Channel protocol, build_channels
retry.py      the retry schedule
outbox.py     deliver_due: drain the outbox with at-least-once semantics
"""

from monitor.notify.apprise import AppriseChannel, AppriseConfig
from monitor.notify.base import CHANNEL_CONFIGS, Channel, ChannelConfig, build_channels
from monitor.notify.email import EmailChannel, EmailConfig
from monitor.notify.limits import ChannelLimits
from monitor.notify.outbox import DeliveryQueue, DeliveryReport, deliver_due
from monitor.notify.payload import (
    PAYLOAD_VERSION,
    alert_payload,
    attach_item,
    digest_payload,
    escalation_payload,
    notification_payload,
    payload_schema,
)
from monitor.notify.retry import RetryPolicy
from monitor.notify.webhook import WebhookChannel, WebhookConfig

__all__ = [
    "CHANNEL_CONFIGS",
    "PAYLOAD_VERSION",
    "AppriseChannel",
    "AppriseConfig",
    "Channel",
    "ChannelConfig",
    "ChannelLimits",
    "DeliveryQueue",
    "DeliveryReport",
    "EmailChannel",
    "EmailConfig",
    "RetryPolicy",
    "WebhookChannel",
    "WebhookConfig",
    "alert_payload",
    "attach_item",
    "build_channels",
    "deliver_due",
    "digest_payload",
    "escalation_payload",
    "notification_payload",
    "payload_schema",
]
