"""Story clustering throughput with 100k stored signatures.

Generates synthetic items (random words from a fixed vocabulary, deterministic seed; every 10th item is a
near-copy of an earlier one), loads 100k of them into a StoryIndex the way the daemon does on start
(serialized signatures → load), then times `assign` for fresh items. Prints items/s and peak memory.

    .venv/bin/python bench/bench_stories.py [--stored 100000] [--queries 5000]
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import UTC, datetime, timedelta

from monitor.identify import content_hash
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
            texts.append((" ".join(rng.choices(vocabulary, k=9)), " ".join(rng.choices(vocabulary, k=45))))
    return texts


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

    started = time.perf_counter()
    builder = StoryIndex(window=timedelta(days=3650))
    rows = []
    for n, (title, summary) in enumerate(texts[: args.stored]):
        key = f"k{n}"
        digest = content_hash(title, summary)
        when = T0 + timedelta(seconds=n)
        assignment = builder.assign(
            item_key=key, title=title, summary=summary, url=None, content_hash=digest, published=when
        )
        rows.append(StoredSignature(key, assignment.story_id, builder.signature(key), when, None, digest))
    build_seconds = time.perf_counter() - started
    del builder

    started = time.perf_counter()
    index = StoryIndex(window=timedelta(days=3650))
    index.load(rows)
    load_seconds = time.perf_counter() - started

    queries = texts[args.stored :]
    joined = 0
    started = time.perf_counter()
    for n, (title, summary) in enumerate(queries):
        assignment = index.assign(
            item_key=f"q{n}",
            title=title,
            summary=summary,
            url=None,
            content_hash=content_hash(title, summary),
            published=T0 + timedelta(seconds=args.stored + n),
        )
        joined += not assignment.is_new_story
    assign_seconds = time.perf_counter() - started

    started = time.perf_counter()
    expired = index.expire(T0 + timedelta(seconds=args.stored // 2))
    expire_seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"stored signatures:      {args.stored}")
    print(
        f"assign while building:  {args.stored / build_seconds:,.0f} items/s (index growing 0 → {args.stored})"
    )
    print(f"load (restart):         {load_seconds:.2f} s for {args.stored} rows")
    print(
        f"assign with {args.stored} stored: {len(queries) / assign_seconds:,.0f} items/s "
        f"({1000 * assign_seconds / len(queries):.3f} ms/item; {joined} of {len(queries)} joined a story)"
    )
    print(f"expire {expired} entries: {expire_seconds:.2f} s")
    print(f"peak RSS:               {peak_mb:,.0f} MiB (includes the {args.stored} generated rows)")


if __name__ == "__main__":
    main()
