"""Three `monitor run` processes on one PostgreSQL database, against feeds on 127.0.0.1 that carry copies of one
story over several feeds, published while the daemons poll.

- no feed is fetched twice within its interval (the feed server's clock);
- the alerts are the ones one SQLite daemon raises on the same feeds: one per (rule, story);
- every alert is delivered, and a delivery received twice carries the same webhook-id;
- kill -9 at random moments, 20+ times across the nodes: nothing lost, nothing left pending, and a dead node's
  feeds are polled again within lease + interval.

Short leases and intervals keep these tests to tens of seconds; the slack on timings is for a loaded 2-core
machine, where a daemon can wait seconds for a core."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from monitor.cli import main
from monitor.dburl import PostgresURL
from tests.support.daemonproc import HEADLINES, DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until

pytestmark = pytest.mark.slow

INTERVAL = 2.0  # seconds between polls of a feed
LEASE = 6.0
KILLS = int(os.environ.get("MONITOR_TEST_KILLS", "21"))
FEEDS = 9
# Stories that fire the default rules, far apart in topic so that no tier can join two of them; each is
# published as exact copies on several feeds at once (wire copy), the rest of a feed is filler no rule fires on.
STORIES = [HEADLINES[0], HEADLINES[3], HEADLINES[7], HEADLINES[9], HEADLINES[2]]
FILLER = [
    ("Local bakery wins national award", "Bread, rolls and a record queue."),
    ("City council approves new cycle lanes", "Work starts in the spring."),
    ("Museum reopens after renovation", "The east wing has a new roof."),
    ("Football club signs young goalkeeper", "The contract runs for three years."),
]


def cluster_lines(node: str, *, lease: float = LEASE) -> list[str]:
    return [
        "cluster:",
        f"  node: {node}",
        f"  lease: {lease}s",
        "  heartbeat: 0.5s",
        "  dead_after: 2s",
        "fetch:",
        "  total_timeout: 3",
        "  concurrency: 4",
    ]


@dataclass
class Wire:
    """Feeds on a FeedServer, and the stories published on them so far."""

    server: FeedServer
    feeds: list[FeedBuilder] = field(
        default_factory=lambda: [FeedBuilder(title=f"Wire {n}") for n in range(FEEDS)]
    )
    published: int = 0  # stories published so far
    changed_at: float = 0.0
    unsettled: str = ""

    def path(self, n: int) -> str:
        return f"/wire{n}.xml"

    def urls(self) -> list[str]:
        return [self.server.url(self.path(n)) for n in range(FEEDS)]

    def serve(self) -> None:
        for n, feed in enumerate(self.feeds):
            self.server.set(self.path(n), feed.rss())
        self.changed_at = time.monotonic()

    def publish(self, rng: random.Random) -> None:
        """The next story, as copies on 3-5 feeds at once, and a filler item on each of two others."""
        title, summary = STORIES[self.published % len(STORIES)]
        round_ = self.published
        self.published += 1
        carriers = rng.sample(range(FEEDS), rng.randint(3, 5))
        for n in carriers:
            self.feeds[n].add(f"s{round_}-f{n}", title, summary)
        for n in rng.sample([n for n in range(FEEDS) if n not in carriers], 2):
            filler = FILLER[(round_ + n) % len(FILLER)]
            self.feeds[n].add(f"x{round_}-f{n}", f"{filler[0]} ({round_}-{n})", filler[1])
        self.serve()

    def item_count(self) -> int:
        """Items the store must hold: a story published again on a feed that had it already is the same
        text under a new guid, which the GUID churn guard records as seen, not as a new item."""
        return sum(len({(title, summary) for _, title, summary in feed.items}) for feed in self.feeds)

    def fetch_times(self) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {}
        for request in self.server.requests:
            times.setdefault(request.path, []).append(request.at)
        return {path: sorted(moments) for path, moments in times.items()}


def query(db: PostgresURL, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def settled(db: PostgresURL, wire: Wire) -> bool:
    """Every served item is stored, nothing is pending, and every feed was fetched since the last change.
    Why not, when not: in `wire.unsettled` (the failure message says it)."""
    (items, pending) = query(
        db,
        "SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM deliveries WHERE status = 'pending')",
    )[0]
    times = wire.fetch_times()
    stale = [
        n for n in range(FEEDS) if not times.get(wire.path(n)) or times[wire.path(n)][-1] <= wire.changed_at
    ]
    wire.unsettled = (
        f"items {items}/{wire.item_count()}, pending {pending}, not fetched since the change: {stale}"
    )
    if pending:
        rows = query(
            db,
            "SELECT id, attempts, next_attempt_at, lease_until, claimed_by, last_error FROM deliveries "
            "WHERE status = 'pending'",
        )
        wire.unsettled += f"; pending: {rows}"
    if items != wire.item_count():
        stored = {str(row[0]) for row in query(db, "SELECT guid FROM items")}
        served = {(guid, title) for feed in wire.feeds for guid, title, _ in feed.items}
        # (Copies churned on a feed that had the text already show here too.)
        wire.unsettled += f"; not stored: {sorted(g for g in served if g[0] not in stored)}"
    if stale:
        wire.unsettled += f"; feeds: {query(db, 'SELECT url, next_fetch_at, lease_until, claimed_by, error_count, last_error FROM feeds')}"
    return items == wire.item_count() and pending == 0 and not stale


def alert_pairs(db: PostgresURL) -> Counter[tuple[str, str]]:
    """(rule, title of the story's first item) of every alert: story ids depend on which copy came first."""
    rows = query(db, "SELECT a.rule_id, s.title FROM alerts a JOIN stories s ON s.id = a.story_id")
    return Counter((str(rule), str(title)) for rule, title in rows)


def sqlite_reference(tmp_path: Path, wire: Wire) -> Counter[tuple[str, str]]:
    """The alerts one SQLite daemon raises on the same feeds (as they stand now), by `monitor once`."""
    folder = tmp_path / "reference"
    folder.mkdir()
    with WebhookReceiver() as hook:
        config = write_config(folder, feed_urls=wire.urls(), hook_url=hook.url)
        assert main(["once", "--config", str(config)]) == 0
    with sqlite3.connect(folder / "state" / "monitor.db") as conn:
        rows = conn.execute(
            "SELECT a.rule_id, s.title FROM alerts a JOIN stories s ON s.id = a.story_id"
        ).fetchall()
    return Counter((str(rule), str(title)) for rule, title in rows)


def check_deliveries(db: PostgresURL, hook: WebhookReceiver) -> None:
    """Every alert's delivery was sent and received; a delivery received twice has one webhook-id, and no
    alert reached the receiver under two webhook-ids."""
    deliveries = {str(row[0]): str(row[1]) for row in query(db, "SELECT id, status FROM deliveries")}
    alerts = {str(row[0]) for row in query(db, "SELECT id FROM alerts")}
    assert alerts and set(deliveries.values()) == {"sent"}
    received: dict[str, set[str]] = {}
    for request in hook.requests:
        for alert in _alert_ids(request.json()):
            received.setdefault(alert, set()).add(request.headers["webhook-id"])
    assert set(received) == alerts, "every alert delivered, and nothing else"
    assert all(len(ids) == 1 for ids in received.values()), "re-sends keep their webhook-id"
    assert {i for ids in received.values() for i in ids} == set(deliveries)


def _alert_ids(body: object) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("alerts"), list):
        return [str(a["id"]) for a in body["alerts"]]
    assert isinstance(body, dict)
    return [str(body["id"])]


