"""The Store protocol: everything the pipeline, the daemon, delivery, the status listener and the CLI ask of the
database, whichever backend holds it (monitor.store.sqlite, monitor.store.postgres).

Callers are typed against this protocol, never against a backend; `open_store` picks the backend from the
`database:` setting. tests/test_store_contract.py runs one suite over every method against both backends, and
tests/test_store_protocol.py checks that each backend's public methods are exactly the protocol's, so a method
added to one backend and not declared here (or not implemented by the other) fails a test.

Semantics every backend keeps:
- All times are aware UTC datetimes; rows come back as the frozen records of monitor.store.records.
- `commit_fetch` writes everything one fetch produced in one transaction, or nothing.
- The outbox is at-least-once: a claimed delivery that is neither sent nor failed (its worker died) is claimed
  again once its lease runs out, with the same id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol, Self

from monitor.health import FeedHealth, HealthDecision
from monitor.store.records import (
    AlertAttachment,
    AlertState,
    DeliveryRow,
    FeedClaim,
    FeedRow,
    FeedUpdate,
    NewAlert,
    NewEscalation,
    NewItem,
    NodeInfo,
    NodeRow,
    SilenceRow,
    StoredItem,
    StoryRow,
    WebSubRow,
)
from monitor.types import DeliveryRequest, FeedState

__all__ = ["Store"]


class Store(Protocol):
    """The state of one monitor installation: the schedule of record, items and identity keys, stories,
    alerts and the outbox (which monitor.notify.DeliveryQueue is the delivery worker's view of)."""

    # True when other processes may commit to this database while we work (PostgreSQL): the story index must
    # then catch up with their items before assigning (see `story_lock`). False on SQLite: one writer.
    concurrent: bool
    # The node this store claims feeds and deliveries for (None: the CLI, which claims nothing).
    node: NodeInfo | None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    @property
    def schema_version(self) -> int:
        """The number of the last migration applied to this database."""
        ...

    # -- feeds: the schedule of record ----------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[tuple[str, timedelta]], now: datetime) -> None:
        """Add configured feeds (due now), update intervals, deactivate feeds no longer configured."""
        ...

    def due_feeds(self, now: datetime, limit: int = 1000) -> list[FeedState]:
        """Active, unparked feeds whose next fetch is due and which nobody holds a lease on, oldest due first."""
        ...

    def claim_feeds(
        self, now: datetime, lease: timedelta, *, limit: int = 100, urls: Sequence[str] | None = None
    ) -> list[FeedClaim]:
        """Lease due feeds (or, with `urls`, those feeds whether due or not) to this node until now + lease,
        each with a new fencing token; never a parked or removed feed, nor one another node holds a lease on.
        On PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP LOCKED)."""
        ...

    def release_feed(self, url: str, claim: int) -> None:
        """Give back an unused claim's lease (the feed keeps its schedule)."""
        ...

    def feed_state(self, url: str) -> FeedState | None: ...

    def list_feeds(self) -> list[FeedRow]: ...

    def record_fetch_failure(
        self, url: str, error: str, now: datetime, next_fetch_at: datetime, *, claim: int | None = None
    ) -> None:
        """Count a failed fetch, schedule the next one, end the lease. Under a claim (its fencing token),
        raises StaleClaimError when the feed was claimed again since."""
        ...

    # -- feed health -------------------------------------------------------------------------------------------

    def feed_health(self, url: str, interval: timedelta, history: int = 20) -> FeedHealth | None: ...

    def record_health(
        self,
        url: str,
        decision: HealthDecision,
        notices: Sequence[tuple[dict[str, Any], Sequence[str]]],
        now: datetime,
    ) -> None:
        """Write a health decision and queue its notices (payload, channels) in one transaction."""
        ...

    def notices_since(self, since: datetime) -> int: ...

    def unpark_feed(self, url: str, now: datetime) -> bool: ...

    def feed_item_counts(self, since: datetime) -> tuple[dict[str, int], dict[str, datetime]]: ...

    def feed_arrivals(self, url: str, since: datetime, limit: int = 5000) -> list[datetime]:
        """When the feed's items stored since `since` were first seen, newest first, at most `limit`
        (the evidence of `interval: auto`, monitor.adaptive)."""
        ...

    # -- items and stories -----------------------------------------------------------------------------------

    def unseen_keys(self, keys: Iterable[str]) -> set[str]: ...

    def seen_content_hashes(self, feed_url: str, hashes: Iterable[str]) -> set[str]: ...

    def story_signatures(self, since: datetime) -> list[dict[str, Any]]:
        """Items of the story window with their clustering signatures and event features, in the order they
        were first assigned, to rebuild the story index (monitor.stories.StoryIndex.load)."""
        ...

    def commit_fetch(
        self,
        update: FeedUpdate,
        *,
        new_items: Sequence[NewItem] = (),
        also_seen: Sequence[tuple[str, str]] = (),
        alerts: Sequence[NewAlert] = (),
        attachments: Sequence[AlertAttachment] = (),
        digests: Mapping[str, timedelta] | None = None,
        seen_again: Sequence[str] = (),
        per_rule: Collection[str] = (),
        escalations: Sequence[NewEscalation] = (),
        group_intervals: Mapping[str, timedelta] | None = None,
    ) -> list[tuple[str, str]]:
        """Everything one fetch produced, in one transaction; it ends the feed's lease. When `update.claim`
        is set and the feed was claimed again since, nothing is written and StaleClaimError is raised.

        Routes each alert to its channels inside the transaction (issue 8): a `digests` channel's open digest;
        a `per_rule` channel's own delivery per alert; any other channel's notification of the story, joined
        while it is pending and never claimed, else a new one (kind "story", opening the story's thread on the
        channel) or an update (kind "update", `in_reply_to` the thread's first delivery, due no earlier than
        `group_intervals[channel]` after the thread's latest message). Each escalation is recorded once per
        (rule, story) with one delivery per channel (kind "escalation", replying to the thread). Returns
        (channel, kind) of each delivery it created."""
        ...

    def commit_not_modified(self, updates: Sequence[FeedUpdate]) -> list[bool]:
        """Several feeds' 304s in one transaction (a group commit): each update is one statement on its own
        feed's row, as `commit_fetch(update)` with nothing else would write it, and ends that feed's lease. A
        304 carries no items, so sharing the commit joins nothing that one fetch writes to another's. Returns,
        per update, whether it was written: False when its claim is no longer current (that feed's fetch is
        stale and discarded; the others are written). A failure of the transaction writes none of them."""
        ...

    def touch_seen(self, keys: Iterable[str], now: datetime) -> None: ...

    # -- alerts and stories, as the CLI and the status page show them ----------------------------------------

    def alert_states(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], AlertState]: ...

    def escalated(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (rule id, story id) pairs among `pairs` that were escalated already."""
        ...

    def story_outlet_times(
        self, story_ids: Iterable[str]
    ) -> dict[str, list[tuple[str, datetime, str | None]]]:
        """Per story, each stored item's outlet (feed title, else feed URL), time (published, else fetched, never
        after it was fetched) and language, oldest first: what an escalation counts outlets over."""
        ...

    def stored_items(self, since: datetime, *, limit: int = 1_000_000) -> list[StoredItem]:
        """The stored items fetched at or after `since`, oldest first (at most `limit`), each with its story:
        what `monitor rules replay` runs a rule set over. Reads only."""
        ...

    def list_alerts(self, *, limit: int = 50, rule_id: str | None = None) -> list[dict[str, Any]]: ...

    def get_alert(self, alert_id: str) -> dict[str, Any] | None: ...

    def list_stories(self, *, limit: int = 50) -> list[StoryRow]: ...

    def get_story(self, story_id: str) -> StoryRow | None: ...

    # -- silences (monitor silence; the pipeline reads them once per poll that has matches) --------------------

    def add_silence(self, silence: SilenceRow) -> None:
        """Store a new silence (its id is the caller's)."""
        ...

    def silences(self, now: datetime, *, ended: bool = False) -> list[SilenceRow]:
        """The silences that have not ended at `now` (with `ended`, every silence), newest first."""
        ...

    def expire_silence(self, silence_id: str, now: datetime) -> bool:
        """End a silence at `now` (what it held stays held). False when there is no such silence, or it had
        ended already."""
        ...

    # -- the outbox (monitor.notify.DeliveryQueue) ---------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryRequest]: ...

    def mark_sent(self, delivery_id: str, now: datetime) -> None: ...

    def mark_retry(self, delivery_id: str, error: str, now: datetime, retry_at: datetime) -> None: ...

    def mark_dead(self, delivery_id: str, error: str, now: datetime) -> None: ...

    def disable_channel(self, channel: str, reason: str, now: datetime) -> None: ...

    def enable_channel(self, channel: str) -> bool: ...

    def disabled_channels(self) -> set[str]: ...

    def disabled_channel_reasons(self) -> dict[str, tuple[str, datetime]]: ...

    def list_deliveries(
        self,
        *,
        statuses: Sequence[str] | None = ("pending", "dead"),
        alert_id: str | None = None,
        limit: int = 100,
    ) -> list[DeliveryRow]: ...

    def retry_deliveries(self, now: datetime, *, ids: Sequence[str] = (), all_dead: bool = False) -> int: ...

    def release_claims(self, now: datetime) -> int:
        """Make deliveries claimed by a process that is gone due again now; returns how many."""
        ...

    def delivery_counts(self) -> dict[str, int]: ...

    # -- nodes, cluster jobs, story assignment across nodes -------------------------------------------------

    def register_node(self, now: datetime) -> None: ...

    def heartbeat(self, now: datetime) -> None: ...

    def stop_node(self, now: datetime) -> int:
        """This node stops: record it, give back its leases and claims. Returns how many."""
        ...

    def reap_nodes(self, now: datetime, dead_after: timedelta) -> int:
        """Release the leases and claims of other nodes silent for `dead_after`. Returns how many."""
        ...

    def list_nodes(self, now: datetime) -> list[NodeRow]: ...

    def claim_job(self, name: str, now: datetime, every: timedelta) -> bool:
        """True for the one caller in the cluster that should run job `name` now (nobody ran it within
        `every`)."""
        ...

    def story_lock(self) -> AbstractContextManager[None]:
        """Serialise story assignment across every process writing this database: held from catching the
        story index up (`items_after`) to committing the items it assigned (`commit_fetch`, which joins it)."""
        ...

    def item_seq(self) -> int:
        """The commit sequence number of the newest item, 0 when there is none."""
        ...

    def items_after(self, seq: int, since: datetime) -> tuple[list[dict[str, Any]], int]:
        """Items committed after sequence number `seq` (by any node) inside the story window, in the form of
        `story_signatures`, and the newest sequence number."""
        ...

    # -- housekeeping ------------------------------------------------------------------------------------------

    def prune(self, now: datetime, *, item_max_age: timedelta, key_max_age: timedelta) -> dict[str, int]: ...

    def counts(self) -> dict[str, int]: ...

    # -- WebSub subscriptions (monitor.websub) -------------------------------------------------------------------

    def record_hub(
        self, feed_url: str, hub: str, topic: str, now: datetime, secret: str, callback_id: str
    ) -> bool:
        """Remember the hub and topic a fetch of `feed_url` named. A new feed, or a changed hub or topic, is
        (re)set to "discovered" with the given fresh secret and callback id; the same hub and topic change
        nothing. True when something changed (a subscription is due)."""
        ...

    def save_websub(self, row: WebSubRow) -> None:
        """Write a subscription's state (by feed_url; the row must exist)."""
        ...

    def websub_subscriptions(self) -> list[WebSubRow]:
        """Every feed's subscription, by feed URL."""
        ...

    def websub_by_callback(self, callback_id: str) -> WebSubRow | None: ...
