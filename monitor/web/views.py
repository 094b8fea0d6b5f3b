"""The JSON views of the status listener: feeds with their health, recent alerts with their hits, stories with
their outlets and languages. Each is a plain function of the store and the time, so the page, the Atom feed
and the API show the same figures; their shapes are the schemas of `openapi.json`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from monitor.store import FeedRow, Store
from monitor.timeutil import to_iso

__all__ = ["ITEM_RATE_WINDOW", "alerts_view", "feed_state", "feeds_view", "openapi_document", "stories_view"]

ITEM_RATE_WINDOW = timedelta(days=7)  # items per day is averaged over this window (or the feed's age)


def feed_state(feed: FeedRow) -> str:
    """One word for the table: parked, failing, never polled, ok (or removed from the config)."""
    if not feed.active:
        return "removed"
    if feed.parked_at is not None:
        return "parked"
    if feed.error_count > 0:
        return "failing"
    if feed.last_success_at is None:
        return "pending"
    return "ok"


def feeds_view(store: Store, now: datetime) -> list[dict[str, Any]]:
    counts, first_seen = store.feed_item_counts(now - ITEM_RATE_WINDOW)
    out = []
    for feed in store.list_feeds():
        if not feed.active:
            continue
        since = first_seen.get(feed.url)
        days = max((now - since).total_seconds() / 86400, 1.0) if since else ITEM_RATE_WINDOW.days
        out.append(
            {
                "url": feed.url,
                "title": feed.title,
                "state": feed_state(feed),
                "last_success": to_iso(feed.last_success_at),
                "last_fetched": to_iso(feed.last_fetched_at),
                "next_poll": None if feed.parked_at is not None else to_iso(feed.next_fetch_at),
                "error_streak": feed.error_count,
                "last_error": feed.last_error if feed.error_count or feed.parked_at else None,
                "parked_reason": feed.parked_reason,
                "items_per_day": round(counts.get(feed.url, 0) / min(days, ITEM_RATE_WINDOW.days), 2),
            }
        )
    return out


def alerts_view(store: Store, limit: int) -> list[dict[str, Any]]:
    out = []
    for alert in store.list_alerts(limit=limit):
        payload = alert["payload"]
        item = payload.get("item", {})
        feed = item.get("feed") or {}
        out.append(
            {
                "id": alert["id"],
                "rule": {
                    "id": alert["rule"],
                    "title": (payload.get("rule") or {}).get("title") or alert["rule"],
                },
                "story": alert["story"],
                "created_at": alert["created_at"],
                "item": {
                    "title": item.get("title") or "",
                    "link": item.get("link"),
                    "summary": item.get("summary") or "",
                    "feed": {"url": feed.get("url") or "", "title": feed.get("title")},
                    "language": item.get("language"),
                    "published": item.get("published"),
                },
                "hits": [
                    {
                        "term": str(hit.get("term", "")),
                        "field": str(hit.get("field", "")),
                        "text": str(hit.get("text", "")),
                        "start": int(hit.get("start", 0)),
                        "end": int(hit.get("end", 0)),
                    }
                    for hit in payload.get("hits") or ()
                ],
                "item_count": alert["item_count"],
                "deliveries": [{"channel": d["channel"], "status": d["status"]} for d in alert["deliveries"]],
            }
        )
    return out


def stories_view(store: Store, limit: int) -> list[dict[str, Any]]:
    out = []
    for story in store.list_stories(limit=limit):
        outlets = sorted({item["feed"] for item in story.items if item.get("feed")})
        languages = sorted({item["language"] for item in story.items if item.get("language")})
        out.append(
            {
                "id": story.id,
                "title": story.title,
                "created_at": to_iso(story.created_at),
                "updated_at": to_iso(story.updated_at),
                "item_count": story.item_count,
                "outlets": outlets,
                "languages": languages,
                "items": [
                    {
                        "title": item.get("title") or "",
                        "link": item.get("link"),
                        "feed": item.get("feed") or "",
                        "language": item.get("language"),
                    }
                    for item in story.items
                ],
            }
        )
    return out


@cache
def openapi_document() -> dict[str, Any]:
    text = resources.files("monitor.web").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
