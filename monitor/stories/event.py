"""Tier 3 of story clustering: one event told in other words, within a language and across languages.

Online assignment in the manner of Miranda et al., "Multilingual Clustering of Streaming News" (EMNLP 2018):
each story keeps one sub-cluster per language (as EMM NewsBrief does), and each sub-cluster a centroid, the count
of its members having each feature. A new item is compared with the centroids of a bounded set of candidates and
joins the best one whose similarity passes the tier's thresholds; else it opens a new story.

* Weights are IDF learned from the stream: log((N + 1) / (df + 0.5)) over the items of the window (an expired item
  no longer counts), so a word every report of the day uses weighs nothing and a name or a figure weighs much.
* Within a language, similarity is a blend of two cosines: over content words (stems), and over the
  language-independent features (actors, names, figures). The content cosine must pass on its own: two events
  of one actor on one day share the actor and the names, not the words (see `EventIndex.within`).
* Across languages only the language-independent features count, and at least two of them must be shared, one of
  them a name or a figure: an actor alone (Putin on the phone, Putin signing a law) is no evidence of one event.
* Candidates come from an inverted index from feature to sub-clusters, probed with the item's most weighty
  features only, each posting list keeping its newest entries: the cost per item is bounded, whatever the size
  of the window.
* Time: a sub-cluster takes an item published within `within` of its newest member, and never more than
  `max_age` after its first one (see docs/design/stories.md, follow-ups and drift).
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.stories.features import FIGURE, KIND_MASK, NAME, EventFeatures, label_of

__all__ = ["EventIndex", "EventMatch", "Weighed"]

# Posting lists keep this many of their newest sub-clusters (twice as many before they are trimmed): a feature
# shared by more sub-clusters than this is too common to find an event by.
_POSTING_KEEP = 32
# log(df + 0.5) for small document frequencies, the common case of the IDF.
_LOG_TABLE = 4096
_LOG_DF = [math.log(count + 0.5) for count in range(_LOG_TABLE)]
# The item's features probed in the inverted index (the weightiest), and the candidates scored in full.
_PROBE_FEATURES = 10
# The content words of an item entered in the inverted index (all its language-independent features are).
_INDEXED_TERMS = 20
_PROBE_SHARED = 8
_SCORED_CANDIDATES = 10
# An item with fewer content words than this (a headline without a summary) joins by the event tier only when
# both its content and its entities agree at least this much: "Zelensky says Ukraine ready for X if Russia Y"
# fits many events.
_FEW_TERMS = 12
_SHORT_NEEDS = 0.5


@dataclass(eq=False, slots=True)
class _Cluster:
    """One language's part of a story: its members' feature counts (the centroid) and its time span."""

    story_id: str
    language: str
    first_item_key: str
    oldest: datetime
    newest: datetime
    size: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    figures: int = 0  # how many of `counts` are figures
    names: int = 0  # and how many names
    sources: tuple[str, ...] = ()  # the feeds of its members
    alive: bool = True
    norm_terms: float = 0.0
    norm_shared: float = 0.0
    norm_items: int = 0  # the stream's size when the norms were computed


@dataclass(frozen=True, slots=True)
class Weighed:
    """An item's features with their weights (IDF) and the norms of both kinds."""

    terms: dict[int, float]
    shared: dict[int, float]
    norm_terms: float
    norm_shared: float


@dataclass(slots=True)
class _Member:
    cluster: _Cluster
    terms: array[int]
    shared: array[int]


@dataclass(frozen=True, slots=True)
class EventMatch:
    """The sub-cluster an item joins, with the evidence: the blended score, its two parts, and the shared
    features that weighed most (readable labels such as ``n:dmtrv``, ``f:8e+09:usd``, ``a:putin``)."""

    story_id: str
    matched_item_key: str
    score: float
    content: float
    entities: float
    cross_language: bool
    evidence: tuple[str, ...]


def _conflict(figures: list[int], cluster_figures: int, counts: dict[int, int], results: list[int]) -> bool:
    """True when the item and the sub-cluster both state figures and fewer than half of the smaller set is
    shared (as the near-duplicate tier's veto, `figures_conflict`, over the centroid's figures), or when the
    item states a result ("2:1") the sub-cluster does not have while it has figures: another match."""
    if not figures or not cluster_figures:
        return False
    if results and not any(f in counts for f in results):
        return True
    shared = sum(1 for f in figures if f in counts)
    return 2 * shared < min(len(figures), cluster_figures)


