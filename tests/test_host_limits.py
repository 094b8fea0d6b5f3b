"""Per-host politeness (issue 13 item 2): fetches per host at once, the gap between their starts, and a 429 or
503 from one feed slowing the whole host. Counted at a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from monitor.cli.daemon_cmds import run_once
from monitor.config import load_config
from monitor.errors import FetchError
from monitor.fetch import Fetcher, FetchSettings, HostBusyError
from monitor.netpolicy import NetworkPolicy
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer

LOOPBACK = NetworkPolicy.from_setting(["127.0.0.1/32"])


def quiet() -> bytes:
    feed = FeedBuilder()
    feed.add("q", "Local bakery wins national award", "Bread.")
    return feed.rss()


def test_at_most_n_fetches_per_host_at_once_and_spaced_starts(tmp_path: Path) -> None:
    with FeedServer() as server:
        for index in range(6):
            server.set(f"/f{index}.xml", quiet(), delay=0.4)
        path = write_config(tmp_path, feed_urls=[server.url(f"/f{i}.xml") for i in range(6)])
        path.write_text(
            path.read_text() + "fetch:\n  concurrency: 8\n  per_host_concurrency: 2\n  per_host_gap: 100ms\n"
        )
        outcomes, _ = asyncio.run(run_once(load_config(path)))
        assert [o.status for o in outcomes] == ["ok"] * 6
        assert server.max_in_flight == 2, "six feeds of one host, fetched two at a time"
        starts = sorted(r.at for r in server.requests)
        assert all(b - a >= 0.09 for a, b in itertools.pairwise(starts)), starts


def test_without_a_host_limit_the_same_feeds_overlap(tmp_path: Path) -> None:
    """The control: the limit above is what kept them apart, not the server or the client."""
    with FeedServer() as server:
        for index in range(6):
            server.set(f"/f{index}.xml", quiet(), delay=0.4)
        path = write_config(tmp_path, feed_urls=[server.url(f"/f{i}.xml") for i in range(6)])
        path.write_text(
            path.read_text() + "fetch:\n  concurrency: 8\n  per_host_concurrency: 0\n  per_host_gap: 0s\n"
        )
        asyncio.run(run_once(load_config(path)))
        assert server.max_in_flight >= 4


def test_a_429_on_one_feed_pauses_the_whole_host() -> None:
    async def go(server: FeedServer) -> tuple[str, str, float]:
        settings = FetchSettings(per_host_concurrency=2, per_host_gap=0.0, total_timeout=10.0)
        async with Fetcher(settings, LOOPBACK) as fetcher:
            with pytest.raises(FetchError) as first:
                await fetcher.fetch(server.url("/a.xml"))
            started = time.monotonic()
            await fetcher.fetch(server.url("/b.xml"))  # waits out the 1 s pause the host asked for
            waited = time.monotonic() - started
            server.set("/a.xml", b"slow down", status=429, retry_after="3600")
            with pytest.raises(FetchError):
                await fetcher.fetch(server.url("/a.xml"))
            with pytest.raises(FetchError) as second:
                await fetcher.fetch(server.url("/b.xml"))
            assert second.value.retry_after is not None and second.value.retry_after > 3000
            return str(first.value), str(second.value), waited

    with FeedServer() as server:
        server.set("/a.xml", b"slow down", status=429, retry_after="1")
        server.set("/b.xml", quiet())
        first, second, waited = asyncio.run(go(server))
    assert "HTTP 429" in first
    assert waited >= 0.8, "the other feed of the host waited for the host's Retry-After"
    assert "asked to slow down (HTTP 429 on" in second, second
    assert server.count("/b.xml") == 1, "under an hour's pause the other feed was not requested at all"


def test_the_deadline_covers_the_wait_for_a_turn_and_a_fetch_that_never_got_one_is_not_a_failure() -> None:
    """A claimed feed's fetch must end within its lease: waiting for the host counts against the deadline, and
    a fetch that got no turn at all is HostBusyError (not the feed's failure), never a late request."""

    async def go(server: FeedServer) -> tuple[BaseException | None, int]:
        settings = FetchSettings(per_host_concurrency=1, per_host_gap=0.0, total_timeout=1.0)
        async with Fetcher(settings, LOOPBACK) as fetcher:
            busy: BaseException | None = None
            async with fetcher.hosts.slot(
                server.url("/other.xml")
            ):  # another fetch of the host holds its slot
                try:
                    await fetcher.fetch(server.url("/b.xml"))
                except FetchError as exc:
                    busy = exc
            sent_while_busy = server.count("/b.xml")
            await fetcher.fetch(server.url("/b.xml"))  # the slot is free again: fetched
            return busy, sent_while_busy

    with FeedServer() as server:
        server.set("/b.xml", quiet())
        busy, sent_while_busy = asyncio.run(go(server))
        assert server.count("/b.xml") == 1
    assert isinstance(busy, HostBusyError) and "no turn at 127.0.0.1 within 1s" in str(busy), busy
    assert sent_while_busy == 0, "the fetch that got no turn was never sent"
