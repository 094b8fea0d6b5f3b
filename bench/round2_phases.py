"""Where the CPU of one `monitor once` goes, phase by phase, in one process: imports, config, rules, store,
story index, worker pool, the polls, the close.

    .venv/bin/python bench/round2_phases.py path/to/monitor.yaml

Point it at a configuration whose feeds were polled before (round 2 of bench_vs_reader: every feed answers 304),
e.g. one bench/profile_rounds.py writes. It wraps the runtime's steps (monkeypatching, for measuring only) and
prints CPU (process_time) and wall milliseconds per phase; CPU of processes below this one (the worker pool's
fork server and workers) is not in it: bench/profile_rounds.py counts the whole tree.
"""

from __future__ import annotations

import time

MARKS: list[tuple[str, float, float]] = []


def mark(name: str) -> None:
    MARKS.append((name, time.process_time(), time.perf_counter()))


mark("interpreter")


def main() -> None:
    import asyncio
    import resource
    import sys
    from pathlib import Path
    from typing import Any

    import monitor.cli  # noqa: F401 (what `python -m monitor` imports first)

    mark("import monitor.cli")
    from monitor.config import load_config

    mark("import monitor.config")
    from monitor import once, service

    mark("import monitor.once (service, pipeline, ...)")
    config = load_config(Path(sys.argv[1]))
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

    async def poll_all(*args: Any, **kwargs: Any) -> Any:
        mark("channels, worker pool, Fetcher open")
        outcomes = await real_poll(*args, **kwargs)
        mark(f"poll_all ({len(outcomes)} feeds)")
        return outcomes

    service.load_story_index = load_story_index  # type: ignore[assignment]
    once.poll_all = poll_all  # type: ignore[assignment]
    once.check_config = lambda _config: ruleset  # already loaded and timed above
    asyncio.run(once.run_once(config))
    mark("deliver, close")
    previous = MARKS[0]
    print(f"{'phase':45s} {'CPU ms':>8s} {'wall ms':>8s}")
    print(f"{'interpreter start (before the first line)':45s} {previous[1] * 1000:8.0f}")
    for name, cpu, wall in MARKS[1:]:
        print(f"{name:45s} {(cpu - previous[1]) * 1000:8.0f} {(wall - previous[2]) * 1000:8.0f}")
        previous = (name, cpu, wall)
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"this process: {own.ru_utime + own.ru_stime:.2f} s CPU, peak RSS {own.ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":  # the worker pool's fork server imports this file again as __mp_main__
    main()
