"""Clustering quality: pairwise precision and recall on the labelled syndication set (tests/data/syndication)
and on variants generated at test time from the real feeds in ../shared/corpus (never copied into the repo).

Targets (issue 4): precision >= 0.95, recall >= 0.90.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import yaml

from monitor.identify import canonical_url, content_hash, item_key
from monitor.stories import StoryIndex

DATA = Path(__file__).parent / "data" / "syndication" / "items.yaml"
PRECISION_TARGET = 0.95
RECALL_TARGET = 0.90


@dataclass(frozen=True)
class Labelled:
    id: str
    story: str
    feed: str
    link: str | None
    title: str
    summary: str
    published: datetime


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int


def _pairs(groups: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in groups.values())


def pairwise_scores(truth: Sequence[str], predicted: Sequence[str]) -> Scores:
    """Pairwise precision/recall of a clustering, counted from the contingency table (no n² loop)."""
    together = _pairs(Counter(zip(truth, predicted, strict=True)))
    true_pairs = _pairs(Counter(truth))
    predicted_pairs = _pairs(Counter(predicted))
    return Scores(
        precision=together / predicted_pairs if predicted_pairs else 1.0,
        recall=together / true_pairs if true_pairs else 1.0,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
    )


def cluster(items: Sequence[Labelled], *, events: bool = False) -> list[str]:
    """Story ids by the copy tiers (exact, near-duplicate) unless `events`: these sets are labelled story by
    story within a language, as the copy tiers see them (tests/test_stories_events.py scores the event tier)."""
    index = StoryIndex(events=events)
    stories = []
    for item in items:
        feed_url = f"https://{item.feed}.example/feed.xml"
        assignment = index.assign(
            item_key=item_key(feed_url, item.id, item.link, item.title, item.summary),
            title=item.title,
            summary=item.summary,
            url=canonical_url(item.link),
            content_hash=content_hash(item.title, item.summary),
            published=item.published,
            source=feed_url,
        )
        stories.append(assignment.story_id)
    return stories


def load_labelled(path: Path = DATA) -> list[Labelled]:
    """A labelled syndication set (items.yaml by default), in publication order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = data["base"] if isinstance(data["base"], datetime) else datetime.fromisoformat(data["base"])
    items = [
        Labelled(
            id=raw["id"],
            story=story["story"],
            feed=raw["feed"],
            link=raw.get("link"),
            title=raw["title"],
            summary=raw.get("summary") or "",
            published=base.astimezone(UTC) + timedelta(hours=raw["hours"]),
        )
        for story in data["stories"]
        for raw in story["items"]
    ]
    # Replay in publication order, as the daemon sees them.
    return sorted(items, key=lambda item: item.published)


def test_labelled_set_is_well_formed() -> None:
    items = load_labelled()
    assert len({item.id for item in items}) == len(items)
    languages = Counter(item.id.split("-")[0] for item in items)
    assert set(languages) == {"de", "en", "ru"}
    assert min(languages.values()) >= 15
    stories = Counter(item.story for item in items)
    assert sum(1 for n in stories.values() if n >= 2) >= 15  # enough true pairs to measure recall


def test_labelled_syndication_set_meets_targets() -> None:
    items = load_labelled()
    scores = pairwise_scores([item.story for item in items], cluster(items))
    print(f"\nsyndication set: {len(items)} items, {scores}")
    assert scores.precision >= PRECISION_TARGET, scores
    assert scores.recall >= RECALL_TARGET, scores


def test_same_topic_same_day_stories_stay_apart() -> None:
    items = load_labelled()
    by_id = dict(zip((item.id for item in items), cluster(items), strict=True))
    rare_earth_stories = {"en-a1", "en-b1", "en-c1", "en-d1", "en-k1", "en-h1", "de-a1", "de-b1", "de-c1"}
    assert len({by_id[i] for i in rare_earth_stories}) == len(rare_earth_stories)
    assert by_id["en-e1"] != by_id["en-f1"]  # talks begin / talks end: not copies (one event)
    assert by_id["en-n1"] != by_id["en-n2"]  # one feed's shared newsletter boilerplate
    assert by_id["en-a1"] != by_id["en-i1"]  # the same text five days later is outside the window


# -- generated from the real corpus at test time ---------------------------------------------------------------

