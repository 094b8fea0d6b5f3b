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
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

from monitor.redact import redact
from monitor.timeutil import to_iso
from monitor.types import Hit, Item, Match

__all__ = [
    "MAX_HITS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STORY_ITEMS",
    "PAYLOAD_VERSION",
    "SUMMARY_EXCERPT_CHARS",
    "alert_payload",
    "attach_item",
    "cap_payload",
    "digest_payload",
    "explain",
    "payload_schema",
    "shrunk_alerts",
]

PAYLOAD_VERSION = 1
SUMMARY_EXCERPT_CHARS = 500
MAX_STORY_ITEMS = 20  # later items listed in story.items; story.item_count keeps counting past it
# A feed decides how long a title is, how many categories an item has and (through its text) how many hits a
# rule finds. What we store and send is capped: a 1 MB title must not become a 1 MB webhook body per channel.
MAX_PAYLOAD_BYTES = 256 * 1024  # an alert payload as JSON; webhook bodies and e-mails default to the same
MAX_TITLE_CHARS = 1000
MAX_HITS = 50
MAX_CATEGORIES = 50
MAX_SHORT_TEXT_CHARS = 200  # a hit's text, a category, a feed title
MAX_URL_CHARS = 4096


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
    return cap_payload(payload)


def cap_payload(payload: Mapping[str, Any], max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """A copy of an alert payload within the field caps above and within `max_bytes` as JSON.

    Titles and summaries are cut at a word ('…'), hits and categories are capped, over-long URLs are dropped
    (a cut URL would point elsewhere); if the payload is still too large the summary, the story's item list
    and the hits shrink further. Every cut is named in `truncated` (e.g. "hits: 50 of 20000"), so a receiver
    can tell a short title from a cut one. A payload that needs no cut is returned unchanged (no `truncated`)."""
    result = copy.deepcopy(dict(payload))
    cuts: list[str] = list(result.get("truncated") or [])
    item: dict[str, Any] = result["item"] if isinstance(result.get("item"), dict) else {}

    def cut_text(node: dict[str, Any], key: str, limit: int, name: str) -> None:
        value = node.get(key)
        if isinstance(value, str) and len(value) > limit:
            node[key] = excerpt(value, limit)
            cuts.append(f"{name}: {limit} of {len(value)} characters")

    def cut_list(node: dict[str, Any], key: str, limit: int, name: str) -> None:
        value = node.get(key)
        if isinstance(value, list) and len(value) > limit:
            node[key] = value[:limit]
            cuts.append(f"{name}: {limit} of {len(value)}")

    cut_text(item, "title", MAX_TITLE_CHARS, "item.title")
    cut_text(item, "summary", SUMMARY_EXCERPT_CHARS, "item.summary")
    for key in ("link", "url"):
        value = item.get(key)
        if isinstance(value, str) and len(value) > MAX_URL_CHARS:
            item[key] = None
            cuts.append(f"item.{key}: dropped, {len(value)} characters")
    cut_list(item, "categories", MAX_CATEGORIES, "item.categories")
    if isinstance(item.get("categories"), list):
        item["categories"] = [
            excerpt(c, MAX_SHORT_TEXT_CHARS) if isinstance(c, str) else c for c in item["categories"]
        ]
    cut_list(result, "hits", MAX_HITS, "hits")
    for hit in result.get("hits") or []:
        if (
            isinstance(hit, dict)
            and isinstance(hit.get("text"), str)
            and len(hit["text"]) > MAX_SHORT_TEXT_CHARS
        ):
            hit["text"] = excerpt(hit["text"], MAX_SHORT_TEXT_CHARS)
            if "hits.text" not in cuts:
                cuts.append("hits.text")
    cut_text(result, "explanation", MAX_TITLE_CHARS, "explanation")
    # Still too large (a tight max_bytes, or many story items): shrink in steps, biggest savings first.
    story: dict[str, Any] = result["story"] if isinstance(result.get("story"), dict) else {}
    steps: list[Callable[[], None]] = [
        lambda: cut_text(item, "summary", 100, "item.summary"),
        lambda: cut_list(story, "items", 3, "story.items"),
        lambda: cut_list(result, "hits", 5, "hits"),
        lambda: cut_text(item, "title", 200, "item.title"),
        lambda: cut_list(item, "categories", 5, "item.categories"),
    ]
    for step in steps:
        if _json_size(result, cuts) <= max_bytes:
            break
        step()
    if cuts:
        result["truncated"] = cuts
    return result


def shrunk_alerts(
    alerts: Sequence[Mapping[str, Any]], max_bytes: int, tightness: int
) -> tuple[dict[str, Any], ...]:
    """The alerts of one delivery cut to share `max_bytes` / `tightness` (a channel whose rendered message is
    still too large tries again with a higher tightness)."""
    share = max(max_bytes // (tightness * max(len(alerts), 1)), 1024)
    return tuple(cap_payload(alert, share) for alert in alerts)


def _json_size(payload: Mapping[str, Any], cuts: list[str]) -> int:
    return len(json.dumps({**payload, "truncated": cuts}, ensure_ascii=False, default=str).encode("utf-8"))


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
    return cap_payload(updated)


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
