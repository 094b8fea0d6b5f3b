"""Items and the constants the store tests (tests/test_store.py, the two-backend contract suite) build on."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.types import Item

__all__ = ["FEED", "T0", "make_item"]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FEED = "https://news.example/feed"


def make_item(
    key: str,
    *,
    feed: str = FEED,
    title: str = "Seltene Erden",
    published: datetime = T0,
    content_hash: str | None = None,
) -> Item:
    return Item(
        key=key,
        feed_url=feed,
        feed_title="Example",
        guid=key,
        link=f"https://news.example/{key}",
        url=f"https://news.example/{key}",
        title=title,
        summary="summary",
        content="",
        categories=("Politik",),
        language="de",
        published=published,
        content_hash=content_hash or f"v1:{key}",
    )
