"""1,000 feeds on one node and on two, on PostgreSQL, beside one node on SQLite.

    .venv/bin/python bench/bench_cluster.py [--feeds 1000] [--items 10] [--new 2] [--concurrency 8]

A feed farm (bench/feedfarm.py) serves N generated RSS feeds on 127.0.0.1 with ETag/304 from a process of its
own. For each setup (sqlite ×1, postgresql ×1, postgresql ×2) a fresh database is made and three rounds run:

1. fill: every item new (N × --items items; the story index grows, every fetch takes the story lock);
2. unchanged: every feed answers 304;
3. new: --new new items per feed.

In each round every node is a process of its own (`python bench/bench_cluster.py --node CONFIG`) that opens the
daemon's runtime (monitor.service.open_runtime: the store, the story index, the fetcher), then waits for "go"
so that start-up is not measured, and polls the way the daemon's tick does: it claims as many due feeds as it
has free poll slots (Store.claim_feeds: FOR UPDATE SKIP LOCKED on PostgreSQL) and polls them, until no feed is
due any more. So two nodes share the feeds between them as two daemons would.

Measured per round: wall time from "go" to the last node done; feeds polled per second; CPU per poll (user +
sys of the node processes, from getrusage inside them, plus on PostgreSQL the CPU of the server's processes,
from /proc, since on this machine the server competes for the same two cores); database round trips per poll
(PostgreSQL: statements, BEGINs and COMMITs sent, counted by PostgresStore.round_trips, since psycopg has no
trace callback; SQLite: statements executed, by sqlite3's trace callback, which are calls into the library,
not network round trips); and from the farm the requests, 304s and the most fetches any one feed got (1: no feed
fetched twice in a round).

No channel is configured, so nothing is delivered; rules are the bundled ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feedfarm import FeedFarm  # bench/ is on sys.path when a bench script runs

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("MONITOR_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


# -- one node -----------------------------------------------------------------------------------------------


def node_main(config_path: Path) -> None:
    sys.path.insert(0, str(REPO))
    from monitor.config import load_config
    from monitor.service import check_config, open_runtime

    config = load_config(config_path)
    ruleset = check_config(config)

    async def run() -> None:
        async with open_runtime(config, ruleset) as runtime:
            store = runtime.store
            statements = [0]
            conn = getattr(store, "_conn", None)
            if conn is not None:  # SQLite: count statements executed

                def trace(_: str) -> None:
                    statements[0] += 1

                conn.set_trace_callback(trace)
            # Time spent waiting for the cluster's story lock and holding it (the serial part of a poll).
            lock_wait = [0.0]
            lock_held = [0.0]
            original_lock = store.story_lock

            @contextlib.contextmanager
            def timed_lock() -> Iterator[None]:
                asked = time.perf_counter()
                with original_lock():
                    got = time.perf_counter()
                    lock_wait[0] += got - asked
                    try:
                        yield
                    finally:
                        lock_held[0] += time.perf_counter() - got

            store.story_lock = timed_lock  # type: ignore[method-assign]
            # Time in commit_fetch (the transaction's statements; under the lock when the fetch had new items).
            commit_time = [0.0]
            original_commit = store.commit_fetch

            def timed_commit(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original_commit(*args, **kwargs)
                finally:
                    commit_time[0] += time.perf_counter() - started

            store.commit_fetch = timed_commit  # type: ignore[method-assign]
            print("ready", flush=True)
            sys.stdin.readline()  # "go"
            rt0 = int(getattr(store, "round_trips", 0))
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            polls = new_items = errors = 0
            lease = config.cluster.lease
            running: set[asyncio.Task[Any]] = set()
            limit = config.fetch.concurrency
            while True:
                free = limit - len(running)
                claims = store.claim_feeds(runtime.pipeline.clock(), lease, limit=free) if free > 0 else []
                for claim in claims:
                    running.add(asyncio.ensure_future(runtime.pipeline.poll(claim.url, claim)))
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    running.discard(task)
                    outcome = task.result()
                    polls += 1
                    new_items += outcome.new_items
                    errors += outcome.status == "error"
            wall = time.perf_counter() - start
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            result = {
                "polls": polls,
                "new_items": new_items,
                "errors": errors,
                "wall": wall,
                "cpu": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
                "round_trips": int(getattr(store, "round_trips", 0)) - rt0 + statements[0],
                "lock_wait": lock_wait[0],
                "lock_held": lock_held[0],
                "commit": commit_time[0],
            }
            # Reported while the connections are still open: the driver reads the server's CPU of their
            # backends now, before they exit with the pool.
            print(json.dumps(result), flush=True)
            sys.stdin.readline()  # "bye"

    asyncio.run(run())


# -- the driver ------------------------------------------------------------------------------------------------


def write_config(folder: Path, name: str, database: str, urls: list[str], concurrency: int) -> Path:
    lines = [
        f"database: {database}",
        'allow_private_networks: ["127.0.0.1/32"]',
        "interval: 1h",  # due once per round: the driver makes every feed due before each round
        "log_level: WARNING",
        "fetch:",
        f"  concurrency: {concurrency}",
        "  total_timeout: 30",
        # The farm is one host: per-host politeness (2 at a time, 200 ms apart) would measure the gap, not us.
        "  per_host_concurrency: 0",
        "  per_host_gap: 0s",
        "cluster:",
        f"  node: {name}",
        "  lease: 2m",
        "feeds:",
        *(f"  - url: {url}" for url in urls),
    ]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def postgres_cpu(dbname: str | None) -> dict[int, float]:
    """CPU seconds so far (user + sys, from /proc) of each PostgreSQL backend serving `dbname` (their command
    line names the database: "postgres: USER DBNAME HOST(PORT) ...")."""
    if dbname is None:
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f" {dbname} " not in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace"
            ):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def run_round(configs: list[Path], farm: FeedFarm, dbname: str | None) -> dict[str, Any]:
    nodes = [
        subprocess.Popen(
            [sys.executable, __file__, "--node", str(config)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    for node in nodes:
        assert node.stdout is not None
        line = node.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"node did not start: {line!r}")
    farm.stats()  # reset the farm's counters
    pg0 = postgres_cpu(dbname)
    start = time.perf_counter()
    for node in nodes:
        assert node.stdin is not None
        node.stdin.write("go\n")
        node.stdin.flush()
    results = []
    for node in nodes:
        assert node.stdout is not None
        results.append(json.loads(node.stdout.readline()))
    wall = time.perf_counter() - start
    pg1 = postgres_cpu(dbname)
    server = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
    for node in nodes:
        assert node.stdin is not None
        node.stdin.write("bye\n")
        node.stdin.flush()
    for node in nodes:
        node.wait(60)
    stats = farm.stats()
    polls = sum(r["polls"] for r in results)
    return {
        "nodes": len(nodes),
        "polls": polls,
        "per_node": [r["polls"] for r in results],
        "new_items": sum(r["new_items"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "wall": wall,
        "polls_per_s": polls / wall if wall else 0.0,
        "cpu_ms_per_poll": 1000 * sum(r["cpu"] for r in results) / max(polls, 1),
        "server_cpu_ms_per_poll": 1000 * server / max(polls, 1),
        "round_trips_per_poll": sum(r["round_trips"] for r in results) / max(polls, 1),
        # Share of the round's wall time the story lock was held (summed over nodes: near 1.0 means story
        # assignment is the serial bottleneck) and the mean wait for it per poll.
        "lock_held_share": sum(r["lock_held"] for r in results) / wall if wall else 0.0,
        "lock_wait_ms_per_poll": 1000 * sum(r["lock_wait"] for r in results) / max(polls, 1),
        "lock_held_ms_per_poll": 1000 * sum(r["lock_held"] for r in results) / max(polls, 1),
        "commit_ms_per_poll": 1000 * sum(r["commit"] for r in results) / max(polls, 1),
        "requests": stats["requests"],
        "not_modified": stats["not_modified"],
        "max_fetches_per_feed": stats["max_fetches_per_feed"],
    }


def make_due(database: str) -> None:
    """Every feed due now (the rounds come faster than the interval)."""
    if database.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(database) as conn:
            if conn.execute("SELECT to_regclass('feeds')").fetchone() != (None,):
                conn.execute("UPDATE feeds SET next_fetch_at = now()")
        return
    import sqlite3
    from datetime import UTC, datetime

    if Path(database).exists():
        with sqlite3.connect(database) as conn:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            conn.execute("UPDATE feeds SET next_fetch_at = ?", (now,))


def create_database() -> tuple[str, str]:
    import psycopg
    from psycopg import sql

    name = f"monitor_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = PG_ADMIN.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--node", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=10, help="items per feed (the fill round)")
    parser.add_argument("--new", type=int, default=2, help="new items per feed in the third round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--setups", default="sqlite:1,postgresql:1,postgresql:2")
    args = parser.parse_args()
    if args.node is not None:
        node_main(args.node)
        return
    print(f"load average at start: {os.getloadavg()}", flush=True)
    rows = []
    for setup in args.setups.split(","):
        backend, count = setup.split(":")
        farm = FeedFarm(args.feeds, args.items)
        folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        dbname = None
        if backend == "sqlite":
            database = str(folder / "monitor.db")
        else:
            dbname, database = create_database()
        try:
            configs = [
                write_config(folder, f"n{i}", database, farm.urls, args.concurrency)
                for i in range(int(count))
            ]
            for round_name, advance in (("fill", 0), ("unchanged", 0), ("new", args.new)):
                if advance:
                    farm.advance(advance)
                make_due(database)
                result = run_round(configs, farm, dbname)
                result.update(setup=f"{backend} ×{count}", round=round_name)
                rows.append(result)
                print(json.dumps(result), flush=True)
        finally:
            farm.stop()
            if dbname is not None:
                drop_database(dbname)
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print()
    print(
        "| setup | round | polls (per node) | new items | wall s | polls/s | CPU ms/poll (nodes) | "
        "CPU ms/poll (server) | round trips/poll | story lock held | lock held / wait / commit ms per poll | 304s | "
        "max fetches of a feed |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per_node = "+".join(str(n) for n in r["per_node"])
        print(
            f"| {r['setup']} | {r['round']} | {r['polls']} ({per_node}) | {r['new_items']:,} | {r['wall']:.1f} | "
            f"{r['polls_per_s']:.1f} | {r['cpu_ms_per_poll']:.1f} | {r['server_cpu_ms_per_poll']:.1f} | "
            f"{r['round_trips_per_poll']:.1f} | {100 * r['lock_held_share']:.0f} % | {r['lock_held_ms_per_poll']:.1f} / "
            f"{r['lock_wait_ms_per_poll']:.1f} / {r['commit_ms_per_poll']:.1f} | "
            f"{r['not_modified']} | {r['max_fetches_per_feed']} |"
        )


if __name__ == "__main__":
    main()
