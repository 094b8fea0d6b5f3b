"""The story index: each new item goes to the story of the first tier that claims it, or opens a new story.

1. exact (`monitor.stories.exact`): the same content hash, or the same document URL with a related text;
2. near-duplicate (`monitor.stories.near_duplicate`): MinHash over word-bigram shingles;
3. event (`monitor.stories.event`): the same event in other words, in the item's language or, failing that,
   in another language (the item then opens its language's sub-cluster of that story).

Texts with fewer than `min_tokens` words never cluster by text: "Live updates" twice is no evidence. Items of
the same feed join only by tier 1 or a near-identical text (`same_source_threshold`), because a feed's own
boilerplate makes its distinct short items look alike. Story ids are derived from the first item's key, so the
same input order gives the same ids.
"""

from __future__ import annotations

import hashlib
import re
import struct
from array import array
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from monitor.analysis import NO_ACTORS, ActorMentions, Analysis, analyse
from monitor.stories.cleaning import clean_summary, clean_title, cleaned_words, figures_conflict, figures_of
from monitor.stories.event import EventIndex, EventMatch, Weighed
from monitor.stories.exact import ExactIndex, digest
from monitor.stories.features import EventFeatures, event_features
from monitor.stories.near_duplicate import (
    U32,
    NearDuplicateIndex,
    decode_signature,
    encode_signature,
    shingle_set,
)
from monitor.stories.slots import DigestTable

__all__ = [
    "EVENT_FEATURES_VERSION",
    "PreparedItem",
    "Reason",
    "StoredSignature",
    "StoryAssignment",
    "StoryIndex",
    "shingles",
    "story_id_for",
]

