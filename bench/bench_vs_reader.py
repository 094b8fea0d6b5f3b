"""monitor beside lemon24/reader on the same generated feeds, in one run.

    .venv/bin/python bench/bench_vs_reader.py [--feeds 1000] [--repeat 3] [--concurrency 8]

A feed farm (bench/feedfarm.py) serves N generated RSS feeds × 50 items on 127.0.0.1 with ETag/304, from a
process of its own. Each tool then runs three rounds, each as a fresh process, as a user's cron job would:

1. every item new (an empty database);
2. every feed unchanged (each answers 304);
3. five new items per feed (the other 45 already stored).

The whole sequence is repeated `--repeat` times with fresh databases; the tables give medians. For each round:
new items stored (counted in each tool's own database), wall time, CPU seconds (user + sys) of the tool's whole
process tree (monitor's fork server and worker processes included; bench/treeusage.py) and of its own process,
peak RSS of the largest process, peak PSS of the tree (shared pages counted once), and the requests, 304s and
TCP connections the server saw. Until 2026-12-03 the CPU column was wait4 of the tool's own process only, which
left out monitor's workers (see bench/RESULTS.md).

reader is installed from PyPI into bench/.venv-reader (made on first use, reused after). Both tools fetch with
the same concurrency. monitor runs its whole pipeline (match against the bundled rules, stories, store);
reader parses and stores. No channel is configured, so nothing is delivered.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from feedfarm import FeedFarm  # bench/ is on sys.path when a bench script runs
from treeusage import run_tree

REPO = Path(__file__).resolve().parent.parent
READER_VENV = REPO / "bench" / ".venv-reader"
READER_VERSION = "3.26"  # the newest that supports Python 3.11 (3.27 needs 3.12)

READER_SCRIPT = """
import sys
from reader import make_reader
db, urls_file, workers, add = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
reader = make_reader(db)
if add:
    for url in open(urls_file).read().split():
        reader.add_feed(url, exist_ok=True)
