"""Rule matching throughput: items/s on ~1 KB news-like items, for 100/1,000 rules and 1,000/10,000 terms,
against a naive loop of one compiled regex per term, measured in the same run on one core.

Run: .venv/bin/python bench/bench_rules.py   (about a minute; prints a Markdown table)
     .venv/bin/python bench/bench_rules.py --default   (the default rules on feed-farm items, ms per item)

The rule files are generated (deterministic pseudo-words, seeded) and loaded through monitor.rules.load_rules,
so the numbers include nothing but matching: compile time is reported separately. The process pins itself to one
CPU (os.sched_setaffinity, where the OS has it) and says which.

Two matcher figures: "cold" is the first pass of a freshly loaded rule set over the first 500 items (the matcher
learns each distinct token once: stems, candidate terms); "warm" is the steady state: the median rate of three
runs over 2,000 further (different) items each, which also damps the noise of a shared machine. About a quarter of the words of every item are pseudo-random names from a vocabulary of about
11,000, so new tokens keep arriving in the warm pass too, as in a news stream.

`--default` measures what the daemon's worker does per new item (monitor.workers: `analyse_item`, then
`RuleSet.match_with_actors`) with the default rules (rules/) on the generated de/en/ru items of
bench/feedfarm.py, parsed and normalized by monitor's own parse stage: CPU ms per item (process time), after a
warm-up over other items, five runs over different items (median and minimum: on a shared machine the
minimum is the steadier figure). These items are full of the default rules'
words (Ukraine, Russia, talks, ...), so unlike the generated rule sets above most of the cost is verifying
phrases and evaluating the rules' NEAR/sentence expressions.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.analysis import analyse_item
from monitor.config import DEFAULT_RULES
from monitor.normalize import normalize_entries
from monitor.parse import parse_feed
from monitor.rules import RuleSet, load_rules
from monitor.text import detect_language
from monitor.types import Item

COMMON = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "by",
    "at",
    "from",
    "said",
    "it",
    "has",
    "have",
    "be",
    "are",
    "will",
    "its",
    "this",
    "after",
    "government",
    "minister",
    "country",
    "talks",
    "deal",
    "report",
    "market",
    "company",
    "year",
    "week",
    "new",
    "first",
    "people",
    "state",
    "president",
    "security",
    "energy",
    "prices",
    "officials",
    "war",
    "economy",
    "trade",
    "plan",
    "agreement",
    "support",
    "according",
    "meeting",
]
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "sen",
    "tor",
    "vil",
    "an",
    "dre",
    "po",
    "su",
    "ne",
    "ta",
    "rik",
    "mo",
    "lan",
    "gu",
    "be",
    "fa",
    "zo",
]
# Filler words (names, rare words) come from other syllables, so they never equal a term by accident.
FILLER = ["ke", "wu", "xi", "yo", "hap", "dum", "jel", "qua", "bri", "sno"]


def pseudo_word(rng: random.Random, syllables: list[str] = SYLLABLES) -> str:
    return "".join(rng.choice(syllables) for _ in range(rng.randint(3, 4)))


def make_terms(rng: random.Random, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add(pseudo_word(rng))
    terms = []
    for index, word in enumerate(sorted(words)):
        kind = index % 10
        if kind < 7:
            terms.append(word)
        elif kind < 9:
            terms.append(f"{word} {pseudo_word(rng)}")
        else:
            terms.append(word[:6] + "*")
    rng.shuffle(terms)
    return terms


def write_rules(directory: Path, terms: list[str], rule_count: int) -> None:
    lines = ["rules:"]
    per_rule = len(terms) // rule_count
    for index in range(rule_count):
        chunk = terms[index * per_rule : (index + 1) * per_rule]
        quoted = ", ".join(f"'{term}'" for term in chunk)
        lines.append(f"  - id: r{index}\n    any: [{quoted}]")
    (directory / "rules.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_items(rng: random.Random, terms: list[str], count: int) -> list[Item]:
    items = []
    plain = [t for t in terms if not t.endswith("*")]
    for index in range(count):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 1000:
            roll = rng.random()
            if roll < 0.01:
                words.append(rng.choice(plain))  # a real hit now and then
            elif roll < 0.25:
                words.append(pseudo_word(rng, FILLER).capitalize())
            else:
                words.append(rng.choice(COMMON))
        text = " ".join(words)
        items.append(
            Item(
                key=str(index),
                feed_url="https://bench.example/feed",
                feed_title="Bench",
                guid=str(index),
                link=None,
                url=None,
                title=text[:90],
                summary=text[90:],
                content="",
                categories=(),
                language="en",
                published=None,
                content_hash="",
            )
        )
    return items


def naive_regexes(terms: list[str]) -> list[re.Pattern[str]]:
    patterns = []
    for term in terms:
        if term.endswith("*"):
            patterns.append(re.compile(r"\b" + re.escape(term[:-1]) + r"\w*", re.IGNORECASE))
        else:
            patterns.append(re.compile(r"\b" + re.escape(term) + r"\b", re.IGNORECASE))
    return patterns


def time_matcher(ruleset: RuleSet, items: list[Item]) -> tuple[float, int]:
    fired = 0
    start = time.perf_counter()
    for item in items:
        fired += len(ruleset.match(item))
    return len(items) / (time.perf_counter() - start), fired


def time_naive(patterns: list[re.Pattern[str]], items: list[Item]) -> float:
    start = time.perf_counter()
    for item in items:
        text = f"{item.title}\n{item.summary}"
        for pattern in patterns:
            pattern.search(text)
    return len(items) / (time.perf_counter() - start)


def pin_to_one_core() -> str:
    """Restrict this process to one CPU, so the figures are per core; says which (or why not)."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS)"
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    return f"pinned to CPU {allowed[-1]} (of {len(allowed)} allowed)"