_RETITLES = ("What we know so far", "The latest: key points", "Explained in brief")
_ADDED = " This report was updated with additional details from officials."


def _plain(markup: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup or ""))).strip()


def _corpus_entries(shared: Path) -> list[tuple[str, str, str, str | None]]:
    """(feed, title, summary, link) of the corpus feeds' entries that have some text."""
    found = []
    for path in sorted((shared / "corpus" / "feeds").iterdir()):
        raw = path.read_bytes()
        if path.suffix == ".json":
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            entries = [
                (
                    str(e.get("title") or ""),
                    _plain(str(e.get("summary") or e.get("content_html") or e.get("content_text") or "")),
                    e.get("url"),
                )
                for e in doc.get("items", [])
                if isinstance(e, dict)
            ]
        elif path.suffix in (".xml", ".rss", ".atom", ".rdf"):
            parsed = feedparser.parse(raw)
            entries = [
                (_plain(e.get("title", "")), _plain(e.get("summary", "")), e.get("link"))
                for e in parsed.entries
            ]
        else:
            continue
        found.extend((path.name, t, s[:800], link) for t, s, link in entries[:40] if t or s)
    return found


def _corpus_items(shared: Path) -> list[Labelled]:
    """Real entries, each a story, plus for some of them four copies in other feeds: tracking parameters,
    a new headline, a truncated summary, an added sentence. Real entries that share a canonical URL or a
    content hash (the corpus has such duplicates) are labelled as one story."""
    entries = _corpus_entries(shared)
    base = datetime(2025, 4, 4, tzinfo=UTC)
    label_by_url: dict[str, str] = {}
    label_by_hash: dict[str, str] = {}
    items: list[Labelled] = []
    for n, (feed, title, summary, link) in enumerate(entries):
        url = canonical_url(link)
        digest = content_hash(title, summary)
        story = label_by_url.get(url or "") or label_by_hash.get(digest) or f"corpus-{n}"
        if url:
            label_by_url.setdefault(url, story)
        label_by_hash.setdefault(digest, story)
        when = base + timedelta(minutes=n)
        items.append(Labelled(f"c{n}", story, feed, link, title, summary, when))
        words = summary.split()
        if n % 4 or len(words) < 25 or len(title.split()) < 4:
            continue
        cut = " ".join(words[: int(len(words) * 0.6)]) + " …"
        tracked = f"https://mirror{n}.example/a/{n}?utm_source=rss&utm_medium=feed&fbclid=x"
        for k, (v_title, v_summary, v_link) in enumerate(
            (
                (title, summary, tracked),
                (_RETITLES[n % len(_RETITLES)], summary, f"https://retitle.example/{n}"),
                (title, cut, f"https://short.example/{n}"),
                (title, summary + _ADDED, f"https://longer.example/{n}"),
            )
        ):
            items.append(
                Labelled(
                    f"c{n}v{k}",
                    story,
                    f"variant{k}",
                    v_link,
                    v_title,
                    v_summary,
                    when + timedelta(hours=k + 1),
                )
            )
    return sorted(items, key=lambda item: item.published)


def test_corpus_variants_meet_targets(shared_dir: Path) -> None:
    items = _corpus_items(shared_dir)
    assert len(items) > 1000
    scores = pairwise_scores([item.story for item in items], cluster(items))
    print(f"\ncorpus + variants: {len(items)} items, {scores}")
    assert scores.precision >= PRECISION_TARGET, scores
    assert scores.recall >= RECALL_TARGET, scores


@pytest.mark.slow
def test_corpus_variants_with_the_event_tier(shared_dir: Path) -> None:
    """The event tier on real feeds: each real entry is labelled its own story (only copies of it are one), so
    this counts every event the tier finds among real entries as an error: a floor, not a precision."""
    items = _corpus_items(shared_dir)
    scores = pairwise_scores([item.story for item in items], cluster(items, events=True))
    print(f"\ncorpus + variants, event tier on: {len(items)} items, {scores}")
    assert scores.recall >= RECALL_TARGET, scores
    # 0.946 measured since round 7's fitting (0.939 after round 6, 0.936 after round 5, 0.945 before it:
    # docs/design/stories-blind5.md, three merges of real entries, wrong).
    assert scores.precision >= 0.92, scores
