"""A seeded synthetic item stream for the story index (tests only): random words, some capitalised names, figures,
near copies, headline-only copies and short texts, with expiry along the way. Its assignments are pinned by a
digest, so that a change of the index's data structures that changes a decision fails a test."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta

from monitor.analysis import analyse
from monitor.identify import content_hash
from monitor.stories import StoryIndex

T0 = datetime(2025, 4, 4, tzinfo=UTC)


def word(rng: random.Random, vocabulary: int) -> str:
    """A made-up lower-case word, one of `vocabulary` (base-26 spellings of a random number)."""
    n = rng.randrange(vocabulary) + 26
    spelled = ""
    while n:
        n, digit = divmod(n, 26)
        spelled = "abcdefghijklmnopqrstuvwxyz"[digit] + spelled
    return spelled


def stream_digest(count: int = 3000, *, seed: int = 10, vocabulary: int = 3000) -> str:
    """sha256 of every assignment (item, story of first item, reason, score to 6 places) of the stream."""
    rng = random.Random(seed)
    index = StoryIndex(window=timedelta(hours=24))
    texts: list[tuple[str, str]] = []
    openers: dict[str, int] = {}
    digest = hashlib.sha256()
    for n in range(count):
        roll = rng.random()
        if texts and roll < 0.1:  # a near copy with a sentence added
            title, summary = texts[rng.randrange(len(texts))]
            title, summary = (
                "Update: " + title,
                summary + " " + " ".join(word(rng, vocabulary) for _ in range(6)),
            )
        elif texts and roll < 0.15:  # the headline alone
            title, summary = texts[rng.randrange(len(texts))][0], ""
        elif roll < 0.3:  # a short text
            title = " ".join(word(rng, vocabulary) for _ in range(6))
            summary = " ".join(word(rng, vocabulary) for _ in range(8))
        else:
            words = [word(rng, vocabulary) for _ in range(30)]
            for position in rng.sample(range(1, 30), 3):
                words[position] = words[position].capitalize()
            words[rng.randrange(1, 30)] = f"{rng.randrange(10, 90)} million dollars"
            title = " ".join(word(rng, vocabulary) for _ in range(8))
            summary = " ".join(words) + "."
        texts.append((title, summary))
        published = T0 + timedelta(minutes=n)
        found = index.assign(
            item_key=f"k{n}",
            title=title,
            summary=summary,
            url=f"https://site{n % 7}.example/a/{rng.randrange(count)}",
            content_hash=content_hash(title, summary),
            published=published,
            source=f"https://feed{n % 13}.example/",
            analysis=analyse(title, summary, language="en"),
        )
        opener = openers.setdefault(found.story_id, n)
        digest.update(f"{n} {opener} {found.reason} {found.similarity:.6f}\n".encode())
        if n % 400 == 399:
            index.expire(published - timedelta(hours=24))
    return digest.hexdigest()