def farm_items(feeds: range, newest: int) -> list[Item]:
    """The feed farm's items of `feeds` (50 per feed, the newest numbered `newest`), through parse + normalize."""
    from bench.feedfarm import render_feed

    items: list[Item] = []
    for feed in feeds:
        url = f"http://127.0.0.1/feed/{feed}"
        items.extend(normalize_entries(parse_feed(render_feed(feed, newest), source=url), feed_url=url))
    return items


def time_worker_path(ruleset: RuleSet, items: list[Item]) -> tuple[float, int]:
    """CPU ms per item of the worker's per-item analysis and matching, and the matches found."""
    fired = 0
    start = time.process_time()
    for item in items:
        matches, _ = ruleset.match_with_actors(item, analyse_item(item))
        fired += len(matches)
    return (time.process_time() - start) * 1000 / len(items), fired


def main_default() -> None:
    print(pin_to_one_core(), file=sys.stderr)
    load = os.getloadavg()
    ruleset = load_rules(DEFAULT_RULES)
    warm = farm_items(range(0, 60), 49)
    runs = [farm_items(range(start, start + 60), 1049) for start in range(60, 360, 60)]
    time_worker_path(ruleset, warm)
    timed = [time_worker_path(ruleset, items) for items in runs]
    ms = sorted(m for m, _ in timed)
    count = sum(len(items) for items in runs)
    fired = sum(f for _, f in timed)
    print(
        f"default rules ({len(ruleset)} rules), {len(runs)} runs of {len(runs[0]):,} feed-farm items (de/en/ru): "
        f"{ms[len(ms) // 2]:.3f} ms/item CPU median, {ms[0]:.3f} min (runs {', '.join(f'{m:.3f}' for m in ms)}), "
        f"{fired / count:.3f} matches/item; load average at start {load[0]:.2f}"
    )


def main() -> None:
    if "--default" in sys.argv[1:]:
        main_default()
        return
    print(pin_to_one_core(), file=sys.stderr)
    rows = []
    detected_rate = 0.0
    for rule_count, term_count in ((100, 1_000), (100, 10_000), (1_000, 1_000), (1_000, 10_000)):
        rng = random.Random(rule_count * 100_003 + term_count)
        terms = make_terms(rng, term_count)
        items = make_items(rng, terms, 6_500)
        with tempfile.TemporaryDirectory() as tmp:
            write_rules(Path(tmp), terms, rule_count)
            started = time.perf_counter()
            ruleset = load_rules(Path(tmp))
            compile_s = time.perf_counter() - started
        cold, _ = time_matcher(ruleset, items[:500])
        runs = sorted(time_matcher(ruleset, items[start : start + 2_000]) for start in (500, 2_500, 4_500))
        rate, fired = runs[1]
        naive_items = items[: max(20, 200_000 // term_count)]
        naive = time_naive(naive_regexes(terms), naive_items)
        rows.append((rule_count, term_count, compile_s, cold, rate, naive, rate / naive, fired / 2_000))
        print(f"done {rule_count} rules / {term_count} terms", file=sys.stderr)
        if (rule_count, term_count) == (1_000, 10_000):
            # The same warm items without a declared language: the matcher detects it per item
            # (monitor.text.detect_language), as for an item that reaches it undetected.
            undeclared = [dataclasses.replace(item, language=None) for item in items[500:2_500]]
            # The detector's model loads once per process (the daemon loads it in the background at start):
            # not part of the per-item rate.
            detect_language("Warm-up: the language model loads here, not inside the timed run.")
            detected_rate, _ = time_matcher(ruleset, undeclared)
    print(
        "| rules | terms | load+compile s | cold items/s | warm items/s (median of 3) | naive regex items/s "
        "| speed-up (warm) "
        "| matches/item |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rule_count, term_count, compile_s, cold, rate, naive, ratio, per_item in rows:
        print(
            f"| {rule_count:,} | {term_count:,} | {compile_s:.2f} | {cold:,.0f} | {rate:,.0f} | {naive:,.0f} | "
            f"{ratio:,.0f}x | {per_item:.2f} |"
        )
    print(
        f"\nSame run, 1,000 rules / 10,000 terms, 2,000 warm items with no declared language (detected per item): "
        f"{detected_rate:,.0f} items/s"
    )


if __name__ == "__main__":
    main()
