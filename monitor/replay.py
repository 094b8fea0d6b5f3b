"""`monitor rules replay`: a rule set run over the items already stored, grouped by the story each item joined.

It answers "what would this rule have told me last week?" without the live pipeline: it reads the stored items
(`Store.stored_items`), matches each with the given rules, as the pipeline would (the feed's tags from the
current config, so `tags:`-scoped rules fire as they will; `feeds:` and `languages:` scoping apply as always),
and groups the matches by (story, rule): one would-be alert per rule and story, which is the default alerting
(`realert` and `group_wait` are timing and are not replayed). Nothing is written: no matches, no alerts, no
deliveries; a test holds the database file byte-identical across a replay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.rules import RuleSet
from monitor.store import StoredItem
from monitor.types import Match

__all__ = ["ReplayHit", "ReplayStory", "replay"]


@dataclass(frozen=True, slots=True)
class ReplayHit:
    stored: StoredItem
    match: Match


@dataclass(slots=True)
class ReplayStory:
    """The would-be alerts of one story: per rule, the items it fired on (oldest first)."""

    story_id: str
    title: str  # the first matched item's title
    first_fetched: datetime
    rules: dict[str, list[ReplayHit]] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return len({hit.stored.item.key for hits in self.rules.values() for hit in hits})


def replay(
    stored: Iterable[StoredItem],
    ruleset: RuleSet,
    *,
    feed_tags: Mapping[str, tuple[str, ...]],
    rule_ids: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> tuple[list[ReplayStory], int]:
    """The stories the rules fire on, in the order their first matched item was fetched, and the number of
    items looked at. `rule_ids` limits the result to those rules; `progress` is told the count now and then."""
    wanted = set(rule_ids)
    stories: dict[str, ReplayStory] = {}
    seen = 0
    for entry in stored:
        seen += 1
        if progress is not None and seen % 100 == 0:
            progress(seen)
        item = entry.item
        tags = feed_tags.get(item.feed_url, ())
        if tags != item.feed_tags:
            item = dataclasses.replace(item, feed_tags=tags)
        for match in ruleset.match(item):
            if wanted and match.rule_id not in wanted:
                continue
            story = stories.get(entry.story_id)
            if story is None:
                story = stories[entry.story_id] = ReplayStory(entry.story_id, item.title, entry.fetched_at)
            story.rules.setdefault(match.rule_id, []).append(ReplayHit(entry, match))
    if progress is not None:
        progress(seen)
    return list(stories.values()), seen
