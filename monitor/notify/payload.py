"""The versioned alert payload: what a webhook receives and what every template renders.

An alert payload is a plain JSON-able dict built once, when the alert is recorded, and stored with the alert;
a delivery sends it as stored, so it does not depend on items pruned since. Its shape is documented by the JSON
Schema in ``alert-payload.schema.json`` beside this module (``PAYLOAD_SCHEMA``), and carries
``"version": PAYLOAD_VERSION``. Compatible additions (new optional fields) keep the version; a change that can
break a receiver (renamed or removed field, changed meaning) increments it.

What a channel receives is a *notification*, built at send time from the stored alert payloads of its delivery
(`notification_payload`): by default one per story and channel, naming every rule that fired on it
(``type: "notification"``), then ``type: "update"`` for rules that fire on it later, in the same thread
(``thread``, ``in_reply_to``). A channel with ``group_by: [rule, story]`` receives the alert payload itself
(``type: "alert"``). A digest delivery sends an envelope ``{"version", "type": "digest", "id", "alerts":
[payload, ...]}``. An escalation (`escalation_payload`) is stored whole, like a feed health notice.

Version 2 (issue 8) changed the default shape from one alert per (rule, story) to one notification per story;
see docs/design/notify.md.

Everything here is pure: no clock, no I/O beyond reading the schema file once.
"""

from __future__ import annotations

import copy
import json
import re
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
    "MAX_NOTIFICATION_ALERTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STORY_ITEMS",
    "PAYLOAD_VERSION",
    "SUMMARY_EXCERPT_CHARS",
    "alert_payload",
    "attach_item",
    "cap_payload",
    "digest_payload",
    "escalation_payload",
    "explain",
    "fold_item",
    "notification_payload",
    "payload_schema",
    "shrunk_alerts",
    "story_line",
]

PAYLOAD_VERSION = 2
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
MAX_NOTIFICATION_ALERTS = 50  # alerts (rules) listed in one notification; the rest are named in `truncated`


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
        "language": item.language,
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
            "languages": [item.language] if item.language else [],
            "items": [],
        }
    return _capped(payload)


