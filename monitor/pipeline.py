"""Composes the stages for one feed: fetch → parse → normalize → identify → match → story → store (+ outbox).

No business logic of its own beyond ordering the stages and carrying their results: each decision is made by a
pure function of another module (rules match, story assignment, alert suppression). The I/O is the fetch and
one store transaction per fetched feed; delivery happens later, from the outbox.

A feed that fails (network, HTTP, parse) is recorded with its error and an exponential backoff; it never
stops the other feeds, and its items are simply fetched again on the next attempt.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.alerting import alert_decision
from monitor.config import FeedConfig, MonitorConfig
from monitor.errors import FetchError, ParseError
from monitor.fetch import Fetcher, backoff_delay
from monitor.normalize import keyed_entries, normalize_entry
from monitor.notify import alert_payload
from monitor.parse import read_feed
from monitor.rules import RuleSet
from monitor.store import AlertAttachment, AlertState, FeedUpdate, NewAlert, NewItem, SQLiteStore
from monitor.stories import StoryIndex
from monitor.timeutil import utcnow
from monitor.types import FeedState, Item, Match

__all__ = ["FeedOutcome", "Pipeline"]

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one poll of one feed did, for logs, the CLI and tests."""

    url: str
    status: str  # "ok" | "not-modified" | "error"
    entries: int = 0
    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    folded: int = 0  # items folded into an existing alert of their story
    error: str | None = None
    next_fetch_at: datetime | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class Pipeline:
    config: MonitorConfig
    store: SQLiteStore
    fetcher: Fetcher
    ruleset: RuleSet
    stories: StoryIndex
    clock: Callable[[], datetime] = utcnow
    channel_names: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.channel_names:
            self.channel_names = tuple(self.config.channels)
        self._feeds: Mapping[str, FeedConfig] = {feed.url: feed for feed in self.config.feeds}
        self._digests: Mapping[str, timedelta] = {
            name: channel.digest
            for name, channel in self.config.channels.items()
            if channel.digest is not None
        }

    async def poll(self, url: str) -> FeedOutcome:
        """Fetch one feed and record everything it produced. Never raises for a feed's own failure.

        An unexpected exception while processing the feed (a bug, or input no stage foresaw) rolls back that
        feed's transaction and is recorded as the feed's error with the usual backoff, with its traceback in
        the log: it must neither stop the other feeds nor be retried in a hot loop."""
        feed = self._feeds[url]
        interval = self.config.feed_interval(feed)
        state = self.store.feed_state(url)
        error_count = state.error_count if state else 0
        try:
            return await self._poll(feed, state, interval)
        except Exception as exc:
            log.exception("feed %s: unexpected error while processing it", url)
            return self._failed(
                url, f"internal error: {type(exc).__name__}: {exc}", error_count, interval, None
            )

    async def _poll(self, feed: FeedConfig, state: FeedState | None, interval: timedelta) -> FeedOutcome:
        url = feed.url
        etag = state.etag if state else None
        last_modified = state.last_modified if state else None
        error_count = state.error_count if state else 0
        try:
            result = await self.fetcher.fetch(url, etag=etag, last_modified=last_modified)
        except FetchError as exc:
            return self._failed(url, exc.message, error_count, interval, exc.retry_after)
        now = self.clock()
        if result.not_modified or result.content is None:
            update = FeedUpdate(
                url=url,
                fetched_at=now,
                next_fetch_at=now + interval,
                etag=result.etag or etag,
                last_modified=result.last_modified or last_modified,
            )
            self.store.commit_fetch(update)
            return FeedOutcome(url, "not-modified", next_fetch_at=update.next_fetch_at)
        try:
            parsed = read_feed(
                result.content, source=url, content_type=result.content_type, base_url=result.final_url
            )
        except ParseError as exc:
            return self._failed(url, f"cannot parse: {exc.message}", error_count, interval, None)
        # Keys first, from guid or link: only entries never seen are converted, hashed, matched and clustered.
        keyed = keyed_entries(parsed, feed_url=url)
        unseen = self.store.unseen_keys(keyed)
        feed_title = feed.title or parsed.title or url
        items = [
            normalize_entry(
                pending.entry(),
                feed_url=url,
                feed_title=feed_title,
                feed_language=parsed.language,
                feed_tags=feed.tags,
                language_override=feed.language,
            )
            for key, pending in keyed.items()
            if key in unseen
        ]
        update = FeedUpdate(
            url=url,
            fetched_at=now,
            next_fetch_at=now + interval,
            title=parsed.title,
            etag=result.etag,
            last_modified=result.last_modified,
        )
        outcome = self.record(update, items, seen_again=[key for key in keyed if key not in unseen])
        for warning in parsed.warnings:
            log.info("feed %s: %s", url, warning)
        return FeedOutcome(
            url,
            "ok",
            entries=len(parsed.entries),
            new_items=outcome.new_items,
            matches=outcome.matches,
            alerts=outcome.alerts,
            folded=outcome.folded,
            next_fetch_at=update.next_fetch_at,
            warnings=parsed.warnings,
        )

    def record(
        self, update: FeedUpdate, fresh: Sequence[Item], seen_again: Sequence[str] = ()
    ) -> FeedOutcome:
        """Decide about the new items of one fetch and write it all in one transaction.

        `fresh` are the fetch's items whose keys the store has not seen (`unseen_keys`); `seen_again` the keys
        of its other items, whose identity is kept alive in the same transaction."""
        now = update.fetched_at
        # GUID churn guard: a feed that re-keys the same text on every fetch must not re-alert it.
        known_hashes = self.store.seen_content_hashes(update.url, (item.content_hash for item in fresh))
        also_seen: list[tuple[str, str]] = []
        new_items: list[NewItem] = []
        batch_hashes: set[str] = set()
        for item in fresh:
            if item.content_hash in known_hashes or item.content_hash in batch_hashes:
                also_seen.append((item.key, item.content_hash))
                continue
            batch_hashes.add(item.content_hash)
            assignment = self.stories.assign(
                item_key=item.key,
                title=item.title,
                summary=item.summary or item.content[:1000],
                url=item.url,
                content_hash=item.content_hash,
                # A future date would pin the item in the index until then; clamp to the fetch time.
                published=min(item.published or now, now),
                source=item.feed_url,
            )
            new_items.append(
                NewItem(
                    item=item,
                    matches=tuple(self.ruleset.match(item)),
                    story_id=assignment.story_id,
                    story_is_new=assignment.is_new_story,
                    signature=self.stories.signature(item.key),
                )
            )
        alerts, attachments = self._decide_alerts(new_items, now)
        self.store.commit_fetch(
            update,
            new_items=new_items,
            also_seen=also_seen,
            alerts=alerts,
            attachments=attachments,
            digests=self._digests,
            seen_again=seen_again,
        )
        return FeedOutcome(
            update.url,
            "ok",
            new_items=len(new_items),
            matches=sum(len(n.matches) for n in new_items),
            alerts=len(alerts),
            folded=len(attachments),
        )

    def _decide_alerts(
        self, new_items: Sequence[NewItem], now: datetime
    ) -> tuple[list[NewAlert], list[AlertAttachment]]:
        pairs = {(m.rule_id, n.story_id) for n in new_items for m in n.matches}
        states: dict[tuple[str, str], AlertState] = self.store.alert_states(pairs)
        alerts: list[NewAlert] = []
        attachments: list[AlertAttachment] = []
        for new in new_items:
            for match in new.matches:
                rule = self.ruleset.get(match.rule_id)
                key = (match.rule_id, new.story_id)
                existing = states.get(key)
                decision = alert_decision(existing, now=now, realert=rule.realert)
                if decision == "attach" and existing is not None:
                    payload = _fold_item(existing.payload, new.item)
                    attachments.append(AlertAttachment(existing.alert_id, new.item.key, payload))
                    states[key] = AlertState(
                        existing.alert_id,
                        existing.rule_id,
                        existing.story_id,
                        existing.created_at,
                        existing.item_count + 1,
                        payload,
                        existing.pending,
                    )
                    continue
                alert = self._new_alert(match, new, now, rule.group_wait)
                alerts.append(alert)
                states[key] = AlertState(
                    alert.id, match.rule_id, new.story_id, now, 1, alert.payload, pending=True
                )
        return alerts, attachments

    def _new_alert(self, match: Match, new: NewItem, now: datetime, group_wait: timedelta | None) -> NewAlert:
        alert_id = f"alr_{secrets.token_hex(12)}"
        channels = tuple(
            name
            for name in (match.notify if match.notify is not None else self.channel_names)
            if name in self.channel_names
        )
        payload = alert_payload(
            alert_id=alert_id, match=match, item=new.item, story_id=new.story_id, created_at=now
        )
        return NewAlert(
            id=alert_id,
            rule_id=match.rule_id,
            story_id=new.story_id,
            item_key=new.item.key,
            payload=payload,
            channels=channels,
            deliver_at=now + (group_wait or timedelta(0)),
        )

    def _failed(
        self, url: str, error: str, error_count: int, interval: timedelta, retry_after: float | None
    ) -> FeedOutcome:
        now = self.clock()
        next_fetch_at = now + backoff_delay(error_count + 1, interval, retry_after)
        self.store.record_fetch_failure(url, error, now, next_fetch_at)
        log.warning(
            "feed %s failed (%d in a row): %s; next try %s", url, error_count + 1, error, next_fetch_at
        )
        return FeedOutcome(url, "error", error=error, next_fetch_at=next_fetch_at)


def _fold_item(payload: dict[str, object], item: Item) -> dict[str, object]:
    """The alert payload with one more item of its story attached ("also reported by ...")."""
    from monitor.notify import attach_item

    return attach_item(payload, item)
