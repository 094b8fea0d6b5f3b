"""OPML subscription lists, the format every feed reader imports and exports.

Reading (`read_opml`) accepts what readers actually write, OPML 1.0, 1.1 and 2.0 alike: every `<outline>` with
an `xmlUrl` is a feed, whatever its `type` (Miniflux omits it); its tags are the `text` (else `title`) of each
enclosing outline without an `xmlUrl` (the folders of Feedly, NetNewsWire, Inoreader and Miniflux), then the
parts of its OPML 2.0 `category` attribute ("comma-separated slash-delimited category strings": `/News/World,
Tech` gives News, World, Tech), each once, in that order. Its title is `title`, else `text`.

Writing (`write_opml`) produces OPML 2.0: a feed with tags sits in a folder named after its first tag (what
readers show) and carries all its tags in `category`, so reading the file back gives the same tags.

OPML files come from elsewhere, so they are parsed without entity expansion, DTDs or network access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import format_datetime

from lxml import etree

from monitor.errors import ConfigError
from monitor.timeutil import utcnow

__all__ = ["OpmlFeed", "read_opml", "write_opml"]

MAX_OPML_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    url: str
    title: str | None
    tags: tuple[str, ...]
    line: int | None  # where the outline is, for messages


def read_opml(data: bytes, source: str) -> list[OpmlFeed]:
    """The feeds of an OPML document, in document order. Raises ConfigError naming `source` (and the line)."""
    if len(data) > MAX_OPML_BYTES:
        raise ConfigError(
            f"larger than {MAX_OPML_BYTES // (1024 * 1024)} MiB; refusing to read it", file=source
        )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else None
        raise ConfigError(f"not an OPML file: {exc.msg}", file=source, line=line) from exc
    if root.tag != "opml":
        raise ConfigError(
            f"not an OPML file: the root element is <{root.tag}>", file=source, line=root.sourceline
        )
    body = root.find("body")
    if body is None:
        raise ConfigError("not an OPML file: no <body>", file=source, line=root.sourceline)
    feeds: list[OpmlFeed] = []
    _walk(body, (), feeds)
    return feeds


def _walk(element: etree._Element, folders: tuple[str, ...], feeds: list[OpmlFeed]) -> None:
    for outline in element.iterchildren("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        name = (outline.get("text") or outline.get("title") or "").strip()
        if not url:
            _walk(outline, (*folders, name) if name else folders, feeds)
            continue
        categories = [
            part.strip()
            for category in (outline.get("category") or "").split(",")
            for part in category.split("/")
            if part.strip()
        ]
        title = (outline.get("title") or outline.get("text") or "").strip() or None
        if title == url:  # OPML requires `text`; readers (and write_opml) put the URL there when untitled
            title = None
        feeds.append(OpmlFeed(url, title, _unique((*folders, *categories)), outline.sourceline))


def _unique(tags: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tag for tag in tags if tag))


def write_opml(feeds: Sequence[OpmlFeed], *, title: str = "monitor feeds") -> bytes:
    """OPML 2.0 for `feeds`: untagged feeds at the top, the others in a folder per first tag."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(utcnow(), usegmt=True)
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            parent = folders.get(feed.tags[0]) or etree.SubElement(body, "outline", text=feed.tags[0])
            folders[feed.tags[0]] = parent
        outline = etree.SubElement(parent, "outline", type="rss", text=feed.title or feed.url)
        if feed.title:
            outline.set("title", feed.title)
        outline.set("xmlUrl", feed.url)
        if feed.tags:
            outline.set("category", ",".join(feed.tags))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
