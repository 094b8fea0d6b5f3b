"""The delivery worker: real channels against real receivers, with an in-memory stand-in for the store's outbox."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from support.alerts import NOW, make_payload
from support.receivers import SMTPReceiver, WebhookReceiver, wait_until

from monitor.errors import DeliveryError
from monitor.netpolicy import NetworkPolicy
from monitor.notify import (
    Channel,
    ChannelLimits,
    DeliveryReport,
    EmailConfig,
    WebhookConfig,
    build_channels,
    deliver_due,
)
from monitor.notify.outbox import PARK_INTERVAL
from monitor.types import DeliveryRequest

T = TypeVar("T")
LOCAL = NetworkPolicy.from_setting(["127.0.0.1/32"])


@dataclass
class Row:
    id: str
    channel: str
    alerts: tuple[dict[str, Any], ...]
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    leased: bool = False
    history: list[str] = field(default_factory=list)


class MemoryQueue:
    """A test double of the store's outbox (monitor.store implements the same protocol on SQLite)."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.disabled: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, delivery_id: str, channel: str, *, created_at: datetime = NOW) -> Row:
        row = Row(delivery_id, channel, (make_payload(f"alr_{delivery_id}"),), created_at, created_at)
        self.rows[delivery_id] = row
        return row

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        with self.lock:
            due = sorted(
                (
                    r
                    for r in self.rows.values()
                    if r.status == "pending"
                    and not r.leased
                    and r.next_attempt_at <= now
                    and channel in (None, r.channel)
                ),
                key=lambda r: (r.next_attempt_at, r.created_at),
            )[:limit]
            for row in due:
                row.leased = True
                row.attempts += 1
            return [
                DeliveryRequest(r.id, r.channel, r.alerts, attempt=r.attempts, created_at=r.created_at)
                for r in due
            ]

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        with self.lock:
            row = self.rows[delivery_id]
            row.status, row.leased, row.last_error = "sent", False, None
            row.history.append("sent")

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None:
        with self.lock:
            row = self.rows[delivery_id]
            assert retry_at > now
            row.next_attempt_at, row.leased, row.last_error = retry_at, False, error
            row.history.append("retry")

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None:
        with self.lock:
            row = self.rows[delivery_id]
            row.status, row.leased, row.last_error = "dead", False, error
            row.history.append("dead")

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None:
        self.disabled[channel] = reason

    def disabled_channels(self) -> set[str]:
        return set(self.disabled)

    def status(self) -> dict[str, str]:
        return {r.id: r.status for r in self.rows.values()}


async def deliver(queue: MemoryQueue, channels: Mapping[str, Channel], now: datetime = NOW) -> DeliveryReport:
    return await deliver_due(queue, channels, now=now, rng=random.Random(7))


def run_with(configs: dict[str, Any], scenario: Callable[[dict[str, Channel]], Awaitable[T]]) -> T:
    """Build real channels, run the async `scenario` with them on one event loop, close them."""

    async def main() -> T:
        channels = build_channels(configs, policy=LOCAL)
        try:
            return await scenario(channels)
        finally:
            for channel in channels.values():
                await channel.aclose()

    return asyncio.run(main())


def deliver_once(configs: dict[str, Any], queue: MemoryQueue, now: datetime = NOW) -> DeliveryReport:
    async def scenario(channels: dict[str, Channel]) -> DeliveryReport:
        return await deliver(queue, channels, now)

    return run_with(configs, scenario)


def test_outage_then_recovery_delivers_everything_with_stable_ids() -> None:
    queue = MemoryQueue()
    for n in range(3):
        queue.add(f"msg_{n}", "hook")
    with WebhookReceiver([503, 503]) as hook:

        async def scenario(channels: dict[str, Channel]) -> None:
            now = NOW
            first = await deliver(queue, channels, now)
            # The receiver is down: one request, the rest of the run is not attempted against it.
            assert len(hook.requests) == 1
            assert (first.sent, first.retried, first.deferred) == (0, 1, 2)
            for _ in range(10):
                pending = [r for r in queue.rows.values() if r.status == "pending"]
                if not pending:
                    break
                now = max(r.next_attempt_at for r in pending)
                await deliver(queue, channels, now)
            assert queue.status() == {"msg_0": "sent", "msg_1": "sent", "msg_2": "sent"}

        run_with({"hook": WebhookConfig(url=hook.url, concurrency=1)}, scenario)
        ids = [r.headers["webhook-id"] for r in hook.requests]
    assert hook.answers == [503, 503, 200, 200, 200]
    accepted = [i for i, status in zip(ids, hook.answers, strict=True) if status == 200]
    refused = [i for i, status in zip(ids, hook.answers, strict=True) if status == 503]
    assert sorted(accepted) == ["msg_0", "msg_1", "msg_2"]  # each delivered exactly once after recovery
    assert set(refused) <= set(accepted)  # a retry carries the webhook-id of the attempt that failed


