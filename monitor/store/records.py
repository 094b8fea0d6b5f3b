"""What the pipeline hands the store to write, and what the store hands back to the CLI. Frozen, no I/O."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.errors import StoreError
from monitor.timeutil import to_iso
from monitor.types import FeedHints, FeedState, Item, Match


class StaleClaimError(StoreError):
    """A write under a claim (a feed's fetch, a delivery's outcome) whose claim is no longer the current one:
    its lease ran out and another node claimed the row since (fencing). Nothing was written."""


__all__ = [
    "AlertAttachment",
    "AlertState",
    "DeliveryRow",
    "FeedClaim",
    "FeedRow",
    "FeedUpdate",
    "NewAlert",
    "NewEscalation",
    "NewItem",
    "NodeInfo",
    "NodeRow",
    "PayloadMemo",
    "SilenceRow",
    "StaleClaimError",
    "StoredItem",
    "StoryRow",
    "WebSubRow",
    "last_payloads",
]


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """The outcome of one successful fetch (200 or 304) for the feed row."""

    url: str
    fetched_at: datetime
    next_fetch_at: datetime
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    claim: int | None = None  # the fencing token of the claim the fetch ran under (FeedClaim.token)
    moved_to: str | None = None  # a new permanent home (301/308) of the feed's URL; None keeps the known one
    hints: FeedHints | None = (
        None  # the document's schedule hints (a 200); None keeps the stored ones (a 304)
    )


@dataclass(frozen=True, slots=True)
class FeedClaim:
    """A feed leased to one node for one fetch. `token` is the fencing token: it grows with every claim of the
    feed, and a commit under an older token is refused (StaleClaimError), so a node that paused past its lease
    cannot overwrite the fetch of the node that took the feed over."""

    state: FeedState
    token: int
    lease_until: datetime

    @property
    def url(self) -> str:
        return self.state.url


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A daemon process as it registers itself in the nodes table."""

    id: str
    host: str
    pid: int
    version: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A node as `monitor nodes` and /status show it. `feeds` are the feeds it polled last (its share);
    `leased` those it holds a lease on now (being fetched)."""

    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    feeds: int
    leased: int
    deliveries: int  # deliveries it holds claims on now

    def alive(self, now: datetime, dead_after: float) -> bool:
        """Running and heard from within `dead_after` seconds."""
        return self.stopped_at is None and (now - self.heartbeat_at).total_seconds() <= dead_after

    def as_json(self, now: datetime, dead_after: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "started_at": to_iso(self.started_at),
            "heartbeat_at": to_iso(self.heartbeat_at),
            "heartbeat_age_seconds": round((now - self.heartbeat_at).total_seconds(), 3),
            "stopped_at": to_iso(self.stopped_at),
            "alive": self.alive(now, dead_after),
            "feeds": self.feeds,
            "leased": self.leased,
            "deliveries": self.deliveries,
        }


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item seen for the first time, with what the pure stages decided about it."""

    item: Item
    matches: tuple[Match, ...]
    story_id: str
    story_is_new: bool
    signature: bytes | None = None
    membership: StoryMembership | None = None


