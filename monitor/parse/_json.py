"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) and Dave Winer's RSS-in-JSON, read with `json`.

JSON Feed fields are mapped as the spec defines them: `title` and `summary` are plain text, `content_html`
is HTML and `content_text` plain text (the longer one is the content), `tags` are categories, `authors`
(1.1) or `author` (1.0) give the author, dates are RFC 3339. The version URL is accepted with http or
https (pixelenvy and others publish "http://jsonfeed.org/version/1").

RSS-in-JSON ({"rss": {"channel": {..., "item": [...]}}}) carries RSS 2.0 element names as keys; its
`description` is HTML like in RSS.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from monitor.errors import ParseError
from monitor.htmltext import html_to_text, normalize_plain_text, single_line
from monitor.parse._fields import (
    Unusable,
    absolute_http_url,
    categories,
    datetime_from_text,
    language_tag,
    optional_text,
    summary_and_content,
)
from monitor.types import Entry, ParsedFeed

__all__ = ["parse_json_feed"]

_MAX_INT_DIGITS = 4300  # Python's default int max_str_digits
_JSON_FEED_VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


def parse_json_feed(data: bytes, *, source: str, base_url: str | None, warnings: list[str]) -> ParsedFeed:
    """Read a JSON Feed or RSS-in-JSON document. Raises ParseError for invalid JSON or other JSON."""
    document = _load(data, source=source, warnings=warnings)
    if not isinstance(document, dict):
        raise ParseError(source, f"not a feed: JSON document is a {type(document).__name__}, not an object")
    version = document.get("version")
    if isinstance(version, str) and version.strip().startswith(_JSON_FEED_VERSION_PREFIXES):
        return _json_feed(document, source=source, base_url=base_url, warnings=warnings)
    rss = document.get("rss")
    if isinstance(rss, Mapping) and isinstance(rss.get("channel"), Mapping):
        return _rss_in_json(rss["channel"], base_url=base_url, warnings=warnings)
    if isinstance(document.get("items"), list):
        # Version missing or unknown but the shape is a JSON Feed: read it, and say so.
        warnings.append(f"JSON Feed without a known version ({version!r}); read as JSON Feed 1.1")
        return _json_feed(document, source=source, base_url=base_url, warnings=warnings)
    raise ParseError(
        source, "not a feed: JSON document is neither a JSON Feed (no jsonfeed.org version) nor RSS-in-JSON"
    )


def _load(data: bytes, *, source: str, warnings: list[str]) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # RFC 8259 requires UTF-8; keep what can be read rather than losing the feed.
        warnings.append(f"JSON is not valid UTF-8 (byte {exc.start}); undecodable bytes were replaced")
        text = data.decode("utf-8", errors="replace")
    huge: list[int] = []

    def bounded_int(digits: str) -> int | None:
        # int() refuses more than 4300 digits (CVE-2020-10735) with a ValueError that would cost the whole
        # feed; no feed field is such a number, so it reads as null and the entry keeps its other fields.
        if len(digits) > _MAX_INT_DIGITS:
            huge.append(len(digits))
            return None
        return int(digits)

    try:
        document = json.loads(text, parse_int=bounded_int)
        if huge:
            warnings.append(
                f"{len(huge)} JSON numbers longer than {_MAX_INT_DIGITS} digits (the longest {max(huge)}) "
                "were read as null"
            )
        return document
    except json.JSONDecodeError as exc:
        ending = text.rstrip()[-1:]
        hint = "" if ending in ("}", "]") else f" (the document looks truncated: it ends with {ending!r})"
        raise ParseError(
            source, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}"
        ) from exc
    except RecursionError as exc:
        raise ParseError(source, "invalid JSON: nested too deeply") from exc


def _json_feed(
    document: Mapping[str, Any], *, source: str, base_url: str | None, warnings: list[str]
) -> ParsedFeed:
    home = absolute_http_url(document.get("home_page_url"), base_url)
    items = document.get("items", [])
    if not isinstance(items, list):
        raise ParseError(source, f"JSON Feed 'items' is a {type(items).__name__}, not a list")
    feed_url = absolute_http_url(document.get("feed_url"), base_url)
    entries: list[Entry] = []
    unusable = Unusable()
    skipped = 0
    unreadable: list[str] = []
    # JSON Feed 1.1: an item without authors has the feed's (1.0: `author`).
    feed_author = _json_feed_author(document)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            skipped += 1
            continue
        try:
            entry = _json_feed_item(item, bases=(base_url, feed_url, home), unusable=unusable)
            entries.append(entry if entry.author or not feed_author else replace(entry, author=feed_author))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            # One item this code cannot read must not cost the items beside it.
            unreadable.append(f"item {index + 1}: {type(exc).__name__}: {exc}")
    unusable.report(warnings)
    if skipped:
        warnings.append(f"{skipped} JSON Feed items are not objects and were skipped")
    if unreadable:
        warnings.append(f"skipped {len(unreadable)} unreadable items ({'; '.join(unreadable[:3])})")
    return ParsedFeed(
        title=single_line(_plain(document.get("title"))) or None,
        link=home,
        language=language_tag(document.get("language")),
        entries=tuple(entries),
    )