def cap_payload(payload: Mapping[str, Any], max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """A copy of an alert payload within the field caps above and within `max_bytes` as JSON.

    Titles and summaries are cut at a word ('…'), hits and categories are capped, over-long URLs are dropped
    (a cut URL would point elsewhere); if the payload is still too large the summary, the story's item list
    and the hits shrink further. Every cut is named in `truncated` (e.g. "hits: 50 of 20000"), so a receiver
    can tell a short title from a cut one. A payload that needs no cut is returned unchanged (no `truncated`)."""
    return _cut(copy.deepcopy(dict(payload)), max_bytes)


def _capped(result: dict[str, Any], max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """`cap_payload` of a payload the caller owns (see `_capped_sized`)."""
    return _capped_sized(result, max_bytes, None)[0]


def _capped_sized(
    result: dict[str, Any], max_bytes: int, size: int | None
) -> tuple[dict[str, Any], int | None]:
    """`cap_payload` of a payload the caller owns: cut in place where a cut is needed, else returned as is;
    with its JSON size as measured for the cap (`size`, when the caller knows it already), None after a cut.

    A payload built here (alert_payload, attach_item) is new at its top and where it changed, but shares the
    rest with the payload it came from; a cut changes nested fields in place, so only a payload that needs one
    is deep-copied first. Most need none, and the copy was most of the cost of folding an item into an alert
    (bench/profile_rounds.py, round 1)."""
    cuts = list(result.get("truncated") or [])
    if not _field_over_cap(result):
        if size is None:
            size = _json_size(result, cuts)
        if size <= max_bytes:
            if cuts:
                result["truncated"] = cuts
            return result, size
    return _cut(copy.deepcopy(result), max_bytes), None


def _cut(result: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """The cuts of `cap_payload`, made in place on `result` (a copy)."""
    cuts: list[str] = list(result.get("truncated") or [])
    item: dict[str, Any] = result["item"] if isinstance(result.get("item"), dict) else {}

    def note(name: str, limit: int, length: int, unit: str, most: int | None = None) -> None:
        # A field cut before (a stored payload that is folded into again) is named once, with the length of
        # its original: the earlier cut left `earlier_limit` of `original`, and what was added since (items
        # folded in after the cut) is what the value now holds beyond that limit.
        original = length
        for n, earlier in enumerate(cuts):
            found = _CUT.fullmatch(earlier)
            if found and found["name"] == name and found["unit"] == unit:
                original = int(found["of"]) + max(length - int(found["limit"]), 0)
                del cuts[n]
                break
        if most is not None:  # a list that never holds more than `most` uncut (story.items: MAX_STORY_ITEMS)
            original = min(original, max(most, length))
        cuts.append(f"{name}: {limit} of {original}{unit}")

    def cut_text(node: dict[str, Any], key: str, limit: int, name: str) -> None:
        value = node.get(key)
        if isinstance(value, str) and len(value) > limit:
            node[key] = excerpt(value, limit)
            note(name, limit, len(value), " characters")

    def cut_list(node: dict[str, Any], key: str, limit: int, name: str, most: int | None = None) -> None:
        value = node.get(key)
        if isinstance(value, list) and len(value) > limit:
            node[key] = value[:limit]
            note(name, limit, len(value), "", most)

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
        lambda: cut_list(story, "items", 3, "story.items", MAX_STORY_ITEMS),
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


# One entry of `truncated` that says how much of a field was kept: "item.summary: 500 of 2000 characters",
# "story.items: 3 of 20".
_CUT = re.compile(r"(?P<name>[\w.]+): (?P<limit>\d+) of (?P<of>\d+)(?P<unit>( characters)?)")


def _field_over_cap(result: Mapping[str, Any]) -> bool:
    """Whether `_cut` would change a field before it looks at the size: a field over its cap, or a category
    `excerpt` would rewrite. Reads only; the same tests as the cuts."""
    item = result.get("item")
    if isinstance(item, dict):
        for key, limit in (("title", MAX_TITLE_CHARS), ("summary", SUMMARY_EXCERPT_CHARS)):
            value = item.get(key)
            if isinstance(value, str) and len(value) > limit:
                return True
        for key in ("link", "url"):
            value = item.get(key)
            if isinstance(value, str) and len(value) > MAX_URL_CHARS:
                return True
        categories = item.get("categories")
        if isinstance(categories, list) and (
            len(categories) > MAX_CATEGORIES
            or any(isinstance(c, str) and excerpt(c, MAX_SHORT_TEXT_CHARS) != c for c in categories)
        ):
            return True
    hits = result.get("hits")
    if isinstance(hits, list):
        if len(hits) > MAX_HITS:
            return True
        for hit in hits:
            if (
                isinstance(hit, dict)
                and isinstance(hit.get("text"), str)
                and len(hit["text"]) > MAX_SHORT_TEXT_CHARS
            ):
                return True
    explanation = result.get("explanation")
    return isinstance(explanation, str) and len(explanation) > MAX_TITLE_CHARS


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
    return fold_item(payload, item)[0]


def fold_item(
    payload: dict[str, Any], item: Item, size: int | None = None
) -> tuple[dict[str, Any], int | None]:
    """`attach_item`, and the JSON size of the payload it returns as the cap measures it (None after a cut).

    `size` is that of `payload`, from the fold before: given it, the new size is the old plus what the fold
    adds (one item, maybe a source and a language), with no JSON encoding of the whole payload, which was
    most of a fold's cost once the copies were gone. The pipeline folds several items of one fetch into a
    popular story's alert in turn and passes each fold's size to the next."""
    old = payload.get("story")
    if not isinstance(old, dict):
        raise ValueError(f"alert {payload.get('id')!r} has no story to attach item {item.key!r} to")
    # New containers only for what changes; the rest is shared with `payload` (nothing changes a stored payload
    # in place), and `_capped` copies the whole only when it has to cut. Deep copies here made folding most of
    # the store thread's time when a popular story kept folding items in (bench/profile_rounds.py, round 1).
    story = dict(old)
    story["item_count"] = int(story.get("item_count", 1)) + 1
    story["sources"] = list(story.get("sources") or [])
    story["languages"] = list(story.get("languages") or [])
    story["items"] = list(story.get("items") or [])
    added: list[tuple[list[Any], Any]] = []
    if item.feed_title and item.feed_title not in story["sources"]:
        added.append((story["sources"], item.feed_title))
    if item.language and item.language not in story["languages"]:
        added.append((story["languages"], item.language))
    if len(story["items"]) < MAX_STORY_ITEMS:
        added.append((story["items"], _story_item(item)))
    if size is not None:
        size = _grown(size, old, added)
    for target, value in added:
        target.append(value)
    return _capped_sized({**payload, "story": story}, MAX_PAYLOAD_BYTES, size)


def _grown(size: int, old: Mapping[str, Any], added: Sequence[tuple[list[Any], Any]]) -> int | None:
    """The JSON size of a payload of `size` after its story `old` gains one in item_count and the `added`
    list elements (before they are appended), or None where that is not exact: a key the fold adds rather
    than replaces, or a count or list of another type, which the fold converts."""
    if any(type(old.get(key)) is not list for key in ("sources", "languages", "items")):
        return None
    count = old.get("item_count")
    if type(count) is not int:
        return None
    size += len(str(count + 1)) - len(str(count))
    for target, value in added:
        size += _encoded_len(value) + (2 if target else 0)  # ", " before every element but the first
    return size


def _encoded_len(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def digest_payload(delivery_id: str, alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The envelope of a digest delivery: several alert payloads in one message."""
    return {
        "version": PAYLOAD_VERSION,
        "type": "digest",
        "id": delivery_id,
        "alerts": [{**a, "version": PAYLOAD_VERSION} for a in alerts],
    }


def merged_story(alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The story of a notification, from the stories of its alerts (all of one story): every item any of them
    carries (the items that raised them first, then those folded in), counted once, with their sources and
    languages in the order they came. None when the alerts carry no story."""
    stories = [a["story"] for a in alerts if isinstance(a.get("story"), dict)]
    if not stories:
        return None
    items: dict[str, dict[str, Any]] = {}
    sources: list[str] = []
    languages: list[str] = []

    def add(entry: Mapping[str, Any]) -> None:
        key = str(entry.get("key"))
        if key not in items:
            items[key] = {k: entry.get(k) for k in ("key", "title", "link", "feed", "published", "language")}
        source = (entry.get("feed") or {}).get("title")
        if source and source not in sources:
            sources.append(source)
        language = entry.get("language")
        if language and language not in languages:
            languages.append(language)

    for alert in alerts:
        if isinstance(alert.get("item"), dict):
            add(alert["item"])
    for story in stories:
        for entry in story.get("items") or []:
            if isinstance(entry, dict):
                add(entry)
        for source in story.get("sources") or []:
            if source not in sources:
                sources.append(source)
        for language in story.get("languages") or []:
            if language not in languages:
                languages.append(language)
    lead = next(iter(items), None)
    listed = [entry for key, entry in items.items() if key != lead]
    return {
        "id": stories[0].get("id"),
        "item_count": max([len(items), *(int(s.get("item_count") or 1) for s in stories)]),
        "sources": sources,
        "languages": languages,
        "items": listed[:MAX_STORY_ITEMS],
    }


def story_line(alerts: Sequence[Mapping[str, Any]]) -> str:
    """How widely the notification's story was reported beyond its first item: "also reported by 3 more
    outlets (A, B, C), in 2 languages (de, ru)", or "" when only one item reported it."""
    story = merged_story(alerts)
    if story is None:
        return ""
    first = " ".join(str(((alerts[0].get("item") or {}).get("feed") or {}).get("title") or "").split())
    sources = [" ".join(str(s).split()) for s in story.get("sources") or []]
    languages = [str(language) for language in story.get("languages") or []]
    more = [s for s in sources if s != first]
    if not more and int(story.get("item_count") or 1) <= 1:
        return ""
    if more:
        text = f"also reported by {len(more)} more outlet{'s' if len(more) != 1 else ''}"
        text += f" ({', '.join(more[:8])}{', …' if len(more) > 8 else ''})"
    else:
        count = int(story.get("item_count") or 1) - 1
        text = f"{count} more report{'s' if count != 1 else ''} of this story"
    if len(languages) > 1:
        text += f", in {len(languages)} languages ({', '.join(languages)})"
    return text


def notification_payload(
    delivery_id: str,
    alerts: Sequence[Mapping[str, Any]],
    *,
    kind: str,
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    """What a channel receives for one delivery of `kind` (see DeliveryRequest.kind).

    * ``alert`` (``group_by: [rule, story]``): the alert payload itself, as in version 1;
    * ``story`` / ``update``: one notification of one story, ``type: "notification"`` or ``"update"``: the
      story (every item, source and language its alerts carry), the item that raised the first alert, the
      rules that fired (`rules`) and each alert with its item, hits and explanation (`alerts`, without the
      story they share). ``thread`` is the id of the story's first notification on the channel (its own id
      for the first), ``in_reply_to`` that id for an update, else null.

    Alerts past MAX_NOTIFICATION_ALERTS and story items past MAX_STORY_ITEMS are cut, and every cut (of the
    envelope and of each alert) is named in ``truncated``. Pure."""
    if not alerts:
        raise ValueError(f"delivery {delivery_id!r} holds no alerts")
    if kind == "alert":
        return {**alerts[0], "version": PAYLOAD_VERSION, "thread": delivery_id, "in_reply_to": None}
    cuts: list[str] = []
    shown = list(alerts[:MAX_NOTIFICATION_ALERTS])
    if len(alerts) > len(shown):
        cuts.append(f"alerts: {len(shown)} of {len(alerts)}")
    story = merged_story(alerts)
    for alert in shown:
        for cut in alert.get("truncated") or []:
            cut = f"alerts.{cut}"
            if cut not in cuts:
                cuts.append(cut)
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "type": "update" if kind == "update" else "notification",
        "id": delivery_id,
        "thread": in_reply_to or delivery_id,
        "in_reply_to": in_reply_to,
        "created_at": alerts[0].get("created_at"),
        "story": story,
        "item": alerts[0].get("item"),
        "rules": [{"id": a["rule"]["id"], "title": a["rule"].get("title")} for a in shown],
        "alerts": [{k: v for k, v in a.items() if k not in ("story", "version", "truncated")} for a in shown],
    }
    if cuts:
        payload["truncated"] = cuts
    return payload


def escalation_payload(
    *,
    escalation_id: str,
    created_at: datetime,
    severity: str,
    rule_id: str,
    rule_title: str,
    story_id: str,
    title: str,
    outlets: Sequence[str],
    languages: Sequence[str],
    item_count: int,
    threshold: int,
    within: str,
) -> dict[str, Any]:
    """The payload of one escalation: a story that `rule_id` alerted reached `threshold` distinct outlets
    within `within`. Stored whole with the escalation's deliveries (like a feed health notice); the channel
    adds ``thread`` and ``in_reply_to`` (the story's first notification on that channel). Pure."""
    shown = [excerpt(o, MAX_SHORT_TEXT_CHARS) for o in outlets[:MAX_CATEGORIES]]
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "type": "escalation",
        "id": escalation_id,
        "created_at": to_iso(created_at),
        "severity": severity,
        "rule": {"id": rule_id, "title": rule_title},
        "story": {
            "id": story_id,
            "title": excerpt(title, MAX_TITLE_CHARS),
            "item_count": item_count,
            "outlets": shown,
            "languages": list(languages),
        },
        "outlets": len(outlets),
        "threshold": {"outlets": threshold, "within": within},
        "detail": (
            f"{len(outlets)} outlets reported {excerpt(title, 200)!r} within {within} "
            f"(rule {rule_title}: escalate at {threshold})"
        ),
    }
    if len(shown) < len(outlets):
        payload["truncated"] = [f"story.outlets: {len(shown)} of {len(outlets)}"]
    return payload


@cache
def payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of alert payloads and digest envelopes."""
    text = resources.files("monitor.notify").joinpath("alert-payload.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
