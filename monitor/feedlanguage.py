"""Per-feed language memory for items that declare no language.

A feed's items are mostly in one language, and a headline alone is often too short to tell ("Trump trifft
Putin" is German, English or Luxembourgish by its letters). So each feed keeps decayed evidence of the languages
detected in its items, and an item whose own detection is weak takes the feed's language.

How the memory prevails against a single item, and how it decays:

- Every *new* item (by identity key; a re-polled item counts once and keeps the language it got) adds its
  detected language with a weight between MIN_WEIGHT and 1 that grows with its evidence (the detector's score
  margin, monitor.text.language_evidence), after all weights are multiplied by DECAY. The weights of a feed so
  never exceed 1 / (1 - DECAY) = 10: old items fade, a half-life of about 6.6 items.
- The feed has a language once one language holds at least SHARE of the weight and the weight is at least
  MIN_FEED_WEIGHT (about three confident items).
- An item keeps its own detection when it agrees with the feed, when the feed has no language yet, or when its
  evidence is STRONG (margin >= 10; on the corpus and the project's labelled items no title at that margin was
  wrong, below it 17 of 355 were). Otherwise the feed's language prevails.
- A single confident item in another language (a press release in English in a German feed) is taken as what it
  is, but moves the feed's weights by at most 1 of 10: the feed's language stands. A feed that really changes
  language flips after about fourteen confident items of the new language (1 - 0.9^k >= SHARE); items in
  between keep their own detection while no language holds SHARE.

Memory is bounded: MAX_FEEDS feeds (least recently used dropped), REMEMBERED item keys per feed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from monitor.text import language_evidence

__all__ = ["FeedLanguages"]

DECAY = 0.9
STRONG = 10.0
MIN_WEIGHT = 0.25
SHARE = 0.75
MIN_FEED_WEIGHT = 2.5
MAX_FEEDS = 10_000
REMEMBERED = 500


@dataclass
class _Feed:
    weights: dict[str, float] = field(default_factory=dict)
    items: OrderedDict[str, str | None] = field(default_factory=OrderedDict)

    def language(self) -> str | None:
        if not self.weights:
            return None
        total = sum(self.weights.values())
        best = max(self.weights, key=lambda code: self.weights[code])
        if total >= MIN_FEED_WEIGHT and self.weights[best] >= SHARE * total:
            return best
        return None

    def learn(self, language: str, evidence: float) -> None:
        for code in self.weights:
            self.weights[code] *= DECAY
        weight = MIN_WEIGHT + (1 - MIN_WEIGHT) * min(1.0, max(0.0, evidence / STRONG))
        self.weights[language] = self.weights.get(language, 0.0) + weight
        # Languages that faded out are dropped, so the dict stays as small as the feed's recent languages.
        self.weights = {code: value for code, value in self.weights.items() if value >= 0.01}


class FeedLanguages:
    """The language of undeclared items, detected per item and steadied per feed (module doc). Thread-safe."""

    def __init__(self) -> None:
        self._feeds: OrderedDict[str, _Feed] = OrderedDict()
        self._lock = threading.Lock()

    def language_of(self, feed_url: str, item_key: str, text: str) -> str | None:
        with self._lock:
            feed = self._feeds.get(feed_url)
            if feed is not None:
                self._feeds.move_to_end(feed_url)
                if item_key in feed.items:
                    return feed.items[item_key]
        detected, evidence = language_evidence(text)  # outside the lock: the costly part
        with self._lock:
            feed = self._feeds.get(feed_url)
            if feed is None:
                feed = self._feeds[feed_url] = _Feed()
                while len(self._feeds) > MAX_FEEDS:
                    self._feeds.popitem(last=False)
            prior = feed.language()
            # The feed's language prevails over a weak detection, and stands in for none at all.
            weak = detected is None or (prior is not None and detected != prior and evidence < STRONG)
            language = prior if weak and prior is not None else detected
            if detected is not None:
                feed.learn(detected, evidence)
            feed.items[item_key] = language
            while len(feed.items) > REMEMBERED:
                feed.items.popitem(last=False)
            return language

    def feed_language(self, feed_url: str) -> str | None:
        """The language the feed's recent items establish, or None (for status and tests)."""
        with self._lock:
            feed = self._feeds.get(feed_url)
            return feed.language() if feed is not None else None