def _json_feed_item(item: Mapping[str, Any], *, bases: tuple[str | None, ...], unusable: Unusable) -> Entry:
    html = item.get("content_html")
    contents = [html_to_text(html) if isinstance(html, str) else "", _plain(item.get("content_text"))]
    summary, content = summary_and_content(_plain(item.get("summary")), contents)
    link = _link(item.get("url"), bases, unusable) or _link(item.get("external_url"), bases, unusable)
    tags = item.get("tags")
    published = _date(item.get("date_published"), unusable)
    updated = _date(item.get("date_modified"), unusable)
    return Entry(
        guid=optional_text(item.get("id")),
        link=link,
        title=single_line(_plain(item.get("title"))),
        summary=summary,
        content=content,
        published=published or updated,
        updated=updated,
        categories=categories(tags if isinstance(tags, list) else []),
        author=_json_feed_author(item),
        language=language_tag(item.get("language")),
    )


def _json_feed_author(item: Mapping[str, Any]) -> str | None:
    authors = item.get("authors")
    candidates = list(authors) if isinstance(authors, list) else []
    candidates.append(item.get("author"))
    for author in candidates:
        if isinstance(author, Mapping):
            name = optional_text(author.get("name"))
            if name:
                return single_line(name)
    return None


def _rss_in_json(channel: Mapping[str, Any], *, base_url: str | None, warnings: list[str]) -> ParsedFeed:
    link = absolute_http_url(_value(channel.get("link")), base_url)
    items = channel.get("item", [])
    if isinstance(items, Mapping):  # a single <item> serialised as an object
        items = [items]
    if not isinstance(items, list):
        items = []
    unusable = Unusable()
    entries = tuple(
        _rss_in_json_item(item, bases=(base_url, link), unusable=unusable)
        for item in items
        if isinstance(item, Mapping)
    )
    unusable.report(warnings)
    return ParsedFeed(
        title=single_line(_plain(_value(channel.get("title")))) or None,
        link=link,
        language=language_tag(_value(channel.get("language"))),
        entries=entries,
    )


def _rss_in_json_item(item: Mapping[str, Any], *, bases: tuple[str | None, ...], unusable: Unusable) -> Entry:
    description = _value(item.get("description"))
    raw_categories = item.get("category")
    if not isinstance(raw_categories, list):
        raw_categories = [raw_categories]
    return Entry(
        guid=optional_text(_value(item.get("guid"))),
        link=_link(_value(item.get("link")), bases, unusable),
        title=single_line(html_to_text(_value(item.get("title")) or "")),
        summary=html_to_text(description) if description else "",
        published=_date(_value(item.get("pubDate")), unusable),
        categories=categories(_value(c) for c in raw_categories),
        author=single_line(_value(item.get("author")) or "") or None,
    )


def _value(node: object) -> str | None:
    """The text of an RSS-in-JSON value: a string, or an element object with its text under "#value"/"value"."""
    if isinstance(node, Mapping):
        for key in ("#value", "value", "#text", "text"):
            if isinstance(node.get(key), str):
                return str(node[key])
        return None
    return optional_text(node)


def _plain(value: object) -> str:
    """A JSON Feed plain-text field. Character references are decoded: WordPress and other generators
    HTML-escape titles ("Tips &amp; Tricks", "I&#039;m"), while a literal "&amp;" in a headline is rare.
    Tags are kept: in plain text "<b>" is what the author wrote (a post about HTML tags)."""
    return normalize_plain_text(html.unescape(value)) if isinstance(value, str) else ""


def _link(value: object, bases: tuple[str | None, ...], unusable: Unusable) -> str | None:
    link = absolute_http_url(value, *bases)
    if link is None:
        unusable.link(value)
    return link


def _date(value: object, unusable: Unusable) -> datetime | None:
    parsed = datetime_from_text(value)
    if parsed is None:
        unusable.date(value)
    return parsed
