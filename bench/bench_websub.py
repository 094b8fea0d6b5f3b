"""WebSub latency: from the publisher's ping (the hub's content-distribution POST) to the webhook alert.

Real parts on 127.0.0.1: a FeedServer for the feed, the test hub (tests/support/websubhub.py), the subscriber
(monitor.websub.WebSub on a real runtime: SQLite file, rules, webhook channel), a WebhookReceiver. Each run
publishes one new item that matches a rule; the clock starts just before the hub opens its POST and stops
when the receiver has read the alert's request (time.perf_counter in the same process, threads).

    nice -n 10 .venv/bin/python -m bench.bench_websub [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.receivers import RecordedRequest
from tests.test_websub import Setup, rss, setup, subscribed, subscriber


async def measure(env: Setup, runs: int) -> list[float]:
    arrived: list[float] = []
    got = threading.Event()
    original = env.hook._next_status

    def stamped(request: RecordedRequest) -> int:
        arrived.append(time.perf_counter())
        got.set()
        return original(request)

    env.hook._next_status = stamped  # type: ignore[method-assign]
    latencies: list[float] = []
    async with subscriber(env) as (runtime, websub):
        await subscribed(env, runtime, websub)
        items = [("g1", "Markets open flat")]
        for run in range(runs):
            items.insert(0, (f"p{run}", f"Ceasefire number {run} agreed in talks over region {run}"))
            body = rss(env.hub.url, env.topic, items[:20])
            seen = len(arrived)
            got.clear()
            started = time.perf_counter()
            await asyncio.to_thread(env.hub.publish, env.topic, body)
            assert await asyncio.to_thread(got.wait, 30), "no alert"
            latencies.append(arrived[seen] - started)
            await asyncio.sleep(0.05)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fixture: Any = setup.__wrapped__  # type: ignore[attr-defined]
        generator = fixture(Path(tmp))
        env = next(generator)
        try:
            latencies = asyncio.run(measure(env, args.runs))
        finally:
            generator.close()
    ms = sorted(x * 1000 for x in latencies)
    print(f"runs {len(ms)}: median {statistics.median(ms):.1f} ms, min {ms[0]:.1f}, max {ms[-1]:.1f}")
    print("all (ms):", " ".join(f"{x:.1f}" for x in ms))


if __name__ == "__main__":
    main()