Reason = Literal["new", "known", "hash", "url", "similar", "event", "cross-language"]
# The tier each reason belongs to, as `stories show` names it.
TIERS: dict[str, str] = {
    "new": "new story",
    "known": "known",
    "hash": "exact",
    "url": "exact",
    "similar": "near-duplicate",
    "event": "event",
    "cross-language": "event (cross-language)",
}


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where `assign` put an item. `similarity` is 1.0 for hash and URL matches, the estimated Jaccard
    similarity for near-duplicates, the event score for the event tier and 0.0 for a new story;
    `matched_item_key` is the item (for the event tier: the sub-cluster's first item) it was matched to, and
    `evidence` the event tier's strongest shared features."""

    story_id: str
    is_new_story: bool
    similarity: float
    matched_item_key: str | None
    reason: Reason
    evidence: tuple[str, ...] = ()
    language: str | None = None

    @property
    def tier(self) -> str:
        return TIERS[self.reason]


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """One item of the window as the store keeps it. When `signature` or `event_features` is missing or from
    another version, it is recomputed from `title` and `summary`."""

    item_key: str
    story_id: str
    signature: bytes | None
    published: datetime
    url: str | None
    content_hash: str
    title: str = ""
    summary: str = ""
    source: str | None = None
    language: str | None = None
    event_features: bytes | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StoredSignature:
        return cls(
            item_key=row["item_key"],
            story_id=row["story_id"],
            signature=row.get("signature"),
            published=row["published"],
            url=row.get("url"),
            content_hash=row["content_hash"],
            title=row.get("title") or "",
            summary=row.get("summary") or "",
            source=row.get("source"),
            language=row.get("language"),
            event_features=row.get("event_features"),
        )


def story_id_for(item_key: str) -> str:
    """The id of the story an item opens: derived from its key, so replays give the same ids."""
    return "st_" + hashlib.sha256(f"story\0{item_key}".encode()).hexdigest()[:24]


# -- the stored form of an item's event features ------------------------------------------------------------

_EVENT_MAGIC = b"EV"
# 1: stems, actor ids, name skeletons (5 letters), figures with units (monitor.stories.features).
# 2: a figure's id says whether it is a measure (`features.MEASURE`); units after a hyphen ("28-point");
# sentence-initial names before a verb of speech.
# 3: organisation keys for abbreviations and full names (`n:=ecb`); heads of German compounds.
# 4: an institution's words give its key and no names of their own.
EVENT_FEATURES_VERSION = 4
_EVENT_HEADER = struct.Struct("<2sBB8sII")  # magic, version, flags, language, term count, shared count


def _encode_features(language: str, terms: array[int], shared: array[int]) -> bytes:
    header = _EVENT_HEADER.pack(
        _EVENT_MAGIC,
        EVENT_FEATURES_VERSION,
        0,
        language.encode("ascii", "replace")[:8],
        len(terms),
        len(shared),
    )
    return header + terms.tobytes() + shared.tobytes()


def _decode_features(blob: bytes) -> tuple[str, array[int], array[int]] | None:
    if len(blob) < _EVENT_HEADER.size:
        return None
    magic, version, _, language, term_count, shared_count = _EVENT_HEADER.unpack_from(blob)
    if magic != _EVENT_MAGIC or version != EVENT_FEATURES_VERSION:
        return None
    if len(blob) != _EVENT_HEADER.size + 4 * (term_count + shared_count):
        return None
    values = array("I")
    values.frombytes(blob[_EVENT_HEADER.size :])
    return language.rstrip(b"\0").decode("ascii"), values[:term_count], values[term_count:]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Item keys and story ids as `monitor.identify` and `story_id_for` make them are kept as integers; any other
# spelling (tests, older stores) as a string beside them.
_ITEM_KEY = re.compile(r"[a-z]:[0-9a-f]{32}\Z")
_STORY_ID = re.compile(r"st_[0-9a-f]{24}\Z")
_NO_FIGURES: frozenset[str] = frozenset()


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact for any aware datetime, so window checks decide as datetimes do."""
    return (moment - _EPOCH) // _MICROSECOND


class _Rows:
    """What the copy tiers read of each stored item, as columns indexed by its row of the signature matrix.

    An object per item with its key, story id, hash, URL and feed strings and two dicts by key and row cost about
    900 bytes per item for real keys and URLs; the columns cost about 70, and the maps by key, hash and URL are
    digest tables (`monitor.stories.slots`). Key and story id are kept as integers when they have the
    standard form; the URL and the content hash only as digests (the exact tier compares nothing else); the
    feed as a number into the feeds seen. Rows are allocated by the near-duplicate index and reused."""

    def __init__(self) -> None:
        self.key_kind = array("B")  # ord of the key's kind letter; 0: the key is in `odd_keys`
        self.key_high = array("Q")
        self.key_low = array("Q")
        self.story_high = array("Q")  # 0 and story_low 0 with the id in `odd_stories`: another spelling
        self.story_low = array("I")
        self.published = array("q")  # microseconds since the epoch
        self.order = array("q")  # when the row was filled: expiry removes in this order, as a dict by key did
        self.size = array("i")  # shingles
        self.flags = array("B")  # _LIVE, _TEXTUAL, _HAS_URL
        self.source = array("i")  # number into `feeds`, -1: unknown
        self.hash_digest = array("Q")
        self.url_digest = array("Q")
        self.odd_keys: dict[int, str] = {}
        self.odd_stories: dict[int, str] = {}
        self.figures: dict[int, frozenset[str]] = {}  # rows whose text states figures
        self.feeds: dict[str, int] = {}
        self.feed_names: list[str] = []
        self.by_key = DigestTable()
        self.count = 0
        self.filled = 0

    def ensure(self, row: int) -> None:
        while len(self.flags) <= row:
            for column in (self.key_kind, self.flags):
                column.append(0)
            for column in (self.key_high, self.key_low, self.story_high, self.hash_digest, self.url_digest):
                column.append(0)
            self.story_low.append(0)
            self.published.append(0)
            self.order.append(0)
            self.size.append(0)
            self.source.append(-1)

    @staticmethod
    def key_digest(item_key: str) -> int:
        return int(item_key[2:18], 16) if _ITEM_KEY.match(item_key) else digest(item_key)

    def key_of(self, row: int) -> str:
        kind = self.key_kind[row]
        if not kind:
            return self.odd_keys[row]
        return f"{chr(kind)}:{self.key_high[row]:016x}{self.key_low[row]:016x}"

    def find(self, item_key: str) -> int:
        """The row of a stored item, or -1."""
        for row in self.by_key.rows(self.key_digest(item_key)):
            if self.key_of(row) == item_key:
                return row
        return -1

    def story_of(self, row: int) -> str:
        high = self.story_high[row]
        low = self.story_low[row]
        if not high and not low and row in self.odd_stories:
            return self.odd_stories[row]
        return f"st_{high:016x}{low:08x}"

    def fill(self, row: int, item_key: str, story_id: str, published: int, size: int, textual: bool,
             source: str | None, hash_digest: int, url_digest: int | None,
             figures: frozenset[str]) -> None:  # fmt: skip
        self.ensure(row)
        if _ITEM_KEY.match(item_key):
            self.key_kind[row] = ord(item_key[0])
            self.key_high[row] = int(item_key[2:18], 16)
            self.key_low[row] = int(item_key[18:], 16)
        else:
            self.key_kind[row] = 0
            self.odd_keys[row] = item_key
        self.by_key.add(self.key_digest(item_key), row)
        if _STORY_ID.match(story_id) and story_id != "st_" + "0" * 24:
            self.story_high[row] = int(story_id[3:19], 16)
            self.story_low[row] = int(story_id[19:], 16)
        else:
            self.story_high[row] = self.story_low[row] = 0
            self.odd_stories[row] = story_id
        self.published[row] = published
        self.order[row] = self.filled
        self.filled += 1
        self.size[row] = size
        self.flags[row] = _LIVE | (_TEXTUAL if textual else 0) | (_HAS_URL if url_digest is not None else 0)
        if source is None:
            self.source[row] = -1
        else:
            number = self.feeds.get(source)
            if number is None:
                number = self.feeds[source] = len(self.feed_names)
                self.feed_names.append(source)
            self.source[row] = number
        self.hash_digest[row] = hash_digest
        self.url_digest[row] = url_digest if url_digest is not None else 0
        if figures:
            self.figures[row] = figures
        self.count += 1

    def clear(self, row: int) -> None:
        self.by_key.remove(self.key_digest(self.key_of(row)), row)
        self.odd_keys.pop(row, None)
        self.odd_stories.pop(row, None)
        self.figures.pop(row, None)
        self.flags[row] = 0
        self.count -= 1

    def live_before(self, before: int) -> list[int]:
        """The live rows published before `before` (microseconds), in the order they were filled."""
        if not self.count:
            return []
        published = np.frombuffer(self.published, dtype=np.int64)
        live = (np.frombuffer(self.flags, dtype=np.uint8) & _LIVE).astype(bool)
        rows = np.flatnonzero(live & (published < before))
        order = np.frombuffer(self.order, dtype=np.int64)[rows]
        found: list[int] = rows[np.argsort(order, kind="stable")].tolist()
        return found


_LIVE = 1
_TEXTUAL = 2
_HAS_URL = 4


@dataclass(frozen=True, slots=True)
class _Text:
    """What the tiers read of one item's text, from its analysis."""

    shingles: set[str]
    token_count: int
    figures: frozenset[str]
    analysis: Analysis
    title: str  # cleaned
    summary: str  # cleaned


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """What the tiers need of one item that does not depend on the index: its cleaned text, MinHash signature
    and event features. `StoryIndex.prepare` makes it; it is a pure function of the item's text, analysis and
    actors, so it can be made ahead of the assignment (in another process), and `assign` takes it."""

    text: _Text
    signature: U32
    textual: bool
    features: EventFeatures | None


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _read(title: str, summary: str, analysis: Analysis | None, language: str | None) -> _Text:
    if analysis is None or not (analysis.covers("title", title) and analysis.covers("summary", summary)):
        analysis = analyse(title, summary, language=language)
    cleaned_title, cleaned_summary = clean_title(title), clean_summary(summary)
    title_words, _ = cleaned_words(analysis, "title", cleaned_title)
    summary_words, _ = cleaned_words(analysis, "summary", cleaned_summary)
    return _Text(
        shingle_set(title_words, summary_words),
        len(title_words) + len(summary_words),
        figures_of(cleaned_title + "\n" + cleaned_summary),
        analysis,
        cleaned_title,
        cleaned_summary,
    )


def shingles(title: str, summary: str) -> set[str]:
    """The word-bigram shingles of title and summary, taken per field (no bigram spans the two), pooled in one
    set. Markup leftovers, a wire dateline, a headline kicker and a publisher suffix are removed first."""
    return _read(title, summary, None, None).shingles


class StoryIndex:
    """Items of the recent window with their signatures and event features, to assign each new item to a story.

    `threshold`: estimated Jaccard similarity of shingle sets at or above which two items are one story.
    `containment`: share of the smaller shingle set found in the larger one at or above which they are one
    story, if the smaller set has at least `min_containment_size` shingles (a truncated copy, an added
    paragraph). `bands` × `rows` leading signature values form the LSH index. `events=False` switches the
    event tier off (copies only, as before issue 8); `event_index` sets its thresholds.
    """

    def __init__(
        self,
        *,
        window: timedelta = timedelta(hours=72),
        threshold: float = 0.5,
        containment: float = 0.65,
        min_containment_size: int = 10,
        min_short_size: int = 5,
        short_containment: float = 0.8,
        min_tokens: int = 4,
        same_source_threshold: float = 0.8,
        num_perm: int = 128,
        bands: int = 20,
        rows: int = 2,
        events: bool = True,
        event_index: EventIndex | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0 or not 0.0 < containment <= 1.0:
            raise ValueError(f"threshold and containment must be in (0, 1], got {threshold}, {containment}")
        if bands * rows > num_perm or bands < 1 or rows < 1:
            raise ValueError(f"bands × rows ({bands}×{rows}) must be between 1 and num_perm ({num_perm})")
        self.window = window
        self.min_tokens = min_tokens
        self.same_source_threshold = same_source_threshold
        self.num_perm = num_perm
        self._exact = ExactIndex()
        self._near = NearDuplicateIndex(
            threshold=threshold,
            containment=containment,
            min_containment_size=min_containment_size,
            min_short_size=min_short_size,
            short_containment=short_containment,
            num_perm=num_perm,
            bands=bands,
            rows=rows,
        )
        self._events = (EventIndex() if event_index is None else event_index) if events else None
        self._rows = _Rows()
        self._window_micros = window // _MICROSECOND
        # A load put off until the index is first needed (`defer_load`): the rows to read, and since when.
        self._deferred: Callable[[datetime], Iterable[StoredSignature | Mapping[str, Any]]] | None = None
        self._deferred_since = datetime.min.replace(tzinfo=UTC)

    def __len__(self) -> int:
        self._ensure_loaded()
        return self._rows.count

    def __contains__(self, item_key: object) -> bool:
        self._ensure_loaded()
        return isinstance(item_key, str) and self._rows.find(item_key) >= 0

    @property
    def loaded(self) -> bool:
        """False while a deferred load (`defer_load`) has not run yet."""
        return self._deferred is None

    def defer_load(
        self, rows: Callable[[datetime], Iterable[StoredSignature | Mapping[str, Any]]], since: datetime
    ) -> None:
        """Load `rows(since)` (as `load` does) when the index is first needed, not now: a run in which no new
        item arrives (every feed answers 304) never reads the stored window. Until then `expire(before)` only
        moves `since` on, so the index loads exactly what an index loaded now and expired since would hold,
        and `forget` has nothing to forget (nothing was assigned). `prepare` never needs the stored items."""
        self._deferred = rows
        self._deferred_since = _aware(since)

    # -- public API ------------------------------------------------------------------------------------------

    def assign(
        self,
        *,
        item_key: str,
        title: str,
        summary: str,
        url: str | None,
        content_hash: str,
        published: datetime,
        source: str | None = None,
        analysis: Analysis | None = None,
        actors: ActorMentions | Collection[str] = NO_ACTORS,
        language: str | None = None,
        prepared: PreparedItem | None = None,
    ) -> StoryAssignment:
        """Put the item into a story and remember it. Assigning a key again returns its story unchanged.

        `analysis` is the item's `monitor.analysis.Analysis` (made here from title and summary when missing or
        of another text), `actors` the rule set's actor ids it mentions (`RuleSet.match_with_actors`).
        `source` (the feed URL) is optional but recommended: two items of one feed are one story only on a
        hash or URL match or a near-identical text (`same_source_threshold`). `prepared` is the item's
        `prepare` result, when it was made ahead (then title, summary, analysis, actors and language are not read
        again)."""
        self._ensure_loaded()
        known = self._rows.find(item_key)
        if known >= 0:
            story_id = self._rows.story_of(known)
            return StoryAssignment(story_id, story_id == story_id_for(item_key), 1.0, None, "known")
        published = _aware(published)
        if prepared is None:
            prepared = self.prepare(title, summary, analysis=analysis, actors=actors, language=language)
        text, signature, textual, features = (
            prepared.text,
            prepared.signature,
            prepared.textual,
            prepared.features,
        )
        assignment = self._find_copy(signature, text, textual, url, content_hash, published, source)
        weighed: Weighed | None = None
        if self._events is not None and features is not None:
            weighed = self._events.weigh(features)
            if assignment is None:
                found = self._events.find(features, published, source, weighed)
                if found is not None:
                    assignment = self._event_assignment(found, features.language)
        if assignment is None:
            assignment = StoryAssignment(story_id_for(item_key), True, 0.0, None, "new")
        row = self._add(
            signature, item_key, assignment.story_id, published, url, content_hash, len(text.shingles), textual,
            source, text.figures,
        )  # fmt: skip
        if features is not None and self._events is not None:
            self._events.add(
                row,
                item_key,
                assignment.story_id,
                features.language,
                features.terms,
                features.shared,
                published,
                self._feed(row),
                weighed,
            )
        language_of = features.language if features is not None else text.analysis.language
        return StoryAssignment(
            assignment.story_id,
            assignment.is_new_story,
            assignment.similarity,
            assignment.matched_item_key,
            assignment.reason,
            assignment.evidence,
            language_of,
        )

    def prepare(
        self,
        title: str,
        summary: str,
        *,
        analysis: Analysis | None = None,
        actors: ActorMentions | Collection[str] = NO_ACTORS,
        language: str | None = None,
    ) -> PreparedItem:
        """The item's cleaned text, signature and event features: independent of what the index holds (only
        of its settings), so it may be made in a worker process; `assign(..., prepared=...)` takes it."""
        text = _read(title, summary, analysis, language)
        signature = self._near.hasher.signature(text.shingles)
        textual = text.token_count >= self.min_tokens and bool(text.shingles)
        features = None
        if self._events is not None and textual:
            features = event_features(
                text.analysis, (("title", text.title), ("summary", text.summary)), actors
            )
        return PreparedItem(text, signature, textual, features)

    def signature(self, item_key: str) -> bytes:
        """The serialized signature of an assigned or loaded item, for the store."""
        self._ensure_loaded()
        row = self._rows.find(item_key)
        if row < 0:
            raise KeyError(f"item {item_key!r} is not in the story index")
        return encode_signature(
            self._near.row_signature(row), self._rows.size[row], bool(self._rows.flags[row] & _TEXTUAL)
        )

    def event_features(self, item_key: str, language: str | None = None) -> bytes | None:
        """The serialized event features of an assigned or loaded item, for the store (None: it has none)."""
        self._ensure_loaded()
        row = self._rows.find(item_key)
        if row < 0:
            raise KeyError(f"item {item_key!r} is not in the story index")
        if self._events is None:
            return None
        found = self._events.features_of(row)
        if found is None:
            return None
        stored_language = self._events.language_of(row) or language or "xx"
        return _encode_features(stored_language, *found)

    def load(self, rows: Iterable[StoredSignature | Mapping[str, Any]]) -> int:
        """Rebuild from the store at startup, in the order the items were first assigned. Keeps the stored
        story ids. Signatures and event features from another version are recomputed from the stored text
        (actor ids then are lost for those items: they come from the rule set at assignment). Returns the
        number of items loaded (a key already present is skipped)."""
        self._ensure_loaded()
        loaded = 0
        try:
            for raw in rows:
                row = raw if isinstance(raw, StoredSignature) else StoredSignature.from_mapping(raw)
                if self._rows.find(row.item_key) >= 0:
                    continue
                published = _aware(row.published)
                decoded = decode_signature(row.signature, self.num_perm) if row.signature else None
                stored_features = _decode_features(row.event_features) if row.event_features else None
                text: _Text | None = None
                if decoded is None or (self._events is not None and stored_features is None):
                    text = _read(row.title, row.summary, None, row.language)
                if decoded is None:
                    assert text is not None
                    textual = text.token_count >= self.min_tokens and bool(text.shingles)
                    decoded = (self._near.hasher.signature(text.shingles), len(text.shingles), textual)
                    row_figures = text.figures
                else:
                    row_figures = figures_of(clean_title(row.title) + "\n" + clean_summary(row.summary))
                signature, size, textual = decoded
                slot = self._add(
                    signature, row.item_key, row.story_id, published, row.url, row.content_hash, size, textual,
                    row.source, row_figures, later=True,
                )  # fmt: skip
                if self._events is not None and textual:
                    if stored_features is not None:
                        language, terms, shared = stored_features
                        self._events.add(
                            slot,
                            row.item_key,
                            row.story_id,
                            language,
                            terms,
                            shared,
                            published,
                            self._feed(slot),
                        )
                    elif text is not None:
                        features = event_features(
                            text.analysis, (("title", text.title), ("summary", text.summary))
                        )
                        self._events.add(
                            slot, row.item_key, row.story_id, features.language, features.terms,
                            features.shared, published, self._feed(slot),
                        )  # fmt: skip
                loaded += 1
        finally:
            self._near.flush()  # the LSH buckets of every row read, in one go (of those before a failure too)
        return loaded

    def forget(self, item_keys: Iterable[str]) -> int:
        """Drop these items (assigned, but their transaction did not commit), so the index holds exactly what
        the store holds and the next assignment of the same items starts afresh. Returns how many."""
        if self._deferred is not None:
            return 0  # nothing was assigned before the load
        found = [row for key in item_keys if (row := self._rows.find(key)) >= 0]
        for row in found:
            self._remove(row)
        return len(found)

    def expire(self, before: datetime) -> int:
        """Forget items published before `before` (bounds memory to the window). Returns how many."""
        before = _aware(before)
        if self._deferred is not None:  # not loaded yet: load only what is still in the window
            self._deferred_since = max(self._deferred_since, before)
            return 0
        old = self._rows.live_before(_micros(before))
        for row in old:
            self._remove(row)
        return len(old)

    # -- internals -------------------------------------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        rows = self._deferred
        if rows is None:
            return
        self._deferred = None
        try:
            self.load(rows(self._deferred_since))
        except BaseException:
            # Try again at the next use (the store may be back); keys loaded meanwhile are skipped then.
            self._deferred = rows
            raise

    def _in_window(self, row: int, published: int) -> bool:
        return abs(self._rows.published[row] - published) <= self._window_micros

    def _find_copy(
        self,
        signature: U32,
        text: _Text,
        textual: bool,
        url: str | None,
        content_hash: str,
        published: datetime,
        source: str | None,
    ) -> StoryAssignment | None:
        """Tiers 1 and 2: the same text, the same document, a near-duplicate."""
        rows = self._rows
        when = _micros(published)
        if textual:
            same_text = self._exact.same_text(digest(content_hash))
            if same_text >= 0 and self._in_window(same_text, when):
                return StoryAssignment(rows.story_of(same_text), False, 1.0, rows.key_of(same_text), "hash")
        same_url = self._exact.same_url(url)
        # An updated article keeps its URL; a page that every item links to does not share text.
        if (
            same_url >= 0
            and self._in_window(same_url, when)
            and (
                not textual
                or not rows.flags[same_url] & _TEXTUAL
                or self._near.jaccard(signature, same_url) >= 0.1
            )
        ):
            return StoryAssignment(rows.story_of(same_url), False, 1.0, rows.key_of(same_url), "url")
        if not textual:
            return None
        best: tuple[int, float] | None = None
        size = len(text.shingles)
        source_number = rows.feeds.get(source, -2) if source is not None else -2
        flags, sources, sizes, figures = rows.flags, rows.source, rows.size, rows.figures
        for row in self._near.candidates(signature, size):
            if not flags[row] & _TEXTUAL or not self._in_window(row, when):
                continue
            if figures_conflict(text.figures, figures.get(row, _NO_FIGURES)):
                continue  # one template, other facts: another day's report, another company's results
            jaccard = self._near.jaccard(signature, row)
            if source is not None and sources[row] == source_number:
                same = jaccard >= self.same_source_threshold
            else:
                same = self._near.same_story(jaccard, signature, size, row, sizes[row])
            if same and (best is None or jaccard > best[1]):
                best = (row, jaccard)
        if best is None:
            return None
        return StoryAssignment(rows.story_of(best[0]), False, best[1], rows.key_of(best[0]), "similar")

    @staticmethod
    def _event_assignment(found: EventMatch, language: str) -> StoryAssignment:
        reason: Reason = "cross-language" if found.cross_language else "event"
        if found.cross_language:
            detail: tuple[str, ...] = (f"shared evidence {found.score:.2f}",)
        else:
            detail = (f"content {found.content:.2f}", f"entities {found.entities:.2f}")
        return StoryAssignment(
            found.story_id,
            False,
            found.score,
            found.matched_item_key,
            reason,
            detail + found.evidence,
            language,
        )

    def _add(self, signature: U32, item_key: str, story_id: str, published: datetime, url: str | None,
             content_hash: str, size: int, textual: bool, source: str | None,
             figures: frozenset[str], later: bool = False) -> int:  # fmt: skip
        row = self._near.add(signature, textual, later=later)
        hash_digest = digest(content_hash)
        url_digest = digest(url) if url is not None else None
        self._rows.fill(
            row,
            item_key,
            story_id,
            _micros(published),
            size,
            textual,
            source,
            hash_digest,
            url_digest,
            figures,
        )
        self._exact.add(row, hash_digest, url_digest, textual)
        return row

    def _feed(self, row: int) -> str | None:
        """The row's feed as the one string kept per feed (the event tier keeps it per sub-cluster)."""
        number = self._rows.source[row]
        return self._rows.feed_names[number] if number >= 0 else None

    def _remove(self, row: int) -> None:
        rows = self._rows
        flags = rows.flags[row]
        self._exact.remove(row, rows.hash_digest[row], rows.url_digest[row] if flags & _HAS_URL else None)
        rows.clear(row)
        self._near.remove(row, bool(flags & _TEXTUAL))
        if self._events is not None:
            self._events.remove(row)
