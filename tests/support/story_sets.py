"""Labelled story sets and their scores: pair precision and recall, BCubed precision, recall and F1.

One loader for every labelled set in tests/data/syndication and tests/data/stories (the format is the same; the
stories sets add `kind` per item and `holdout` per story), one scorer, one replay through the story index.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from monitor.analysis import NO_ACTORS, analyse_item
from monitor.identify import canonical_url, content_hash, item_key
from monitor.rules import RuleSet
from monitor.stories import StoryAssignment, StoryIndex
from monitor.types import Item

DATA = Path(__file__).parent.parent / "data"


@dataclass(frozen=True)
class LabelledItem:
    id: str
    story: str
    feed: str
    link: str | None
    title: str
    summary: str
    published: datetime
    kind: str = "original"  # original | copy | rewrite (stories sets only)
    holdout: bool = False  # the story is kept blind: scored, its errors not looked at while tuning
    event: str = ""  # the event-level label (see `events:` in the syndication sets); the story's by default

    @property
    def language(self) -> str:
        return self.id.split("-")[0]


@dataclass(frozen=True)
class SetScores:
    items: int
    true_pairs: int
    predicted_pairs: int
    pair_precision: float
    pair_recall: float
    bcubed_precision: float
    bcubed_recall: float

    @property
    def bcubed_f1(self) -> float:
        p, r = self.bcubed_precision, self.bcubed_recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def row(self) -> str:
        return (
            f"{self.items:4d} items {self.true_pairs:4d} true pairs  P {self.pair_precision:.3f}  "
            f"R {self.pair_recall:.3f}  BCubed F1 {self.bcubed_f1:.3f}"
        )


def load_set(path: Path) -> list[LabelledItem]:
    """A labelled set, in publication order (the order the daemon sees the items in)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = data["base"] if isinstance(data["base"], datetime) else datetime.fromisoformat(data["base"])
    event_of = {story: group[0] for group in data.get("events") or () for story in group}
    items = [
        LabelledItem(
            id=raw["id"],
            story=story["story"],
            feed=raw["feed"],
            link=raw.get("link"),
            title=raw["title"],
            summary=raw.get("summary") or "",
            published=base.astimezone(UTC) + timedelta(hours=raw["hours"]),
            kind=raw.get("kind", "original"),
            holdout=bool(story.get("holdout", False)),
            event=event_of.get(story["story"], story["story"]),
        )
        for story in data["stories"]
        for raw in story["items"]
    ]
    return sorted(items, key=lambda item: (item.published, item.id))


def _pairs(groups: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in groups.values())


def score(truth: Sequence[str], predicted: Sequence[str]) -> SetScores:
    """Pair precision/recall from the contingency table; BCubed precision/recall averaged over items."""
    joint = Counter(zip(truth, predicted, strict=True))
    by_truth, by_predicted = Counter(truth), Counter(predicted)
    together, true_pairs, predicted_pairs = _pairs(joint), _pairs(by_truth), _pairs(by_predicted)
    n = len(truth)
    # BCubed: for each item, the share of its predicted cluster that is of its story (precision) and the share
    # of its story that is in its predicted cluster (recall); summed per contingency cell.
    b_precision = sum(count * count / by_predicted[p] for (_, p), count in joint.items()) / n if n else 1.0
    b_recall = sum(count * count / by_truth[t] for (t, _), count in joint.items()) / n if n else 1.0
    return SetScores(
        items=n,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        pair_precision=together / predicted_pairs if predicted_pairs else 1.0,
        pair_recall=together / true_pairs if true_pairs else 1.0,
        bcubed_precision=b_precision,
        bcubed_recall=b_recall,
    )


def score_events(items: Sequence[LabelledItem], predicted: Sequence[str]) -> SetScores:
    """Scores against the event-level labels."""
    return score([item.event for item in items], predicted)


def score_subset(items: Sequence[LabelledItem], predicted: Sequence[str], *, holdout: bool) -> SetScores:
    """Event-level scores over the items of fitted (holdout=False) or blind (holdout=True) stories only."""
    chosen = [(item.event, p) for item, p in zip(items, predicted, strict=True) if item.holdout == holdout]
    return score([t for t, _ in chosen], [p for _, p in chosen])


def as_item(item: LabelledItem) -> Item:
    feed_url = f"https://{item.feed}.example/feed.xml"
    return Item(
        key=item_key(feed_url, item.id, item.link, item.title, item.summary),
        feed_url=feed_url,
        feed_title=item.feed,
        guid=item.id,
        link=item.link,
        url=canonical_url(item.link),
        title=item.title,
        summary=item.summary,
        content="",
        categories=(),
        language=None,
        published=item.published,
        content_hash=content_hash(item.title, item.summary),
    )


def replay_assignments(
    items: Sequence[LabelledItem], index: StoryIndex | None = None, ruleset: RuleSet | None = None
) -> list[StoryAssignment]:
    """Each item's assignment after assigning them in order as the pipeline does: one analysis per item, the
    rule set's actor ids (when `ruleset` is given), the feed as the source."""
    index = StoryIndex() if index is None else index
    found = []
    for labelled in items:
        item = as_item(labelled)
        analysis = analyse_item(item)
        actors = ruleset.match_with_actors(item, analysis)[1] if ruleset is not None else NO_ACTORS
        found.append(
            index.assign(
                item_key=item.key,
                title=item.title,
                summary=item.summary,
                url=item.url,
                content_hash=item.content_hash,
                published=labelled.published,
                source=item.feed_url,
                analysis=analysis,
                actors=actors,
            )
        )
    return found


def replay(
    items: Sequence[LabelledItem], index: StoryIndex | None = None, ruleset: RuleSet | None = None
) -> list[str]:
    """The story id of each item after assigning them in order (see `replay_assignments`)."""
    return [assignment.story_id for assignment in replay_assignments(items, index, ruleset)]


def errors(items: Sequence[LabelledItem], predicted: Sequence[str]) -> list[str]:
    """Split true stories and merged distinct ones, for failure messages."""
    by_story: dict[str, set[str]] = defaultdict(set)
    by_cluster: dict[str, set[str]] = defaultdict(set)
    members: dict[str, list[str]] = defaultdict(list)
    for item, cluster_id in zip(items, predicted, strict=True):
        by_story[item.event].add(cluster_id)
        by_cluster[cluster_id].add(item.event)
        members[cluster_id].append(item.id)
    found = [
        f"split {story}: {sorted(members[c] for c in clusters)}"
        for story, clusters in sorted(by_story.items())
        if len(clusters) > 1
    ]
    found += [
        f"merged {sorted(stories)}: {members[cluster_id]}"
        for cluster_id, stories in sorted(by_cluster.items())
        if len(stories) > 1
    ]
    return found
