"""Alert payloads and delivery requests for notify tests, built through the real payload code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from monitor.notify import alert_payload
from monitor.types import DeliveryRequest, Hit, Item, Match

__all__ = ["NOW", "make_item", "make_payload", "make_request"]

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_item(**changes: Any) -> Item:
    fields: dict[str, Any] = {
        "key": "https://news.example.org/2025/rare-earths",
        "feed_url": "https://news.example.org/feed.xml",
        "feed_title": "Example News",
        "guid": "https://news.example.org/2025/rare-earths",
        "link": "https://news.example.org/2025/rare-earths",
        "url": "https://news.example.org/2025/rare-earths",
        "title": "Rare earth exports fall",
        "summary": "Exports of rare earth metals fell sharply in February.",
        "content": "",
        "categories": ("economy",),
        "language": "en",
        "published": datetime(2025, 3, 1, 11, 30, tzinfo=UTC),
        "content_hash": "h1",
    }
    fields.update(changes)
    return Item(**fields)


def make_payload(
    alert_id: str = "alr_1", *, rule_id: str = "rare-earths", **item_changes: Any
) -> dict[str, Any]:
    item = make_item(**item_changes)
    match = Match(
        rule_id=rule_id,
        rule_title="Rare earths",
        hits=(Hit(term="rare earth", field="title", start=0, end=10, text="Rare earth"),),
    )
    return alert_payload(alert_id=alert_id, match=match, item=item, created_at=NOW, story_id="sto_1")


def make_request(
    delivery_id: str = "msg_1",
    channel: str = "hook",
    *,
    alerts: tuple[dict[str, Any], ...] | None = None,
    digest: bool = False,
    attempt: int = 1,
    created_at: datetime = NOW,
) -> DeliveryRequest:
    return DeliveryRequest(
        id=delivery_id,
        channel=channel,
        alerts=alerts if alerts is not None else (make_payload(),),
        attempt=attempt,
        created_at=created_at,
        digest=digest,
    )


def alerts_in(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert payloads a generic webhook body carries, whatever its shape (version 2): the alert itself
    (group_by [rule, story]), the alerts of a story notification or update, the alerts of a digest; none for
    an escalation or a notice."""
    if body.get("type") == "alert":
        return [body]
    if body.get("type") in ("notification", "update", "digest"):
        return list(body["alerts"])
    return []
