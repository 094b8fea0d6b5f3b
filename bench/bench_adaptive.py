"""Fixed versus adaptive polling (issue 13 item 3), simulated: 10,000 feeds with realistic posting rates on a
simulated clock, polled either every `--fixed` minutes or with `interval: auto` (monitor.adaptive, the code the
daemon runs). Reports requests per day and the delay from publication to the poll that finds an item
(median and p95), after a warm-up day that gives the adaptive estimate its evidence.

Posting rates (seeded, reproducible): log-normal, median one item per 2 h, from one a day to one a minute
(a wire); 60 % of the feeds post by day only (06-22 UTC), the rest around the clock; publication is a Poisson
process at the feed's rate.

    .venv/bin/python bench/bench_adaptive.py [--feeds 10000] [--days 3] [--fixed 10]
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import time
from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import monitor.adaptive
from monitor.adaptive import adaptive_interval, hourly_rates

START = datetime(2026, 12, 1, tzinfo=UTC)


def publications(rng: random.Random, days: float) -> list[list[float]]:
    """Per feed, publication times in seconds from START."""
    feeds = []
    horizon = days * 86400
    for _ in range(ARGS.feeds):
        per_hour = min(60.0, max(1 / 24, math.exp(rng.gauss(math.log(0.5), 1.3))))
        daytime = rng.random() < 0.6
        rate = (
            per_hour * (24 / 16 if daytime else 1.0) / 3600
        )  # the same items per day, squeezed into the day
        times, t = [], 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= horizon:
                break
            if daytime and not 6 <= (t % 86400) / 3600 < 22:
                continue  # thinned: a day-only feed publishes nothing at night
            times.append(t)
        feeds.append(times)
    return feeds


def simulate(feeds: list[list[float]], days: float, adaptive: bool) -> tuple[float, list[float]]:
    lo, hi, window = timedelta(minutes=2), timedelta(hours=2), timedelta(days=14)
    fixed = ARGS.fixed * 60.0
    warm = 86400.0
    horizon = days * 86400
    queue = [(0.0, index) for index in range(len(feeds))]
    heapq.heapify(queue)
    seen_upto = [0] * len(feeds)  # how many of the feed's publications were found
    arrivals: list[list[datetime]] = [[] for _ in feeds]
    requests = 0
    delays: list[float] = []
    while queue:
        now, index = heapq.heappop(queue)
        if now >= horizon:
            continue
        if now >= warm:
            requests += 1
        times = feeds[index]
        upto = bisect_right(times, now)
        found = times[seen_upto[index] : upto]
        seen_upto[index] = upto
        moment = START + timedelta(seconds=now)
        if now >= warm:
            delays.extend(now - t for t in found if t >= warm)
        if adaptive:
            arrivals[index].extend([moment] * len(found))
            rates = hourly_rates(arrivals[index], moment, window, hi)
            step = adaptive_interval(rates, moment, lo, hi).total_seconds()
        else:
            step = fixed
        heapq.heappush(queue, (now + step, index))
    return requests / (days - 1), delays


def main() -> None:
    rng = random.Random(20261202)
    feeds = publications(rng, ARGS.days)
    items_per_day = sum(len(f) for f in feeds) / ARGS.days
    print(
        f"{ARGS.feeds} feeds, {items_per_day:,.0f} items/day, {ARGS.days:g} simulated days (first one warms up)"
    )
    print("| polling | requests/day | requests per new item | delay median | delay p95 | sim wall s |")
    print("|---|---|---|---|---|---|")
    auto = f"auto (2m..2h, {monitor.adaptive.TARGET_ITEMS:g} item/poll)"
    for name, adaptive in ((f"fixed {ARGS.fixed:g} min", False), (auto, True)):
        started = time.perf_counter()
        per_day, delays = simulate(feeds, ARGS.days, adaptive)
        wall = time.perf_counter() - started
        delays.sort()
        p95 = delays[int(0.95 * (len(delays) - 1))]
        print(
            f"| {name} | {per_day:,.0f} | {per_day / items_per_day:.1f} | {statistics.median(delays) / 60:.1f} min "
            f"| {p95 / 60:.1f} min | {wall:.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--fixed", type=float, default=10.0, help="the fixed interval, minutes")
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        help="expected new items per poll (default: monitor's TARGET_ITEMS)",
    )
    ARGS = parser.parse_args()
    if ARGS.target is not None:
        monitor.adaptive.TARGET_ITEMS = ARGS.target
    main()
