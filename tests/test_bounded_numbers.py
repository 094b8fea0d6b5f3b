"""Numbers that come from outside (Retry-After headers, config durations) are bounded before they become a
timedelta: never an OverflowError, never a wait of centuries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alerts import NOW
from support.receivers import WebhookReceiver

from monitor.cli import main
from monitor.errors import ConfigError
from monitor.fetch import backoff_delay
from monitor.notify import WebhookConfig
from monitor.notify.retry import RetryPolicy
from monitor.rules import load_rules
from monitor.timeutil import MAX_DURATION, MAX_RETRY_AFTER_SECONDS, parse_duration, parse_retry_after
from tests.test_notify_outbox import MemoryQueue, deliver_once

HUGE = ["9" * 20, "9" * 400, "9" * 5000, "Fri, 31 Dec 9999 23:59:59 GMT"]


@pytest.mark.parametrize("header", HUGE)
def test_a_huge_retry_after_is_capped(header: str) -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    seconds = parse_retry_after(header, now)
    assert seconds == MAX_RETRY_AFTER_SECONDS
    assert timedelta(seconds=seconds) <= timedelta(days=7)


@pytest.mark.parametrize("seconds", [1e300, float("inf"), float("nan"), 10.0**20])
def test_retry_policy_and_feed_backoff_survive_any_retry_after(seconds: float) -> None:
    policy = RetryPolicy()
    retry_at = policy.next_attempt(
        now=NOW, created_at=NOW, attempt=1, retry_after=seconds, rng=random.Random(1)
    )
    assert retry_at is not None and retry_at <= NOW + policy.retry_after_cap + timedelta(seconds=10)
    assert backoff_delay(1, timedelta(minutes=10), seconds) <= timedelta(hours=24)


def test_a_receiver_asking_for_forever_is_retried_within_the_cap() -> None:
    queue = MemoryQueue()
    queue.add("msg_x", "hook")
    with WebhookReceiver([503], retry_after="9" * 400) as hook:
        deliver_once({"hook": WebhookConfig(url=hook.url)}, queue)
    row = queue.rows["msg_x"]
    assert row.status == "pending" and "HTTP 503" in (row.last_error or "")
    assert NOW < row.next_attempt_at <= NOW + timedelta(hours=6)


@pytest.mark.parametrize(
    "value", [".inf", "inf", "nan", "", "   ", "99999999999d", "1e400", 10**30, float("inf"), float("nan")]
)
def test_a_duration_out_of_range_is_a_value_error_not_an_overflow(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_the_largest_duration_is_accepted() -> None:
    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION


@pytest.mark.parametrize("value", [".inf", "99999999999d", "''", "-.nan"])
def test_a_config_duration_out_of_range_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(f"feeds:\n  - url: https://example.org/f\n    interval: {value}\n", encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:3:" in err and "feeds.0.interval" in err
    assert "Traceback" not in err and "OverflowError" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_rule_duration_out_of_range_is_a_located_error(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: r\n    any: [word]\n    realert: 99999999999d\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(rules)
    assert caught.value.line == 4 and "duration" in str(caught.value)
