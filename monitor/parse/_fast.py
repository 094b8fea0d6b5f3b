"""The fast path for plain RSS 2.0: lxml reads the document, and only when a strict gate lets it through.

feedparser reads every feed faithfully but slowly (a SAX parse driving Python callbacks for every element;
about 75 % of a round in which few items are new). Most news feeds are plain RSS 2.0 in UTF-8, and for those
lxml (libxml2, in C) gives the same elements some 20 times faster. `read_plain_rss` returns None — the
caller then uses feedparser — unless all of this holds:

- well-formed: lxml's strict parser (no recovery, no DTD, no entities, no network) reads the whole document;
- UTF-8 (declared, or no declaration; the Content-Type charset, if any, agrees) without a DOCTYPE, xml:base
  or xml:lang (feedparser resolves and scopes those in ways not worth copying);
- an <rss version="2.0"> root with exactly one <channel>, every <item> a child of it;
- counts: at most one title, link, description, guid, pubDate, content:encoded and author (RSS author or
  dc:creator) per item, and one title, link and language per channel;
- fields: every child of an item is one of a known set of elements, and carries text only (no child
  elements), so no element feedparser maps onto a field (dc:date, media:title, atom:link ...) is ignored.

Inside the gate the fields are computed as feedparser computes them (the same URI joining, date parser and
"looks like HTML" test; the same whitespace stripping, ISO-8859-1/UTF-8 repair and windows-1252 mapping of
C1 characters), then converted by the same functions as the feedparser path (`_xml`), so an entry has the
same guid, link, title, text and dates on either path and switching paths never creates a new item key.
tests/test_parse_fast.py measures the agreement per field on the corpus and on the benchmark's feeds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

# feedparser's own helpers, so that both paths join URIs, read dates and guess HTML identically.
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252 as _CP1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree

from monitor.htmltext import html_to_text, looks_like_html, normalize_plain_text, single_line
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

__all__ = ["read_plain_rss"]

_CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
_DC_CREATOR = "{http://purl.org/dc/elements/1.1/}creator"
_ATOM_LINK = "{http://www.w3.org/2005/Atom}link"
# Children of an item that feedparser maps to no field we read, or only to enclosure/media lists.
_IGNORED = frozenset(
    {
        "comments",
        "enclosure",
        "{http://wellformedweb.org/CommentAPI/}commentRss",
        "{http://purl.org/rss/1.0/modules/slash/}comments",
        "{http://search.yahoo.com/mrss/}content",
        "{http://search.yahoo.com/mrss/}thumbnail",
    }
)
_SINGLE = ("title", "link", "description", "guid", "pubDate", _CONTENT)
_KNOWN = frozenset({*_SINGLE, "category", "author", _DC_CREATOR, *_IGNORED})
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)[\"']")
_UTF8 = frozenset({"utf-8", "utf8"})
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_XML_TYPES = frozenset({"application/rss+xml", "application/xml", "application/atom+xml", "text/xml"})
# The e-mail address feedparser takes out of an RSS author ("jo@example.org (Jo)" → name "Jo").
_EMAIL = re.compile(
    r"(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"
    r"([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"
)
_TEXT_FIELDS = frozenset({"title", "description", _CONTENT})
_C1 = re.compile("[\x80-\x9f]")
_ENTITY_IN_LINK = re.compile("&([A-Za-z0-9_]+);")
_looks_like_html_to_feedparser: Callable[[str], bool] = _FeedParserMixin.looks_like_html


def _parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        recover=False,
        remove_comments=True,
        remove_pis=True,
    )


def read_plain_rss(
    data: bytes, *, content_type: str | None, base_url: str | None, warnings: list[str]
) -> PendingFeed | None:
    """The feed read by lxml, or None when the gate (see the module docstring) refuses the document."""
    if not _plain_utf8_xml(data, content_type):
        return None
    try:
        root = etree.fromstring(data, parser=_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root.tag != "rss" or root.get("version") != "2.0":
        return None
    channels = [child for child in root if child.tag == "channel"]
    if len(channels) != 1:
        return None
    channel = channels[0]
    items = [child for child in channel if child.tag == "item"]
    if sum(1 for _ in root.iter("item")) != len(items):
        return None
    head = _channel_fields(channel)
    if head is None:
        return None
    title_text, link_text, language, self_href = head
    base = base_url or ""
    self_link = absolute_http_url(_urljoin(base, self_href) if self_href is not None else None, base_url)
    feed_link = absolute_http_url(
        _link_value(_urljoin(base, link_text)) if link_text else None, base_url, self_link
    )
    bases = (base_url, self_link, feed_link)
    unusable = Unusable()
    entries: list[PendingEntry] = []
    for item in items:
        entry = _item(item, base=base, bases=bases, unusable=unusable)
        if entry is None:
            return None
        entries.append(entry)
    unusable.report(warnings)
    return PendingFeed(
        title=(_title_text(title_text) if title_text else "") or None,
        link=feed_link,
        language=language_tag(language),
        entries=tuple(entries),
    )


def _plain_utf8_xml(data: bytes, content_type: str | None) -> bool:
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().lower()
        charset = _CHARSET.search(content_type)
        if media_type not in _XML_TYPES:
            return False
        if charset is not None and charset.group(1).lower() not in _UTF8:
            return False
        if charset is None and media_type == "text/xml":
            return False  # text/xml without a charset is US-ASCII to feedparser (RFC 3023)
    body = data.removeprefix(b"\xef\xbb\xbf")
    declared = _XML_DECLARATION.match(body)
    if declared is not None and declared.group(1).decode("ascii", "replace").lower() not in _UTF8:
        return False
    if not body.startswith((b"<?xml", b"<rss")):
        return False
    head = body[:2048]
    return b"<!DOCTYPE" not in head and b"xml:base" not in data and b"xml:lang" not in data


def _channel_fields(channel: Any) -> tuple[str | None, str | None, str | None, str | None] | None:
    """(title, link, language, rel=self href) of the channel, or None when a field is ambiguous."""
    found: dict[str, list[Any]] = {"title": [], "link": [], "language": []}
    self_href: str | None = None
    for child in channel:
        if child.tag in found:
            found[child.tag].append(child)
        elif child.tag == _ATOM_LINK:
            rel = child.get("rel")
            if rel is None or rel == "alternate":
                return None  # feedparser would take it as the feed's link
            if rel == "self" and self_href is None and child.get("href") is not None:
                self_href = child.get("href")
    if any(len(elements) > 1 or any(len(e) for e in elements) for elements in found.values()):
        return None
    title, link, language = (_text(found[key][0].text) if found[key] else None for key in found)
    return title, link, language, self_href


def _item(item: Any, *, base: str, bases: tuple[str | None, ...], unusable: Unusable) -> PendingEntry | None:
    fields: dict[str, str] = {}
    terms: list[str] = []
    authors: list[str] = []
    permalink = True
    for child in item:
        tag = child.tag
        if tag not in _KNOWN or (len(child) and tag not in _IGNORED):
            return None
        if tag in _IGNORED:
            continue
        # Text fields are cleaned when the entry is converted: most entries of a feed never are.
        text = (child.text or "") if tag in _TEXT_FIELDS else _text(child.text)
        if tag == "category":
            terms.append(text)
        elif tag in ("author", _DC_CREATOR):
            authors.append(text)
        elif tag in fields:
            return None
        else:
            if tag == "guid":
                permalink = child.get("isPermaLink", "true") == "true"
            if tag == "description" and _CONTENT in fields:
                return None  # feedparser would read this description as a second content
            fields[tag] = text
    if len(authors) > 1:
        return None
    guid_text = fields.get("guid")
    if guid_text is not None and permalink:
        guid_text = _urljoin(base, guid_text)
    link_text: str | None
    if "link" in fields:
        link_text = _link_value(_urljoin(base, fields["link"])) if fields["link"] else ""
    else:
        link_text = guid_text if permalink else None
    guid_is_link = permalink and guid_text is not None and "link" not in fields
    guid = optional_text(guid_text)
    link_text = optional_text(link_text)
    link = absolute_http_url(link_text, *bases)
    if link is None and link_text and not (guid_is_link and link_text == guid):
        unusable.link(link_text)
    date_text = fields.get("pubDate")
    published = datetime_from_struct(_parse_date(date_text)) if date_text else None
    if date_text and published is None:
        unusable.date(date_text)
    title = fields.get("title")
    description = fields.get("description")
    content = fields.get(_CONTENT)
    author = authors[0] if authors else None

    def convert() -> Entry:
        summary, text = summary_and_content(
            html_to_text(_text(description)) if description is not None else "",
            [html_to_text(_text(content))] if content is not None else [],
        )
        return Entry(
            guid=guid,
            link=link,
            title=_title_text(_text(title)) if title is not None else "",
            summary=summary,
            content=text,
            published=published,
            updated=None,
            categories=categories(terms),
            author=_author_name(author) if author else None,
            language=None,
        )

    return PendingEntry(guid, link, convert)


def _text(raw: str | None) -> str:
    """An element's text as feedparser hands it on: stripped, ISO-8859-1 mojibake of UTF-8 repaired, C1
    characters given their windows-1252 meaning."""
    text = (raw or "").strip()
    if not text.isascii():
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            text = text.encode("iso-8859-1").decode("utf-8")
        if _C1.search(text):
            text = text.translate(_CP1252)
    return text


def _link_value(link: str) -> str:
    """feedparser's clean-up of a link's text: entity references left in it lose their escaping."""
    return _ENTITY_IN_LINK.sub(r"&\g<1>", link.replace("&amp;", "&"))


def _title_text(value: str) -> str:
    """A plain-text RSS field (a title): HTML when feedparser or our own test says it looks like HTML."""
    if _looks_like_html_to_feedparser(value) or looks_like_html(value):
        text = html_to_text(value)
    else:
        text = normalize_plain_text(value)
    return " ".join(text.split())


def _author_name(author: str) -> str | None:
    """The name in an RSS author or dc:creator, as feedparser's author_detail gives it; else the text."""
    name = author
    email = _EMAIL.search(name)
    if email is not None:
        name = name.replace(email.group(0), "").replace("()", "").replace("<>", "").replace("&lt;&gt;", "")
        name = name.strip()
        if name and name[0] == "(":
            name = name[1:]
        if name and name[-1] == ")":
            name = name[:-1]
        name = name.strip()
    chosen = optional_text(name) or optional_text(author)
    return single_line(chosen) if chosen else None
