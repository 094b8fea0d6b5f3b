"""The public surface of monitor.notify and its user documentation agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import monitor.notify
from monitor.notify import AppriseConfig, EmailConfig, WebhookConfig
from monitor.notify.presets import PRESETS

DOC = Path(__file__).resolve().parents[1] / "README.md"


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(monitor.notify.__all__) == sorted(
        [
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
    )
    for name in monitor.notify.__all__:
        assert hasattr(monitor.notify, name), name


@pytest.mark.parametrize("model", [EmailConfig, WebhookConfig, AppriseConfig])
def test_every_channel_config_key_is_documented(
    model: type[EmailConfig] | type[WebhookConfig] | type[AppriseConfig],
) -> None:
    text = DOC.read_text("utf-8")
    for key in model.model_fields:
        assert re.search(rf"\b{key}\b", text), f"{model.__name__}.{key} is not in {DOC.name}"


def test_every_preset_is_documented() -> None:
    text = DOC.read_text("utf-8")
    for preset in [*PRESETS, "generic"]:
        assert f"`{preset}`" in text, preset
