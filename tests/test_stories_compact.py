"""The story index's compact storage gives back what it was given: every item's signature and event features,
as the store writes them, stay those of its assignment while other items join its story and items expire; and an
index rebuilt from those stored rows assigns new items as the index that made them."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from monitor.analysis import analyse
from monitor.identify import content_hash
from monitor.stories import StoredSignature, StoryAssignment, StoryIndex
from monitor.stories.slots import DigestTable
from tests.support.synthetic_stream import word

T0 = datetime(2025, 4, 4, tzinfo=UTC)


def _word(rng: random.Random, vocabulary: int = 2000) -> str:
    return word(rng, vocabulary)


def _texts(count: int, rng: random.Random, vocabulary: int = 2000) -> list[tuple[str, str]]:
    """Long texts with names and figures, near copies (they join the story of the copied item, so sub-clusters
    get second and third members) and short texts."""
    texts: list[tuple[str, str]] = []
    for _ in range(count):
        roll = rng.random()
        if texts and roll < 0.25:
            title, summary = texts[rng.randrange(max(0, len(texts) - 40), len(texts))]
            texts.append(
                ("Update: " + title, summary + " " + " ".join(_word(rng, vocabulary) for _ in range(5)))
            )
        elif roll < 0.35:
            texts.append(
                (
                    " ".join(_word(rng, vocabulary) for _ in range(5)),
                    " ".join(_word(rng, vocabulary) for _ in range(7)),
                )
            )
        else:
            words = [_word(rng, vocabulary) for _ in range(28)]
            for position in rng.sample(range(1, 28), 3):
                words[position] = words[position].capitalize()
            words[rng.randrange(1, 28)] = f"{rng.randrange(10, 90)} million dollars"
            texts.append((" ".join(_word(rng, vocabulary) for _ in range(8)), " ".join(words) + "."))
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


def _standard_key(n: int) -> str:
    """A key as monitor.identify makes them (kept as integers by the index)."""
    return "gu"[n % 2] + ":" + hashlib.sha256(str(n).encode()).hexdigest()[:32]


@pytest.mark.parametrize("key_of", [_standard_key, "k{}".format], ids=["standard-keys", "other-keys"])
def test_stored_forms_survive_joins_and_expiry_and_a_reload_assigns_alike(
    key_of: Callable[[int], str],
) -> None:
    rng = random.Random(7)
    texts = _texts(1500, rng)
    index = StoryIndex(window=timedelta(hours=3))
    stored: dict[str, StoredSignature] = {}
    joined_events = 0
    for n, (title, summary) in enumerate(texts[:1200]):
        key = key_of(n)
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
        key = key_of(n)
        assert _assign(reloaded, key, title, summary, n) == _assign(index, key, title, summary, n)
        assert key in reloaded and key in index


def test_the_digest_table_behaves_as_a_dict_of_sets() -> None:
    rng = random.Random(5)
    table = DigestTable()
    model: dict[int, set[int]] = {}
    # Digests sharing their top bits (one home slot) and equal digests of several rows: probing, wrap-around,
    # tombstones, rebuilds and growth all happen.
    digests = [rng.getrandbits(64) for _ in range(2000)]
    digests += [(d & ~0xFFFF) | rng.getrandbits(16) for d in digests[:100]]
    live: list[tuple[int, int]] = []
    for step in range(30_000):
        if live and rng.random() < 0.45:
            digest, row = live.pop(rng.randrange(len(live)))
            assert table.remove(digest, row)
            model[digest].discard(row)
        else:
            digest, row = rng.choice(digests), step
            table.add(digest, row)
            model.setdefault(digest, set()).add(row)
            live.append((digest, row))
        if step % 499 == 0:
            for probe in rng.sample(digests, 100):
                assert set(table.rows(probe)) == model.get(probe, set())
                assert table.first(probe) in (model.get(probe) or {-1})
    assert len(table) == len(live)
    assert not table.remove(digests[0], -5)


def _bucket_pairs(index: StoryIndex) -> set[tuple[int, int]]:
    buckets = index._near._buckets
    pairs = {
        (f, e)
        for f, e in zip(buckets._fingerprints.tolist(), buckets._entries.tolist(), strict=True)
        if e >= 0
    }
    for f, held in buckets._delta.items():
        pairs |= {(f, e) for e in ([held] if isinstance(held, int) else held)}
    assert pairs
    return pairs


def test_the_load_builds_the_lsh_buckets_the_assignments_built() -> None:
    rng = random.Random(11)
    index = StoryIndex(window=timedelta(days=30))
    rows = []
    for n, (title, summary) in enumerate(_texts(900, rng)):
        key = _standard_key(n)
        found = _assign(index, key, title, summary, n)
        rows.append(
            StoredSignature(
                key, found.story_id, index.signature(key), T0 + timedelta(minutes=n),
                f"https://site{n % 5}.example/a/{n % 300}", content_hash(title, summary), title, summary,
                f"https://feed{n % 11}.example/", "en", index.event_features(key),
            )
        )  # fmt: skip
    loaded = StoryIndex(window=timedelta(days=30))
    loaded.load(rows)  # the buckets of all rows in one go at the end
    assert _bucket_pairs(loaded) == _bucket_pairs(index)
    later = _texts(200, random.Random(12))
    for n, (title, summary) in enumerate(later, start=900):
        key = _standard_key(n)
        assert (
            _assign(loaded, key, title, summary, n).story_id
            == _assign(index, key, title, summary, n).story_id
        )
