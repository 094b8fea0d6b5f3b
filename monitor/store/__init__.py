"""Persistent state: the schedule of record, items, identity keys, stories, alerts and the outbox."""

from monitor.store.records import (
    AlertAttachment,
    AlertState,
    DeliveryRow,
    FeedRow,
    FeedUpdate,
    NewAlert,
    NewEscalation,
    NewItem,
    StoryMembership,
    StoryRow,
)
from monitor.store.sqlite import SQLiteStore, delivery_id_for

__all__ = [
    "AlertAttachment",
    "AlertState",
    "DeliveryRow",
    "FeedRow",
    "FeedUpdate",
    "NewAlert",
    "NewEscalation",
    "NewItem",
    "SQLiteStore",
    "StoryMembership",
    "StoryRow",
    "delivery_id_for",
]
