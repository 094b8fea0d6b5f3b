"""CPU and wall time of `monitor once` in the three rounds of bench_vs_reader, without reader.

    .venv/bin/python bench/profile_rounds.py [--feeds 200] [--out /tmp/profile] [--top 25]
    .venv/bin/python bench/profile_rounds.py --no-profile --feeds 500 --workers 0,auto --repeat 3

Serves the same generated feeds (bench/feedfarm.py), runs `monitor once` as a fresh process for round 1 (all
new), 2 (all 304) and 3 (5 new per feed), and prints each round's wall time, new items/s and CPU seconds (user +
sys of monitor and every process below it: worker processes and their fork server included, so other processes
on a shared machine do not count). With a profile (the default), the top functions by cumulative time; the raw
profiles are kept in --out as round1.prof ... for pstats or snakeviz. A profile sees the daemon's own process
only: profile with `--workers 0`.

`--spy` samples each round with py-spy instead (`pip install py-spy` into the venv; 200 Hz, non-blocking, the
worker processes included) and prints the CPU share of each pipeline stage (fetch, parse, normalize, matching,
story features, story assignment, alert decisions, store...). A sample is given to the innermost frame of
monitor's own code whose module names a stage (helpers such as monitor.text inherit their caller's stage),
except that any sample inside an import is "start-up imports". Idle threads are not sampled. The raw stacks are
kept in --out as roundN-<workers>-<n>.spy.txt.

`--workers 0,auto` measures each setting in the same run, on the same farm (a fresh database each); with
`--repeat N` the sequences alternate (0, auto, 0, auto, ...) and the table gives medians.

Accounting (bench/treeusage.py): each round runs under a small wrapper that is a child subreaper, so the fork
server and the workers, when orphaned at exit, are reaped by it and their CPU counted. Memory: peak RSS of the
largest process and the peak of the summed PSS of the whole tree (shared pages counted once).
"""

from __future__ import annotations

import argparse
import os
import pstats
import sqlite3
import statistics
import tempfile
from pathlib import Path
from typing import Any

from feedfarm import FeedFarm  # bench/ is on sys.path when a bench script runs
from treeusage import run_tree

REPO = Path(__file__).resolve().parent.parent

# Stages of a poll, by the module of monitor's code a sample is in (the innermost such frame decides; first
# match wins). HELPERS are transparent: their caller's stage counts (the CLI and the store thread's runner are
# callers of everything, so below them the libraries decide: the event loop, the worker pool...).
HELPERS = ("monitor/text.py", "monitor/types.py", "monitor/timeutil.py", "monitor/cli/", "monitor/storethread.py",
           "monitor/__main__.py")  # fmt: skip
