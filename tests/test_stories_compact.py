"""The story index's compact storage gives back what it was given: every item's signature and event features,
as the store writes them, stay those of its assignment while other items join its story and items expire; and an
index rebuilt from those stored rows assigns new items as the index that made them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.analysis import analyse
from monitor.identify import content_hash
from monitor.stories import StoredSignature, StoryAssignment, StoryIndex

T0 = datetime(2025, 4, 4, tzinfo=UTC)


def _word(rng: random.Random, vocabulary: int = 2000) -> str:
    n = rng.randrange(vocabulary) + 26
    word = ""
    while n:
        n, digit = divmod(n, 26)
        word = "abcdefghijklmnopqrstuvwxyz"[digit] + word
    return word


def _texts(count: int, rng: random.Random) -> list[tuple[str, str]]:
    """Long texts with names and figures, near copies (they join the story of the copied item, so sub-clusters
    get second and third members) and short texts."""
    texts: list[tuple[str, str]] = []
    for _ in range(count):
        roll = rng.random()
        if texts and roll < 0.25:
            title, summary = texts[rng.randrange(max(0, len(texts) - 40), len(texts))]
            texts.append(("Update: " + title, summary + " " + " ".join(_word(rng) for _ in range(5))))
        elif roll < 0.35:
            texts.append((" ".join(_word(rng) for _ in range(5)), " ".join(_word(rng) for _ in range(7))))
        else:
            words = [_word(rng) for _ in range(28)]
            for position in rng.sample(range(1, 28), 3):
                words[position] = words[position].capitalize()
            words[rng.randrange(1, 28)] = f"{rng.randrange(10, 90)} million dollars"
            texts.append((" ".join(_word(rng) for _ in range(8)), " ".join(words) + "."))
    return texts


def _assign(index: StoryIndex, key: str, title: str, summary: str, n: int) -> StoryAssignment:
    return index.assign(
        item_key=key,
        title=title,
        summary=summary,
        url=f"https://site{n % 5}.example/a/{n % 300}",
        content_hash=content_hash(title, summary),
        published=T0 + timedelta(minutes=n),
        source=f"https://feed{n % 11}.example/",
        analysis=analyse(title, summary, language="en"),
    )


def test_stored_forms_survive_joins_and_expiry_and_a_reload_assigns_alike() -> None:
    rng = random.Random(7)
    texts = _texts(1500, rng)
    index = StoryIndex(window=timedelta(hours=3))
    stored: dict[str, StoredSignature] = {}
    joined_events = 0
    for n, (title, summary) in enumerate(texts[:1200]):
        key = f"k{n}"
        found = _assign(index, key, title, summary, n)
        joined_events += found.reason in ("similar", "event")
        stored[key] = StoredSignature(
            key, found.story_id, index.signature(key), T0 + timedelta(minutes=n),
            f"https://site{n % 5}.example/a/{n % 300}", content_hash(title, summary), title, summary,
            f"https://feed{n % 11}.example/", "en", index.event_features(key),
        )  # fmt: skip
        if n % 300 == 299:
            index.expire(T0 + timedelta(minutes=n) - timedelta(hours=3))
            live = [k for k in stored if k in index]
            assert 0 < len(live) < len(stored)
            for k in live:
                assert index.signature(k) == stored[k].signature, k
                assert index.event_features(k) == stored[k].event_features, k
    assert joined_events > 100  # sub-clusters of several members were made (and split again by expiry)

    reloaded = StoryIndex(window=timedelta(hours=3))
    cutoff = T0 + timedelta(minutes=1199) - timedelta(hours=3)
    index.expire(cutoff)
    assert reloaded.load(row for row in stored.values() if row.published >= cutoff) == len(index)
    for n, (title, summary) in enumerate(texts[1200:], start=1200):
        assert _assign(reloaded, f"k{n}", title, summary, n) == _assign(index, f"k{n}", title, summary, n)