def check_no_double_fetch(wire: Wire, kills: Sequence[float] = ()) -> None:
    """A fetch is due `interval` after the previous one *finished*, so the requests of one feed are at least an
    interval apart (5 ms for the two clocks' rounding). Except across a kill: a node killed between its fetch
    and its commit recorded nothing, and once it is reaped (its heartbeat stops; a second or two here) its
    lease is free and the feed, still due, is fetched again at once. That second fetch is the first one the
    database knows of; a shorter gap is allowed only where a kill falls between the two requests."""
    for path, moments in wire.fetch_times().items():
        short = [
            (a, b)
            for a, b in itertools.pairwise(moments)
            if b - a < INTERVAL - 0.005 and not any(a <= kill <= b for kill in kills)
        ]
        assert not short, f"{path} fetched twice within its interval: {[round(b - a, 3) for a, b in short]}"


@pytest.fixture
def wire() -> Iterator[Wire]:
    with FeedServer() as server:
        w = Wire(server)
        w.serve()
        yield w


def start_node(
    tmp_path: Path, db: PostgresURL, wire: Wire, hook: WebhookReceiver, name: str
) -> DaemonProcess:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    config = write_config(
        folder,
        feed_urls=wire.urls(),
        hook_url=hook.url,
        interval=f"{INTERVAL}s",
        database=db.url,
        extra=cluster_lines(name),
        name=f"{name}.yaml",
    )
    return DaemonProcess(config, log_name=name)