def test_first_retry_follows_the_schedule_and_retry_after() -> None:
    queue = MemoryQueue()
    queue.add("msg_a", "hook")
    with WebhookReceiver([503]) as hook:
        deliver_once({"hook": WebhookConfig(url=hook.url)}, queue)
    retry_at = queue.rows["msg_a"].next_attempt_at
    assert NOW + timedelta(seconds=5) <= retry_at < NOW + timedelta(seconds=6)
    assert queue.rows["msg_a"].last_error is not None and "HTTP 503" in queue.rows["msg_a"].last_error

    queue = MemoryQueue()
    queue.add("msg_b", "hook")
    with WebhookReceiver([429], retry_after="600") as hook:
        deliver_once({"hook": WebhookConfig(url=hook.url)}, queue)
    assert queue.rows["msg_b"].next_attempt_at == NOW + timedelta(seconds=600)


def test_smtp_5xx_is_dead_and_the_webhook_is_unaffected() -> None:
    queue = MemoryQueue()
    queue.add("msg_mail", "mail")
    queue.add("msg_hook", "hook")
    with SMTPReceiver(["554 5.7.1 message refused"]) as smtp, WebhookReceiver() as hook:
        configs = {
            "mail": EmailConfig(host=smtp.host, port=smtp.port, sender="m@example.org", to=["a@example.org"]),
            "hook": WebhookConfig(url=hook.url),
        }
        report = deliver_once(configs, queue)
        assert len(hook.requests) == 1
    assert queue.status() == {"msg_mail": "dead", "msg_hook": "sent"}
    assert "554" in (queue.rows["msg_mail"].last_error or "")
    assert (report.sent, report.dead) == (1, 1)
    assert "554" in report.errors["mail"][0]


def test_smtp_4xx_is_retried_then_delivered() -> None:
    queue = MemoryQueue()
    queue.add("msg_mail", "mail")
    with SMTPReceiver(["451 4.3.0 greylisted"]) as smtp:
        config = EmailConfig(host=smtp.host, port=smtp.port, sender="m@example.org", to=["a@example.org"])

        async def scenario(channels: dict[str, Channel]) -> None:
            await deliver(queue, channels)
            assert queue.rows["msg_mail"].status == "pending"
            await deliver(queue, channels, queue.rows["msg_mail"].next_attempt_at)

        run_with({"mail": config}, scenario)
        assert len(smtp.messages) == 1
    assert queue.status() == {"msg_mail": "sent"}


def test_410_disables_the_channel_loudly_and_others_still_deliver(caplog: pytest.LogCaptureFixture) -> None:
    queue = MemoryQueue()
    queue.add("msg_g1", "gone")
    queue.add("msg_g2", "gone")
    queue.add("msg_ok", "ok")
    with WebhookReceiver(default_status=410) as gone, WebhookReceiver() as ok:
        configs = {"gone": WebhookConfig(url=gone.url, concurrency=1), "ok": WebhookConfig(url=ok.url)}

        async def scenario(channels: dict[str, Channel]) -> DeliveryReport:
            with caplog.at_level(logging.ERROR, logger="monitor.notify"):
                report = await deliver(queue, channels)
            queue.add("msg_g3", "gone", created_at=NOW + timedelta(minutes=1))
            await deliver(queue, channels, NOW + timedelta(minutes=1))
            return report

        report = run_with(configs, scenario)
        assert len(gone.requests) == 1  # nothing more is sent to a disabled endpoint
        assert len(ok.requests) == 1
    assert report.disabled == ["gone"]
    assert "gone" in queue.disabled and "410" in queue.disabled["gone"]
    assert queue.rows["msg_g1"].status == "dead"
    assert queue.rows["msg_ok"].status == "sent"
    for parked in ("msg_g2", "msg_g3"):
        row = queue.rows[parked]
        assert row.status == "pending" and "disabled" in (row.last_error or "")
        assert row.next_attempt_at >= NOW + PARK_INTERVAL
    assert any("CHANNEL DISABLED" in r.getMessage() and "'gone'" in r.getMessage() for r in caplog.records)