reader.update_feeds(workers=workers, scheduled=False)  # every feed, as `monitor once` does
reader.close()
"""


def ensure_reader() -> Path:
    python = READER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(READER_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"reader=={READER_VERSION}",
                # reader vendors feedparser but not its sgmllib dependency
                "sgmllib3k",
            ],
            check=True,
        )
    return python


def run_measured(argv: list[str], cwd: Path) -> dict[str, float]:
    """Run a command to completion; its wall time, CPU seconds of its whole process tree and of its own
    process, peak RSS of its largest process and peak PSS of the tree (MB): bench/treeusage.py."""
    # Output to files, not pipes: `monitor once` writes a line per feed, and at 1,000 feeds a pipe's 64 KiB
    # that nobody read until the end filled and the tool blocked on its write forever.
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        result = run_tree(argv, cwd, stdout=out, stderr=err)
        if result["code"] != 0:
            raise RuntimeError(
                f"{argv[0]} failed: {err.read_text(errors='replace')[-2000:]}{out.read_text(errors='replace')[-500:]}"
            )
    return {
        "wall": result["wall"],
        "cpu": result["cpu"],
        "main_cpu": result["main_cpu"],
        "rss_mb": result["max_rss_mb"],
        "pss_mb": result["tree_rss_mb"],
    }


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def monitor_config(work: Path, urls: list[str], concurrency: int) -> Path:
    config = work / "monitor.yaml"
    lines = [
        f"database: {work / 'monitor.db'}",
        'allow_private_networks: ["127.0.0.1/32"]',
        "log_level: WARNING",
        # The farm is one host standing in for 1,000 publishers: per-host politeness would measure the limit.
        f"fetch: {{concurrency: {concurrency}, per_host_concurrency: 0, per_host_gap: 0s}}",
        "feeds:",
        *(f"  - url: {url}" for url in urls),
    ]
    config.write_text("\n".join(lines) + "\n")
    return config


def one_sequence(
    farm: FeedFarm, args: argparse.Namespace, reader_python: Path
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {"reader": [], "monitor": []}
    with tempfile.TemporaryDirectory(prefix="bench-vs-reader-") as tmp:
        work = Path(tmp)
        urls_file = work / "urls.txt"
        urls_file.write_text("\n".join(farm.urls))
        config = monitor_config(work, farm.urls, args.concurrency)
        reader_db = work / "reader.sqlite"
        monitor_db = work / "monitor.db"
        for round_no in (1, 2, 3):
            if round_no == 3:
                farm.advance(5)
            for tool in ("reader", "monitor"):
                if tool == "reader":
                    before = count_rows(reader_db, "entries") if reader_db.exists() else 0
                    argv = [
                        str(reader_python),
                        "-c",
                        READER_SCRIPT,
                        str(reader_db),
                        str(urls_file),
                        str(args.concurrency),
                        "1" if round_no == 1 else "0",
                    ]
                    measured = run_measured(argv, work)
                    new = count_rows(reader_db, "entries") - before
                else:
                    before = count_rows(monitor_db, "items") if monitor_db.exists() else 0
                    argv = [str(REPO / ".venv" / "bin" / "monitor"), "once", "--config", str(config)]
                    measured = run_measured(argv, work)
                    new = count_rows(monitor_db, "items") - before
                server = farm.stats()
                row = {"round": round_no, "new": new, **measured, **server}
                results[tool].append(row)
                print(f"  round {round_no} {tool:8s} {json.dumps(row)}", flush=True)
    return results


def median_rows(runs: list[dict[str, list[dict[str, Any]]]], tool: str, round_no: int) -> dict[str, float]:
    rows = [run[tool][round_no - 1] for run in runs]
    keys = (
        "new",
        "wall",
        "cpu",
        "main_cpu",
        "rss_mb",
        "pss_mb",
        "requests",
        "not_modified",
        "connections",
        "max_fetches_per_feed",
    )
    return {key: statistics.median(float(row[key]) for row in rows) for key in keys}


def report(runs: list[dict[str, list[dict[str, Any]]]], feeds: int) -> str:
    lines = [
        "| round | tool | new items | wall s | CPU s (tree) | of it own process | new items/s | CPU ms/feed | "
        "peak RSS MB (largest) | peak PSS MB (tree) | requests | 304s | connections |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for round_no in (1, 2, 3):
        by_tool = {tool: median_rows(runs, tool, round_no) for tool in ("reader", "monitor")}
        for tool, m in by_tool.items():
            rate = m["new"] / m["wall"] if m["wall"] else 0.0
            lines.append(
                f"| {round_no} | {tool} | {m['new']:,.0f} | {m['wall']:.1f} | {m['cpu']:.2f} | {m['main_cpu']:.2f} | "
                f"{rate:,.0f} | {1000 * m['cpu'] / feeds:.2f} | {m['rss_mb']:.0f} | {m['pss_mb']:.0f} | "
                f"{m['requests']:,.0f} | "
                f"{m['not_modified']:,.0f} | {m['connections']:,.0f} |"
            )
        r, m = by_tool["reader"], by_tool["monitor"]
        speed = (m["new"] / m["wall"]) / (r["new"] / r["wall"]) if r["new"] and m["new"] else float("nan")
        ratios.append(
            f"round {round_no}: monitor/reader new items/s {speed:.2f}x, CPU {m['cpu'] / r['cpu']:.2f}x reader's, "
            f"peak RSS {m['rss_mb'] / r['rss_mb']:.2f}x reader's, peak PSS of the tree {m['pss_mb'] / r['pss_mb']:.2f}x"
        )
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in ratios) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    reader_python = ensure_reader()
    start_load = os.getloadavg()
    print(
        f"load average at the start: {start_load[0]:.2f} {start_load[1]:.2f} {start_load[2]:.2f}", flush=True
    )
    runs = []
    for n in range(args.repeat):
        farm = FeedFarm(args.feeds)
        try:
            print(f"sequence {n + 1} of {args.repeat} ({args.feeds} feeds on port {farm.port})", flush=True)
            runs.append(one_sequence(farm, args, reader_python))
        finally:
            farm.stop()
    print()
    print(
        f"{args.feeds} feeds × 50 items, concurrency {args.concurrency}, medians of {args.repeat}, load average "
        f"{start_load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    print(report(runs, args.feeds))


if __name__ == "__main__":
    main()
