"""/metrics: counters and histograms per stage, measured through a real runtime (feeds on a FeedServer, a real
webhook receiver, a real SQLite file), and the exposition checked by `promtool check metrics` where promtool is
installed (scripts/test installs Debian's prometheus package for it)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.metrics import Metrics
from monitor.rules import load_rules
from monitor.service import open_runtime, poll_all
from monitor.status import prometheus_text
from tests.support.daemonproc import FeedBuilder
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one series in exposition text; fails the test when the series is absent."""
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)\n"
    found = re.search("^" + pattern, text, re.M)
    assert found, f"{name}{{{labels}}} not in\n{text}"
    return float(found.group(1))


def run_polls(tmp_path: Path, server: FeedServer, hook: WebhookReceiver) -> tuple[str, Metrics]:
    feed = FeedBuilder()
    feed.add_headlines("n", range(3))  # 3 items, each firing default rules on its own story
    server.set("/wire.xml", feed.rss(), etag='"v1"')
    config = MonitorConfig.model_validate(
        {
            "database": tmp_path / "m.db",
            "allow_private_networks": ["127.0.0.1/32"],
            "feeds": [{"url": server.url("/wire.xml")}, {"url": server.url("/gone.xml")}],
            "channels": {"hook": {"type": "webhook", "url": hook.url}},
        }
    )
    metrics = Metrics()

    async def run() -> str:
        async with open_runtime(config, load_rules(DEFAULT_RULES), metrics=metrics) as runtime:
            await poll_all(runtime)
            await poll_all(runtime, [server.url("/wire.xml")])  # not modified the second time
            await runtime.deliver()
            return prometheus_text(runtime.store, datetime.now(UTC), metrics).decode()

    return asyncio.run(run()), metrics


def test_counters_and_histograms_follow_polls_matches_alerts_and_deliveries(tmp_path: Path) -> None:
    with FeedServer() as server, WebhookReceiver() as hook:
        text, _ = run_polls(tmp_path, server, hook)
        received = len(hook.requests)
    assert sample(text, "monitor_polls_total", 'outcome="ok"') == 1
    assert sample(text, "monitor_polls_total", 'outcome="not_modified"') == 1
    assert sample(text, "monitor_polls_total", 'outcome="error"') == 1  # /gone.xml answers 404
    assert sample(text, "monitor_items_new_total") == 3
    # "Putin signs decree on rare earth metals mining": rare-earths and actor-putin
    assert sample(text, "monitor_rule_matches_total", 'rule="rare-earths"') >= 1
    assert sample(text, "monitor_rule_matches_total", 'rule="actor-putin"') >= 1
    alerts = sum(float(v) for v in re.findall(r"^monitor_alerts_total\{[^}]*\} (\S+)$", text, re.M))
    assert alerts >= 3
    # One notification per story on the channel (issue 8), naming every rule that fired on it: 3 stories.
    assert sample(text, "monitor_notifications_total", 'channel="hook",kind="alert"') == received == 3
    assert sample(text, "monitor_delivery_outcomes_total", 'channel="hook",outcome="sent"') == received
    assert received < alerts
    assert sample(text, "monitor_delivery_latency_seconds_count", 'channel="hook"') == received
    assert sample(text, "monitor_fetch_duration_seconds_count") == 3
    assert sample(text, "monitor_poll_lag_seconds_count") == 3
    # per-feed last success: a timestamp for the good feed, 0 for the one that never succeeded
    assert (
        sample(text, "monitor_feed_last_success_timestamp_seconds", f'feed="{server.url("/wire.xml")}"') > 1e9
    )
    assert (
        sample(text, "monitor_feed_last_success_timestamp_seconds", f'feed="{server.url("/gone.xml")}"') == 0
    )
    assert sample(text, "monitor_feed_consecutive_errors", f'feed="{server.url("/gone.xml")}"') == 1
    assert "# TYPE monitor_polls_total counter" in text
    assert "# TYPE monitor_delivery_latency_seconds histogram" in text
    assert "# TYPE monitor_feed_last_success_timestamp_seconds gauge" in text


def test_failed_deliveries_are_counted_by_outcome(tmp_path: Path) -> None:
    with FeedServer() as server, WebhookReceiver(default_status=400) as hook:
        text, _ = run_polls(tmp_path, server, hook)
    assert sample(text, "monitor_delivery_outcomes_total", 'channel="hook",outcome="dead"') >= 3
    assert 'outcome="sent"' not in text


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_finds_nothing_to_complain_about(tmp_path: Path) -> None:
    with FeedServer() as server, WebhookReceiver() as hook:
        text, _ = run_polls(tmp_path, server, hook)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