def test_a_stuck_channel_does_not_delay_another() -> None:
    queue = MemoryQueue()
    queue.add("msg_slow", "slow")
    queue.add("msg_fast", "fast")
    with WebhookReceiver(hold=True) as slow, WebhookReceiver() as fast:
        configs = {"slow": WebhookConfig(url=slow.url), "fast": WebhookConfig(url=fast.url)}

        worker = threading.Thread(target=deliver_once, args=(configs, queue))
        worker.start()
        try:
            wait_until(lambda: queue.rows["msg_fast"].status == "sent", what="the fast channel's delivery")
            assert queue.rows["msg_slow"].status == "pending" and queue.rows["msg_slow"].leased
        finally:
            slow.release()
            worker.join(timeout=30)
    assert queue.status() == {"msg_slow": "sent", "msg_fast": "sent"}


def test_rate_limit_defers_what_it_cannot_let_through() -> None:
    queue = MemoryQueue()
    for n in range(5):
        queue.add(f"msg_{n}", "hook")
    with WebhookReceiver() as hook:
        report = deliver_once({"hook": WebhookConfig(url=hook.url, rate="2/min")}, queue)
        assert len(hook.requests) == 2
    assert (report.sent, report.deferred, report.retried, report.dead) == (2, 3, 0, 0)
    deferred = [r for r in queue.rows.values() if r.status == "pending"]
    assert len(deferred) == 3
    for row in deferred:
        assert "rate limit" in (row.last_error or "")
        assert row.next_attempt_at > NOW + timedelta(seconds=20)


def test_delivery_for_an_unknown_channel_is_parked_then_dead_after_max_age() -> None:
    queue = MemoryQueue()
    queue.add("msg_x", "removed")
    report = deliver_once({}, queue)
    row = queue.rows["msg_x"]
    assert row.status == "pending" and "not configured" in (row.last_error or "")
    assert row.next_attempt_at >= NOW + PARK_INTERVAL
    assert report.deferred == 1
    deliver_once({}, queue, NOW + timedelta(days=5))
    assert row.status == "dead" and "gave up" in (row.last_error or "")


def test_non_retryable_4xx_is_dead_at_once() -> None:
    queue = MemoryQueue()
    queue.add("msg_bad", "hook")
    with WebhookReceiver([422]) as hook:
        report = deliver_once({"hook": WebhookConfig(url=hook.url)}, queue)
    assert queue.rows["msg_bad"].status == "dead" and report.dead == 1
    assert queue.rows["msg_bad"].history == ["dead"]


def test_retryable_failure_past_the_schedule_is_dead() -> None:
    queue = MemoryQueue()
    queue.add("msg_old", "hook")
    with WebhookReceiver([500]) as hook:
        deliver_once({"hook": WebhookConfig(url=hook.url)}, queue, NOW + timedelta(hours=76))
    row = queue.rows["msg_old"]
    assert (
        row.status == "dead" and "HTTP 500" in (row.last_error or "") and "gave up" in (row.last_error or "")
    )


class BrokenChannel:
    """A channel with a bug (not a receiver failure): the worker must contain it."""

    name = "broken"
    limits = ChannelLimits()

    async def send(self, request: DeliveryRequest) -> None:
        raise RuntimeError("bug in a channel")

    async def aclose(self) -> None:
        pass


def test_a_buggy_channel_is_retried_and_contained() -> None:
    queue = MemoryQueue()
    queue.add("msg_b", "broken")
    queue.add("msg_ok", "hook")
    with WebhookReceiver() as hook:

        async def scenario(channels: dict[str, Channel]) -> DeliveryReport:
            return await deliver(queue, {**channels, "broken": BrokenChannel()})

        report = run_with({"hook": WebhookConfig(url=hook.url)}, scenario)
    assert queue.status() == {"msg_b": "pending", "msg_ok": "sent"}
    assert "bug in a channel" in (queue.rows["msg_b"].last_error or "")
    assert report.retried == 1 and report.sent == 1


