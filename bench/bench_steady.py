"""Steady state under `monitor run`: many feeds at a fixed interval, with CPU share, RSS and a latency probe.

Issue 10's targets: 10,000 feeds at a 10-minute interval for at least 20 minutes under `monitor run`, under 10 %
of one core and under 300 MB RSS; a new matching item to the webhook POST, p99 under 1 s.

Real parts on 127.0.0.1: the generated feed farm (bench/feedfarm.py, its own process, ETag/304), `monitor run`
as a subprocess on a fresh SQLite file, and a webhook receiver in this process. One rule fires on words
starting with "benchprobe" only, so the generated items (real words of the demo's feeds) alert nothing and the probes alert
once each.

- Warm-up: the daemon's first poll of every feed (feeds × items new items), not measured.
- Measured window (`--minutes`): every `--churn-every` seconds, `--churn-feeds` random feeds publish one new
  generated item (a realistic trickle: by default 100 a minute across the farm); every `--probe-every` seconds
  one random feed publishes a probe, an item that matches the rule (a word of its own, "benchprobe…").
- CPU share: user + system ticks of the daemon and its child processes over the window (/proc), divided by the
  window's wall time: 100 % is one core. RSS: the sum over the same processes, sampled every 5 s; beside it the
  sum of their PSS (shared pages counted once) and the daemon's own RSS.
- Latency: from the moment the farm first served a body carrying the probe (the poll that found it) to the
  moment the receiver read the webhook POST naming it: the pipeline, the commit and the outbox, not the
  polling interval (a probe waits up to the interval for its feed's next poll; that is the schedule, measured
  by bench_adaptive). A probe served but never received is reported as lost.

    PYTHONPATH=. .venv/bin/python bench/bench_steady.py [--feeds 10000 --minutes 20] [--config-extra 'workers: 2']
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.feedfarm import FeedFarm, _words

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MARKER = re.compile(rb"/probe/(\d+)\.html")


class Receiver:
    """A webhook receiver on 127.0.0.1 that stamps each probe marker with the time its POST was read."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.requests = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                receiver.requests += 1
                for number in MARKER.findall(body):
                    receiver.arrived.setdefault(f"benchprobe-{number.decode()}", now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (worker processes count toward the daemon's share)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree.extend(children)
        frontier = children
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 1e6


def pss_mb(pids: list[int]) -> float:
    """Proportional set size summed over the tree: pages the fork server shares with its workers (and the
    daemon's libraries they share) counted once, where the RSS sum counts them in every process."""
    total = 0
    for pid in pids:
        try:
            with Path(f"/proc/{pid}/smaps_rollup").open() as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total * 1024 / 1e6


def stored_items(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return 0


def folded_probes(db: Path, markers: list[str]) -> set[str]:
    """Of `markers`, the probes stored in a story that an earlier probe opened: they alert nothing new, by
    design (one notification per story), so they are not lost."""
    numbers = {f"http://127.0.0.1/probe/{m.rsplit('-', 1)[1]}.html": m for m in markers}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(
            "SELECT link, story_id FROM items WHERE link LIKE 'http://127.0.0.1/probe/%' ORDER BY fetched_at"
        ).fetchall()
    first: dict[str, str] = {}
    folded = set()
    for link, story in rows:
        if story in first and link in numbers:
            folded.add(numbers[link])
        first.setdefault(story, link)
    return folded


def write_config(work: Path, urls: list[str], hook: str, interval: str, extra: str) -> Path:
    rules = work / "rules"
    rules.mkdir()
    (rules / "probe.yaml").write_text(
        "rules:\n  - id: bench-probe\n    title: Bench probe\n    any: [benchprobe*]\n", encoding="utf-8"
    )
    lines = [
        f"database: {work / 'monitor.db'}",
        f"rules: {rules}",
        'allow_private_networks: ["127.0.0.1/32"]',
        "log_level: WARNING",
        f"interval: {interval}",
        # The farm is one host standing in for 10,000 publishers: per-host politeness would measure the limit.
        "fetch: {per_host_concurrency: 0, per_host_gap: 0s}",
        *(extra.splitlines() if extra else []),
        "channels:",
        f"  hook: {{type: webhook, url: {hook}}}",
        "feeds:",
        *(f"  - url: {url}" for url in urls),
    ]
    config = work / "monitor.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def letters(number: int) -> str:
    """A word of letters only, unique per number: each probe's own rule word, so that no two probes share a
    rare word (one shared by every probe made the story tier fold later probes into the first one's story,
    where they alert nothing new: by design, but then they measure nothing)."""
    word = ""
    while True:
        number, digit = divmod(number, 26)
        word += "abcdefghijklmnopqrstuvwxyz"[digit]
        if number == 0:
            return word


def probe_item(number: int, lang_feed: int) -> dict[str, str]:
    rng = random.Random(number)
    lang = ("en", "de", "ru")[lang_feed % 3]
    return {
        "guid": f"urn:bench:probe:{number}",
        "link": f"http://127.0.0.1/probe/{number}.html",
        "title": f"Benchprobe{letters(number)} {_words(rng, lang, 6, 10)}",
        "summary": f"<p>{_words(rng, lang, 20, 30)}.</p>",
        "date": format_datetime(datetime.now(UTC)),
        "lang": lang,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10, help="items per feed at the start")
    parser.add_argument("--interval", default="10m")
    parser.add_argument("--minutes", type=float, default=20.0, help="the measured window")
    parser.add_argument("--probe-every", type=float, default=10.0)
    parser.add_argument("--churn-every", type=float, default=60.0)
    parser.add_argument("--churn-feeds", type=int, default=100)
    parser.add_argument("--warmup-timeout", type=float, default=3600.0)
    parser.add_argument("--config-extra", default="", help="YAML lines added to the daemon's configuration")
    args = parser.parse_args()

    receiver = Receiver()
    farm = FeedFarm(args.feeds, args.items)
    work = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    config = write_config(work, farm.urls, receiver.url, args.interval, args.config_extra)
    log = (work / "daemon.log").open("w")
    started = time.time()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rng = random.Random(7)
    try:
        expected = args.feeds * args.items
        while (count := stored_items(work / "monitor.db")) < expected:
            if daemon.poll() is not None:
                raise SystemExit(f"monitor run exited with {daemon.returncode}; see {work / 'daemon.log'}")
            if time.time() - started > args.warmup_timeout:
                raise SystemExit(f"warm-up did not finish: {count} of {expected} items stored")
            time.sleep(2)
        warmup = time.time() - started
        pids = process_tree(daemon.pid)
        peak_warmup = rss_mb(pids)
        print(f"warm-up: {expected:,} items in {warmup:.0f} s; RSS {peak_warmup:.0f} MB", flush=True)
        farm.stats()  # reset the counters
        load_before = os.getloadavg()
        cpu0, wall0 = cpu_seconds(process_tree(daemon.pid)), time.monotonic()
        window = args.minutes * 60
        rss: list[float] = []
        pss: list[float] = []
        main_rss: list[float] = []
        published: dict[str, int] = {}
        next_probe = next_churn = next_rss = wall0
        number = 0
        while (now := time.monotonic()) - wall0 < window:
            if now >= next_rss:
                pids = process_tree(daemon.pid)
                rss.append(rss_mb(pids))
                pss.append(pss_mb(pids))
                main_rss.append(rss_mb([daemon.pid]))
                next_rss += 5
            if now >= next_churn:
                farm.advance_some(rng.sample(range(args.feeds), args.churn_feeds))
                next_churn += args.churn_every
            if now >= next_probe:
                feed = rng.randrange(args.feeds)
                farm.publish(feed, probe_item(number, feed), f"benchprobe-{number}")
                published[f"benchprobe-{number}"] = feed
                number += 1
                next_probe += args.probe_every
            if daemon.poll() is not None:
                raise SystemExit(f"monitor run exited with {daemon.returncode}; see {work / 'daemon.log'}")
            time.sleep(0.2)
        cpu1, wall1 = cpu_seconds(process_tree(daemon.pid)), time.monotonic()
        load_after = os.getloadavg()
        requests = farm.stats()
        served = farm.served()
        deadline = time.time() + 30
        while time.time() < deadline and any(m not in receiver.arrived for m in served):
            time.sleep(0.5)
        latencies = [receiver.arrived[m] - t for m, t in served.items() if m in receiver.arrived]
        missing = [m for m in served if m not in receiver.arrived]
        folded = folded_probes(work / "monitor.db", missing)
        lost = sorted(set(missing) - folded)
        share = (cpu1 - cpu0) / (wall1 - wall0)
        result = {
            "feeds": args.feeds,
            "interval": args.interval,
            "window_s": round(wall1 - wall0),
            "warmup_s": round(warmup),
            "cpu_share_of_one_core": round(share, 4),
            "rss_mb_max": round(max(rss), 1),
            "rss_mb_end": round(rss[-1], 1),
            "rss_mb_after_warmup": round(peak_warmup, 1),
            "pss_mb_max": round(max(pss), 1),
            "main_process_rss_mb_max": round(max(main_rss), 1),
            "processes": len(process_tree(daemon.pid)),
            "requests": requests["requests"],
            "not_modified": requests["not_modified"],
            "connections": requests["connections"],
            "probes_published": len(published),
            "probes_served": len(served),
            "probes_received": len(latencies),
            "probes_folded": len(folded),
            "probes_lost": lost,
            "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "latency_p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
            "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "load_average": [round(x, 1) for x in (*load_before, *load_after)],
            "config_extra": args.config_extra,
        }
        print(json.dumps(result, indent=1))
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        farm.stop()
        receiver.stop()
        log.close()


if __name__ == "__main__":
    main()
