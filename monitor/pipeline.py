"""Composes the stages for one feed: fetch → parse → normalize → identify → match → story → store (+ outbox).

No business logic of its own beyond ordering the stages and carrying their results: each decision is made by a
pure function of another module (rules match, story assignment, alert suppression). The I/O is the fetch and
one store transaction per fetched feed; delivery happens later, from the outbox.

A feed that fails (network, HTTP, parse) is recorded with its error and an exponential backoff; it never
stops the other feeds, and its items are simply fetched again on the next attempt.

Where each part runs: the fetch on the event loop; the CPU work of a body (parse, keys, normalize, analysis,
match, story features: monitor.workers.FeedWork) in a worker process, or with `workers: 0` on the store thread;
the store's reads, the in-order story assignment, the decisions and the transaction on the store thread.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from monitor.adaptive import adaptive_interval, hourly_rates
from monitor.alerting import alert_decision, outlets_within, reaches
from monitor.cachehints import next_poll_at
from monitor.config import FeedConfig, MonitorConfig
from monitor.errors import FetchError, ParseError, StoreError
from monitor.feedlanguage import FeedLanguages
from monitor.fetch import Fetcher, HostBusyError, backoff_delay
from monitor.health import PollSeen, assess
from monitor.metrics import Metrics
from monitor.notify import alert_payload, escalation_payload
from monitor.notify.payload import fold_item
from monitor.quiethours import QuietHours
from monitor.rules import Rule, RuleSet
from monitor.store import (
    AlertAttachment,
    AlertState,
    FeedClaim,
    FeedUpdate,
    NewAlert,
    NewEscalation,
    NewItem,
    StaleClaimError,
    Store,
    StoryMembership,
)
from monitor.storebatch import Batch
from monitor.storethread import StoreThread
from monitor.stories import PreparedItem, StoryIndex
from monitor.timeutil import utcnow
from monitor.types import FeedHints, FeedState, FetchResult, Item, Match, Severity
from monitor.websub_discovery import discover
from monitor.workers import (
    AnalysedEntry,
    FeedSource,
    FeedWork,
    KeyedFeed,
    WorkerPool,
    story_summary,
)

__all__ = ["FeedOutcome", "Pipeline"]

log = logging.getLogger("monitor.pipeline")


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one poll of one feed did, for logs, the CLI and tests."""

    url: str
    status: (
        str  # "ok" | "not-modified" | "error" | "stale" (the claim was lost: nothing recorded) | "skipped"
    )
    entries: int = 0
    new_items: int = 0
    matches: int = 0
    alerts: int = 0
    folded: int = 0  # items folded into an existing alert of their story
    error: str | None = None
    next_fetch_at: datetime | None = None
    warnings: tuple[str, ...] = ()
    fetch_seconds: float | None = None  # how long the fetch took; None when it did not get that far
    gone: bool = False  # the server answered 410 Gone
    churned: int = 0  # new GUIDs whose text this feed already delivered (not recorded as new items)
    notices: int = 0  # feed health notices queued after this poll
    escalations: int = 0  # stories that reached a rule's `escalate` threshold in this poll
    new_hub: bool = False  # this fetch named a WebSub hub or topic not known before (subscribe now)
    unrecorded: bool = (
        False  # the store failed (busy, read-only, full, corrupt): nothing of the poll was kept
    )