STAGES: tuple[tuple[str, str], ...] = (
    ("monitor/stories/features.py", "story features (prepare)"),
    ("monitor/stories/", "story assignment"),
    ("monitor/rules/", "matching"),
    ("monitor/alerting.py", "alert decisions and folding"),
    ("monitor/notify/", "alert decisions and folding"),
    ("monitor/store/", "store"),
    ("monitor/parse/", "parse and keys"),
    ("monitor/cachehints.py", "parse and keys"),
    ("monitor/identify.py", "normalize, identify, HTML to text, analysis"),
    ("monitor/normalize.py", "normalize, identify, HTML to text, analysis"),
    ("monitor/htmltext.py", "normalize, identify, HTML to text, analysis"),
    ("monitor/analysis.py", "normalize, identify, HTML to text, analysis"),
    ("monitor/feedlanguage.py", "normalize, identify, HTML to text, analysis"),
    ("monitor/fetch", "fetch (client, policy)"),
    ("monitor/netpolicy.py", "fetch (client, policy)"),
    ("monitor/policed_http.py", "fetch (client, policy)"),
    ("monitor/hostlimits.py", "fetch (client, policy)"),
    ("monitor/workers.py", "worker pool (pickling, dispatch)"),
    ("monitor/pipeline.py", "pipeline (schedule, decisions, glue)"),
    ("monitor/service.py", "service (tick, claims, start-up)"),
    ("monitor/config.py", "config and rules load"),
    ("monitor/", "other monitor code"),
)
# Functions of a stage's caller that split it further (checked anywhere on the stack under that stage).
REFINE: dict[str, tuple[tuple[str, str], ...]] = {
    "store": (("commit_fetch", "store: commit_fetch (one transaction)"),),
    "story assignment": (
        ("StoryIndex.prepare", "story features (prepare)"),
        ("StoryIndex.load", "story index load"),
        ("StoryIndex._ensure_loaded", "story index load"),
    ),
    "pipeline (schedule, decisions, glue)": (
        ("_decide_alerts", "alert decisions and folding"),
        ("_decide_escalations", "alert decisions and folding"),
    ),
}
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("aiohttp/", "fetch (client, policy)"),
    ("httpx/", "fetch (client, policy)"),
    ("httpcore/", "fetch (client, policy)"),
    ("asyncio/", "event loop (asyncio)"),
    ("concurrent/futures", "worker pool (pickling, dispatch)"),
    ("multiprocessing/", "worker pool (pickling, dispatch)"),
)


def stage_of(stack: str) -> str:
    """The stage of one py-spy raw stack (frames root first, `function (file:line)` joined by `;`)."""
    frames = stack.split(";")
    if any("_find_and_load" in frame for frame in frames):
        return "start-up imports"
    for depth in range(len(frames) - 1, -1, -1):
        frame = frames[depth]
        where = frame.rpartition(" (")[2]
        if "/monitor/" in where or where.startswith("monitor/"):
            path = "monitor/" + where.split("/monitor/", 1)[-1] if "/monitor/" in where else where
            if path.startswith(HELPERS):
                continue
            stage = next(name for prefix, name in STAGES if path.startswith(prefix))
            for function, refined in REFINE.get(stage, ()):
                if any(function in f for f in frames[: depth + 1]):
                    return refined
            return stage
    for depth in range(len(frames) - 1, -1, -1):
        where = frames[depth].rpartition(" (")[2]
        stage = next((name for marker, name in LIBRARIES if marker in where), None)
        if stage is not None:
            return stage
    if len(frames) == 1:
        return "interpreter (no Python frame: start, GC, exit)"
    return "other (libraries outside a stage)"