def test_timeout_is_retryable() -> None:
    queue = MemoryQueue()
    queue.add("msg_t", "hook")
    with WebhookReceiver(hold=True) as hook:
        deliver_once({"hook": WebhookConfig(url=hook.url, timeout=0.2)}, queue)
        hook.release()
    row = queue.rows["msg_t"]
    assert row.status == "pending" and "timed out" in (row.last_error or "")


def test_report_reads_well_in_a_log_line() -> None:
    report = DeliveryReport(sent=2, retried=1, dead=0, deferred=3, disabled=["x"])
    report.add_error("hook", "HTTP 503")
    report.add_error("hook", "HTTP 503")
    assert str(report) == "sent 2, retried 1, dead 0, deferred 3; disabled: x; hook: HTTP 503 (+1 more)"


def test_delivery_error_is_not_swallowed_into_a_bool() -> None:
    # The channel contract: send() returns None on acceptance and raises otherwise.
    with WebhookReceiver([503]) as hook:

        async def attempt() -> None:
            channel = build_channels({"hook": WebhookConfig(url=hook.url)}, policy=LOCAL)["hook"]
            try:
                await channel.send(DeliveryRequest("msg_z", "hook", (make_payload(),)))
            finally:
                await channel.aclose()

        with pytest.raises(DeliveryError):
            asyncio.run(attempt())


class UnprintableError(Exception):
    """An exception whose repr and str raise: the worker must still record the failure."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class UnprintableChannel:
    name = "odd"
    limits = ChannelLimits()

    async def send(self, request: DeliveryRequest) -> None:
        raise UnprintableError()

    async def aclose(self) -> None:
        pass


def test_a_delivery_failing_for_an_unexpected_reason_gets_an_error_a_retry_and_finally_dead() -> None:
    queue = MemoryQueue()
    queue.add("msg_odd", "odd")
    queue.add("msg_ok", "hook")
    with WebhookReceiver() as hook:

        async def scenario(channels: dict[str, Channel]) -> None:
            report = await deliver(queue, {**channels, "odd": UnprintableChannel()})
            assert report.retried == 1 and report.sent == 1
            row = queue.rows["msg_odd"]
            assert row.status == "pending" and "UnprintableError" in (row.last_error or "")
            assert row.next_attempt_at > NOW
            now = NOW
            for _ in range(20):
                if row.status != "pending":
                    break
                now = row.next_attempt_at
                await deliver(queue, {"odd": UnprintableChannel()}, now)
            assert row.status == "dead" and "UnprintableError" in (row.last_error or "")
            assert row.history.count("retry") >= 5  # it went through the schedule, not dead at once

        run_with({"hook": WebhookConfig(url=hook.url)}, scenario)
    assert queue.status()["msg_ok"] == "sent"


def test_a_delivery_goes_dead_only_after_a_real_attempt() -> None:
    # Three old deliveries (past max_age) to a receiver that is down. The first failure stops the channel for
    # the run; the others used to go dead "not attempted" without ever being sent.
    queue = MemoryQueue()
    for n in range(3):
        queue.add(f"msg_{n}", "hook", created_at=NOW - timedelta(days=5))
    with WebhookReceiver([503, 503, 503]) as hook:
        report = deliver_once({"hook": WebhookConfig(url=hook.url, concurrency=1)}, queue)
        sent_ids = sorted(r.headers["webhook-id"] for r in hook.requests)
    assert queue.status() == {"msg_0": "dead", "msg_1": "dead", "msg_2": "dead"}
    assert sent_ids == ["msg_0", "msg_1", "msg_2"]  # each one really tried once
    for row in queue.rows.values():
        assert "HTTP 503" in (row.last_error or "") and "not attempted" not in (row.last_error or "")
    assert report.dead == 3


def test_young_deliveries_are_still_deferred_when_the_channel_is_down() -> None:
    queue = MemoryQueue()
    for n in range(3):
        queue.add(f"msg_{n}", "hook")
    with WebhookReceiver([503]) as hook:
        report = deliver_once({"hook": WebhookConfig(url=hook.url, concurrency=1)}, queue)
    assert len(hook.requests) == 1 and (report.retried, report.deferred) == (1, 2)
    assert set(queue.status().values()) == {"pending"}