@dataclass(frozen=True, slots=True)
class StoryMembership:
    """How an item joined its story, as `monitor stories show` explains it, and the event tier's stored
    features (see monitor.stories.StoryAssignment)."""

    tier: str
    reason: str
    score: float
    matched_item_key: str | None
    evidence: tuple[str, ...]
    language: str | None
    event_features: bytes | None = None


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to record, with one outbox row per channel, due at `deliver_at` (later for group_wait)."""

    id: str
    rule_id: str
    story_id: str
    item_key: str
    payload: dict[str, Any]
    channels: tuple[str, ...]
    deliver_at: datetime
    # 0 for the story's first alert under this rule, n for its n-th realert. (rule, story, generation) is
    # unique in the database: the backstop of "one alert per (rule, story)" across nodes.
    generation: int = 0
    # The silence this alert was decided under (monitor.silence): recorded, queued on no channel.
    silence_id: str | None = None


@dataclass(frozen=True, slots=True)
class NewEscalation:
    """A story that a rule alerted reached the rule's `escalate` threshold: told once per (rule, story), with
    one outbox row per channel (each replying to the story's first notification on that channel)."""

    rule_id: str
    story_id: str
    severity: str
    outlets: int
    payload: dict[str, Any]
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AlertAttachment:
    """A later item of a story folded into an existing alert; `payload` is the alert's refreshed payload."""

    alert_id: str
    item_key: str
    payload: dict[str, Any]
    payload_size: int | None = None  # its JSON size as the payload cap measures it, when the fold knew it


def last_payloads(attachments: Sequence[AlertAttachment]) -> list[AlertAttachment]:
    """The last attachment of each alert that `attachments` fold into, in the order the alerts first appear.

    Each attachment's payload holds the folds before it (the pipeline folds an alert's items in turn), so a
    store that writes only the last of an alert's payloads (one JSON text and one UPDATE, not one per item)
    leaves the row as writing each in turn did. A popular story folds several items of one fetch into its
    alert: about two per (alert, fetch) in round 1 of bench/profile_rounds.py."""
    return list({a.alert_id: a for a in attachments}.values())


class PayloadMemo:
    """The payloads a store last wrote or read, by alert id, with the exact text stored: a payload read back as
    that same text is that payload, so it is not decoded again, and its JSON size (AlertState.payload_size)
    is known to the next fold.

    A popular story's alert is read and written again by almost every fetch (11,439 reads in round 1 of
    bench/profile_rounds.py, 200 feeds), and decoding it was most of `alert_states`. The text comparison makes
    it exact whoever wrote the row since (another process, another node): a different text is decoded as
    before. Bounded (LRU, `capacity` alerts; about 15 KB each), so memory does not grow with the alerts
    stored; 512 hit 98.6 % of round 1's reads. The payloads are shared with their readers, which is safe
    because nothing changes a payload in place (see monitor.notify.payload.fold_item)."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[str, dict[str, Any], int | None]] = OrderedDict()

    def put(self, alert_id: str, text: str, payload: dict[str, Any], size: int | None) -> None:
        self._entries[alert_id] = (text, payload, size)
        self._entries.move_to_end(alert_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def read(self, alert_id: str, text: str) -> tuple[dict[str, Any], int | None]:
        """The payload stored as `text` (and its size when known), decoded only when it is not the text
        remembered for the alert."""
        entry = self._entries.get(alert_id)
        if entry is not None and entry[0] == text:
            self._entries.move_to_end(alert_id)
            return entry[1], entry[2]
        payload: dict[str, Any] = json.loads(text)
        self.put(alert_id, text, payload, None)
        return payload, None


@dataclass(frozen=True, slots=True)
class AlertState:
    """The newest alert of one (rule, story), as the suppression decision needs it."""

    alert_id: str
    rule_id: str
    story_id: str
    created_at: datetime
    item_count: int
    payload: dict[str, Any]
    pending: bool  # some delivery of it has not been sent yet (items can still fold into it)
    generation: int = 0  # see NewAlert.generation
    silence_id: str | None = None  # see NewAlert.silence_id
    payload_size: int | None = None  # see AlertAttachment.payload_size; None when not known


@dataclass(frozen=True, slots=True)
class FeedRow:
    url: str
    title: str | None
    active: bool
    interval_seconds: float
    next_fetch_at: datetime
    last_fetched_at: datetime | None
    last_success_at: datetime | None
    error_count: int
    last_error: str | None
    etag: str | None
    last_modified: str | None
    parked_at: datetime | None = None  # 410 Gone or failing too long: not polled until unparked
    parked_reason: str | None = None
    moved_to: str | None = None  # polled at this URL since a permanent redirect (the config is not rewritten)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    channel: str
    status: str
    digest: bool
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    alert_ids: tuple[str, ...]
    kind: str = "alert"  # alert | story | update | escalation | digest | notice (see DeliveryRequest)
    story_id: str | None = None
    in_reply_to: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON form shown by `monitor deliveries --json` and inside `monitor alerts show`."""
        return {
            "id": self.id,
            "channel": self.channel,
            "status": self.status,
            "digest": self.digest,
            "attempts": self.attempts,
            "created_at": to_iso(self.created_at),
            "next_attempt_at": to_iso(self.next_attempt_at),
            "last_attempt_at": to_iso(self.last_attempt_at),
            "last_error": self.last_error,
            "sent_at": to_iso(self.sent_at),
            "alerts": list(self.alert_ids),
            "kind": self.kind,
            "story": self.story_id,
            "in_reply_to": self.in_reply_to,
        }


@dataclass(frozen=True, slots=True)
class StoryRow:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    item_count: int
    items: tuple[dict[str, Any], ...]  # key, link, feed, feed_title, title, language, published, and how it
    # joined: tier, reason, score, matched (item key), evidence (list of strings)

    @property
    def languages(self) -> list[str]:
        """The story's languages, most items first."""
        counted: dict[str, int] = {}
        for item in self.items:
            language = item.get("language") or "?"
            counted[language] = counted.get(language, 0) + 1
        return sorted(counted, key=lambda language: (-counted[language], language))

    @property
    def outlets(self) -> list[str]:
        """The story's outlets (feed titles, else feed URLs), in the order they first reported it."""
        found: list[str] = []
        for item in self.items:
            outlet = item.get("feed_title") or item["feed"]
            if outlet not in found:
                found.append(outlet)
        return found


def hits_json(match: Match) -> str:
    """A match's hits as both backends store them in `matches.hits` (canonical JSON, keys sorted)."""
    hits = [
        {"term": h.term, "field": h.field, "start": h.start, "end": h.end, "text": h.text} for h in match.hits
    ]
    return json.dumps(hits, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def items_per_story(new_items: Sequence[NewItem]) -> list[tuple[str, int]]:
    """(story id, number of new items) in first-seen order: one count update per story, not one per item."""
    counts: dict[str, int] = {}
    for new in new_items:
        counts[new.story_id] = counts.get(new.story_id, 0) + 1
    return list(counts.items())


def hints_json(hints: FeedHints | None) -> str | None:
    """The hints as stored in feeds.hints (None: leave the column as it is)."""
    if hints is None:
        return None
    return json.dumps(
        {
            "ttl": hints.ttl_seconds,
            "skip_hours": sorted(hints.skip_hours),
            "skip_days": sorted(hints.skip_days),
        }
    )


def hints_from_json(text: str | None) -> FeedHints:
    """feeds.hints read back; FeedHints() for none or for a value this version cannot read."""
    if not text:
        return FeedHints()
    try:
        raw = json.loads(text)
        ttl = raw.get("ttl")
        return FeedHints(
            ttl_seconds=float(ttl) if ttl is not None else None,
            skip_hours=frozenset(int(h) for h in raw.get("skip_hours", ())),
            skip_days=frozenset(int(d) for d in raw.get("skip_days", ())),
        )
    except (ValueError, TypeError, AttributeError):
        return FeedHints()


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A stored item as the rules see it (`monitor rules replay`), with the story it joined and when it was
    fetched. `item.feed_tags` is empty: tags live in the config, not the database."""

    item: Item
    story_id: str
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class SilenceRow:
    """A silence (`monitor silence add`): alerts whose rule, story and feed meet every matcher that is set
    (None matches anything) are recorded as silenced until ends_at. A silence starts when it is stored (no
    scheduled silences), so only ends_at is compared: a node whose clock is a little behind the CLI's still
    honours a silence added a moment ago."""

    id: str
    rule_id: str | None
    story_id: str | None
    feed_url: str | None
    reason: str
    created_at: datetime
    ends_at: datetime

    def active(self, now: datetime) -> bool:
        return now < self.ends_at

    def matches(self, rule_id: str, story_id: str, feed_url: str) -> bool:
        return (
            (self.rule_id is None or self.rule_id == rule_id)
            and (self.story_id is None or self.story_id == story_id)
            and (self.feed_url is None or self.feed_url == feed_url)
        )

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule_id,
            "story": self.story_id,
            "feed": self.feed_url,
            "reason": self.reason,
            "created_at": to_iso(self.created_at),
            "ends_at": to_iso(self.ends_at),
            "active": self.active(now),
        }


@dataclass(frozen=True, slots=True)
class WebSubRow:
    """One feed's WebSub subscription (monitor.websub): the hub and topic its document or Link headers name,
    the callback path and secret of the subscription, and where verification and the lease stand.

    state: "discovered" (not asked yet, or the hub or topic changed), "pending" (asked, the hub's verification
    GET has not come), "active" (verified; `expires_at` is the lease's end), "denied" (the hub refused, or the
    request failed: asked again after a while)."""

    feed_url: str
    hub: str
    topic: str
    callback_id: str  # the last path segment of the callback URL: random, so a callback cannot be guessed
    secret: str  # hub.secret: the HMAC key of X-Hub-Signature
    state: str
    discovered_at: datetime
    requested_at: datetime | None = None  # when the last subscribe (or renewal) was sent
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    lease_seconds: int | None = None
    last_error: str | None = None
