"""The versioned alert payload: what a webhook receives and what every template renders.

An alert payload is a plain JSON-able dict built once, when the alert is recorded, and stored with the alert;
a delivery sends it as stored, so it does not depend on items pruned since. Its shape is documented by the JSON
Schema in ``alert-payload.schema.json`` beside this module (``PAYLOAD_SCHEMA``), and carries
``"version": PAYLOAD_VERSION``. Compatible additions (new optional fields) keep the version; a change that can
break a receiver (renamed or removed field, changed meaning) increments it.

A digest delivery sends an envelope ``{"version", "type": "digest", "id", "alerts": [payload, ...]}``.

Everything here is pure: no clock, no I/O beyond reading the schema file once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from monitor.redact import redact
from monitor.timeutil import to_iso
from monitor.types import Hit, Item, Match

__all__ = [
    "MAX_STORY_ITEMS",
    "PAYLOAD_VERSION",
    "SUMMARY_EXCERPT_CHARS",
    "alert_payload",
    "attach_item",
    "digest_payload",
    "explain",
    "payload_schema",
]

PAYLOAD_VERSION = 1
SUMMARY_EXCERPT_CHARS = 500
MAX_STORY_ITEMS = 20  # later items listed in story.items; story.item_count keeps counting past it


def excerpt(text: str, limit: int = SUMMARY_EXCERPT_CHARS) -> str:
    """The text cut to at most `limit` characters, at a word boundary where there is one, marked with '…'."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def _hit(hit: Hit) -> dict[str, Any]:
    return {"term": hit.term, "field": hit.field, "text": hit.text, "start": hit.start, "end": hit.end}


def explain(hits: Sequence[Hit]) -> str:
    """One line saying why the rule fired: each distinct (term, field) once, in order of appearance."""
    seen: list[str] = []
    for hit in hits:
        part = (
            f"{hit.term!r} in {hit.field}"
            if hit.text == hit.term
            else f"{hit.term!r} ({hit.text!r}) in {hit.field}"
        )
        if part not in seen:
            seen.append(part)
    return "matched " + ", ".join(seen) if seen else "matched"


def _story_item(item: Item) -> dict[str, Any]:
    return {
        "key": item.key,
        "title": item.title,
        "link": item.link,
        "feed": {"url": redact(item.feed_url), "title": item.feed_title},
        "published": to_iso(item.published),
    }


def alert_payload(
    *,
    alert_id: str,
    match: Match,
    item: Item,
    created_at: datetime,
    story_id: str | None = None,
) -> dict[str, Any]:
    """The payload of one alert: `match` fired on `item`; `story_id` names the story the item belongs to."""
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "type": "alert",
        "id": alert_id,
        "created_at": to_iso(created_at),
        "rule": {"id": match.rule_id, "title": match.rule_title},
        "item": {
            "key": item.key,
            "title": item.title,
            "link": item.link,
            "url": item.url,
            "feed": {"url": redact(item.feed_url), "title": item.feed_title},
            "published": to_iso(item.published),
            "language": item.language,
            "categories": list(item.categories),
            "summary": excerpt(item.summary or item.content),
        },
        "hits": [_hit(hit) for hit in match.hits],
        "explanation": explain(match.hits),
        "score": match.score,
        "story": None,
    }
    if story_id is not None:
        payload["story"] = {
            "id": story_id,
            "item_count": 1,
            "sources": [item.feed_title] if item.feed_title else [],
            "items": [],
        }
    return payload


def attach_item(payload: dict[str, Any], item: Item) -> dict[str, Any]:
    """A copy of an alert payload with one more item of its story ("also reported by ...").

    The item is counted in story.item_count, its feed is added to story.sources, and it is listed in story.items
    while fewer than MAX_STORY_ITEMS are listed. Raises ValueError for a payload that has no story."""
    story = payload.get("story")
    if not isinstance(story, dict):
        raise ValueError(f"alert {payload.get('id')!r} has no story to attach item {item.key!r} to")
    updated = copy.deepcopy(payload)
    story = updated["story"]
    story["item_count"] = int(story.get("item_count", 1)) + 1
    if item.feed_title and item.feed_title not in story["sources"]:
        story["sources"].append(item.feed_title)
    if len(story["items"]) < MAX_STORY_ITEMS:
        story["items"].append(_story_item(item))
    return updated


def digest_payload(delivery_id: str, alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The envelope of a digest delivery: several alert payloads in one message."""
    return {
        "version": PAYLOAD_VERSION,
        "type": "digest",
        "id": delivery_id,
        "alerts": [dict(a) for a in alerts],
    }


@cache
def payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of alert payloads and digest envelopes."""
    text = resources.files("monitor.notify").joinpath("alert-payload.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
