"""CPU profile of `monitor once` in the three rounds of bench_vs_reader, without reader.

    .venv/bin/python bench/profile_rounds.py [--feeds 200] [--out /tmp/profile] [--top 25]

Serves the same generated feeds (bench/feedfarm.py), runs `monitor once` under cProfile as a fresh process for
round 1 (all new), 2 (all 304) and 3 (5 new per feed), and prints each round's CPU seconds (user + sys, from
wait4, so other processes on a shared machine do not count) and its top functions by cumulative time. The raw
profiles are kept in --out as round1.prof ... for pstats or snakeviz.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import tempfile
from pathlib import Path

from feedfarm import FeedFarm  # bench/ is on sys.path when a bench script runs

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "monitor-profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="CPU seconds only, no cProfile overhead")
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="checkout to measure (its .venv), e.g. main for a before figure",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    farm = FeedFarm(args.feeds)
    try:
        with tempfile.TemporaryDirectory(prefix="profile-rounds-") as tmp:
            work = Path(tmp)
            config = work / "monitor.yaml"
            config.write_text(
                "\n".join(
                    [
                        f"database: {work / 'monitor.db'}",
                        'allow_private_networks: ["127.0.0.1/32"]',
                        "log_level: WARNING",
                        "fetch: {concurrency: 8}",
                        "feeds:",
                        *(f"  - url: {url}" for url in farm.urls),
                    ]
                )
                + "\n"
            )
            for round_no in (1, 2, 3):
                if round_no == 3:
                    farm.advance(5)
                prof = args.out / f"round{round_no}.prof"
                argv = [str(args.repo / ".venv" / "bin" / "python")]
                if not args.no_profile:
                    argv += ["-m", "cProfile", "-o", str(prof)]
                argv += ["-m", "monitor", "once", "--config", str(config)]
                proc = subprocess.Popen(
                    argv, cwd=args.repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                _, status, usage = os.wait4(proc.pid, 0)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                if os.waitstatus_to_exitcode(status) != 0:
                    raise SystemExit(f"round {round_no} failed: {err[-2000:]}")
                cpu = usage.ru_utime + usage.ru_stime
                print(
                    f"== round {round_no}: CPU {cpu:.2f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB",
                    flush=True,
                )
                if not args.no_profile:
                    pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(args.top)
    finally:
        farm.stop()


if __name__ == "__main__":
    main()
