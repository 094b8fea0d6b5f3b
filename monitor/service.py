"""The daemon: wiring, the clock, signals, and the runtime shared by `run`, `once` and `demo`.

The store is the schedule of record; APScheduler is only the clock. Three jobs:
  tick          every few seconds: claim the feeds that are due (by the store) and poll them, a bounded number
                at a time;
  deliver       drain the outbox: send what is due, mark it sent only after the receiver accepted it;
  housekeeping  hourly: prune old items (identity keys stay far longer) and expire story signatures.
A restart resumes from the store. SIGTERM/SIGINT stop claiming new work, let polls and deliveries in flight
finish (bounded by a drain timeout; an abandoned delivery stays pending and is sent after restart), then exit.
SIGHUP reloads monitor.yaml and the rules; an invalid new version is refused and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import systemd
from monitor.config import MonitorConfig, load_config
from monitor.errors import ConfigError, MonitorError
from monitor.fetch import Fetcher, FetchSettings
from monitor.netpolicy import NetworkPolicy
from monitor.notify import Channel, DeliveryReport, build_channels, deliver_due
from monitor.pipeline import FeedOutcome, Pipeline
from monitor.rules import RuleSet, load_rules
from monitor.store import SQLiteStore
from monitor.stories import StoryIndex
from monitor.timeutil import utcnow

__all__ = ["Daemon", "Runtime", "check_config", "open_runtime", "poll_all"]

log = logging.getLogger("monitor.service")

TICK_SECONDS = 2.0
DRAIN_TIMEOUT = 20.0


def check_config(config: MonitorConfig) -> RuleSet:
    """Load the rules and check that the config and rules agree (channel names). Raises ConfigError."""
    ruleset = load_rules(config.rules)
    for rule in ruleset.rules:
        for name in rule.notify or ():
            if name not in config.channels:
                known = ", ".join(sorted(config.channels)) or "none configured"
                raise ConfigError(
                    f"rule {rule.id!r} notifies unknown channel {name!r} (channels: {known})",
                    file=rule.file,
                    line=rule.line,
                    field="notify",
                )
    return ruleset


@dataclass
class Runtime:
    """Everything a poll or a delivery needs, opened together and closed together."""

    config: MonitorConfig
    store: SQLiteStore
    fetcher: Fetcher
    channels: dict[str, Channel]
    pipeline: Pipeline
    last_report: DeliveryReport | None = field(default=None)

    async def deliver(self, now: datetime | None = None) -> DeliveryReport:
        report = await deliver_due(self.store, self.channels, now=now, limit=self.config.delivery.batch)
        self.last_report = report
        return report


def fetch_settings(config: MonitorConfig) -> FetchSettings:
    options = config.fetch
    return FetchSettings(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        total_timeout=options.total_timeout,
        max_bytes=options.max_bytes,
        max_redirects=options.max_redirects,
    )


def load_story_index(config: MonitorConfig, store: SQLiteStore, now: datetime) -> StoryIndex:
    index = StoryIndex(window=config.stories.window)
    index.load(store.story_signatures(now - config.stories.window))
    return index


@contextlib.asynccontextmanager
async def open_runtime(config: MonitorConfig, ruleset: RuleSet) -> AsyncIterator[Runtime]:
    now = utcnow()
    policy = NetworkPolicy.from_setting(config.allow_private_networks)
    store = SQLiteStore(config.database)
    try:
        store.sync_feeds([(f.url, config.feed_interval(f)) for f in config.feeds], now)
        stories = load_story_index(config, store, now)
        channels = build_channels(config.channels, policy=policy)
        try:
            async with Fetcher(fetch_settings(config), policy) as fetcher:
                pipeline = Pipeline(
                    config=config, store=store, fetcher=fetcher, ruleset=ruleset, stories=stories
                )
                yield Runtime(config, store, fetcher, channels, pipeline)
        finally:
            for channel in channels.values():
                await channel.aclose()
    finally:
        store.close()


async def poll_all(runtime: Runtime, urls: list[str] | None = None) -> list[FeedOutcome]:
    """Poll the given feeds (default: every configured feed) with bounded concurrency."""
    targets = urls if urls is not None else [f.url for f in runtime.config.feeds]
    limit = asyncio.Semaphore(runtime.config.fetch.concurrency)

    async def one(url: str) -> FeedOutcome:
        async with limit:
            return await runtime.pipeline.poll(url)

    return list(await asyncio.gather(*(one(url) for url in targets)))


class Daemon:
    """`monitor run`: poll on schedule, deliver, reload on SIGHUP, drain on SIGTERM."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._delivering: asyncio.Task[None] | None = None
        self._poll_slots = asyncio.Semaphore(8)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        config = load_config(self.config_path)
        ruleset = check_config(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        try:
            while not self._stop.is_set():
                await self._run_with(config, ruleset)
                if self._reload.is_set():
                    self._reload.clear()
                    config, ruleset = self._reloaded(config, ruleset)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            systemd.notify("STOPPING=1")

    def _reloaded(self, config: MonitorConfig, ruleset: RuleSet) -> tuple[MonitorConfig, RuleSet]:
        try:
            new_config = load_config(self.config_path)
            new_rules = check_config(new_config)
        except MonitorError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return config, ruleset
        log.info(
            "reloaded %s: %d feeds, %d rules", self.config_path, len(new_config.feeds), len(new_rules.rules)
        )
        return new_config, new_rules

    async def _run_with(self, config: MonitorConfig, ruleset: RuleSet) -> None:
        self._poll_slots = asyncio.Semaphore(config.fetch.concurrency)
        async with open_runtime(config, ruleset) as runtime:
            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.add_job(
                self._tick,
                "interval",
                seconds=TICK_SECONDS,
                args=[runtime],
                id="tick",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now().astimezone(),
            )
            scheduler.add_job(
                self._deliver,
                "interval",
                seconds=config.delivery.poll.total_seconds(),
                args=[runtime],
                id="deliver",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now().astimezone(),
            )
            scheduler.add_job(
                self._housekeeping,
                "interval",
                hours=1,
                args=[runtime],
                id="housekeeping",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now().astimezone(),
            )
            watchdog = systemd.watchdog_interval()
            if watchdog:
                scheduler.add_job(
                    systemd.notify, "interval", seconds=watchdog, args=["WATCHDOG=1"], id="watchdog"
                )
            scheduler.start()
            systemd.notify(
                "READY=1", f"STATUS=watching {len(config.feeds)} feeds with {len(ruleset.rules)} rules"
            )
            log.info(
                "monitor running: %d feeds, %d rules, %d channels, database %s",
                len(config.feeds),
                len(ruleset.rules),
                len(runtime.channels),
                config.database,
            )
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload.wait())
            try:
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                reload.cancel()
                scheduler.shutdown(wait=False)
                await self._drain()

    async def _drain(self) -> None:
        """Let polls and deliveries in flight finish, for at most DRAIN_TIMEOUT. What is abandoned is safe: a
        poll's transaction never committed (the feed stays due), a delivery's lease runs out (sent again)."""
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return
        systemd.notify("STATUS=finishing work in flight")
        _done, still = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT)
        for task in still:
            task.cancel()
        if still:
            log.warning("abandoned %d tasks at shutdown; they are retried after restart", len(still))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick(self, runtime: Runtime) -> None:
        """Claim the due feeds and start polling them; returns at once (polls run as tasks, bounded by
        fetch.concurrency), so a slow feed never holds up the clock."""
        if self._stop.is_set():
            return
        for state in runtime.store.due_feeds(utcnow()):
            if state.url not in self._in_flight:
                self._in_flight.add(state.url)
                self._spawn(self._poll_one(runtime, state.url))

    async def _poll_one(self, runtime: Runtime, url: str) -> None:
        try:
            async with self._poll_slots:
                if self._stop.is_set():
                    return
                outcome = await runtime.pipeline.poll(url)
        except Exception:
            # A bug in one feed's processing must not kill the daemon; the feed stays due and is retried.
            log.exception("feed %s: unexpected error while polling", url)
            return
        finally:
            self._in_flight.discard(url)
        if outcome.status == "ok" and (outcome.new_items or outcome.alerts):
            log.info(
                "feed %s: %d new items, %d matches, %d alerts, %d folded into stories",
                outcome.url,
                outcome.new_items,
                outcome.matches,
                outcome.alerts,
                outcome.folded,
            )
        if outcome.alerts and not self._stop.is_set():
            await self._deliver(runtime)

    async def _deliver(self, runtime: Runtime) -> None:
        """Drain the outbox once; a run already in progress is not doubled (it will pick up new rows)."""
        if self._delivering is not None and not self._delivering.done():
            return
        self._delivering = self._spawn(self._deliver_once(runtime))

    async def _deliver_once(self, runtime: Runtime) -> None:
        try:
            report = await runtime.deliver()
        except Exception:
            log.exception("delivery run failed; the outbox keeps every pending delivery")
            return
        if report.sent or report.retried or report.dead:
            log.info("delivered: %s", report)

    async def _housekeeping(self, runtime: Runtime) -> None:
        now = utcnow()
        retention = runtime.config.retention
        counts = runtime.store.prune(now, item_max_age=retention.items, key_max_age=retention.identity_keys)
        expired = runtime.pipeline.stories.expire(now - runtime.config.stories.window)
        if any(counts.values()) or expired:
            log.info("housekeeping: pruned %s, expired %d story signatures", counts, expired)
