"""Where the CPU of one `monitor once` goes, phase by phase, in one process: imports, config, rules, store,
story index, worker pool, the polls, the close; and what each store call of the polls costs.

    .venv/bin/python bench/round2_phases.py path/to/monitor.yaml
    .venv/bin/python bench/round2_phases.py --feeds 200 [--repeat 5]

The first form measures one `monitor once` on a configuration whose feeds were polled before (round 2 of
bench_vs_reader: every feed answers 304). The second makes that setting itself: a feed farm (bench/feedfarm.py)
of N generated feeds × 50 items, round 1 as a `monitor once` process, then `--repeat` round-2 processes measured
one after the other (each a fresh process, as a cron job would run it), and the medians.

Each measured process wraps the runtime's steps (monkeypatching, for measuring only) and prints CPU
(process_time) and wall milliseconds per phase. Then the store: every public method of the SQLite store called
during the run, with its calls, CPU of the calling thread (thread_time: the store thread's own, not the event
loop's) and the SQL statements it ran (sqlite3's trace callback; BEGIN and COMMIT count), so "per 304" is each
method's figure divided by the feeds. CPU of processes below this one (the worker pool) is not in it:
bench/profile_rounds.py counts the whole tree.
"""

from __future__ import annotations

import time

MARKS: list[tuple[str, float, float]] = []


def mark(name: str) -> None:
    MARKS.append((name, time.process_time(), time.perf_counter()))


mark("interpreter")


def instrument_store() -> dict[str, list[float]]:
    """Count calls, thread CPU and statements of every public SQLiteStore method (nested calls are charged to
    the outermost one only: feed_state inside claim_feeds is claim_feeds' cost)."""
    import functools
    import threading

    from monitor.store.sqlite import SQLiteStore

    figures: dict[str, list[float]] = {}  # name -> [calls, cpu seconds, statements]
    local = threading.local()
    real_init = SQLiteStore.__init__

    def init(self: SQLiteStore, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

        def traced(_statement: str) -> None:
            if getattr(local, "current", None) is not None:
                local.statements += 1

        self._conn.set_trace_callback(traced)

    SQLiteStore.__init__ = init  # type: ignore[method-assign]

    def wrap(name: str, fn: object) -> object:
        @functools.wraps(fn)  # type: ignore[arg-type]
        def measured(*args: object, **kwargs: object) -> object:
            if getattr(local, "current", None) is not None:
                return fn(*args, **kwargs)  # type: ignore[operator]
            local.current, local.statements = name, 0
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)  # type: ignore[operator]
            finally:
                row = figures.setdefault(name, [0, 0.0, 0])
                row[0] += 1
                row[1] += time.thread_time() - start
                row[2] += local.statements
                local.current = None

        return measured

    for name, fn in list(vars(SQLiteStore).items()):
        if callable(fn) and not name.startswith("_") and name not in ("transaction",):
            setattr(SQLiteStore, name, wrap(name, fn))
    return figures


