"""Story clustering throughput with 100k stored items, all tiers (exact, near-duplicate, event) included.

Generates synthetic items (random words from a fixed vocabulary, deterministic seed; every 10th item is a
near-copy of an earlier one), loads 100k of them into a StoryIndex the way the daemon does on start (stored
signatures and event features → load), then times, for fresh items on one core, `prepare` (the item's own
features: cleaned text, MinHash signature, event features; no index state, so a worker process can make them)
and `assign` with those features against the stored items (the part that runs in order). Each item's
`Analysis` (tokens, language) is made before the timed loop, as the pipeline makes it once for the rule matcher
and the story index; the time with the analysis made inside the loop is printed too. Memory per stored item is
measured with tracemalloc: what the index holds after `load`, divided by the number of items, in all and per
module (index.py: the per-item records; exact.py; near_duplicate.py and buckets.py: the near-duplicate tier;
event.py: the event tier). The stored rows reach `load` as fresh objects (unpickled one by one, as a database
driver makes them), so the strings the index keeps are counted. `load` is timed without tracemalloc first (and
the RSS it adds read from /proc), then again under tracemalloc for the memory figures.

    PYTHONPATH=. .venv/bin/python bench/bench_stories.py [--stored 100000] [--queries 5000]
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import resource
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.analysis import analyse
from monitor.identify import content_hash, item_key
from monitor.stories import StoredSignature, StoryIndex

T0 = datetime(2025, 4, 4, tzinfo=UTC)


def _letters(n: int) -> str:
    """A distinct lower-case word for each n: 0 → "ba", 1 → "ca", ..."""
    word = ""
    n += 26
    while n:
        n, digit = divmod(n, 26)
        word = "abcdefghijklmnopqrstuvwxyz"[digit] + word
    return word


def synthetic_texts(count: int, rng: random.Random, vocabulary: list[str]) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for n in range(count):
        if n >= 10 and n % 10 == 0:
            title, summary = texts[rng.randrange(len(texts))]
            texts.append(("Update: " + title, summary + " " + " ".join(rng.choices(vocabulary, k=8))))
        else:
            # A few capitalised words per summary, as names are in news text (they feed the event tier's names).
            words = rng.choices(vocabulary, k=45)
            for position in rng.sample(range(1, 45), 4):
                words[position] = words[position].capitalize()
            texts.append((" ".join(rng.choices(vocabulary, k=9)), " ".join(words)))
    return texts


# Where each module's allocations count in the per-tier breakdown.
TIERS = {
    "index.py": "per-item records (index.py)",
    "exact.py": "exact tier (exact.py)",
    "near_duplicate.py": "near-duplicate tier (near_duplicate.py, buckets.py)",
    "buckets.py": "near-duplicate tier (near_duplicate.py, buckets.py)",
    "event.py": "event tier (event.py)",
    "slots.py": "digest tables: key, hash, URL → row (slots.py)",
}


def item_place(n: int) -> tuple[str, str]:
    """The feed and the article URL of the n-th item: 200 outlets, URLs as long as real ones."""
    outlet = f"https://www.outlet{n % 200}.example"
    return f"{outlet}/rss/world.xml", f"{outlet}/2025/04/04/world/article-{n}-about-the-story-of-the-day"


def tier_of(traceback: tracemalloc.Traceback) -> str:
    """The tier an allocation counts for, by the line that made it (numpy and dict growth count for the
    module that called them); objects of the stored rows that the index keeps (key, story id, hash and URL
    strings, datetimes) are counted apart."""
    frame = traceback[0]
    path = Path(frame.filename)
    if path.parent.name == "stories" and path.name in TIERS:
        return TIERS[path.name]
    if frame.filename == __file__ and frame.lineno in _ROW_LINES:
        return "stored-row objects the index keeps (strings, datetimes)"
    return "elsewhere"


def fresh_rows(stored: list[bytes]) -> Iterator[StoredSignature]:
    """The stored rows as new objects each, as the store's driver makes them on start."""
    for blob in stored:
        yield pickle.loads(blob)  # row objects


_ROW_LINES = {
    n + 1 for n, line in enumerate(Path(__file__).read_text().splitlines()) if "# row objects" in line
}


