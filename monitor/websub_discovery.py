"""WebSub discovery (W3C WebSub §4): the hub and the topic ("self") a feed names, pure functions.

The HTTP Link headers come first (the spec says a subscriber MUST look there, and a publisher may set them on
a document it cannot edit), then the feed document's own links: Atom `<link rel="hub">` children of `<feed>`,
and `<atom:link rel="hub">` children of an RSS `<channel>`. Only feed-level links count: an Atom entry's
`rel="self"` is the entry's URL, not the feed's topic. Relative URLs are resolved against the fetched URL.
Kept apart from monitor.websub (the subscriber) so that the pipeline can call it without importing the
listener.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from lxml import etree

__all__ = ["discover", "parse_link_header"]

_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;"]+))""", re.IGNORECASE)
_ATOM = "http://www.w3.org/2005/Atom"


def parse_link_header(value: str | None) -> dict[str, str]:
    """{rel: first URL} from a Link header (RFC 8288), e.g. `<https://hub>; rel="hub", <…>; rel="self"`."""
    found: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        rel = _REL.search(match.group(2))
        if rel is None:
            continue
        for name in (rel.group(1) or rel.group(2) or "").lower().split():
            found.setdefault(name, match.group(1).strip())
    return found


def _parser() -> Any:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
    )


def _document_links(content: bytes) -> dict[str, str]:
    try:
        root = etree.fromstring(content, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return {}
    if root is None:
        return {}
    tag = etree.QName(root).localname if isinstance(root.tag, str) else ""
    if tag == "feed":
        parent = root
    else:
        channel = next(
            (c for c in root if isinstance(c.tag, str) and etree.QName(c).localname == "channel"), None
        )
        if channel is None:
            return {}
        parent = channel
    found: dict[str, str] = {}
    for child in parent:
        if not isinstance(child.tag, str) or etree.QName(child).localname != "link":
            continue
        # In RSS, a plain <link> is the site's URL as text; only Atom-namespaced links carry rel/href.
        if tag != "feed" and etree.QName(child).namespace != _ATOM:
            continue
        href = (child.get("href") or "").strip()
        for rel in (child.get("rel") or "").lower().split():
            if href:
                found.setdefault(rel, href)
    return found


def discover(
    content: bytes | None, links: str | None, *, base_url: str = ""
) -> tuple[str | None, str | None]:
    """(hub URL, topic URL) named by the Link headers `links`, else by the document; None for what neither
    names. Only http(s) URLs count."""
    header = parse_link_header(links)
    document = _document_links(content) if content and ("hub" not in header or "self" not in header) else {}
    hub = header.get("hub") or document.get("hub")
    topic = header.get("self") or document.get("self")
    return _absolute(hub, base_url), _absolute(topic, base_url)


def _absolute(url: str | None, base: str) -> str | None:
    if not url:
        return None
    joined = urllib.parse.urljoin(base, url) if base else url
    return joined if joined.startswith(("http://", "https://")) else None