def measure(config_path: str) -> None:
    import asyncio
    import json
    import os
    import resource
    from pathlib import Path
    from typing import Any

    import monitor.cli  # noqa: F401 (what `python -m monitor` imports first)

    mark("import monitor.cli")
    from monitor.config import load_config

    mark("import monitor.config")
    from monitor import once, service

    mark("import monitor.once (service, pipeline, ...)")
    figures = instrument_store()
    config = load_config(Path(config_path))
    mark("load_config")
    ruleset = service.check_config(config)
    mark("rules: load and compile")

    real_load = service.load_story_index

    def load_story_index(*args: Any, **kwargs: Any) -> Any:
        mark("store: open, reap, sync feeds")
        index = real_load(*args, **kwargs)
        mark("story index load")
        return index

    real_poll = service.poll_all
    polled = [0]

    async def poll_all(*args: Any, **kwargs: Any) -> Any:
        mark("channels, worker pool, Fetcher open")
        for row in figures.values():  # the store's figures are the polls' only
            row[:] = [0, 0.0, 0]
        outcomes = await real_poll(*args, **kwargs)
        polled[0] = len(outcomes)
        mark(f"poll_all ({len(outcomes)} feeds)")
        return outcomes

    service.load_story_index = load_story_index  # type: ignore[assignment]
    once.poll_all = poll_all  # type: ignore[assignment]
    once.check_config = lambda _config: ruleset  # already loaded and timed above
    asyncio.run(once.run_once(config))
    mark("deliver, close")
    previous = MARKS[0]
    phases = {"interpreter start (before the first line)": (previous[1] * 1000, 0.0)}
    for name, cpu, wall in MARKS[1:]:
        phases[name] = ((cpu - previous[1]) * 1000, (wall - previous[2]) * 1000)
        previous = (name, cpu, wall)
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{'phase':45s} {'CPU ms':>8s} {'wall ms':>8s}")
    for name, (cpu, wall) in phases.items():
        print(f"{name:45s} {cpu:8.0f} {wall:8.0f}")
    print(f"this process: {own.ru_utime + own.ru_stime:.2f} s CPU, peak RSS {own.ru_maxrss / 1024:.0f} MB")
    feeds = polled[0] or 1
    print(
        f"\nstore calls during poll_all, per feed ({feeds} feeds): calls, CPU µs (store thread), statements"
    )
    for name, (calls, cpu, statements) in sorted(figures.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(f"  {name:28s} {calls / feeds:6.2f} {1e6 * cpu / feeds:9.1f} {statements / feeds:6.2f}")
    store = {name: row for name, row in figures.items() if row[0]}
    total = [sum(row[i] for row in store.values()) for i in range(3)]
    print(f"  {'all':28s} {total[0] / feeds:6.2f} {1e6 * total[1] / feeds:9.1f} {total[2] / feeds:6.2f}")
    if os.environ.get("ROUND2_JSON"):
        Path(os.environ["ROUND2_JSON"]).write_text(
            json.dumps({"feeds": feeds, "phases": phases, "store": store, "cpu": own.ru_utime + own.ru_stime})
        )


def drive(feeds: int, repeat: int) -> None:
    """Make the round-2 setting (a farm, round 1) and measure `repeat` round-2 processes."""
    import json
    import os
    import statistics
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from feedfarm import FeedFarm

    repo = Path(__file__).resolve().parent.parent
    python = str(repo / ".venv" / "bin" / "python")
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    farm = FeedFarm(feeds)
    try:
        with tempfile.TemporaryDirectory(prefix="round2-phases-") as tmp:
            work = Path(tmp)
            config = work / "monitor.yaml"
            config.write_text(
                "\n".join(
                    [
                        f"database: {work / 'monitor.db'}",
                        'allow_private_networks: ["127.0.0.1/32"]',
                        "log_level: WARNING",
                        "fetch: {concurrency: 8, per_host_concurrency: 0, per_host_gap: 0s}",
                        "feeds:",
                        *(f"  - url: {url}" for url in farm.urls),
                    ]
                )
                + "\n"
            )
            started = time.monotonic()
            subprocess.run(
                [python, "-m", "monitor", "once", "--config", str(config)],
                cwd=repo,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(f"round 1: {time.monotonic() - started:.1f} s", flush=True)
            runs = []
            for number in range(repeat):
                out = work / f"run{number}.json"
                subprocess.run(
                    [python, __file__, str(config)],
                    cwd=repo,
                    check=True,
                    env={**os.environ, "ROUND2_JSON": str(out), "PYTHONPATH": str(repo)},
                    stdout=subprocess.DEVNULL if number else None,
                )
                runs.append(json.loads(out.read_text()))
    finally:
        farm.stop()
    print(f"\nload average at the end: {os.getloadavg()}")
    print(f"medians of {repeat} round-2 processes, {feeds} feeds, all 304:")
    print(f"  whole process CPU {statistics.median(r['cpu'] for r in runs) * 1000:.0f} ms")
    for phase in runs[0]["phases"]:
        print(f"  {phase:45s} {statistics.median(r['phases'][phase][0] for r in runs):8.0f} ms CPU")
    names = sorted({name for r in runs for name in r["store"]})
    print("  store, per feed: calls, CPU µs, statements")

    def per_feed(run: dict[str, object], name: str, column: int) -> float:
        row = run["store"].get(name, [0, 0.0, 0])  # type: ignore[attr-defined]
        return float(row[column]) / int(run["feeds"])  # type: ignore[call-overload]

    for name in names:
        calls = statistics.median(per_feed(r, name, 0) for r in runs)
        cpu = statistics.median(per_feed(r, name, 1) for r in runs) * 1e6
        statements = statistics.median(per_feed(r, name, 2) for r in runs)
        print(f"    {name:28s} {calls:6.2f} {cpu:9.1f} {statements:6.2f}")
    total = statistics.median(sum(per_feed(r, n, 1) for n in names) for r in runs) * 1e6
    total_statements = statistics.median(sum(per_feed(r, n, 2) for n in names) for r in runs)
    print(f"    {'all':28s} {'':6s} {total:9.1f} {total_statements:6.2f}")


if __name__ == "__main__":  # the worker pool's fork server imports this file again as __mp_main__
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", nargs="?", help="a configuration polled before (measure one process)")
    parser.add_argument("--feeds", type=int, help="make the setting: a farm of N feeds and round 1")
    parser.add_argument("--repeat", type=int, default=5, help="round-2 processes to measure (medians)")
    args = parser.parse_args()
    if args.config:
        measure(args.config)
    elif args.feeds:
        drive(args.feeds, args.repeat)
    else:
        parser.error("give a configuration or --feeds N")