def rss_bytes() -> int:
    """The process's resident set now (not the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5_000)
    args = parser.parse_args()
    rng = random.Random(4)
    # Letter-only words: digits in every word would make every word a "figure" (see monitor.stories.figures),
    # which real news text is not.
    vocabulary = [_letters(n) for n in range(30_000)]
    texts = synthetic_texts(args.stored + args.queries, rng, vocabulary)

    started = time.process_time()
    builder = StoryIndex(window=timedelta(days=3650))
    rows = []
    for n, (title, summary) in enumerate(texts[: args.stored]):
        feed, url = item_place(n)
        key = item_key(feed, f"{url}#guid", url, title, summary)
        digest = content_hash(title, summary)
        when = T0 + timedelta(seconds=n)
        assignment = builder.assign(
            item_key=key,
            title=title,
            summary=summary,
            url=url,
            source=feed,
            content_hash=digest,
            published=when,
            analysis=analyse(title, summary, language="en"),
        )
        rows.append(
            StoredSignature(
                key,
                assignment.story_id,
                builder.signature(key),
                when,
                url,
                digest,
                title,
                summary,
                source=feed,
                language="en",
                event_features=builder.event_features(key),
            )
        )
    build_seconds = time.process_time() - started
    del builder
    stored = [pickle.dumps(row) for row in rows]
    del rows
    gc.collect()

    rss_before = rss_bytes()
    started = time.process_time()
    index = StoryIndex(window=timedelta(days=3650))
    index.load(fresh_rows(stored))
    load_seconds = time.process_time() - started
    gc.collect()
    rss_added = rss_bytes() - rss_before
    del index
    gc.collect()

    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    base = tracemalloc.take_snapshot()
    started = time.process_time()
    index = StoryIndex(window=timedelta(days=3650))
    index.load(fresh_rows(stored))
    traced_load_seconds = time.process_time() - started
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    held -= before
    by_tier: dict[str, int] = {}
    for stat in tracemalloc.take_snapshot().compare_to(base, "lineno"):
        by_tier[tier_of(stat.traceback)] = by_tier.get(tier_of(stat.traceback), 0) + stat.size_diff
    tracemalloc.stop()

    queries = texts[args.stored :]
    places = [item_place(args.stored + n) for n in range(len(queries))]
    keys = [
        item_key(feed, url, url, title, summary)
        for (feed, url), (title, summary) in zip(places, queries, strict=True)
    ]
    prepared = [
        (title, summary, content_hash(title, summary), analyse(title, summary, language="en"))
        for title, summary in queries
    ]
    # The item's own features (cleaned text, MinHash signature, event features) do not depend on the index:
    # `prepare` makes them, and a worker process can (issue 10, item 4). Timed apart from the assignment
    # against the 100k stored items, which is what must run in order in one process.
    # CPU seconds of this process, not wall time: "on one core", and steadier while other jobs share the box.
    # An index without `prepare` (main before issue 10, for a before figure) makes the features in `assign`.
    started = time.process_time()
    features: list[Any] = [
        index.prepare(title, summary, analysis=analysis) if hasattr(index, "prepare") else None
        for title, summary, _, analysis in prepared
    ]
    prepare_seconds = time.process_time() - started
    joined = 0
    started = time.process_time()
    for n, ((title, summary, digest, analysis), ready) in enumerate(zip(prepared, features, strict=True)):
        assignment = index.assign(
            item_key=keys[n],
            title=title,
            summary=summary,
            url=places[n][1],
            source=places[n][0],
            content_hash=digest,
            published=T0 + timedelta(seconds=args.stored + n),
            analysis=analysis,
            **({"prepared": ready} if ready is not None else {}),
        )
        joined += not assignment.is_new_story
    assign_seconds = time.process_time() - started

    started = time.process_time()
    for n, (title, summary, digest, _) in enumerate(prepared):
        index.assign(
            item_key=f"r{n}",
            title=title,
            summary=summary,
            url=None,
            source=places[n][0],
            content_hash=digest,
            published=T0 + timedelta(seconds=args.stored + len(prepared) + n),
            analysis=analyse(title, summary, language="en"),
        )
    with_analysis_seconds = time.process_time() - started

    started = time.process_time()
    expired = index.expire(T0 + timedelta(seconds=args.stored // 2))
    expire_seconds = time.process_time() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"stored items:           {args.stored}")
    print(
        f"assign while building:  {args.stored / build_seconds:,.0f} items/s CPU (index growing 0 → {args.stored})"
    )
    print(
        f"load (restart):         {load_seconds:.2f} s CPU for {args.stored} rows "
        f"({traced_load_seconds:.2f} s under tracemalloc); RSS added {rss_added / args.stored:,.0f} B/item"
    )
    print(
        f"memory per stored item: {held / args.stored:,.0f} bytes (tracemalloc, the index after load; "
        f"{(peak - before) / args.stored:,.0f} at the peak of the load)"
    )
    for tier, size in sorted(by_tier.items(), key=lambda pair: -pair[1]):
        print(f"  {tier + ':':55} {size / args.stored:8,.0f} B/item")
    print(
        f"assign with {args.stored} stored: {len(queries) / assign_seconds:,.0f} items/s CPU, features prepared "
        f"({1000 * assign_seconds / len(queries):.3f} ms/item; {joined} of {len(queries)} joined a story)"
    )
    print(
        f"prepare (per item):     {len(queries) / max(prepare_seconds, 1e-9):,.0f} items/s CPU "
        f"({1000 * prepare_seconds / len(queries):.3f} ms/item: cleaned text, signature, event features)"
    )
    print(
        f"prepare + assign:       {len(queries) / (prepare_seconds + assign_seconds):,.0f} items/s CPU "
        f"(both on one core)"
    )
    print(
        f"analysis + prepare + assign of copies: {len(queries) / with_analysis_seconds:,.0f} items/s "
        f"(the same texts again: they join by content hash)"
    )
    print(f"expire {expired} entries: {expire_seconds:.2f} s")
    print(f"peak RSS:               {peak_mb:,.0f} MiB (includes the {args.stored} generated rows)")


if __name__ == "__main__":
    main()