def test_three_nodes_raise_the_alerts_of_one_and_never_fetch_a_feed_twice_per_interval(
    tmp_path: Path, postgres_db: PostgresURL, wire: Wire
) -> None:
    rng = random.Random(11)
    with WebhookReceiver() as hook, ExitStack() as stack:
        nodes = [
            stack.enter_context(start_node(tmp_path, postgres_db, wire, hook, f"n{i}")) for i in range(3)
        ]
        for node in nodes:
            node.wait_for_log("monitor running", timeout=120)
        for _ in range(len(STORIES)):
            wire.publish(rng)
            time.sleep(rng.uniform(0.5, 1.5))
        wait_until(lambda: settled(postgres_db, wire), timeout=60, what="every item stored and delivered")
        polled_by = {str(row[0]) for row in query(postgres_db, "SELECT DISTINCT claimed_by FROM feeds")}
        for node in nodes:
            assert node.terminate() == 0, node.log()
    assert len(polled_by) >= 2, f"the feeds were spread over the nodes: {polled_by}"
    check_no_double_fetch(wire)
    check_deliveries(postgres_db, hook)
    cluster = alert_pairs(postgres_db)
    assert cluster == sqlite_reference(tmp_path, wire)
    assert all(count == 1 for count in cluster.values()), "one alert per (rule, story)"
    with psycopg.connect(postgres_db.url) as conn:
        (stories,) = conn.execute(
            "SELECT COUNT(DISTINCT story_id) FROM items WHERE title = %s", (STORIES[0][0],)
        ).fetchone() or (0,)
    assert stories == 1, "the copies of a story spread over feeds and nodes are one story"


def test_kill_9_at_random_moments_loses_nothing_and_dead_nodes_feeds_are_taken_over(
    tmp_path: Path, postgres_db: PostgresURL, wire: Wire
) -> None:
    rng = random.Random(20261202)
    kills: list[tuple[float, str]] = []
    with WebhookReceiver() as hook, ExitStack() as stack:
        nodes = {f"n{i}": start_node(tmp_path, postgres_db, wire, hook, f"n{i}") for i in range(3)}
        for node in nodes.values():
            stack.callback(node.kill)
            node.wait_for_log("monitor running", timeout=120)
        while len(kills) < KILLS:
            if rng.random() < 0.4:
                wire.publish(rng)
            # A node that is up and polling, at a random moment of its work.
            ready = [
                name for name, node in nodes.items() if node.running() and "monitor running" in node.log()
            ]
            if len(ready) < 2:
                time.sleep(0.2)
                continue
            time.sleep(rng.uniform(0.05, 1.2))
            victim = rng.choice(ready)
            nodes[victim].send(signal.SIGKILL)
            nodes[victim].wait(10)
            kills.append((time.monotonic(), victim))
            restarted = start_node(tmp_path, postgres_db, wire, hook, victim)  # a log file of its own
            stack.callback(restarted.kill)
            nodes[victim] = restarted
        kill_phase_end = time.monotonic()
        try:
            wait_until(lambda: settled(postgres_db, wire), timeout=90, what="everything stored and delivered")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {wire.unsettled}") from None
        for node in nodes.values():
            # The last restarted node may still be starting (SIGTERM before its handlers exist kills it).
            node.wait_for_log("monitor running", timeout=120)
            assert node.terminate() == 0, node.log()
    assert len(kills) >= min(KILLS, 20) and len({victim for _, victim in kills}) == 3
    check_no_double_fetch(wire, [moment for moment, _ in kills])
    check_deliveries(postgres_db, hook)
    assert alert_pairs(postgres_db) == sqlite_reference(tmp_path, wire)
    # Taken over within lease + interval: no feed waited longer than that between two fetches while nodes
    # were being killed (plus slack for a loaded machine: a daemon may wait seconds for a core).
    for path, moments in wire.fetch_times().items():
        during = [m for m in moments if kills[0][0] <= m <= kill_phase_end]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert max(gaps, default=0.0) <= LEASE + INTERVAL + 4.0, f"{path}: {gaps}"


def test_once_beside_a_running_daemon(tmp_path: Path, postgres_db: PostgresURL, wire: Wire) -> None:
    """`monitor once` (cron, an operator) on the database a daemon works on: it claims each feed before fetching
    it (skipping one the daemon is fetching), and the alerts are still one per (rule, story), each delivered
    once."""
    rng = random.Random(3)
    wire.publish(rng)
    with WebhookReceiver() as hook, ExitStack() as stack:
        node = stack.enter_context(start_node(tmp_path, postgres_db, wire, hook, "n0"))
        node.wait_for_log("monitor running", timeout=120)
        wire.publish(rng)
        config = write_config(
            tmp_path, feed_urls=wire.urls(), hook_url=hook.url, interval=f"{INTERVAL}s", database=postgres_db.url,
            extra=cluster_lines("cron"), name="once.yaml",
        )  # fmt: skip
        assert main(["once", "--config", str(config)]) == 0
        wait_until(lambda: settled(postgres_db, wire), timeout=60, what="everything stored and delivered")
        assert node.terminate() == 0
    check_deliveries(postgres_db, hook)
    assert alert_pairs(postgres_db) == sqlite_reference(tmp_path, wire)