def stage_shares(raw: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stage = stage_of(stack)
            counts[stage] = counts.get(stage, 0) + int(count)
    return counts


def run_round(argv: list[str], cwd: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(prefix="profile-rounds-", suffix=".err") as err:
        result = run_tree(argv, cwd, stderr=Path(err.name))
        if result["code"] != 0:
            raise SystemExit(f"monitor once failed: {Path(err.name).read_text(errors='replace')[-3000:]}")
    return result


def items_in(database: Path) -> int:
    connection = sqlite3.connect(database)
    try:
        return int(connection.execute("SELECT count(*) FROM items").fetchone()[0])
    finally:
        connection.close()


def one_sequence(args: argparse.Namespace, farm: FeedFarm, workers: str, tag: str) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="profile-rounds-") as tmp:
        work = Path(tmp)
        config = work / "monitor.yaml"
        config.write_text(
            "\n".join(
                [
                    f"database: {work / 'monitor.db'}",
                    'allow_private_networks: ["127.0.0.1/32"]',
                    "log_level: WARNING",
                    # The farm is one host standing in for many publishers: per-host politeness would measure
                    # the limit (as in bench_vs_reader).
                    f"fetch: {{concurrency: {args.concurrency}, per_host_concurrency: 0, per_host_gap: 0s}}",
                    f"workers: {workers}",
                    "feeds:",
                    *(f"  - url: {url}" for url in farm.urls),
                ]
            )
            + "\n"
        )
        before = 0
        for round_no in (1, 2, 3):
            if round_no == 3:
                farm.advance(5)
            prof = args.out / f"round{round_no}-{tag}.prof"
            argv = [str(args.repo / ".venv" / "bin" / "python")]
            spy = args.out / f"round{round_no}-{tag}.spy.txt"
            if args.spy:
                argv = [str(REPO / ".venv" / "bin" / "py-spy"), "record", "--rate", "200", "--nonblocking",
                        "--subprocesses", "--format", "raw", "--output", str(spy), "--", *argv]  # fmt: skip
            elif not args.no_profile:
                argv += ["-m", "cProfile", "-o", str(prof)]
            argv += ["-m", "monitor", "once", "--config", str(config)]
            figures = run_round(argv, args.repo)
            stored = items_in(work / "monitor.db")
            figures.update(round=round_no, workers=workers, new=stored - before)
            before = stored
            rows.append(figures)
            print(
                f"== workers {workers}, round {round_no}: {figures['new']} new, wall {figures['wall']:.2f} s, "
                f"CPU {figures['cpu']:.2f} s (main process {figures['main_cpu']:.2f} s), peak RSS {figures['max_rss_mb']:.0f} MB (largest process), "
                f"{figures['tree_rss_mb']:.0f} MB PSS (all processes)",
                flush=True,
            )
            if args.spy:
                counts = stage_shares(spy)
                total = sum(counts.values()) or 1
                figures["stages"] = {k: v / total for k, v in counts.items()}
                for stage, count in sorted(counts.items(), key=lambda kv: -kv[1]):
                    print(
                        f"   {100 * count / total:5.1f} %  {figures['cpu'] * count / total:6.2f} s  {stage}"
                    )
            elif not args.no_profile:
                pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(args.top)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "monitor-profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="figures only, no cProfile overhead")
    parser.add_argument(
        "--spy", action="store_true", help="stage shares from py-spy samples instead of cProfile"
    )
    parser.add_argument("--workers", default="0", help="comma-separated `workers:` settings, e.g. 0,auto")
    parser.add_argument("--repeat", type=int, default=1, help="sequences per setting (medians)")
    parser.add_argument("--concurrency", type=int, default=8, help="fetch.concurrency")
    parser.add_argument(
        "--repo",
        type=Path,
        default=REPO,
        help="checkout to measure (its .venv), e.g. main for a before figure",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = [s.strip() for s in args.workers.split(",") if s.strip()]
    print(f"load average at start: {os.getloadavg()}", flush=True)
    runs: dict[str, list[list[dict[str, Any]]]] = {s: [] for s in settings}
    for number in range(args.repeat):
        for setting in settings:
            farm = FeedFarm(args.feeds)  # the same bytes every time: seeded
            try:
                runs[setting].append(one_sequence(args, farm, setting, f"{setting}-{number}"))
            finally:
                farm.stop()
    print(f"load average at end: {os.getloadavg()}", flush=True)
    print(
        "\n| workers | round | new items | wall s | new items/s | CPU s | of it main process | "
        "peak RSS MB (largest) | peak PSS MB (all) |\n|---|---|---|---|---|---|---|---|---|"
    )
    for setting in settings:
        for index, round_no in enumerate((1, 2, 3)):
            rows = [sequence[index] for sequence in runs[setting]]

            def median(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return statistics.median(row[key] for row in rows)

            rate = statistics.median(row["new"] / row["wall"] for row in rows) if round_no != 2 else 0.0
            print(
                f"| {setting} | {round_no} | {median('new'):.0f} | {median('wall'):.2f} | "
                f"{rate:,.0f} | {median('cpu'):.2f} | {median('main_cpu'):.2f} | {median('max_rss_mb'):.0f} | {median('tree_rss_mb'):.0f} |"
            )


if __name__ == "__main__":
    main()