class EventIndex:
    """Sub-clusters of the window's stories with their centroids, the stream's document frequencies and an
    inverted index from feature to sub-cluster."""

    def __init__(
        self,
        *,
        within: timedelta = timedelta(hours=36),
        max_age: timedelta = timedelta(days=7),
        threshold: float = 0.2,
        min_content: float = 0.1,
        content_share: float = 0.5,
        cross_threshold: float = 1.5,
    ) -> None:
        self.within = within
        self.max_age = max_age
        self.threshold = threshold
        self.min_content = min_content
        self.content_share = content_share
        self.cross_threshold = cross_threshold
        self._df: Counter[int] = Counter()
        self._items = 0
        self._clusters: dict[tuple[str, str], _Cluster] = {}
        self._postings: dict[int, list[_Cluster]] = {}
        self._members: dict[str, _Member] = {}

    def __len__(self) -> int:
        return len(self._members)

    # -- weights -------------------------------------------------------------------------------------------

    def idf(self, feature: int) -> float:
        return max(0.0, math.log((self._items + 1) / (self._df.get(feature, 0) + 0.5)))

    def _weights(self, features: Iterable[int]) -> dict[int, float]:
        # The hot loop of the tier: log(df + 0.5) from a table, features of weight 0 (in every item) left out.
        log_n = math.log(self._items + 1)
        df = self._df.get
        weights = {}
        for feature in features:
            count = df(feature, 0)
            weight = log_n - (_LOG_DF[count] if count < _LOG_TABLE else math.log(count + 0.5))
            if weight > 0:
                weights[feature] = weight
        return weights

    def weigh(self, features: EventFeatures) -> Weighed:
        """An item's features weighted by the stream's IDF of now, with their norms."""
        terms = self._weights(features.terms)
        shared = self._weights(features.shared)
        return Weighed(
            terms,
            shared,
            math.sqrt(sum(w * w for w in terms.values())),
            math.sqrt(sum(w * w for w in shared.values())),
        )

    # -- finding ---------------------------------------------------------------------------------------------

    def find(
        self,
        features: EventFeatures,
        published: datetime,
        source: str | None = None,
        weighed: Weighed | None = None,
    ) -> EventMatch | None:
        """The best sub-cluster for an item: of its own language first, else of another language. A sub-cluster
        of `source`'s items only is no candidate: one feed's items share its boilerplate, not an event."""
        if weighed is None:
            weighed = self.weigh(features)
        terms, shared = weighed.terms, weighed.shared
        # Probe with the weightiest features that some sub-cluster has (a feature no earlier item had is the
        # weightiest of all and finds nothing), content words and language-independent ones apart, so that an
        # item in another language, which shares none of the words, still finds its event by names and figures.
        postings = self._postings
        hits: Counter[_Cluster] = Counter()
        for weights, count in ((terms, _PROBE_FEATURES), (shared, _PROBE_SHARED)):
            known = [f for f in weights if f in postings]
            for feature in sorted(known, key=weights.__getitem__, reverse=True)[:count]:
                hits.update(postings[feature])
        if not hits:
            return None
        norm_terms, norm_shared = weighed.norm_terms, weighed.norm_shared
        figures = [f for f in shared if f & KIND_MASK == FIGURE]
        names = [f for f in shared if f & KIND_MASK == NAME]
        best: EventMatch | None = None
        cross: EventMatch | None = None
        for cluster, shared_count in hits.most_common(_SCORED_CANDIDATES):
            if shared_count < 2:
                break  # one probed feature in common is no event (and the rest have no more)
            if not cluster.alive or not self._in_time(cluster, published):
                continue
            if source is not None and cluster.sources == (source,):
                continue
            if _conflict(figures, cluster.figures, cluster.counts, features.results):
                continue  # one template with other facts (Monday's prices, Tuesday's prices): another event
            same_language = cluster.language == features.language
            if (
                same_language
                and len(names) >= 2
                and cluster.names >= 2
                and not any(f in cluster.counts for f in shared)
            ):
                continue  # the same words about other people, places and figures (the ECB's decision, the BoE's)
            if abs(cluster.norm_items - self._items) * 20 > self._items:
                self._renorm(cluster)  # the stream grew or shrank by a quarter since: its IDF moved
            if same_language:
                found = self._within(cluster, terms, shared, norm_terms, norm_shared, features)
                if found is not None and (best is None or found.score > best.score):
                    best = found
            elif best is None:
                found = self._across(cluster, shared, norm_shared, features)
                if found is not None and (cross is None or found.score > cross.score):
                    cross = found
        return best or cross

    def _in_time(self, cluster: _Cluster, published: datetime) -> bool:
        return (
            cluster.oldest - self.within <= published <= cluster.newest + self.within
            and published - cluster.oldest <= self.max_age
        )

    def _cosine(
        self, cluster: _Cluster, weights: dict[int, float], norm: float, cluster_norm: float
    ) -> tuple[float, list[tuple[float, int]]]:
        if not norm or not cluster_norm:
            return 0.0, []
        counts, size = cluster.counts, cluster.size
        parts = [(w * w * counts[f] / size, f) for f, w in weights.items() if f in counts]
        return sum(p for p, _ in parts) / (norm * cluster_norm), parts

    def _within(
        self,
        cluster: _Cluster,
        terms: dict[int, float],
        shared: dict[int, float],
        norm_terms: float,
        norm_shared: float,
        features: EventFeatures,
    ) -> EventMatch | None:
        content, term_parts = self._cosine(cluster, terms, norm_terms, cluster.norm_terms)
        if content < self.min_content:
            return None
        entities, shared_parts = self._cosine(cluster, shared, norm_shared, cluster.norm_shared)
        score = self.content_share * content + (1 - self.content_share) * entities
        if score < self.threshold:
            return None
        if len(terms) < _FEW_TERMS and (content < _SHORT_NEEDS or entities < _SHORT_NEEDS):
            return None  # a headline alone: one template of few words fits many events
        return self._match(cluster, score, content, entities, False, term_parts + shared_parts, features)

    def _across(
        self, cluster: _Cluster, shared: dict[int, float], norm_shared: float, features: EventFeatures
    ) -> EventMatch | None:
        # Not a cosine: a German report's capitalised nouns are "names" that no other language has, and would
        # dilute it. The evidence is the IDF of what is shared, in units of the IDF of a feature seen once:
        # two rare names, or a rare name and a figure with its unit, make one event.
        counts = cluster.counts
        parts = [(w, f) for f, w in shared.items() if f in counts]
        if len(parts) < 2 or not any(f & KIND_MASK in (NAME, FIGURE) for _, f in parts):
            return None  # actors alone: the same people, not necessarily the same event
        evidence = sum(w for w, _ in parts) / math.log(self._items + 1) if self._items else 0.0
        if evidence < self.cross_threshold:
            return None
        return self._match(cluster, evidence, 0.0, evidence, True, parts, features)

    @staticmethod
    def _match(
        cluster: _Cluster,
        score: float,
        content: float,
        entities: float,
        cross_language: bool,
        parts: list[tuple[float, int]],
        features: EventFeatures,
    ) -> EventMatch:
        strongest = sorted(parts, reverse=True)[:8]
        evidence = tuple(features.labels.get(f) or label_of(f) for _, f in strongest)
        return EventMatch(
            cluster.story_id, cluster.first_item_key, score, content, entities, cross_language, evidence
        )

    # -- remembering -----------------------------------------------------------------------------------------

    def add(self, item_key: str, story_id: str, language: str, terms: Iterable[int], shared: Iterable[int],
            published: datetime, source: str | None = None, weighed: Weighed | None = None) -> None:  # fmt: skip
        """Count an item's features in the stream and add it to its story's sub-cluster of its language."""
        if item_key in self._members:
            return
        term_ids = array("I", sorted(set(terms)))
        shared_ids = array("I", sorted(set(shared)))
        key = (story_id, language)
        cluster = self._clusters.get(key)
        if cluster is None:
            cluster = self._clusters[key] = _Cluster(story_id, language, item_key, published, published)
        cluster.oldest = min(cluster.oldest, published)
        cluster.newest = max(cluster.newest, published)
        cluster.size += 1
        if source is not None and source not in cluster.sources:
            cluster.sources = (*cluster.sources, source)
        # The hot path of every item: counting and indexing stay in C calls where they can.
        self._df.update(term_ids)
        self._df.update(shared_ids)
        counts = cluster.counts
        if counts:
            new = [f for f in itertools.chain(term_ids, shared_ids) if f not in counts]
            for feature in itertools.chain(term_ids, shared_ids):
                counts[feature] = counts.get(feature, 0) + 1
        else:  # a new sub-cluster: every feature is new to it
            new = [*term_ids, *shared_ids]
            counts.update(dict.fromkeys(new, 1))
        for feature in new:
            if feature & 1:
                kind = feature & KIND_MASK
                if kind == FIGURE:
                    cluster.figures += 1
                elif kind == NAME:
                    cluster.names += 1
        if len(term_ids) > _INDEXED_TERMS:
            # Only the weightiest content words are indexed: a probe asks for the weightiest ones too, and a
            # common word's posting list would only be trimmed.
            weights = weighed.terms if weighed is not None else self._weights(term_ids)
            indexed = set(sorted(term_ids, key=lambda f: weights.get(f, 0.0), reverse=True)[:_INDEXED_TERMS])
            new = [f for f in new if f & 1 or f in indexed]
        postings = self._postings
        for feature in new:
            posting = postings.get(feature)
            if posting is None:
                postings[feature] = [cluster]
            else:
                posting.append(cluster)
                if len(posting) > 2 * _POSTING_KEEP:
                    posting[:] = [c for c in posting[-_POSTING_KEEP:] if c.alive]
        self._items += 1
        self._members[item_key] = _Member(cluster, term_ids, shared_ids)
        self._renorm(cluster)

    def _renorm(self, cluster: _Cluster) -> None:
        # Norms use the IDF of the moment the cluster last changed: recomputing them at every comparison would
        # cost a lookup per centroid feature, and the IDF of a window moves slowly.
        size = cluster.size
        log_n = math.log(self._items + 1)
        df = self._df
        counts = cluster.counts
        features = list(counts)
        seen = list(map(df.__getitem__, features))
        idf = [log_n - (_LOG_DF[n] if n < _LOG_TABLE else math.log(n + 0.5)) for n in seen]
        if size == 1:
            squares = [w * w if w > 0 else 0.0 for w in idf]
        else:
            squares = [
                (w * counts[f] / size) ** 2 if w > 0 else 0.0 for w, f in zip(idf, features, strict=True)
            ]
        shared_sq = sum(q for q, f in zip(squares, features, strict=True) if f & 1)
        cluster.norm_terms = math.sqrt(max(0.0, sum(squares) - shared_sq))
        cluster.norm_shared = math.sqrt(shared_sq)
        cluster.norm_items = self._items

    def remove(self, item_key: str) -> None:
        """Forget an expired item: its counts leave the stream's frequencies and its sub-cluster's centroid."""
        member = self._members.pop(item_key, None)
        if member is None:
            return
        cluster = member.cluster
        counts = cluster.counts
        for ids in (member.terms, member.shared):
            for feature in ids:
                left = self._df[feature] - 1
                if left > 0:
                    self._df[feature] = left
                else:  # no item of the window has it any more
                    del self._df[feature]
                    self._postings.pop(feature, None)
                remaining = counts.get(feature, 0) - 1
                if remaining > 0:
                    counts[feature] = remaining
                elif counts.pop(feature, None) is not None:
                    kind = feature & KIND_MASK
                    if kind == FIGURE:
                        cluster.figures -= 1
                    elif kind == NAME:
                        cluster.names -= 1
        self._items -= 1
        cluster.size -= 1
        if cluster.size <= 0:
            cluster.alive = False
            del self._clusters[(cluster.story_id, cluster.language)]
        else:
            self._renorm(cluster)

    def features_of(self, item_key: str) -> tuple[array[int], array[int]] | None:
        member = self._members.get(item_key)
        return (member.terms, member.shared) if member is not None else None

    def language_of(self, item_key: str) -> str | None:
        member = self._members.get(item_key)
        return member.cluster.language if member is not None else None
