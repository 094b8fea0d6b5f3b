"""Worker processes (monitor.workers): the same records as in-process, crashes, per-entry failures, sizing, and
a daemon that leaves no process behind.

Real feeds on 127.0.0.1, real SQLite files, real worker processes (forkserver: the server starts once per test
session, each pool forks its workers from it). The rest of the suite works in-process (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.analysis import ActorMentions, Analysis
from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.pipeline import FeedOutcome
from monitor.rules import RuleSet, load_rules
from monitor.service import Runtime, open_runtime, poll_all
from monitor.store import SQLiteStore
from monitor.types import Item, Match
from monitor.workers import MAX_ATTEMPTS, MAX_AUTO_WORKERS, usable_cpus, worker_count
from tests.support.daemonproc import HEADLINES, DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import wait_until

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[1] / "monitor" / "demo" / "data"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def make_config(
    tmp_path: Path, urls: list[str], workers: int, name: str = "m.db", **extra: Any
) -> MonitorConfig:
    return MonitorConfig(
        database=tmp_path / name,
        allow_private_networks=["127.0.0.1/32"],
        feeds=tuple({"url": url} for url in urls),  # type: ignore[arg-type]
        channels={"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},  # type: ignore[dict-item]
        workers=workers,
        **extra,
    )


async def poll_rounds(
    config: MonitorConfig,
    ruleset: RuleSet,
    rounds: int = 1,
    between: Callable[[int], None] | None = None,
    during: Callable[[Runtime], None] | None = None,
) -> list[list[FeedOutcome]]:
    """Poll every feed `rounds` times in one runtime (calling `between(round)` before each later round)."""
    results = []
    async with open_runtime(config, ruleset, clock=lambda: T0) as runtime:
        if during is not None:
            during(runtime)
        for number in range(rounds):
            if number and between is not None:
                between(number)
            results.append(await poll_all(runtime))
    return results


# -- sizing ---------------------------------------------------------------------------------------------------


def test_auto_is_the_usable_cpus_less_one_none_on_one_cpu_and_capped() -> None:
    assert [worker_count("auto", cpus) for cpus in (1, 2, 3, 4, 16, 64)] == [0, 1, 2, 3, 8, MAX_AUTO_WORKERS]
    assert worker_count(0, 64) == 0 and worker_count(5, 1) == 5
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert worker_count("auto") == worker_count("auto", len(os.sched_getaffinity(0)))


def test_the_setting_takes_auto_a_number_or_the_environment_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MonitorConfig(workers="Auto").workers == "auto"  # type: ignore[arg-type]
    assert MonitorConfig(workers=3).workers == 3
    with pytest.raises(ValueError, match="workers"):
        MonitorConfig(workers=-1)
    monkeypatch.setenv("MONITOR_WORKERS", "2")
    assert MonitorConfig().workers == 2 and MonitorConfig(workers=0).workers == 0
    monkeypatch.delenv("MONITOR_WORKERS")
    assert MonitorConfig().workers == "auto"


# -- the same records as in-process ---------------------------------------------------------------------------


def demo_feeds(server: FeedServer) -> list[str]:
    """The demo's de/en/ru wires, one of them twice (copies of one text in two feeds: cross-feed stories) and
    one without its <language> (detected per item and steadied by the feed's language memory)."""
    urls = []
    for name in ("wire-en.xml", "wire-de.xml", "wire-ru.xml", "welt-de.xml"):
        server.set(f"/{name}", (DEMO / name).read_bytes(), etag='"1"')
        urls.append(server.url(f"/{name}"))
    undeclared = re.sub(rb"<language>[^<]*</language>", b"", (DEMO / "wire-de.xml").read_bytes())
    server.set("/undeclared.xml", undeclared, etag='"1"')
    server.set("/copy-en.xml", (DEMO / "wire-en.xml").read_bytes(), etag='"1"')
    return [*urls, server.url("/undeclared.xml"), server.url("/copy-en.xml")]


def database_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that records what polls decided (not the node registry), sorted."""
    connection = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name not in {"nodes", "schema_migrations", "cluster_jobs"} and not name.startswith("sqlite_")
        ]
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in tables
        }
    finally:
        connection.close()


def test_workers_record_exactly_what_in_process_records(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls = demo_feeds(server)
    ruleset = load_rules(DEFAULT_RULES)
    later = FeedBuilder(language=None)
    later.add_headlines("later", range(12))

    def between(_: int) -> None:
        # Round two: new items beside the seen ones in one feed, the same bodies (304s) in the others.
        added = re.findall(rb"<item>.*?</item>", later.rss(), flags=re.S)
        body = (DEMO / "wire-en.xml").read_bytes().replace(b"</channel>", b"".join(added) + b"</channel>")
        server.set("/wire-en.xml", body, etag='"2"')

    dumps = {}
    for workers in (0, 2):
        server.set("/wire-en.xml", (DEMO / "wire-en.xml").read_bytes(), etag='"1"')
        # Alert ids are random; the same sequence in both runs makes the two databases comparable byte for byte.
        counter = itertools.count()
        monkeypatch.setattr("monitor.pipeline.secrets.token_hex", lambda n, c=counter: f"{next(c):0{2 * n}x}")
        config = make_config(tmp_path, urls, workers, name=f"w{workers}.db", fetch={"concurrency": 1})
        rounds = asyncio.run(poll_rounds(config, ruleset, rounds=2, between=between))
        assert all(o.status == "ok" for o in rounds[0]), rounds[0]
        assert rounds[1][0].new_items == 12 and all(o.status == "not-modified" for o in rounds[1][1:])
        dumps[workers] = database_rows(config.database)  # type: ignore[arg-type]
    in_process, workers = dumps[0], dumps[2]
    assert len(in_process["items"]) > 60 and len(in_process["alerts"]) > 10 and in_process["deliveries"]
    languages = {row[10] for row in in_process["items"]}
    assert {"de", "en", "ru"} <= languages
    # Copies across feeds: fewer stories than items.
    assert len(in_process["stories"]) < len(in_process["items"])
    for table, rows in in_process.items():
        differ = [(a, b) for a, b in zip(rows, workers[table], strict=False) if a != b]
        assert workers[table] == rows, f"{table}: in-process vs workers, first difference: {differ[:1]}"


# -- a worker that dies, an entry that fails ------------------------------------------------------------------


def one_feed(server: FeedServer, items: int = 6) -> str:
    feed = FeedBuilder()
    feed.add_headlines("n", range(items))
    server.set("/a.xml", feed.rss(), etag='"1"')
    return server.url("/a.xml")


def kill_workers_on_unseen_keys(times: int) -> tuple[Callable[[Runtime], None], list[int]]:
    """A hook that kills every worker process while the feed waits for the store's unseen_keys (between the
    worker's two calls: its parsed feed is lost with it), the first `times` times."""
    killed: list[int] = []
    calls = itertools.count()

    def during(runtime: Runtime) -> None:
        pool = runtime.pipeline.workers
        assert pool is not None
        real = runtime.store.unseen_keys

        def unseen_keys(keys: Any) -> set[str]:
            if next(calls) < times:
                for pid in pool.pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            return real(keys)

        runtime.store.unseen_keys = unseen_keys  # type: ignore[method-assign]

    return during, killed


def test_a_worker_killed_mid_feed_is_started_again_and_the_feed_is_recorded_whole(
    tmp_path: Path, server: FeedServer
) -> None:
    url = one_feed(server)
    config = make_config(tmp_path, [url], 2)
    during, killed = kill_workers_on_unseen_keys(times=1)
    ((outcome,),) = asyncio.run(poll_rounds(config, load_rules(DEFAULT_RULES), during=during))
    assert len(killed) == 2  # both workers, the feed's among them
    assert outcome.status == "ok" and outcome.new_items == 6 and outcome.matches > 0, outcome
    with SQLiteStore(config.database) as store:  # type: ignore[arg-type]
        assert store.counts()["items"] == 6
        alerted = {item["title"] for alert in store.list_alerts(limit=100) for item in alert["items"]}
    assert alerted == {title for title, _ in HEADLINES[:6]}


def test_a_feed_whose_worker_dies_every_time_fails_and_loses_nothing(
    tmp_path: Path, server: FeedServer
) -> None:
    url = one_feed(server)
    config = make_config(tmp_path, [url], 1)
    during, killed = kill_workers_on_unseen_keys(times=MAX_ATTEMPTS)
    ((outcome,),) = asyncio.run(poll_rounds(config, load_rules(DEFAULT_RULES), during=during))
    assert len(killed) == MAX_ATTEMPTS
    assert outcome.status == "error" and "worker process died" in (outcome.error or ""), outcome
    with SQLiteStore(config.database) as store:  # type: ignore[arg-type]
        assert store.counts()["items"] == 0
        state = store.feed_state(url)
        assert state is not None and state.error_count == 1 and state.etag is None  # fetched again in full
    # Nothing was marked seen: the next poll (its worker healthy) records every item.
    ((again,),) = asyncio.run(poll_rounds(config, load_rules(DEFAULT_RULES)))
    assert again.status == "ok" and again.new_items == 6, again


class ExplodingRules(RuleSet):
    """The real rules, compiled in the worker like any rule set, except that matching an item titled "boom"
    raises: a stand-in for a bug in a stage, which no real input is known to trigger."""

    def match_with_actors(
        self, item: Item, analysis: Analysis | None = None
    ) -> tuple[list[Match], ActorMentions]:
        if item.title == "boom":
            raise RuntimeError("matcher bug")
        return super().match_with_actors(item, analysis)


def test_an_entry_that_breaks_a_stage_in_a_worker_is_skipped_and_retried(
    tmp_path: Path, server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(2))
    feed.add("b", "boom", "x")
    server.set("/a.xml", feed.rss(), etag='"1"')
    config = make_config(tmp_path, [server.url("/a.xml")], 2)
    real = load_rules(DEFAULT_RULES)
    ruleset = ExplodingRules(real.rules, real.actors)
    ((outcome,),) = asyncio.run(poll_rounds(config, ruleset))
    assert outcome.status == "ok" and outcome.new_items == 2 and outcome.matches > 0, outcome
    assert any("'boom'" in w and "RuntimeError: matcher bug" in w for w in outcome.warnings)
    # The worker's traceback is in the daemon's log, with the line that raised.
    assert "retried on the next fetch" in caplog.text and 'raise RuntimeError("matcher bug")' in caplog.text
    with SQLiteStore(config.database) as store:  # type: ignore[arg-type]
        assert store.counts()["items"] == 2
    server.set("/a.xml", feed.rss(), etag='"2"')
    caplog.clear()
    ((again,),) = asyncio.run(poll_rounds(config, ruleset))
    assert again.new_items == 0 and "matcher bug" in caplog.text  # tried again, still not lost


def test_a_body_that_is_no_feed_is_the_feeds_parse_error(tmp_path: Path, server: FeedServer) -> None:
    server.set("/a.xml", b"<html><body>not a feed</body></html>", content_type="text/html")
    config = make_config(tmp_path, [server.url("/a.xml")], 1)
    ((outcome,),) = asyncio.run(poll_rounds(config, load_rules(DEFAULT_RULES)))
    assert outcome.status == "error" and (outcome.error or "").startswith("cannot parse:"), outcome


# -- the daemon: reload, stop, kill -9 ------------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """The live processes below `pid` (its fork server and the workers forked from it), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


RULE_A = "rules:\n  - id: rule-a\n    title: Rule A\n    any: [bakery]\n"
RULE_B = RULE_A + "  - id: rule-b\n    title: Rule B\n    any: [bakery]\n"


def test_reload_gives_new_workers_the_new_rules_and_stop_leaves_no_process(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add("1", "Bakery opens in the old town", "Bread and rolls.")
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE_A, encoding="utf-8")
    with FeedServer() as server:
        server.set("/a.xml", feed.rss())
        config = write_config(
            tmp_path, feed_urls=[server.url("/a.xml")], extra=["workers: 2", f"rules: {rules}"]
        )
        database = database_of(config)
        with DaemonProcess(config, env={"MONITOR_WORKERS": "auto"}) as daemon:
            wait_until(lambda: matched_rules(database) == {"1": ["rule-a"]}, what="the first item matched")
            wait_until(lambda: len(descendants(daemon.pid)) >= 3, what="the fork server and two workers")
            before = descendants(daemon.pid)
            rules.write_text(RULE_B, encoding="utf-8")
            daemon.send(signal.SIGHUP)
            daemon.wait_for_log("reloaded")
            feed.add("2", "Bakery wins a prize", "A record queue.")
            server.set("/a.xml", feed.rss())
            # Matched in a worker of the new pool, with the new rule set; the old pool's workers are gone.
            wait_until(lambda: "2" in matched_rules(database), timeout=60, what="the second item matched")
            assert matched_rules(database) == {"1": ["rule-a"], "2": ["rule-a", "rule-b"]}
            # The fork server stays; the two workers of the old pool are gone, two new ones forked.
            wait_until(lambda: len(before - descendants(daemon.pid)) == 2, what="the old workers to exit")
            after = descendants(daemon.pid)
            assert len(after - before) == 2 and not alive(before - after)
            assert daemon.terminate() == 0
        assert "Traceback" not in daemon.log(), daemon.log()
        wait_until(lambda: not alive(after | before), timeout=15, what="no process left after the stop")


def test_a_killed_daemon_leaves_no_worker_behind(tmp_path: Path) -> None:
    with FeedServer() as server:
        url = one_feed(server)
        config = write_config(tmp_path, feed_urls=[url], extra=["workers: 2"])
        with DaemonProcess(config) as daemon:
            wait_until(lambda: len(descendants(daemon.pid)) >= 3, what="the fork server and two workers")
            children = descendants(daemon.pid)
            daemon.kill()  # SIGKILL: no drain, no shutdown of the pool
        wait_until(lambda: not alive(children), timeout=15, what="the workers to notice and exit")


# Runs argv as a child subreaper (prctl PR_SET_CHILD_SUBREAPER): every process started below argv's process is
# reparented to this one when its parent exits, and reaped here. Prints argv's exit code and how many such other
# processes were reaped: the fork server and its resource tracker, however short-lived (the workers are the fork
# server's children, reaped by it).
SUBREAPER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
others = 0
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
    others += 1
print(code, others)
"""


def once_processes(config: Path) -> int:
    """Run `monitor once` as a fresh process; the number of processes it started (and left to be reaped)."""
    run = subprocess.run(
        [sys.executable, "-c", SUBREAPER, sys.executable, "-m", "monitor", "once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, others = map(int, run.stdout.split())
    assert code == 0, run.stderr
    assert "Traceback" not in run.stderr and "did not start" not in run.stderr, run.stderr
    return others


def test_monitor_once_starts_workers_only_when_a_body_needs_parsing(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(3))
    with FeedServer() as server:
        server.set("/a.xml", feed.rss(), etag='"1"')
        server.set("/b.xml", feed.rss(), etag='"1"')
        config = write_config(
            tmp_path, feed_urls=[server.url("/a.xml"), server.url("/b.xml")], extra=["workers: 2"]
        )
        database = database_of(config)
        # New bodies: the fork server (and its resource tracker) start, and the workers from it.
        assert once_processes(config) >= 2
        assert stored_items(database) == 6
        # Every feed answers 304: nothing to parse, no process at all.
        assert once_processes(config) == 0
        assert [r.headers.get("if-none-match") for r in server.requests_for("/a.xml")] == [None, '"1"']
        assert stored_items(database) == 6
        # One new item in one feed: the workers start again for it.
        feed.add("new", "Bakery opens in the old town", "Bread and rolls.")
        server.set("/a.xml", feed.rss(), etag='"2"')
        assert once_processes(config) >= 2
        assert stored_items(database) == 7


def stored_items(database: Path) -> int:
    connection = sqlite3.connect(database)
    try:
        return int(connection.execute("SELECT count(*) FROM items").fetchone()[0])
    finally:
        connection.close()


def database_of(config: Path) -> Path:
    return config.parent / "state" / "monitor.db"


def matched_rules(database: Path) -> dict[str, list[str]]:
    """guid → ids of the rules that matched it."""
    if not database.exists():
        return {}
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT i.guid, m.rule_id FROM matches m JOIN items i ON i.key = m.item_key ORDER BY 1, 2"
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        connection.close()
    found: dict[str, list[str]] = {}
    for guid, rule in rows:
        found.setdefault(guid, []).append(rule)
    return found


class GatedRules(RuleSet):
    """The real rules, except that matching an item titled "GATE <path>" waits until that file exists: a
    worker held busy for as long as the test wants, with no timing involved."""

    def match_with_actors(
        self, item: Item, analysis: Analysis | None = None
    ) -> tuple[list[Match], ActorMentions]:
        if item.title.startswith("GATE "):
            gate = Path(item.title.removeprefix("GATE "))
            deadline = time.monotonic() + 60
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return super().match_with_actors(item, analysis)


def test_while_a_worker_is_busy_the_loop_fetches_and_the_other_worker_records(
    tmp_path: Path, server: FeedServer
) -> None:
    gate = tmp_path / "open"
    held = FeedBuilder()
    held.add("g", f"GATE {gate}", "Held in its worker until the test opens the gate.")
    server.set("/held.xml", held.rss())
    for name in ("b", "c"):
        feed = FeedBuilder()
        feed.add_headlines(name, range(3))
        server.set(f"/{name}.xml", feed.rss())
    urls = [server.url(f"/{name}.xml") for name in ("held", "b", "c")]
    config = make_config(tmp_path, urls, 2, fetch={"concurrency": 3})
    real = load_rules(DEFAULT_RULES)
    done: list[str] = []

    async def run() -> tuple[list[str], int, list[FeedOutcome]]:
        async with open_runtime(config, GatedRules(real.rules, real.actors), clock=lambda: T0) as runtime:
            polls = asyncio.ensure_future(poll_all(runtime, on_done=lambda o: done.append(o.url)))
            # The held feed's worker is busy; the loop still fetches every feed, and the other worker
            # records its feed meanwhile.
            while not (urls[1] in done and server.count("/c.xml") == 1):
                assert not polls.done()
                await asyncio.sleep(0.02)
            before = list(done)
            gate.touch()
            return before, server.count("/c.xml"), await polls

    before, fetched, outcomes = asyncio.run(asyncio.wait_for(run(), timeout=120))
    assert urls[0] not in before and fetched == 1
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"] and outcomes[0].new_items == 1
