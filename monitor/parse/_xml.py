"""RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 through feedparser, mapped to Entry with plain-text fields.

feedparser is always given a BytesIO: given bytes or a str it would treat a body that happens to look like
a path or URL as one and open it. External entities and DTDs are never fetched: feedparser strips the
DOCTYPE (keeping only simple internal entities) and turns off external general entities in its SAX parser.
"""

from __future__ import annotations

import io
import re
import xml.sax
from collections.abc import Mapping
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.htmltext import html_to_text, looks_like_html, normalize_plain_text, single_line
from monitor.parse._clean import replace_surrogate_references
from monitor.parse._fields import (
    Unusable,
    absolute_http_url,
    categories,
    datetime_from_struct,
    language_tag,
    optional_text,
    summary_and_content,
)
from monitor.types import Entry, PendingEntry, PendingFeed

__all__ = ["parse_xml_feed"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


def parse_xml_feed(
    data: bytes, *, source: str, content_type: str | None, base_url: str | None, warnings: list[str]
) -> PendingFeed:
    """Read an XML feed. Raises ParseError when the document is no RSS, RDF or Atom feed."""
    data = _hide_entry_images(data)
    data, content_type = _utf8_declared_as_single_byte(data, content_type, warnings)
    headers: dict[str, str] = {}
    if base_url:
        # feedparser resolves xml:base and relative links against the document's location.
        headers["content-location"] = base_url
        # With any header present feedparser expects a Content-Type and flags its absence; the generic
        # XML type leaves the encoding to the document's BOM and declaration, as no header would.
        headers["content-type"] = "application/xml"
    if content_type:
        headers["content-type"] = content_type
    data, replaced = replace_surrogate_references(data)
    if replaced:
        warnings.append(
            f"replaced {replaced} character references to no character (surrogates, beyond U+10FFFF) with U+FFFD"
        )
    try:
        result = feedparser.parse(
            io.BytesIO(data),
            response_headers=headers,
            # Summaries and content are reduced to plain text by html_to_text, which drops scripts and
            # styles itself; feedparser's sanitizer and URI rewriting would only cost time.
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser recovers from bad XML itself; anything escaping is its own bug
        raise ParseError(source, f"feedparser failed on this document: {type(exc).__name__}: {exc}") from exc
    version: str = result.get("version") or ""
    raw_entries = [_own_keys(raw) for raw in result.get("entries") or []]
    if not version and not raw_entries:
        raise ParseError(source, _not_a_feed_reason(data, result))
    if result.get("bozo"):
        warnings.append(_describe_recovery(result.get("bozo_exception")))

    feed = _own_keys(result.get("feed") or {})
    # Relative links resolve against where the document lives: the URL it was fetched from, else the
    # feed's own rel="self" link; the site link is the last resort.
    self_link = absolute_http_url(_self_link(feed), base_url)
    feed_link = absolute_http_url(feed.get("link"), base_url, self_link)
    bases = (base_url, self_link, feed_link)
    unusable = Unusable()
    entries: list[PendingEntry] = []
    unreadable: list[str] = []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(_entry(raw, bases=bases, unusable=unusable))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            # One entry this code cannot read must not cost the entries beside it.
            unreadable.append(f"entry {index + 1}: {type(exc).__name__}: {exc}")
    unusable.report(warnings)
    if unreadable:
        warnings.append(f"skipped {len(unreadable)} unreadable entries ({'; '.join(unreadable[:3])})")
    return PendingFeed(
        title=_text_of(feed, "title", one_line=True) or None,
        link=feed_link,
        language=language_tag(feed.get("language")),
        entries=tuple(entries),
        warnings=(),  # the caller attaches the warnings of every step
    )


_FIRST_ENTRY = re.compile(rb"<(?:entry|item)[\s>/]")
_IMAGE_TAG = re.compile(rb"<(/?)image(?=[\s>/])")


def _hide_entry_images(data: bytes) -> bytes:
    """Rename unprefixed <image> elements from the first entry on, so feedparser ignores them.

    feedparser reads an <image><title> nested in an entry (not standard in RSS or Atom, but common) as the
    entry's title. The feed-level image before the entries keeps its name; we do not use it either way."""
    first = _FIRST_ENTRY.search(data)
    if first is None or b"image" not in data[first.start() :]:
        return data
    head, tail = data[: first.start()], data[first.start() :]
    return head + _IMAGE_TAG.sub(rb"<\1monitor-ignored-image", tail)


_DECLARED_ENCODING = re.compile(rb"""^(\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_HEADER_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", re.IGNORECASE)
_SINGLE_BYTE = frozenset(
    {
        "windows-1252",
        "cp1252",
        "iso-8859-1",
        "iso8859-1",
        "latin-1",
        "latin1",
        "iso-8859-15",
        "us-ascii",
        "ascii",
    }
)


def _utf8_declared_as_single_byte(
    data: bytes, content_type: str | None, warnings: list[str]
) -> tuple[bytes, str | None]:
    """A document declared windows-1252 or ISO-8859-1 (in its XML declaration or the HTTP charset) whose
    bytes are valid UTF-8 with non-ASCII characters is UTF-8: text in those encodings almost never forms
    valid multi-byte UTF-8 sequences, while mislabelled UTF-8 is common. Re-declare it as UTF-8."""
    declared = _DECLARED_ENCODING.match(data)
    header = _HEADER_CHARSET.search(content_type or "")
    labels = [m.group(2).decode("ascii").lower() for m in (declared,) if m]
    labels += [header.group(1).lower()] if header else []
    single_byte = [label for label in labels if label in _SINGLE_BYTE]
    if not single_byte or data.isascii():
        return data, content_type
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data, content_type
    if declared:
        data = data[: declared.start(2)] + b"utf-8" + data[declared.end(2) :]
    if header and content_type:
        content_type = content_type[: header.start(1)] + "utf-8" + content_type[header.end(1) :]
    warnings.append(f"declared as {single_byte[0]} but the bytes are valid UTF-8: read as UTF-8")
    return data, content_type


def _entry(raw: Mapping[str, Any], *, bases: tuple[str | None, ...], unusable: Unusable) -> PendingEntry:
    """The entry's identity and dates now (unusable ones are counted for the warnings), its text on demand."""
    published = datetime_from_struct(raw.get("published_parsed"))
    updated = datetime_from_struct(raw.get("updated_parsed"))
    # feedparser puts an RSS pubDate under both keys; one unreadable text counts once.
    unreadable = {raw.get(key) for key in ("published", "updated") if raw.get(f"{key}_parsed") is None}
    for text in unreadable:
        unusable.date(text)
    guid = optional_text(raw.get("id"))
    link_text = optional_text(raw.get("link"))
    link = absolute_http_url(link_text, *bases)
    # feedparser copies a guid into `link` when there is no link; a tag: URI there is no lost link.
    if link is None and link_text and not (raw.get("guidislink") and link_text == guid):
        unusable.link(link_text)

    def convert() -> Entry:
        # Without summary_detail, feedparser's `summary` is a copy of the first content, not a summary.
        summary = (
            _detail_text(raw["summary_detail"]) if isinstance(raw.get("summary_detail"), Mapping) else ""
        )
        contents = [_detail_text(c) for c in raw.get("content") or [] if isinstance(c, Mapping)]
        summary, content = summary_and_content(summary, contents)
        return Entry(
            guid=guid,
            link=link,
            title=_text_of(raw, "title", one_line=True),
            summary=summary,
            content=content,
            # RSS 1.0 and Atom 0.3 feeds often carry only dc:date / modified: the publication date is then
            # the only date the entry has.
            published=published or updated,
            updated=updated,
            categories=categories(_tag_terms(raw)),
            author=_author(raw),
            language=_entry_language(raw),
        )

    return PendingEntry(guid, link, convert)


def _own_keys(node: Mapping[str, Any]) -> dict[str, Any]:
    """The keys feedparser actually set, as a plain dict.

    FeedParserDict.get() answers some missing keys from others (a missing `updated_parsed` from
    `published_parsed`, with a DeprecationWarning); reading the real keys keeps an absent date absent.
    """
    return {key: dict.__getitem__(node, key) for key in dict.keys(node)} if isinstance(node, dict) else {}


def _self_link(feed: Mapping[str, Any]) -> str | None:
    for link in feed.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def _text_of(node: Mapping[str, Any], key: str, *, one_line: bool = False) -> str:
    """The plain text of a feedparser text construct (title, summary, ...), using its declared type."""
    detail = node.get(f"{key}_detail")
    if isinstance(detail, Mapping):
        text = _detail_text(detail)
    else:
        value = node.get(key)
        text = normalize_plain_text(value) if isinstance(value, str) else ""
    return " ".join(text.split()) if one_line else text


def _detail_text(detail: Mapping[str, Any]) -> str:
    value = detail.get("value")
    if not isinstance(value, str):
        return ""
    kind = str(detail.get("type") or "").lower()
    if kind in _HTML_TYPES or looks_like_html(value):
        return html_to_text(value)
    return normalize_plain_text(value)


def _tag_terms(raw: Mapping[str, Any]) -> list[object]:
    terms: list[object] = []
    for tag in raw.get("tags") or []:
        if isinstance(tag, Mapping):
            terms.append(tag.get("term") or tag.get("label"))
    return terms


def _author(raw: Mapping[str, Any]) -> str | None:
    """The author's name; an RSS "email (Name)" author gives its name, a bare e-mail address itself."""
    detail = raw.get("author_detail")
    if isinstance(detail, Mapping):
        name = optional_text(detail.get("name"))
        if name:
            return single_line(name)
    author = optional_text(raw.get("author"))
    # Plain text, not HTML: "Joe <joe@example.org>" must keep its address.
    return single_line(author) if author else None


def _entry_language(raw: Mapping[str, Any]) -> str | None:
    """The xml:lang in scope for the entry's text (on the entry or inherited from the feed element).

    RSS <language> is channel-level only and lands in ParsedFeed.language, not here.
    """
    for key in ("title_detail", "summary_detail"):
        detail = raw.get(key)
        if isinstance(detail, Mapping):
            tag = language_tag(detail.get("language"))
            if tag:
                return tag
    for content in raw.get("content") or []:
        if isinstance(content, Mapping):
            tag = language_tag(content.get("language"))
            if tag:
                return tag
    return None


def _describe_recovery(exc: object) -> str:
    """A warning that says what feedparser recovered from, with the position when the XML was broken."""
    if isinstance(exc, xml.sax.SAXParseException):
        return (
            f"XML is not well-formed at line {exc.getLineNumber()}, column {exc.getColumnNumber()}: "
            f"{exc.getMessage()}; read with the lenient parser"
        )
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        return f"character encoding: {exc}"
    if isinstance(exc, feedparser.NonXMLContentType):
        return f"content type: {exc}; parsed as XML anyway"
    return f"recovered from: {exc}"


def _not_a_feed_reason(data: bytes, result: Mapping[str, Any]) -> str:
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return (
            "not a feed: the document is an HTML page; the URL may point to the site instead of its feed "
            '(look for <link rel="alternate" type="application/rss+xml"> in the page)'
        )
    exc = result.get("bozo_exception")
    if isinstance(exc, xml.sax.SAXParseException):
        return (
            f"not a feed: no RSS, RDF or Atom document found (XML error at line {exc.getLineNumber()}, "
            f"column {exc.getColumnNumber()}: {exc.getMessage()})"
        )
    return "not a feed: no RSS, RDF or Atom root element found"
