"""Frozen data passed between the stages. No I/O here, and nothing here imports another monitor module.

The data path:  bytes --parse--> ParsedFeed(Entry...) --normalize/identify--> Item --match--> Match
                --stories--> story id --store--> Alert + Delivery rows --notify--> DeliveryRequest
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "SEVERITIES",
    "DeliveryRequest",
    "Entry",
    "FeedHints",
    "FeedState",
    "FetchResult",
    "Hit",
    "Item",
    "Match",
    "ParsedFeed",
    "PendingEntry",
    "PendingFeed",
    "Severity",
]

# How urgent a notification is, least first. A rule's alerts carry its `severity` (normal by default), an
# escalation the severity its rule's `escalate` names; a channel's `min_severity` drops what is below it.
Severity = Literal["low", "normal", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("low", "normal", "high", "critical")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry as the feed gave it, with HTML already turned into plain text."""

    guid: str | None = None
    link: str | None = None
    title: str = ""
    summary: str = ""
    content: str = ""
    published: datetime | None = None  # timezone-aware, UTC
    updated: datetime | None = None  # timezone-aware, UTC
    categories: tuple[str, ...] = ()
    author: str | None = None
    language: str | None = None  # as declared by the entry (xml:lang, JSON Feed language), lower-case


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A whole parsed document. `warnings` holds what the parser recovered from (bozo)."""

    title: str | None = None
    link: str | None = None
    language: str | None = None  # declared by the feed (<language>, xml:lang), lower-case
    entries: tuple[Entry, ...] = ()
    warnings: tuple[str, ...] = ()


class PendingEntry:
    """An entry whose identity (guid and link) is read and whose text is converted only when asked for.

    Converting HTML to text (and everything after it: language, hashes, matching, stories) is most of the cost
    of an entry, and an entry already seen under its key needs none of it: the pipeline keys entries by
    `guid`/`link` first and calls `entry()` only for the new ones. `entry()` converts once and keeps the
    result; its guid and link are always the ones given here."""

    __slots__ = ("_build", "_entry", "guid", "link")

    def __init__(self, guid: str | None, link: str | None, build: Callable[[], Entry]) -> None:
        self.guid = guid
        self.link = link
        self._build: Callable[[], Entry] | None = build
        self._entry: Entry | None = None

    @classmethod
    def ready(cls, entry: Entry) -> PendingEntry:
        """An entry that is already converted (JSON Feeds, tests)."""
        pending = cls(entry.guid, entry.link, lambda: entry)
        pending._entry, pending._build = entry, None
        return pending

    @property
    def converted(self) -> bool:
        """Whether the text was converted already (for tests and the benchmark's accounting)."""
        return self._entry is not None

    def entry(self) -> Entry:
        if self._entry is None:
            assert self._build is not None
            self._entry, self._build = self._build(), None
        return self._entry

    def __repr__(self) -> str:
        return f"PendingEntry(guid={self.guid!r}, link={self.link!r}, converted={self.converted})"


@dataclass(frozen=True, slots=True)
class PendingFeed:
    """A parsed document whose entries are converted on demand (see PendingEntry); `parsed()` converts all."""

    title: str | None = None
    link: str | None = None
    language: str | None = None
    entries: tuple[PendingEntry, ...] = ()
    warnings: tuple[str, ...] = ()

    def parsed(self) -> ParsedFeed:
        return ParsedFeed(
            title=self.title,
            link=self.link,
            language=self.language,
            entries=tuple(pending.entry() for pending in self.entries),
            warnings=self.warnings,
        )


@dataclass(frozen=True, slots=True)
class Item:
    """An entry placed in its feed, with its identity and resolved language: what rules are matched on."""

    key: str  # identity key: stable across fetches and restarts (see monitor.identify)
    feed_url: str
    feed_title: str
    guid: str | None
    link: str | None
    url: str | None  # canonical form of link (tracking parameters dropped), for folding duplicates
    title: str
    summary: str
    content: str
    categories: tuple[str, ...]
    language: str | None  # entry's, else feed's, else detected; ISO 639-1 where known
    published: datetime | None
    content_hash: str  # hash of normalized title + summary; equal for copies of one text
    feed_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """One matched span: which term of the rule fired, in which field, on which characters."""

    term: str  # the term as the rule author wrote it
    field: str  # title | summary | content | categories | link | feed
    start: int  # character offsets into that field's text (as in Item)
    end: int
    text: str  # the matched characters


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that fired on an item, with the evidence."""

    rule_id: str
    rule_title: str
    hits: tuple[Hit, ...]
    notify: tuple[str, ...] | None = None  # channel names; None means every channel
    score: float | None = None


@dataclass(frozen=True, slots=True)
class FeedHints:
    """What a feed document says about its own schedule (RSS <ttl>, sy:updatePeriod/updateFrequency,
    <skipHours>, <skipDays>); see monitor.cachehints. Hours are 0-23 GMT, days 0 (Monday) to 6 (Sunday)."""

    ttl_seconds: float | None = None
    skip_hours: frozenset[int] = frozenset()
    skip_days: frozenset[int] = frozenset()

    @property
    def empty(self) -> bool:
        return self.ttl_seconds is None and not self.skip_hours and not self.skip_days


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store knows about a feed between fetches: the schedule of record."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    next_fetch_at: datetime | None = None
    error_count: int = 0
    last_error: str | None = None
    last_fetched_at: datetime | None = None
    title: str | None = None
    moved_to: str | None = (
        None  # where a permanent redirect (301, 308) of the feed's URL points: fetched there
    )
    hints: FeedHints = FeedHints()  # from the document's last 200, kept for the 304s in between
    # The health conditions told and not yet ended (monitor.health: "failing", "silent"): with it, a 304 whose
    # health cannot change is not followed by a health read (Pipeline.poll).
    health_notified: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a fetch returned. `content` is None when the server answered 304 Not Modified."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content: bytes | None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    elapsed: float = 0.0
    fresh_for: float | None = None  # seconds the server says the answer stays fresh (max-age, Expires)
    moved_to: str | None = None  # the URL after the leading permanent redirects (301, 308), when it changed
    links: str | None = None  # the response's Link headers, joined (WebSub hub discovery)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class DeliveryRequest:
    """One delivery from the outbox to one channel: one alert, or several for a digest.

    `id` is the idempotency key: the same on every retry (it is the webhook-id and part of the Message-ID).
    `alerts` are alert payloads (see monitor.notify.payload), already rendered to JSON-able dicts when the
    alert was recorded, so a delivery does not depend on items that were pruned since.
    """

    id: str
    channel: str
    alerts: tuple[dict[str, Any], ...]
    attempt: int = 1
    created_at: datetime | None = None
    digest: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # A notice instead of alerts (feed health: monitor.health; escalations): its JSON payload; `alerts` is
    # empty then.
    notice: dict[str, Any] | None = None
    # What the delivery is (see monitor.store.schema, migration 6): "alert" (one (rule, story) alert),
    # "story" (the first notification of a story on its channel, every rule that fired on it), "update" (rules
    # that fired later on a story already notified), "escalation", "digest", "notice".
    kind: str = "alert"
    story_id: str | None = None
    # The id of the story's first notification on this channel, for an update or an escalation: the thread
    # it belongs in (webhook payload `in_reply_to`, e-mail In-Reply-To/References).
    in_reply_to: str | None = None

    @property
    def thread(self) -> str:
        """The thread this delivery belongs to: the id of the story's first notification on its channel."""
        return self.in_reply_to or self.id
