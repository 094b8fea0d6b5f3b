"""Prometheus metrics: counters and histograms per stage, and gauges read from the store at scrape time.

One `Metrics` object per daemon (its own registry, so tests and a reloaded runtime never share counters with
another instance). The pipeline reports each poll, the delivery worker each outcome (through `MeteredQueue`,
which wraps the outbox as the worker sees it), and `/metrics` serves `exposition()`.

Counters count from the daemon's start, as Prometheus expects (`rate()` handles restarts). Gauges that describe
the state of record (feeds failing, deliveries pending, a feed's last success) are read from the store on each
scrape by `StoreCollector`, so they are right across restarts and for feeds that never succeeded (their
last-success timestamp is 0, the Prometheus convention for "never").

Names follow the Prometheus rules: a `monitor_` prefix, base units (seconds), `_total` on counters,
`_timestamp_seconds` on the one timestamp gauge; `promtool check metrics` passes (tests/test_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.notify import DeliveryQueue
from monitor.types import DeliveryRequest

__all__ = ["CONTENT_TYPE", "MeteredQueue", "Metrics", "StoreCollector"]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# `_created` series double every counter for no use on a dashboard.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds. Fetches: most answer within a second, the total deadline is 60 s by default.
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds a poll started after its feed was due: a tick is 2 s; minutes mean the daemon cannot keep up.
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# Seconds from the fetch that found the item to the receiver accepting the delivery (includes group_wait,
# digests and retries: it is what an analyst waits).
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0)


class Metrics:
    """The daemon's counters and histograms."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.polls = Counter("monitor_polls", "Feed polls by outcome.", ["outcome"], registry=r)
        self.new_items = Counter("monitor_items_new", "New items recorded.", registry=r)
        self.matches = Counter(
            "monitor_rule_matches", "Rule matches on new items, per rule.", ["rule"], registry=r
        )
        self.alerts = Counter("monitor_alerts", "Alerts raised, per rule.", ["rule"], registry=r)
        self.notifications = Counter(
            "monitor_notifications",
            "Notifications queued in the outbox, per channel and kind.",
            ["channel", "kind"],
            registry=r,
        )
        self.delivery_outcomes = Counter(
            "monitor_delivery_outcomes",
            "Delivery attempts by channel and outcome (sent, retry, dead).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "monitor_delivery_latency_seconds",
            "From the fetch that found the item to the receiver accepting it, per channel.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.fetch_duration = Histogram(
            "monitor_fetch_duration_seconds", "Duration of one feed fetch.", buckets=FETCH_BUCKETS, registry=r
        )
        self.poll_lag = Histogram(
            "monitor_poll_lag_seconds",
            "How late a poll started after its feed was due.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.health_notices = Counter(
            "monitor_feed_health_notices",
            "Feed health notices by condition and outcome (queued, or suppressed by the rate limit).",
            ["condition", "outcome"],
            registry=r,
        )
        for outcome in ("ok", "not_modified", "error"):
            self.polls.labels(outcome)  # present at 0 from the start, so rate() works on the first failure

    def poll(self, outcome: str, *, fetch_seconds: float | None, lag_seconds: float | None) -> None:
        self.polls.labels(outcome.replace("-", "_")).inc()
        if fetch_seconds is not None:
            self.fetch_duration.observe(fetch_seconds)
        if lag_seconds is not None:
            self.poll_lag.observe(max(lag_seconds, 0.0))

    def recorded(
        self,
        *,
        new_items: int,
        matches: Iterable[str],
        alerts: Iterable[str],
        notifications: Iterable[str],
        kind: str = "alert",
    ) -> None:
        """One committed fetch: how many new items, the rule id of each match and alert, the channel of each
        notification queued."""
        self.new_items.inc(new_items)
        for rule in matches:
            self.matches.labels(rule).inc()
        for rule in alerts:
            self.alerts.labels(rule).inc()
        for channel in notifications:
            self.notifications.labels(channel, kind).inc()

    def notified(self, created: Iterable[tuple[str, str]]) -> None:
        """Outbox rows a committed fetch created: (channel, delivery kind). An alert that joined a story's
        open notification created none; an escalation counts as kind "escalation", the rest as "alert"."""
        for channel, kind in created:
            self.notifications.labels(channel, "escalation" if kind == "escalation" else "alert").inc()

    def health_notice(self, condition: str, outcome: str, channels: Iterable[str]) -> None:
        self.health_notices.labels(condition, outcome).inc()
        for channel in channels:
            self.notifications.labels(channel, "feed_health").inc()

    def delivered(self, channel: str, outcome: str, latency_seconds: float | None = None) -> None:
        self.delivery_outcomes.labels(channel, outcome).inc()
        if latency_seconds is not None:
            self.delivery_latency.labels(channel).observe(max(latency_seconds, 0.0))

    def exposition(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


class _Feed(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def active(self) -> bool: ...
    @property
    def error_count(self) -> int: ...
    @property
    def last_success_at(self) -> datetime | None: ...


class StoreCollector(Collector):
    """Gauges of the state of record, read on each scrape: `snapshot()` gives the summary figures (the same as
    `/status`), `feeds()` the per-feed rows."""

    def __init__(
        self, snapshot: Callable[[], Mapping[str, Any]], feeds: Callable[[], Iterable[_Feed]]
    ) -> None:
        self._snapshot = snapshot
        self._feeds = feeds

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        yield GaugeMetricFamily(
            "monitor_feeds_active", "Feeds in the configuration.", snap["feeds"]["active"]
        )
        yield GaugeMetricFamily(
            "monitor_feeds_failing", "Feeds whose last poll failed.", snap["feeds"]["failing"]
        )
        yield GaugeMetricFamily(
            "monitor_feeds_parked",
            "Feeds parked (410 Gone or failing too long).",
            snap["feeds"].get("parked", 0),
        )
        deliveries = GaugeMetricFamily("monitor_deliveries", "Deliveries by status.", labels=["status"])
        for status in ("pending", "dead", "sent"):
            deliveries.add_metric([status], snap["deliveries"][status])
        yield deliveries
        yield GaugeMetricFamily(
            "monitor_oldest_pending_delivery_seconds",
            "Age of the oldest delivery not yet accepted by its receiver.",
            snap["deliveries"]["oldest_pending_seconds"],
        )
        yield GaugeMetricFamily(
            "monitor_channels_disabled", "Channels disabled after HTTP 410.", len(snap["disabled_channels"])
        )
        yield GaugeMetricFamily(
            "monitor_nodes_live",
            "Daemons heard from within cluster.dead_after on this database.",
            len(snap.get("nodes", ())),
        )
        rows = GaugeMetricFamily("monitor_rows", "Rows per store table.", labels=["table"])
        for table, count in sorted(snap["totals"].items()):
            rows.add_metric([table], count)
        yield rows
        success = GaugeMetricFamily(
            "monitor_feed_last_success_timestamp_seconds",
            "Unix time of the feed's last successful poll; 0 when it never succeeded.",
            labels=["feed"],
        )
        streak = GaugeMetricFamily(
            "monitor_feed_consecutive_errors", "Failed polls in a row, per feed.", labels=["feed"]
        )
        for feed in self._feeds():
            if not feed.active:
                continue
            last = feed.last_success_at.timestamp() if feed.last_success_at is not None else 0.0
            success.add_metric([feed.url], last)
            streak.add_metric([feed.url], feed.error_count)
        yield success
        yield streak


class MeteredQueue:
    """The outbox as the delivery worker sees it, counting each outcome per channel on the way through.

    Latency is measured from the delivery's `created_at`, which is the time of the fetch that found the item
    (the alert is recorded in that fetch's transaction), to the moment the receiver's acceptance is recorded."""

    def __init__(self, queue: DeliveryQueue, metrics: Metrics) -> None:
        self._queue = queue
        self._metrics = metrics
        self._claimed: dict[str, DeliveryRequest] = {}

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]:
        requests = self._queue.claim_due(now, limit, channel)
        for request in requests:
            self._claimed[request.id] = request
        return requests

    def mark_sent(self, delivery_id: str, now: datetime) -> None:
        self._queue.mark_sent(delivery_id, now)
        request = self._claimed.pop(delivery_id, None)
        if request is not None:
            latency = (now - request.created_at).total_seconds() if request.created_at else None
            self._metrics.delivered(request.channel, "sent", latency)

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None:
        self._queue.mark_retry(delivery_id, error, now, retry_at)
        request = self._claimed.pop(delivery_id, None)
        if request is not None:
            self._metrics.delivered(request.channel, "retry")

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None:
        self._queue.mark_dead(delivery_id, error, now)
        request = self._claimed.pop(delivery_id, None)
        if request is not None:
            self._metrics.delivered(request.channel, "dead")

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None:
        self._queue.disable_channel(channel, reason, now)

    def disabled_channels(self) -> set[str]:
        return self._queue.disabled_channels()
