"""A freed poll slot claims the next due feed at once, not at the clock's next tick.

Before, each tick claimed at most fetch.concurrency feeds, so the daemon polled at most 8 feeds per 2 s tick
(4 a second, 14,400 polls an hour): too few for 10,000 feeds at a 10-minute interval, however fast each poll
was (found by bench/bench_steady.py: 300 feeds took 78 s to poll once). Here the tick is an hour, so only a
refill on completion can poll more than the first `concurrency` feeds; the daemon runs in this process.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor import service
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer

FEEDS = 24


def test_all_due_feeds_are_polled_within_one_tick(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "TICK_SECONDS", 3600.0)
    feed = FeedBuilder()
    feed.add("a", "Local bakery wins national award", "Bread.")
    with FeedServer() as server:
        paths = [f"/feed{n}.xml" for n in range(FEEDS)]
        for path in paths:
            server.set(path, feed.rss())
        config = write_config(
            tmp_path,
            feed_urls=[server.url(path) for path in paths],
            interval="1h",
            extra=["fetch: {concurrency: 2, per_host_concurrency: 0, per_host_gap: 0s}"],
        )
        daemon = service.Daemon(config)

        async def run_until_all_polled() -> None:
            running = asyncio.ensure_future(daemon.run())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while not all(server.count(path) for path in paths) and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the counts live in the server's thread: polled, not awaited
            daemon.request_stop()
            await running

        asyncio.run(run_until_all_polled())
        counts = [server.count(path) for path in paths]
    assert counts == [1] * FEEDS, "every feed polled once in the first tick, none twice"