@dataclass
class Pipeline:
    config: MonitorConfig
    store: Store
    fetcher: Fetcher
    ruleset: RuleSet
    stories: StoryIndex
    clock: Callable[[], datetime] = utcnow
    channel_names: Sequence[str] = field(default_factory=tuple)
    metrics: Metrics = field(default_factory=Metrics)
    # Languages of undeclared items, steadied per feed across polls (monitor.feedlanguage).
    feed_languages: FeedLanguages = field(default_factory=FeedLanguages)
    # The commit sequence number of the newest item the story index has seen (Store.item_seq): on a database
    # other nodes write, the index catches up from here before each assignment (see `record`).
    story_seq: int = 0
    # Where the blocking part of a poll runs (everything after the fetch, and the store reads before it): never
    # the event loop, so a busy database stalls no fetch and no delivery (monitor.storethread).
    store_thread: StoreThread = field(default_factory=StoreThread)
    # Feeds with a verified WebSub subscription (kept by monitor.websub): polled at websub.safety_interval only.
    pushed_feeds: set[str] = field(default_factory=set)
    # Worker processes for the CPU work of a body (parse, keys, normalize, analysis, match, story features;
    # monitor.workers); None: that work runs on the store thread, in this process.
    workers: WorkerPool | None = None

    def __post_init__(self) -> None:
        # The same pure work the workers do, for `workers: 0` (and its story features from the one index).
        self._work = FeedWork(self.ruleset, self.stories, self.feed_languages)
        # 304s that finish while the store thread is busy share one transaction (monitor.storebatch).
        self.not_modified: Batch[_NotModified, FeedOutcome] = Batch(
            self.store_thread, self._record_not_modified
        )
        if not self.channel_names:
            self.channel_names = tuple(self.config.channels)
        self._feeds: Mapping[str, FeedConfig] = {feed.url: feed for feed in self.config.feeds}
        self.health_policy = self.config.health.policy()
        self._digests: Mapping[str, timedelta] = {
            name: channel.digest
            for name, channel in self.config.channels.items()
            if channel.digest is not None
        }
        # group_by: [rule, story] channels keep one message per alert; the others get one per story.
        self._per_rule = frozenset(name for name, channel in self.config.channels.items() if channel.per_rule)
        self._group_intervals: Mapping[str, timedelta] = {
            name: channel.group_interval for name, channel in self.config.channels.items()
        }
        self._min_severity: Mapping[str, Severity] = {
            name: channel.min_severity for name, channel in self.config.channels.items()
        }
        self._quiet_hours: Mapping[str, QuietHours] = {
            name: channel.quiet_hours
            for name, channel in self.config.channels.items()
            if channel.quiet_hours is not None
        }

    def _digests_at(self, now: datetime) -> Mapping[str, timedelta]:
        """The digest periods of this moment: each channel's own `digest:`, and for a channel in its quiet
        hours a digest due when they end (the store's digest machinery: alerts join the channel's open digest,
        or open one due then). Notifications queued before the quiet hours, escalations and health notices
        are not held (docs/design.md "Silences and quiet hours")."""
        if not self._quiet_hours:
            return self._digests
        digests = dict(self._digests)
        for name, quiet in self._quiet_hours.items():
            until = quiet.until(now)
            if until is not None:
                digests[name] = until - now
        return digests

    @property
    def feed_urls(self) -> frozenset[str]:
        """The feeds of this pipeline's configuration."""
        return frozenset(self._feeds)

    async def poll(self, url: str, claim: FeedClaim | None = None) -> FeedOutcome:
        """Fetch one feed and record everything it produced. Never raises for a feed's own failure.

        `claim` is this node's lease on the feed (Store.claim_feeds): every write of the poll carries its
        fencing token, and when the feed was claimed again meanwhile (this node paused past its lease) the
        poll is discarded as "stale": the node that took the feed over records it.

        An unexpected exception while processing the feed (a bug, or input no stage foresaw) rolls back that
        feed's transaction and is recorded as the feed's error with the usual backoff, with its traceback in
        the log: it must neither stop the other feeds nor be retried in a hot loop.

        A StoreError (the database is busy, read-only, full or corrupt) is not the feed's failure and is
        raised: nothing of this poll was recorded, so the feed is still due with its old validators and its
        items are fetched and decided again once the store works; the caller decides when to try again."""
        feed = self._feeds[url]
        interval = self.config.feed_interval(feed)
        state = claim.state if claim is not None else await self.store_thread.run(self.store.feed_state, url)
        token = claim.token if claim is not None else None
        error_count = state.error_count if state else 0
        due = state.next_fetch_at if state else None
        lag = (self.clock() - due).total_seconds() if due is not None else None
        try:
            outcome = await self._poll(feed, state, interval, token)
        except StaleClaimError as exc:
            log.warning("feed %s: %s", url, exc, extra={"feed": url})
            self.metrics.poll("stale", fetch_seconds=None, lag_seconds=lag)
            return FeedOutcome(url, "stale", error=str(exc))
        except StoreError:
            raise
        except Exception as exc:
            log.exception("feed %s: unexpected error while processing it", url, extra={"feed": url})
            try:
                outcome = await self.store_thread.run(
                    self._failed,
                    url,
                    f"internal error: {type(exc).__name__}: {exc}",
                    error_count,
                    interval,
                    None,
                    token,
                )
            except StaleClaimError as stale:
                log.warning("feed %s: %s", url, stale, extra={"feed": url})
                self.metrics.poll("stale", fetch_seconds=None, lag_seconds=lag)
                return FeedOutcome(url, "stale", error=str(stale))
        self.metrics.poll(outcome.status, fetch_seconds=outcome.fetch_seconds, lag_seconds=lag)
        if outcome.status == "not-modified" and self._health_stays(state):
            return outcome
        try:
            queued = await self.store_thread.run(self._check_health, outcome, interval)
        except StoreError as exc:
            log.error("feed %s: cannot record its health: %s", url, exc, extra={"feed": url})
            queued = 0
        except Exception:
            # Health notices are about the feed, not the feed itself: a failure here must not undo the poll.
            log.exception("feed %s: cannot assess its health", url, extra={"feed": url})
            queued = 0
        return replace(outcome, notices=queued) if queued else outcome

    async def push(self, url: str, body: bytes, content_type: str | None = None) -> FeedOutcome:
        """Record a body a WebSub hub pushed for feed `url` (its signature already checked, monitor.websub):
        the same stages and the same one transaction as a polled body (`_record_fetched`), from a FetchResult
        built from the push. The feed's schedule and validators stay as the last poll left them: a push is not
        a poll, and the safety-net poll must still find out about what the hub did not push."""
        feed = self._feeds[url]
        interval = self.config.feed_interval(feed)
        state = await self.store_thread.run(self.store.feed_state, url)
        result = FetchResult(url=url, final_url=url, status=200, content=body, content_type=content_type)
        try:
            return await self._record_body(feed, state, interval, result, 0.0, None, pushed=True)
        except StoreError:
            raise
        except Exception as exc:
            log.exception(
                "feed %s: unexpected error while processing a pushed body", url, extra={"feed": url}
            )
            return FeedOutcome(url, "error", error=f"internal error: {type(exc).__name__}: {exc}")

    def _health_stays(self, state: FeedState | None) -> bool:
        """Whether a 304 leaves the feed's health as it is, known without reading it. A 304 is a success with no
        new item and no churn: of monitor.health's conditions it can only end "failing" (recovered) or start
        "silent". With silence not watched and no "failing" told (`state` is from the poll's claim, and only this
        poll's health decision writes it), `assess` would decide nothing, so its read (two statements and a
        store-thread call per poll, most of a 304's store work after the group commit) is skipped."""
        return (
            state is not None
            and self.health_policy.silent_for is None
            and "failing" not in state.health_notified
        )

    def _check_health(self, outcome: FeedOutcome, interval: timedelta) -> int:
        """Assess the feed's health after this poll (monitor.health), queue the notices it calls for and park
        the feed when it is gone. Returns the number of notices queued."""
        url = outcome.url
        now = self.clock()
        health = self.store.feed_health(url, interval)
        if health is None:
            return 0
        seen = PollSeen(
            ok=outcome.status != "error",
            gone=outcome.gone,
            new_items=outcome.new_items,
            churned=outcome.churned,
        )
        decision = assess(health, seen, self.health_policy, now)
        if not decision.notices and decision.notified == health.notified and decision.park_reason is None:
            return 0
        channels = [name for name in self.health_policy.notify if name in self.channel_names]
        room = self.config.health.max_per_hour - self.store.notices_since(now - timedelta(hours=1))
        queued: list[tuple[dict[str, object], list[str]]] = []
        for notice in decision.notices:
            if channels and room > 0:
                queued.append((notice.payload(now), channels))
                room -= 1
                log.warning("feed %s: health: %s", url, notice.detail, extra={"feed": url})
                self.metrics.health_notice(notice.condition, "queued", channels)
            else:
                why = (
                    "no health.notify channels"
                    if not channels
                    else (f"over health.max_per_hour ({self.config.health.max_per_hour})")
                )
                log.warning(
                    "feed %s: health: %s (not sent: %s)", url, notice.detail, why, extra={"feed": url}
                )
                self.metrics.health_notice(notice.condition, "suppressed", ())
        self.store.record_health(url, decision, queued, now)
        if decision.park_reason is not None and health.parked_at is None:
            log.error(
                "feed %s is parked, no longer polled: %s", url, decision.park_reason, extra={"feed": url}
            )
        return len(queued)

    async def _poll(
        self, feed: FeedConfig, state: FeedState | None, interval: timedelta, claim: int | None
    ) -> FeedOutcome:
        url = feed.url
        etag = state.etag if state else None
        last_modified = state.last_modified if state else None
        error_count = state.error_count if state else 0
        started = time.monotonic()
        # A feed that moved permanently is polled at its new home; the configured URL stays its identity.
        fetch_url = state.moved_to if state is not None and state.moved_to else url
        try:
            result = await self.fetcher.fetch(fetch_url, etag=etag, last_modified=last_modified)
        except HostBusyError as exc:
            log.info("feed %s: %s", url, exc.message, extra={"feed": url})
            if claim is not None:
                await self.store_thread.run(self.store.release_feed, url, claim)
            return FeedOutcome(url, "skipped", error=exc.message)
        except FetchError as exc:
            failed = await self.store_thread.run(
                self._failed, url, exc.message, error_count, interval, exc.retry_after, claim
            )
            return replace(failed, fetch_seconds=time.monotonic() - started, gone=exc.status == 410)
        fetch_seconds = time.monotonic() - started
        return await self._record_body(feed, state, interval, result, fetch_seconds, claim)

    async def _record_body(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        interval: timedelta,
        result: FetchResult,
        fetch_seconds: float,
        claim: int | None,
        *,
        pushed: bool = False,
    ) -> FeedOutcome:
        """Everything after a successful fetch. With worker processes, the CPU work of the body runs there
        (the event loop goes on fetching meanwhile) around the store's one unseen_keys round trip, and the
        store thread then does the in-order story assignment, the decisions and the one transaction. Without
        them, all of it runs on the store thread (`_record_fetched`). Both give the same records."""
        if (result.not_modified or result.content is None) and not pushed:
            poll = _NotModified(feed, state, interval, result, fetch_seconds, claim)
            if not self.store.concurrent:
                return await self.not_modified.submit(poll)
            # Several nodes share the database: a 304 ends its lease at once, as before the group commit. A
            # 304 waiting for a batch holds the feed longer between its fetch and its commit, the window in
            # which a node that dies leaves a fetched feed to be taken over and fetched again early
            # (tests/test_cluster.py's kill test failed more often with it; docs/design.md).
            (answer,) = await self.store_thread.run(self._record_not_modified, [poll])
            if isinstance(answer, BaseException):
                raise answer
            return answer
        if (
            self.workers is None
            or result.not_modified
            or result.content is None
            or not await self.workers.ready()  # started by the first body; False: could not start
        ):
            return await self.store_thread.run(
                self._record_fetched, feed, state, interval, result, fetch_seconds, claim, pushed=pushed
            )

        async def unseen_of(keys: tuple[str, ...]) -> set[str]:
            return await self.store_thread.run(self.store.unseen_keys, keys)

        try:
            work = await self.workers.process(
                _source(feed), result.content, result.content_type, result.final_url, unseen_of
            )
        except ParseError as exc:
            return await self.store_thread.run(
                self._parse_failed, feed, state, interval, exc, fetch_seconds, claim, pushed
            )
        by_key = {entry.item.key: entry for entry in work.analysed}
        return await self.store_thread.run(
            self._record_keyed,
            feed,
            state,
            interval,
            result,
            fetch_seconds,
            claim,
            work.keyed,
            work.unseen,
            [entry.item for entry in work.analysed],
            lambda item: by_key[item.key],
            pushed,
        )

    def _record_not_modified(self, polls: Sequence[_NotModified]) -> list[FeedOutcome | BaseException]:
        """The feed rows of several 304s, in one transaction (Store.commit_not_modified), on the store thread.
        Each feed's update is decided as `_record_fetched` decides it; a feed whose claim went stale gets its
        StaleClaimError, a feed whose update could not be decided its exception, and the others are written."""
        answers: list[FeedOutcome | BaseException] = []
        updates: list[FeedUpdate] = []
        for poll in polls:
            try:
                update = self._not_modified_update(
                    poll.feed, poll.state, poll.interval, poll.result, poll.claim
                )
            except Exception as exc:  # this feed's alone (poll() records it as the feed's error)
                answers.append(exc)
                continue
            updates.append(update)
            answers.append(
                FeedOutcome(
                    poll.feed.url,
                    "not-modified",
                    next_fetch_at=update.next_fetch_at,
                    fetch_seconds=poll.fetch_seconds,
                )
            )
        written = iter(self.store.commit_not_modified(updates))
        for number, answer in enumerate(answers):
            if isinstance(answer, FeedOutcome) and not next(written):
                claim = polls[number].claim
                answers[number] = StaleClaimError(
                    f"feed {answer.url}: claim {claim} is no longer current (its lease ran out and the feed was "
                    "claimed again); this fetch is discarded"
                )
        return answers

    def _not_modified_update(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        interval: timedelta,
        result: FetchResult,
        claim: int | None,
        *,
        pushed: bool = False,
    ) -> FeedUpdate:
        """The feed row after a 304: the schedule, the validators (a 304 may send new ones), a move."""
        url = feed.url
        now = self.clock()
        return FeedUpdate(
            url=url,
            fetched_at=now,
            next_fetch_at=self._next_poll(
                feed, now, interval, result, state.hints if state is not None else FeedHints()
            ),
            etag=result.etag or (state.etag if state else None),
            last_modified=result.last_modified or (state.last_modified if state else None),
            claim=claim,
            moved_to=None if pushed else self._moved(url, state, result),
        )

    def _record_fetched(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        interval: timedelta,
        result: FetchResult,
        fetch_seconds: float,
        claim: int | None,
        *,
        pushed: bool = False,
    ) -> FeedOutcome:
        """Everything after a successful fetch (parse, keys, analysis, match, stories, the one transaction):
        blocking work, run on the store thread. `pushed`: the body came from a WebSub hub, not a fetch (see
        `push`): it leaves the schedule and validators alone, and a body that does not parse is refused
        without counting as the feed's failure (the feed itself may be fine)."""
        if result.not_modified or result.content is None:
            update = self._not_modified_update(feed, state, interval, result, claim, pushed=pushed)
            self.store.commit_fetch(update)
            return FeedOutcome(
                feed.url, "not-modified", next_fetch_at=update.next_fetch_at, fetch_seconds=fetch_seconds
            )
        source = _source(feed)
        try:
            keyed, parsed = self._work.read(source, result.content, result.content_type, result.final_url)
        except ParseError as exc:
            return self._parse_failed(feed, state, interval, exc, fetch_seconds, claim, pushed)
        # Keys first, from guid or link: only entries never seen are converted, hashed, matched and clustered.
        unseen = self.store.unseen_keys(keyed.keys)
        items = self._work.items(source, parsed, unseen)
        return self._record_keyed(
            feed,
            state,
            interval,
            result,
            fetch_seconds,
            claim,
            keyed,
            unseen,
            items,
            self._work.analyse,
            pushed,
        )

    def _parse_failed(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        interval: timedelta,
        exc: ParseError,
        fetch_seconds: float,
        claim: int | None,
        pushed: bool,
    ) -> FeedOutcome:
        url = feed.url
        if pushed:
            log.warning(
                "feed %s: pushed body ignored: cannot parse: %s", url, exc.message, extra={"feed": url}
            )
            return FeedOutcome(url, "error", error=f"pushed body cannot be parsed: {exc.message}")
        error_count = state.error_count if state else 0
        failed = self._failed(url, f"cannot parse: {exc.message}", error_count, interval, None, claim)
        return replace(failed, fetch_seconds=fetch_seconds)

    def _record_keyed(
        self,
        feed: FeedConfig,
        state: FeedState | None,
        interval: timedelta,
        result: FetchResult,
        fetch_seconds: float,
        claim: int | None,
        keyed: KeyedFeed,
        unseen: Collection[str],
        items: Sequence[Item],
        analysed: Callable[[Item], AnalysedEntry],
        pushed: bool,
    ) -> FeedOutcome:
        """The store side of a parsed body: schedule, validators, hub, and `record` of its unseen `items`
        (`analysed` gives each one's analysis, made ahead in a worker or on demand here)."""
        url = feed.url
        etag = state.etag if state else None
        last_modified = state.last_modified if state else None
        now = self.clock()
        hints = keyed.hints
        new_hub = False
        if pushed:
            update = FeedUpdate(
                url=url,
                fetched_at=now,
                next_fetch_at=(state.next_fetch_at if state is not None else None) or now + interval,
                title=keyed.title,
                etag=etag,
                last_modified=last_modified,
            )
        else:
            new_hub = self._discover_hub(url, result, now)
            update = FeedUpdate(
                url=url,
                fetched_at=now,
                next_fetch_at=self._next_poll(feed, now, interval, result, hints, arriving=len(items)),
                title=keyed.title,
                etag=result.etag,
                last_modified=result.last_modified,
                claim=claim,
                moved_to=self._moved(url, state, result),
                hints=hints,
            )
        outcome = self.record(
            update, items, analysed, seen_again=[key for key in keyed.keys if key not in unseen]
        )
        for warning in keyed.warnings:
            log.info("feed %s: %s", url, warning, extra={"feed": url})
        return FeedOutcome(
            url,
            "ok",
            entries=keyed.entries,
            new_items=outcome.new_items,
            matches=outcome.matches,
            alerts=outcome.alerts,
            folded=outcome.folded,
            churned=outcome.churned,
            escalations=outcome.escalations,
            next_fetch_at=update.next_fetch_at,
            warnings=(*keyed.warnings, *outcome.warnings),
            fetch_seconds=fetch_seconds,
            new_hub=new_hub,
        )

    def record(
        self,
        update: FeedUpdate,
        fresh: Sequence[Item],
        analysed_of: Callable[[Item], AnalysedEntry] | None = None,
        seen_again: Sequence[str] = (),
    ) -> FeedOutcome:
        """Decide about the new items of one fetch and write it all in one transaction.

        `fresh` are the fetch's items whose keys the store has not seen (`unseen_keys`), in entry order;
        `analysed_of` gives an item's analysis, matches and story features (made ahead by a worker, or here
        by default); `seen_again` the keys of its other items, whose identity is kept alive in the same
        transaction."""
        analyse = analysed_of or self._work.analyse
        now = update.fetched_at
        # GUID churn guard: a feed that re-keys the same text on every fetch must not re-alert it.
        known_hashes = self.store.seen_content_hashes(update.url, (item.content_hash for item in fresh))
        also_seen: list[tuple[str, str]] = []
        analysed: list[tuple[Item, tuple[Match, ...], PreparedItem]] = []
        batch_hashes: set[str] = set()
        skipped: list[str] = []
        for item in fresh:
            if item.content_hash in known_hashes or item.content_hash in batch_hashes:
                also_seen.append((item.key, item.content_hash))
                continue
            # Analysis, matching and the item's own story features (monitor.workers.FeedWork.analyse) are pure
            # and come first, outside the story lock (they are most of the CPU), so a failure leaves the story
            # index untouched; the lock then covers only the work against the index.
            done = analyse(item)
            if done.failure is not None or done.prepared is None:
                # One entry no stage foresaw must not cost the entries beside it. It is not recorded as seen,
                # so the next fetch tries it again (and logs again): skipped, never lost silently.
                log.error(
                    "feed %s: entry %s skipped, retried on the next fetch\n%s",
                    update.url,
                    item.key,
                    (done.traceback or "").rstrip(),
                    extra={"feed": update.url},
                )
                skipped.append(f"entry {item.title[:60]!r} ({item.key}) skipped: {done.failure}")
                continue
            batch_hashes.add(item.content_hash)
            analysed.append((item, done.matches, done.prepared))
        escalations: list[NewEscalation] = []
        if not analysed:
            created = self.store.commit_fetch(update, also_seen=also_seen, seen_again=seen_again)
            new_items: list[NewItem] = []
            alerts: list[NewAlert] = []
            attachments: list[AlertAttachment] = []
        else:
            # Story assignment, the alert decisions and the commit form one critical section across every node
            # writing this database (Store.story_lock): each node first catches its in-memory index up with the
            # items the others committed, so every tier sees every committed item, and the (rule, story)
            # alert states it reads are current. See docs/design/cluster.md. Escalations are decided in it
            # too, so two nodes never both count the same story's outlets without seeing each other's items.
            assigned: list[str] = []
            try:
                with self.store.story_lock():
                    if self.store.concurrent:
                        self._catch_up(now)
                    new_items = [self._assign(item, matches, prepared, now, assigned)
                                 for item, matches, prepared in analysed]  # fmt: skip
                    alerts, attachments = self._decide_alerts(new_items, now)
                    escalations = self._decide_escalations(new_items, alerts, now)
                    created = self.store.commit_fetch(
                        update,
                        new_items=new_items,
                        also_seen=also_seen,
                        alerts=alerts,
                        attachments=attachments,
                        digests=self._digests_at(now),
                        seen_again=seen_again,
                        per_rule=self._per_rule,
                        escalations=escalations,
                        group_intervals=self._group_intervals,
                    )
            except BaseException:
                # Nothing was committed: the index must not keep assignments the database does not have (the
                # next fetch, here or on another node, assigns these items again).
                self.stories.forget(assigned)
                raise
        self.metrics.recorded(
            new_items=len(new_items),
            matches=(m.rule_id for n in new_items for m in n.matches),
            alerts=(a.rule_id for a in alerts),
            notifications=(),
        )
        self.metrics.notified(created)
        return FeedOutcome(
            update.url,
            "ok",
            new_items=len(new_items),
            matches=sum(len(n.matches) for n in new_items),
            alerts=len(alerts),
            folded=len(attachments),
            warnings=tuple(skipped),
            churned=len(also_seen),
            escalations=len(escalations),
        )

    def _catch_up(self, now: datetime) -> None:
        """Load into the story index the items other nodes committed since the last one it saw (ours are
        known to it already and skipped)."""
        rows, self.story_seq = self.store.items_after(self.story_seq, now - self.config.stories.window)
        if rows:
            self.stories.load(rows)

    def _assign(
        self,
        item: Item,
        matches: tuple[Match, ...],
        prepared: PreparedItem,
        now: datetime,
        assigned: list[str],
    ) -> NewItem:
        assignment = self.stories.assign(
            item_key=item.key,
            title=item.title,
            summary=story_summary(item),
            url=item.url,
            content_hash=item.content_hash,
            # A future date would pin the item in the index until then; clamp to the fetch time.
            published=min(item.published or now, now),
            source=item.feed_url,
            prepared=prepared,
        )
        if assignment.reason != "known":
            assigned.append(item.key)
        return NewItem(
            item=item,
            matches=matches,
            story_id=assignment.story_id,
            story_is_new=assignment.is_new_story,
            signature=self.stories.signature(item.key),
            membership=StoryMembership(
                tier=assignment.tier,
                reason=assignment.reason,
                score=assignment.similarity,
                matched_item_key=assignment.matched_item_key,
                evidence=assignment.evidence,
                language=assignment.language,
                event_features=self.stories.event_features(item.key),
            ),
        )

    def _decide_alerts(
        self, new_items: Sequence[NewItem], now: datetime
    ) -> tuple[list[NewAlert], list[AlertAttachment]]:
        pairs = {(m.rule_id, n.story_id) for n in new_items for m in n.matches}
        states: dict[tuple[str, str], AlertState] = self.store.alert_states(pairs)
        # Read per poll that matched anything (a small table, indexed on ends_at): a silence added by
        # `monitor silence add` holds from the next poll on, with no reload.
        silences = [s for s in self.store.silences(now) if s.active(now)] if pairs else []
        active_ids = {s.id for s in silences}
        alerts: list[NewAlert] = []
        attachments: list[AlertAttachment] = []
        # The JSON size of each alert's payload after its last fold in this fetch: the next fold of the same
        # alert adds to it instead of encoding the whole payload again (monitor.notify.payload.fold_item). The
        # first fold starts from the size the store remembers with the payload, if any (store.PayloadMemo).
        sizes: dict[str, int | None] = {}
        for new in new_items:
            for match in new.matches:
                rule = self.ruleset.get(match.rule_id)
                key = (match.rule_id, new.story_id)
                existing = states.get(key)
                if existing is not None and existing.silence_id and existing.silence_id not in active_ids:
                    # Its silence ended: the story alerts normally again, as a new generation. What the
                    # silence held is not sent after it (as in Alertmanager; docs/design.md "Silences").
                    decision = "new"
                else:
                    decision = alert_decision(existing, now=now, realert=rule.realert)
                if decision == "attach" and existing is not None:
                    known = sizes.get(existing.alert_id, existing.payload_size)
                    payload, size = fold_item(existing.payload, new.item, known)
                    sizes[existing.alert_id] = size
                    attachments.append(AlertAttachment(existing.alert_id, new.item.key, payload, size))
                    states[key] = AlertState(
                        existing.alert_id,
                        existing.rule_id,
                        existing.story_id,
                        existing.created_at,
                        existing.item_count + 1,
                        payload,
                        existing.pending,
                        existing.generation,
                        existing.silence_id,
                    )
                    continue
                generation = existing.generation + 1 if existing is not None else 0
                silence = next(
                    (s for s in silences if s.matches(match.rule_id, new.story_id, new.item.feed_url)), None
                )
                alert = self._new_alert(match, new, now, rule, generation, silence.id if silence else None)
                alerts.append(alert)
                states[key] = AlertState(
                    alert.id,
                    match.rule_id,
                    new.story_id,
                    now,
                    1,
                    alert.payload,
                    bool(alert.channels),
                    generation,
                    alert.silence_id,
                )
        return alerts, attachments

    def _channels(self, notify: Sequence[str] | None, severity: Severity) -> tuple[str, ...]:
        """The configured channels of `notify` (every channel when None) whose min_severity `severity` meets."""
        return tuple(
            name
            for name in (notify if notify is not None else self.channel_names)
            if name in self.channel_names and reaches(severity, self._min_severity.get(name, "low"))
        )

    def _new_alert(
        self,
        match: Match,
        new: NewItem,
        now: datetime,
        rule: Rule,
        generation: int,
        silence_id: str | None = None,
    ) -> NewAlert:
        alert_id = f"alr_{secrets.token_hex(12)}"
        group_wait = rule.group_wait
        # A silenced alert is recorded (monitor alerts shows it) and queued on no channel.
        channels = () if silence_id is not None else self._channels(match.notify, rule.severity)
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
            generation=generation,
            silence_id=silence_id,
        )

    def _next_poll(
        self,
        feed: FeedConfig,
        now: datetime,
        interval: timedelta,
        result: FetchResult,
        hints: FeedHints,
        *,
        arriving: int = 0,
    ) -> datetime:
        """The feed's interval (for `interval: auto` the one its posting rate calls for, monitor.adaptive),
        raised by the server's and the document's cache hints (monitor.cachehints). A feed a hub pushes is
        polled at websub.safety_interval only (or its own interval, if longer)."""
        if feed.url in self.pushed_feeds:
            interval = max(interval, self.config.websub.safety_interval)
        elif self.config.is_adaptive(feed):
            interval = self._adaptive_interval(feed, now, arriving)
        honour = feed.honour_skip_hours
        at, why = next_poll_at(
            now,
            interval,
            http_seconds=result.fresh_for,
            hints=hints,
            cap=self.config.fetch.max_cache_hint,
            honour_skip=self.config.fetch.honour_skip_hours if honour is None else honour,
        )
        if why is not None:
            log.debug("feed %s: next poll at %s: %s", feed.url, at, why, extra={"feed": feed.url})
        return at

    def _discover_hub(self, url: str, result: FetchResult, now: datetime) -> bool:
        """With websub on, remember the hub and topic this fetch named (its Link headers, else the document);
        a new or changed one gets a fresh secret and callback and is subscribed to by monitor.websub."""
        if not self.config.websub.enabled:
            return False
        hub, topic = discover(result.content, result.links, base_url=result.final_url)
        if hub is None:
            return False
        # The spec wants rel="self" as the topic; a feed without one is subscribed to under the URL it was
        # fetched from, which is what most hubs key on anyway.
        if self.store.record_hub(
            url, hub, topic or result.final_url, now, secrets.token_urlsafe(32), secrets.token_urlsafe(16)
        ):
            log.info(
                "feed %s: WebSub hub %s (topic %s)", url, hub, topic or result.final_url, extra={"feed": url}
            )
            return True
        return False

    def _adaptive_interval(self, feed: FeedConfig, now: datetime, arriving: int) -> timedelta:
        """The interval that places the next poll where about half a new item is expected. The evidence is the
        first-seen times of the feed's stored items, and the `arriving` new items of this poll."""
        options = self.config.adaptive
        arrivals = self.store.feed_arrivals(feed.url, now - options.window) + [now] * arriving
        rates = hourly_rates(arrivals, now, options.window, options.max)
        return adaptive_interval(rates, now, options.min, options.max)

    def _moved(self, url: str, state: FeedState | None, result: FetchResult) -> str | None:
        """The feed's new home when this fetch met a permanent redirect (said once, in the log); else None."""
        if result.moved_to is None:
            return None
        known = state.moved_to if state is not None else None
        if result.moved_to != known:
            log.warning(
                "feed %s moved permanently to %s: polled there from now on (the configuration is not "
                "rewritten; update it when convenient)",
                url,
                result.moved_to,
                extra={"feed": url},
            )
        return result.moved_to

    def _decide_escalations(
        self, new_items: Sequence[NewItem], alerts: Sequence[NewAlert], now: datetime
    ) -> list[NewEscalation]:
        """The stories of this fetch that a rule with `escalate` alerted (before or now), that were not
        escalated for it yet, and whose reports now come from the rule's number of distinct outlets within its
        window (monitor.alerting.outlets_within): one escalation each."""
        rules = [rule for rule in self.ruleset.rules if rule.escalate is not None]
        if not rules or not new_items:
            return []
        touched = {new.story_id for new in new_items}
        pairs = {(rule.id, story) for rule in rules for story in touched}
        titles: dict[tuple[str, str], str] = {
            (a.rule_id, a.story_id): str(a.payload["item"]["title"])
            for a in alerts
            if (a.rule_id, a.story_id) in pairs
        }
        for key, state in self.store.alert_states(pairs - titles.keys()).items():
            titles[key] = str((state.payload.get("item") or {}).get("title") or "")
        candidates = set(titles) - self.store.escalated(titles)
        if not candidates:
            return []
        # A silence with no feed matcher that matches the (rule, story) holds its escalation: the analyst muted
        # the story, and a surge of it is the story too. Held, not recorded as told: the escalation is a state
        # (the story is spreading), so once the silence ends the next report that still meets the threshold
        # escalates. A silence scoped to one feed mutes that feed's alerts, not a story many outlets carry.
        holding = [s for s in self.store.silences(now) if s.active(now) and s.feed_url is None]
        reports = self.store.story_outlet_times({story for _, story in candidates})
        for new in new_items:
            if new.story_id in reports:
                item = new.item
                moment = min(item.published or now, now)
                reports[new.story_id].append((item.feed_title or item.feed_url, moment, item.language))
        escalations: list[NewEscalation] = []
        for rule_id, story_id in sorted(candidates):
            rule = self.ruleset.get(rule_id)
            escalate = rule.escalate
            assert escalate is not None
            story_reports = reports[story_id]
            outlets = outlets_within([(o, t) for o, t, _ in story_reports], escalate.within)
            if len(outlets) < escalate.outlets:
                continue
            held_by = next((s.id for s in holding if s.matches(rule.id, story_id, "")), None)
            if held_by is not None:
                log.info(
                    "escalation of story %s for rule %s held by silence %s (%d outlets within %s)",
                    story_id,
                    rule.id,
                    held_by,
                    len(outlets),
                    escalate.within_text,
                    extra={"story": story_id},
                )
                continue
            languages = list(dict.fromkeys(lang for _, _, lang in story_reports if lang))
            payload = escalation_payload(
                escalation_id=f"esc_{secrets.token_hex(12)}",
                created_at=now,
                severity=escalate.severity,
                rule_id=rule.id,
                rule_title=rule.title,
                story_id=story_id,
                title=titles[(rule_id, story_id)],
                outlets=outlets,
                languages=languages,
                item_count=len(story_reports),
                threshold=escalate.outlets,
                within=escalate.within_text,
            )
            escalations.append(
                NewEscalation(
                    rule_id=rule.id,
                    story_id=story_id,
                    severity=escalate.severity,
                    outlets=len(outlets),
                    payload=payload,
                    channels=self._channels(rule.notify, escalate.severity),
                )
            )
            log.warning(
                "escalation (%s): %s", escalate.severity, payload["detail"], extra={"story": story_id}
            )
        return escalations

    def _failed(
        self,
        url: str,
        error: str,
        error_count: int,
        interval: timedelta,
        retry_after: float | None,
        claim: int | None = None,
    ) -> FeedOutcome:
        now = self.clock()
        next_fetch_at = now + backoff_delay(error_count + 1, interval, retry_after)
        self.store.record_fetch_failure(url, error, now, next_fetch_at, claim=claim)
        log.warning(
            "feed %s failed (%d in a row): %s; next try %s",
            url,
            error_count + 1,
            error,
            next_fetch_at,
            extra={"feed": url},
        )
        return FeedOutcome(url, "error", error=error, next_fetch_at=next_fetch_at)


@dataclass(frozen=True, slots=True)
class _NotModified:
    """A 304 waiting for its feed row to be written (Pipeline.not_modified)."""

    feed: FeedConfig
    state: FeedState | None
    interval: timedelta
    result: FetchResult
    fetch_seconds: float
    claim: int | None


def _source(feed: FeedConfig) -> FeedSource:
    """What the pure work of a body needs of the feed's configuration."""
    return FeedSource(url=feed.url, title=feed.title, tags=feed.tags, language=feed.language)
