"""The daemon: wiring, the clock, signals, and the runtime shared by `run`, `once` and `demo`.

The store is the schedule of record; APScheduler is only the clock. Four jobs:
  tick          every few seconds: claim as many due feeds as there are free poll slots (a lease with a
                fencing token each) and poll them;
  deliver       drain the outbox: send what is due, mark it sent only after the receiver accepted it;
  heartbeat     tell the other nodes on the database this one is alive; release what silent ones hold;
  housekeeping  hourly: prune old items (once per cluster; identity keys stay far longer) and expire this
                node's story signatures.
A restart resumes from the store. SIGTERM/SIGINT stop claiming new work, let polls and deliveries in flight
finish (bounded by a drain timeout; an abandoned delivery stays pending and is sent after restart), then exit;
a second SIGTERM/SIGINT abandons what is still in flight at once. SIGHUP reloads monitor.yaml and the rules; an
invalid new version is refused and the old one kept.

One daemon per SQLite database: `run` holds an exclusive lock on `<database>.lock` for its lifetime. Because no
other daemon can hold a delivery lease then, every lease found on start belongs to a process that died
(kill -9, power loss) and is released at once, instead of after DELIVERY_LEASE: the delivery is sent again
with the same id (at-least-once) without a five-minute gap.

On PostgreSQL there is no file lock: several daemons share the database, each a node with heartbeats, and they
coordinate in it (leases and fencing tokens on feeds and deliveries, a cluster-wide lock around story
assignment; see docs/design/cluster.md). A starting node releases only the claims of nodes that went silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from monitor import __version__, systemd
from monitor.config import MonitorConfig, load_config
from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.fetch import Fetcher, FetchSettings
from monitor.metrics import MeteredQueue, Metrics
from monitor.netpolicy import NetworkPolicy
from monitor.normalize import primary_language
from monitor.notify import Channel, DeliveryReport, build_channels, deliver_due
from monitor.pipeline import FeedOutcome, Pipeline
from monitor.rules import RuleSet, load_rules
from monitor.store import FeedClaim, NodeInfo, Store, open_store
from monitor.storebatch import Batch
from monitor.storethread import StoreThread
from monitor.stories import StoryIndex
from monitor.text import prefer_languages
from monitor.timeutil import utcnow
from monitor.workers import WorkerPool, WorkerSetup, empty_story_index, worker_count

if TYPE_CHECKING:
    # `monitor run` only: imported where the daemon starts them, so that `monitor once` does not load the
    # scheduler, the status page's templates or the WebSub client (bench/RESULTS.md, start-up imports).
    from monitor.status import StatusServer
    from monitor.websub import WebSub

__all__ = [
    "Daemon",
    "DatabaseLock",
    "Runtime",
    "check_config",
    "detection_languages",
    "node_identity",
    "open_runtime",
    "poll_all",
]

log = logging.getLogger("monitor.service")

TICK_SECONDS = 2.0
# How long a feed whose poll could not be recorded (a busy, read-only or full database) waits before the next try.
STORE_RETRY = timedelta(seconds=30)
DRAIN_TIMEOUT = 20.0
HOUSEKEEPING_SECONDS = 3600.0
# How often WebSub subscriptions are checked (new hubs subscribed, refusals retried, leases renewed at 80 %).
WEBSUB_UPKEEP_SECONDS = 60.0
# A little under the job's period, so the node whose turn it is still finds the job free despite scheduler jitter.
HOUSEKEEPING_JOB_PERIOD = timedelta(seconds=HOUSEKEEPING_SECONDS - 60)


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
    store: Store
    fetcher: Fetcher
    channels: dict[str, Channel]
    pipeline: Pipeline
    metrics: Metrics
    store_thread: StoreThread = field(default_factory=StoreThread)
    last_report: DeliveryReport | None = field(default=None)

    async def deliver(self, now: datetime | None = None, *, channel: str | None = None) -> DeliveryReport:
        """Send what is due: every channel's deliveries, or `channel`'s only."""
        report = await deliver_due(
            MeteredQueue(self.store, self.metrics),
            self.channels,
            now=now,
            limit=self.config.delivery.batch,
            retry=self.config.delivery.retry_policy(),
            channel=channel,
            store_thread=self.store_thread,
        )
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
        per_host_concurrency=options.per_host_concurrency,
        per_host_gap=options.per_host_gap.total_seconds(),
        transport=options.transport,
    )


def load_story_index(config: MonitorConfig, store: Store, now: datetime) -> tuple[StoryIndex, int]:
    """The story index rebuilt from the store, and the commit sequence number it is current to. The number is
    read first: an item committed while the index loads is then caught up with (and skipped if loaded). The
    load itself waits for the index's first use (on the store thread, like every store call of a poll), so a
    run in which nothing is new never reads the stored window (`StoryIndex.defer_load`)."""
    seq = store.item_seq()
    index = empty_story_index(config.stories)
    index.defer_load(store.story_signatures, now - config.stories.window)
    return index, seq


def node_identity(config: MonitorConfig) -> NodeInfo:
    """This process as a node of the cluster: its configured name (else the host name), pid and a random
    suffix, so a restart that reuses a pid is another node."""
    host = socket.gethostname()
    name = config.cluster.node or host
    return NodeInfo(f"{name}:{os.getpid()}:{secrets.token_hex(3)}", host, os.getpid(), __version__)


def detection_languages(config: MonitorConfig, ruleset: RuleSet) -> list[str]:
    """Languages language detection prefers besides the default ones: the rules' language scopes and the
    languages configured for feeds (an item in them must not be taken for a near neighbour)."""
    found = [language for rule in ruleset.rules for language in rule.languages]
    found += [code for feed in config.feeds if (code := primary_language(feed.language))]
    return sorted(set(found))


@contextlib.asynccontextmanager
async def open_runtime(
    config: MonitorConfig,
    ruleset: RuleSet,
    *,
    clock: Callable[[], datetime] = utcnow,
    metrics: Metrics | None = None,
) -> AsyncIterator[Runtime]:
    """Open the store, channels and HTTP client for `config`; `clock` is the time every stage reads.

    On SQLite, holds the database's process lock while open: one writing process (daemon, `once`, demo) per
    file, so deliveries and feeds a dead process left claimed are released on open (sent again, same ids).
    On PostgreSQL several processes share the database: only the claims of nodes that stopped sending
    heartbeats are released. The runtime registers itself as a node either way (`monitor nodes`), and gives
    back what it still holds when it closes. `metrics` outlives a runtime (the daemon keeps its counters
    across reloads); by default a fresh set."""
    now = clock()
    metrics = metrics if metrics is not None else Metrics()
    languages = detection_languages(config, ruleset)
    prefer_languages(languages)
    policy = NetworkPolicy.from_setting(config.allow_private_networks)
    # One writing process per SQLite file (the process lock); PostgreSQL serves several, which coordinate in
    # the database itself (leases, fencing tokens, advisory locks: monitor.store.postgres).
    lock = DatabaseLock(config.database) if isinstance(config.database, Path) else None
    if lock is not None:
        lock.acquire()
    node = node_identity(config)
    try:
        store = open_store(
            config.database,
            node=node,
            delivery_lease=config.cluster.delivery_lease,
            busy_timeout=config.database_busy_timeout,
        )
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    # One pool per runtime, i.e. per version of the config and rules: a reload drains the polls, closes this
    # pool and makes one with the new rule set (monitor.workers). Its processes start only when the first feed
    # body that needs parsing arrives (WorkerPool.ready): a round of 304s starts none.
    count = worker_count(config.workers)
    workers = WorkerPool(count, WorkerSetup.of(config, ruleset, languages)) if count else None
    try:
        if store.concurrent:
            released = store.reap_nodes(now, config.cluster.dead_after)
            if released:
                log.warning(
                    "%d feed leases and delivery claims of nodes that stopped sending heartbeats released; "
                    "they are taken over now (deliveries keep their ids)",
                    released,
                )
        else:
            released = store.release_claims(now)
            if released:
                log.warning(
                    "%d deliveries were claimed by a process that stopped mid-send; sending them again "
                    "(same delivery ids)",
                    released,
                )
        store.register_node(now)
        store.sync_feeds([(f.url, config.feed_interval(f)) for f in config.feeds], now)
        stories, story_seq = load_story_index(config, store, now)
        channels = build_channels(config.channels, policy=policy)
        store_thread = StoreThread()
        try:
            async with Fetcher(fetch_settings(config), policy) as fetcher:
                pipeline = Pipeline(
                    config=config,
                    store=store,
                    fetcher=fetcher,
                    ruleset=ruleset,
                    stories=stories,
                    clock=clock,
                    metrics=metrics,
                    story_seq=story_seq,
                    store_thread=store_thread,
                    workers=workers,
                )
                yield Runtime(config, store, fetcher, channels, pipeline, metrics, store_thread)
        finally:
            for channel in channels.values():
                await channel.aclose()
            # A call abandoned by a cancelled task still runs to its commit or rollback: wait for it before
            # the connection closes.
            await asyncio.get_running_loop().run_in_executor(None, store_thread.close)
    finally:
        if workers is not None:
            await workers.close()
        try:
            given_back = store.stop_node(clock())
            if given_back:
                log.warning(
                    "%d delivery claims and feed leases given back at stop; abandoned deliveries are sent "
                    "again with the same delivery ids",
                    given_back,
                )
        except Exception:
            # The database may be what failed; the leases then run out by themselves.
            log.exception("could not record this node's stop; its leases run out by themselves")
        store.close()
        if lock is not None:
            lock.release()


async def poll_all(
    runtime: Runtime,
    urls: list[str] | None = None,
    *,
    respect_backoff: bool = False,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> list[FeedOutcome]:
    """Poll the given feeds (default: every configured feed that is not parked) with bounded concurrency.

    Each feed is claimed just before it is fetched (not all at once, so no claim waits for a slot past its
    lease); a feed another node is fetching right now is skipped and said so. With `respect_backoff` (what
    `monitor once` does unless --force), so is a feed in backoff after failures, or under a server's
    Retry-After, until its next attempt is due: a cron job running `once` every few minutes must not hammer a
    feed that is down or a server that asked for a pause."""
    feeds = {f.url: f for f in await runtime.store_thread.run(runtime.store.list_feeds)}
    targets = (
        urls
        if urls is not None
        else [
            f.url for f in runtime.config.feeds if feeds.get(f.url) is None or feeds[f.url].parked_at is None
        ]
    )
    limit = asyncio.Semaphore(runtime.config.fetch.concurrency)
    lease = runtime.config.cluster.lease
    now = runtime.pipeline.clock()

    def claim_many(urls: Sequence[str]) -> list[FeedClaim | None]:
        claimed = {
            claim.url: claim
            for claim in runtime.store.claim_feeds(
                runtime.pipeline.clock(), lease, limit=len(urls), urls=list(urls)
            )
        }
        return [claimed.pop(url, None) for url in urls]  # a URL asked twice is claimed once

    # Each feed is claimed as it gets a slot; the claims that come while the store thread is busy (a slot
    # frees as each poll ends) go in one statement and one COMMIT (monitor.storebatch).
    claims: Batch[str, FeedClaim | None] = Batch(runtime.store_thread, claim_many)

    async def one(url: str) -> FeedOutcome:
        row = feeds.get(url)
        if respect_backoff and row is not None and row.error_count and row.next_fetch_at > now:
            return FeedOutcome(
                url,
                "skipped",
                error=f"backing off after {row.error_count} failed attempts (last: {row.last_error}); next "
                f"attempt at {row.next_fetch_at.isoformat(timespec='seconds')} (--force polls it now)",
                next_fetch_at=row.next_fetch_at,
            )
        async with limit:
            try:
                claim = await claims.submit(url)
                if claim is None:
                    return FeedOutcome(
                        url, "skipped", error="being fetched by another node (it records the outcome)"
                    )
                return await runtime.pipeline.poll(url, claim)
            except StoreError as exc:
                log.error("feed %s: nothing recorded: %s", url, exc, extra={"feed": url})
                return FeedOutcome(url, "error", error=f"nothing recorded: {exc}", unrecorded=True)

    async def counted(url: str) -> FeedOutcome:
        outcome = await one(url)
        if on_done is not None:  # `monitor once` counts them for its progress line
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(counted(url) for url in targets)))


class DatabaseLock:
    """An exclusive advisory lock (flock) on `<database>.lock`, held while a daemon runs on that database.

    A separate file, not the database itself: SQLite uses POSIX locks on the database file, and closing any
    descriptor of that file would drop them. The lock dies with the process, so a kill -9 never leaves it
    stale. It holds the owner's pid, for the error message of a second daemon."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise MonitorError naming the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the database lock: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise MonitorError(
                f"another monitor daemon (pid {owner}) is running on this database ({self.path}); "
                "one daemon per SQLite database"
            ) from None
        except OSError:
            handle.close()
            raise
        try:
            # Written past the file object's buffer, so that closing it never has a write left to fail.
            os.ftruncate(handle.fileno(), 0)
            os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            # The pid is only for a second daemon's error message; the lock itself is held. A full disk is
            # reported where it matters, by the store.
            log.warning("%s: cannot write the pid into the lock file: %s", self.path, exc.strerror or exc)
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class Daemon:
    """`monitor run`: poll on schedule, deliver, reload on SIGHUP, drain on SIGTERM."""

    def __init__(self, config_path: Path, *, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        self.config_path = config_path
        self.drain_timeout = drain_timeout
        self._stop = asyncio.Event()
        self._abandon = asyncio.Event()
        self._reload = asyncio.Event()
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._delivering: dict[str | None, asyncio.Task[None]] = {}  # per channel; None: all channels
        # Channels asked to deliver while their run was under way: that run may have read the outbox before the
        # new rows were committed, so it runs once more when it ends (not at the next `delivery.poll`).
        self._deliver_again: set[str | None] = set()
        self._jobs: dict[str, asyncio.Task[None]] = {}  # the clock's jobs that wait for the store
        self._refill_wanted = False  # a poll finished while a tick was claiming: claim again when it ends
        self._backlog = False  # the last claim filled every free slot: more feeds may be due than slots
        self._poll_slots = asyncio.Semaphore(8)
        self._started = False  # the current configuration's runtime opened and is serving
        self._last_tick: datetime | None = None
        self.metrics = Metrics()  # one set for the daemon's life: counters survive reloads
        self._store_error: str | None = None  # the clock's last store failure, logged once
        self._held_until: dict[
            str, datetime
        ] = {}  # feeds whose poll failed outside the pipeline's own handling
        self._websub: WebSub | None = None  # the WebSub subscriber of the running configuration, when on

    def _store_trouble(self, error: StoreError | None) -> None:
        """Log a store failure of the clock once when it starts and once when it ends, not on every tick."""
        message = str(error) if error is not None else None
        if message == self._store_error:
            return
        if message is not None:
            log.error("cannot read the schedule: %s; retrying every tick", message)
        else:
            log.info("the store works again")
        self._store_error = message

    def request_stop(self) -> None:
        """First call: stop claiming work and drain. A second call: abandon what is in flight now."""
        if self._stop.is_set():
            if not self._abandon.is_set():
                log.warning("second stop signal: abandoning work in flight (it is redone after restart)")
            self._abandon.set()
        self._stop.set()

    async def run(self) -> None:
        config = load_config(self.config_path)
        ruleset = check_config(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        watchdog = self._start_watchdog()
        running: tuple[MonitorConfig, RuleSet] | None = None  # the last version that started
        try:
            while not self._stop.is_set():
                self._started = False
                try:
                    await self._run_with(config, ruleset)
                except Exception as exc:
                    # SIGHUP never kills the daemon: a reloaded version that validated but cannot start (an
                    # unusable database path, a channel that cannot be built) gives way to the running one.
                    if self._started or running is None or (config, ruleset) == running:
                        raise
                    log.error("reload refused, keeping the running configuration: %s", _describe(exc))
                    config, ruleset = running
                    continue
                running = (config, ruleset)
                if self._reload.is_set() and not self._stop.is_set():
                    self._reload.clear()
                    systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
                    config, ruleset = self._reloaded(config, ruleset)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            systemd.notify("STOPPING=1")
            log.info("monitor stopped")
            if watchdog is not None:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        """Ping systemd's watchdog from the event loop itself (not a thread), for the daemon's whole life, so
        a blocked loop stops the pings and systemd restarts the service; reloads and drains keep pinging."""
        interval = systemd.watchdog_interval()
        if not interval:
            return None

        async def ping() -> None:
            while True:
                systemd.notify("WATCHDOG=1")
                await asyncio.sleep(interval)

        return asyncio.ensure_future(ping())

    def _reloaded(self, config: MonitorConfig, ruleset: RuleSet) -> tuple[MonitorConfig, RuleSet]:
        try:
            new_config = load_config(self.config_path)
            new_rules = check_config(new_config)
        except Exception as exc:  # whatever goes wrong, SIGHUP never kills the daemon
            log.error("reload refused, keeping the running configuration: %s", _describe(exc))
            return config, ruleset
        log.info(
            "reloaded %s: %d feeds, %d rules", self.config_path, len(new_config.feeds), len(new_rules.rules)
        )
        return new_config, new_rules

    async def _run_with(self, config: MonitorConfig, ruleset: RuleSet) -> None:
        async with open_runtime(config, ruleset, metrics=self.metrics) as runtime:
            await self._serve(config, ruleset, runtime)

    async def _serve(self, config: MonitorConfig, ruleset: RuleSet, runtime: Runtime) -> None:
        """Run the clock's jobs until a stop or reload is requested, then drain."""
        self._poll_slots = asyncio.Semaphore(config.fetch.concurrency)
        # The tick is the poll granularity: never coarser than the shortest feed interval.
        intervals = [config.feed_interval(feed).total_seconds() for feed in config.feeds]
        tick = min([TICK_SECONDS, *intervals])
        from apscheduler.schedulers.asyncio import AsyncIOScheduler  # `monitor run` only (see the imports)

        scheduler = AsyncIOScheduler(timezone="UTC")
        jobs: list[tuple[str, Any, float]] = [
            ("tick", self._as_task("tick", self._tick), tick),
            ("deliver", self._deliver, config.delivery.poll.total_seconds()),
            (
                "heartbeat",
                self._as_task("heartbeat", self._heartbeat),
                config.cluster.heartbeat.total_seconds(),
            ),
            ("housekeeping", self._as_task("housekeeping", self._housekeeping), HOUSEKEEPING_SECONDS),
        ]
        for job_id, func, seconds in jobs:
            scheduler.add_job(
                func,
                "interval",
                seconds=seconds,
                args=[runtime],
                id=job_id,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now().astimezone(),
            )
        websub = self._websub = await self._start_websub(config, runtime)
        if websub is not None:
            scheduler.add_job(
                self._websub_job,
                "interval",
                seconds=WEBSUB_UPKEEP_SECONDS,
                args=[runtime],
                id="websub",
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now().astimezone(),
            )
        scheduler.start()
        status = await self._start_status(config, runtime, tick)
        systemd.notify(
            "READY=1", f"STATUS=watching {len(config.feeds)} feeds with {len(ruleset.rules)} rules"
        )
        self._started = True
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
            if status is not None:
                await status.stop()
            if websub is not None:
                await websub.stop()
                self._websub = None
            await self._drain()

    async def _start_status(
        self, config: MonitorConfig, runtime: Runtime, tick: float
    ) -> StatusServer | None:
        address = config.status.address()
        if address is None:
            return None
        from monitor.status import StatusServer  # `monitor run` with a status address only

        server = StatusServer(
            runtime.store,
            utcnow,
            lambda: self._last_tick,
            tick,
            metrics=self.metrics,
            token=config.status.token.get_secret_value() if config.status.token else None,
            host=address[0],
            port=address[1],
            dead_after=config.cluster.dead_after,
            store_thread=runtime.store_thread,
        )
        try:
            await server.start()
        except OSError as exc:
            # Monitoring the monitor must not stop it from alerting: say so loudly and run without it.
            log.error("status endpoint %s not started: %s", config.status.listen, exc)
            return None
        return server

    async def _start_websub(self, config: MonitorConfig, runtime: Runtime) -> WebSub | None:
        if not config.websub.enabled:
            return None

        async def pushed(outcome: FeedOutcome) -> None:
            # As after a poll: what a push decided is delivered now, not at the next delivery run.
            if (outcome.alerts or outcome.notices) and not self._stop.is_set():
                await self._deliver(runtime)

        from monitor.websub import WebSub  # `monitor run` with WebSub on only

        websub = WebSub(
            config,
            runtime.store,
            runtime.pipeline,
            runtime.store_thread,
            NetworkPolicy.from_setting(config.allow_private_networks),
            on_push=pushed,
        )
        try:
            await websub.start()
        except OSError as exc:
            # Push only makes alerts sooner; polling goes on without it.
            log.error("WebSub listener %s not started: %s; polling only", config.websub.listen, exc)
            await websub.stop()
            return None
        return websub

    async def _websub_job(self, runtime: Runtime) -> None:
        """Subscription upkeep as a task of the daemon's own (it waits for the store thread), not doubled."""
        if self._websub is not None:
            await self._as_task("websub", lambda _runtime: self._websub_upkeep())(runtime)

    async def _websub_upkeep(self) -> None:
        websub = self._websub
        if websub is None or self._stop.is_set() or self._reload.is_set():
            return
        try:
            await websub.maintain()
        except Exception:
            log.exception("WebSub upkeep failed; tried again on the next run")

    async def _drain(self) -> None:
        """Let polls and deliveries in flight finish, for at most the drain timeout (or until a second stop
        signal). What is abandoned is safe: a poll's transaction never committed (the feed stays due), a
        delivery's claim is released on the next start (sent again with the same id)."""
        pending = {t for t in self._tasks if not t.done()}
        if not pending:
            return
        systemd.notify("STATUS=finishing work in flight")
        log.info("finishing %d tasks in flight (at most %gs)", len(pending), self.drain_timeout)
        everything: asyncio.Future[Any] = asyncio.gather(*pending, return_exceptions=True)
        abandon: asyncio.Future[Any] = asyncio.ensure_future(self._abandon.wait())
        try:
            await asyncio.wait(
                {everything, abandon}, timeout=self.drain_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            abandon.cancel()
        still = {t for t in pending if not t.done()}
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)
            log.warning("abandoned %d tasks at shutdown; they are redone after restart", len(still))

    def _as_task(
        self, name: str, job: Callable[[Runtime], Coroutine[Any, Any, None]]
    ) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
        """The clock's job `job` as a task of the daemon's own: it waits for the store thread, so the scheduler
        must not be the one to cancel it mid-wait at a stop or reload (the drain lets it finish like a poll).
        A run still going is not doubled: a busy database must not pile up one waiting run per tick."""

        async def start(runtime: Runtime) -> None:
            running = self._jobs.get(name)
            if running is None or running.done():
                self._jobs[name] = self._spawn(job(runtime))

        return start

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _tick(self, runtime: Runtime) -> None:
        """Claim due feeds and start polling them; returns at once (polls run as tasks, bounded by
        fetch.concurrency), so a slow feed never holds up the clock.

        Only as many feeds are claimed as there are free poll slots: a claim starts its fetch at once (its
        lease never runs out while it waits for a slot), and on a shared database the other nodes take the
        rest, which is what spreads the feeds over the nodes."""
        while True:
            self._refill_wanted = False
            await self._claim_and_poll(runtime)
            if not (self._backlog and self._refill_wanted):
                return
            # A poll finished while this claim ran, with feeds still waiting: claim for its slot now.

    async def _claim_and_poll(self, runtime: Runtime) -> None:
        """One claim of due feeds for the free poll slots. Sets `_backlog` when the claim took as many feeds
        as there were free slots (more may be due)."""
        if self._stop.is_set() or self._reload.is_set():
            return
        self._last_tick = now = utcnow()
        free = runtime.config.fetch.concurrency - len(self._in_flight)
        if free <= 0:
            self._backlog = True  # every slot busy: the next free one should claim at once
            return
        try:
            claims = await runtime.store_thread.run(
                runtime.store.claim_feeds, now, runtime.config.cluster.lease, limit=free
            )
        except StoreError as exc:
            self._backlog = False
            self._store_trouble(exc)
            return
        self._store_trouble(None)
        self._backlog = len(claims) >= free
        configured = runtime.pipeline.feed_urls
        for claim in claims:
            held = self._held_until.get(claim.url)
            if claim.url not in configured:
                # Another node's configuration has this feed and ours does not (a reload on one node only):
                # leave it to a node that knows it.
                log.warning("feed %s is in the database but not in this node's configuration", claim.url)
                runtime.store_thread.submit(runtime.store.release_feed, claim.url, claim.token)
                continue
            if (held is not None and held > now) or claim.url in self._in_flight:
                runtime.store_thread.submit(runtime.store.release_feed, claim.url, claim.token)
                continue
            self._in_flight.add(claim.url)
            self._spawn(self._poll_one(runtime, claim))

    def _refill(self, runtime: Runtime) -> None:
        """A poll slot came free: claim the next due feed now. Waiting for the clock's tick instead capped the
        daemon at fetch.concurrency feeds per tick (8 per 2 s: 4 feeds/s, 14,400 polls an hour, too few for
        10,000 feeds at a 10-minute interval), however fast each poll was.

        Only while there is a backlog (the last claim filled every free slot). Without one, feeds wait for the
        tick as before: a refill at every finished poll would let the node that polls most claim most, until
        one node of a cluster held every feed (the ticks of all nodes are what spread the feeds over them).
        On a shared database (PostgreSQL) there is no refill at all: even with a backlog, the node whose polls
        finish first kept every feed (tests/test_cluster.py's spread check), so there the ticks alone claim,
        and a node's throughput is fetch.concurrency per tick (raise it for many feeds per node)."""
        if self._stop.is_set() or self._reload.is_set() or not self._backlog or runtime.store.concurrent:
            return
        running = self._jobs.get("tick")
        if running is None or running.done():
            self._jobs["tick"] = self._spawn(self._tick(runtime))
        else:
            self._refill_wanted = True

    async def _poll_one(self, runtime: Runtime, claim: FeedClaim) -> None:
        url = claim.url
        try:
            async with self._poll_slots:
                if self._stop.is_set():
                    await runtime.store_thread.run(runtime.store.release_feed, url, claim.token)
                    return
                outcome = await runtime.pipeline.poll(url, claim)
        except StoreError as exc:
            # The database is busy, read-only, full or corrupt: one line, no traceback (the operator's to fix,
            # not a bug). Nothing of the poll was recorded; the feed is tried again after a short pause (its
            # lease, if any, runs out by itself).
            log.error("feed %s: nothing recorded: %s", url, exc, extra={"feed": url})
            self._held_until[url] = utcnow() + STORE_RETRY
            return
        except Exception:
            # Pipeline.poll records a feed's own failures; what reaches here failed around it (the store could
            # not record the failure either). It must not kill the daemon, nor hammer the feed on every tick
            # while the store is broken: hold the feed back in memory for one interval.
            log.exception("feed %s: unexpected error while polling", url, extra={"feed": url})
            feed = next((f for f in runtime.config.feeds if f.url == url), None)
            interval = runtime.config.feed_interval(feed) if feed else STORE_RETRY
            self._held_until[url] = utcnow() + interval
            return
        finally:
            self._in_flight.discard(url)
            self._refill(runtime)
        if outcome.status == "ok" and (outcome.new_items or outcome.alerts):
            log.info(
                "feed %s: %d new items, %d matches, %d alerts, %d folded into stories",
                outcome.url,
                outcome.new_items,
                outcome.matches,
                outcome.alerts,
                outcome.folded,
                extra={"feed": outcome.url},
            )
        if outcome.new_hub and not self._stop.is_set():
            # A hub new or changed: subscribe now, not at the next upkeep run (a minute away).
            await self._websub_job(runtime)
        if (outcome.alerts or outcome.notices) and not self._stop.is_set():
            await self._deliver(runtime)

    async def _deliver(self, runtime: Runtime) -> None:
        """Drain the outbox: one worker per configured channel, so a channel that is slow or down (a send may
        take its whole timeout) never holds up another channel's deliveries. A worker still running is not
        doubled: it runs once more when it ends, so rows committed while it ran go out then, not a
        `delivery.poll` later. (Deliveries of channels removed from the config are parked by the hourly run over
        all channels, in housekeeping.)"""
        self._start_delivery(runtime, runtime.channels)

    def _start_delivery(self, runtime: Runtime, channels: Iterable[str | None]) -> None:
        if self._stop.is_set() or self._reload.is_set():
            return  # draining: no new work that would outlive this runtime
        for channel in channels:
            running = self._delivering.get(channel)
            if running is None or running.done():
                self._delivering[channel] = self._spawn(self._deliver_runs(runtime, channel))
            else:
                self._deliver_again.add(channel)

    async def _deliver_runs(self, runtime: Runtime, channel: str | None) -> None:
        """Delivery runs for `channel` until none was asked for during the last one."""
        while True:
            self._deliver_again.discard(channel)
            await self._deliver_once(runtime, channel)
            if channel not in self._deliver_again or self._stop.is_set() or self._reload.is_set():
                return

    async def _deliver_once(self, runtime: Runtime, channel: str | None) -> None:
        try:
            report = await runtime.deliver(channel=channel)
        except StoreError as exc:
            log.error(
                "delivery run%s stopped: %s; the outbox keeps every pending delivery",
                f" for channel {channel!r}" if channel else "",
                exc,
                extra={"channel": channel},
            )
            return
        except Exception:
            log.exception(
                "delivery run%s failed; the outbox keeps every pending delivery",
                f" for channel {channel!r}" if channel else "",
                extra={"channel": channel},
            )
            return
        if report.sent or report.retried or report.dead:
            log.info(
                "delivered%s: %s",
                f" (channel {channel!r})" if channel else "",
                report,
                extra={"channel": channel},
            )

    async def _heartbeat(self, runtime: Runtime) -> None:
        """Tell the other nodes this one is alive, and release what the silent ones hold (fencing makes that
        safe even for a node that is only paused: its late writes are refused)."""
        if self._stop.is_set():
            return
        now = utcnow()
        try:
            # Off the loop, and not queued behind the store thread's polls: a long queue of polls must not make
            # this node look dead. (The store's own lock, or PostgreSQL's pool, makes a second thread safe.)
            await asyncio.to_thread(runtime.store.heartbeat, now)
            released = await asyncio.to_thread(
                runtime.store.reap_nodes, now, runtime.config.cluster.dead_after
            )
        except StoreError as exc:
            log.error("heartbeat failed, retried on the next one: %s", exc)
            return
        except Exception:
            log.exception("heartbeat failed; retried on the next one")
            return
        if released:
            log.warning(
                "released %d feed leases and delivery claims of nodes silent for over %s",
                released,
                runtime.config.cluster.dead_after,
            )

    async def _housekeeping(self, runtime: Runtime) -> None:
        now = utcnow()
        retention = runtime.config.retention
        # Pruning runs once per cluster and hour: the first node to ask takes the job (on SQLite, the one node
        # always does). Story signatures live in each node's memory, so each node expires its own.
        counts: dict[str, int] = {}
        try:
            if await runtime.store_thread.run(
                runtime.store.claim_job, "housekeeping", now, HOUSEKEEPING_JOB_PERIOD
            ):
                counts = await runtime.store_thread.run(
                    runtime.store.prune,
                    now,
                    item_max_age=retention.items,
                    key_max_age=retention.identity_keys,
                )
        except StoreError as exc:
            log.error("housekeeping skipped: %s", exc)
            return
        # On the store thread too: the story index is only ever touched there (monitor.storethread).
        expired = await runtime.store_thread.run(
            runtime.pipeline.stories.expire, now - runtime.config.stories.window
        )
        self._start_delivery(
            runtime, [None]
        )  # every channel: parks deliveries of channels no longer configured
        if any(counts.values()) or expired:
            log.info("housekeeping: pruned %s, expired %d story signatures", counts, expired)


def _describe(exc: BaseException) -> str:
    """A one-line reason: monitor's own errors already name the file and line; anything else names its type."""
    return str(exc) if isinstance(exc, MonitorError) else f"{type(exc).__name__}: {exc}"
