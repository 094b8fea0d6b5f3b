"""GET /alerts.atom: recent alerts as an Atom 1.0 feed (RFC 4287), so an analyst can follow them in any feed
reader. Each entry is one alert and links to its item; ids are stable (`urn:monitor:alert:ID`), so a reader
never shows an alert twice. Built with ElementTree, which escapes every text and attribute."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.etree import ElementTree as ET

from monitor.timeutil import to_iso
from monitor.web.page import safe_link

__all__ = ["ATOM_TYPE", "alerts_atom"]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
ATOM_NS = "http://www.w3.org/2005/Atom"
# Characters XML 1.0 cannot hold at all (escaping does not help): a feed's stray control bytes are dropped.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _rfc3339(text: str | None, fallback: datetime) -> str:
    value = text or to_iso(fallback) or ""
    return value.replace(".000000Z", "Z")


def alerts_atom(alerts: Sequence[Mapping[str, Any]], *, now: datetime, self_url: str) -> bytes:
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = _XML_INVALID.sub("", text)
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", "urn:monitor:alerts")
    sub(feed, "title", "monitor: recent alerts")
    sub(feed, "updated", _rfc3339(alerts[0]["created_at"] if alerts else None, now))
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    author = sub(feed, "author")
    sub(author, "name", "monitor")
    for alert in alerts:
        item = alert["item"]
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:monitor:alert:{alert['id']}")
        sub(entry, "title", f"{alert['rule']['title']}: {item['title'] or '(untitled)'}")
        sub(entry, "updated", _rfc3339(alert["created_at"], now))
        if item.get("published"):
            sub(entry, "published", _rfc3339(item["published"], now))
        link = safe_link(item.get("link"))
        if link:
            sub(entry, "link", rel="alternate", href=link)
        source = sub(entry, "author")
        sub(source, "name", item["feed"].get("title") or item["feed"]["url"])
        sub(entry, "category", term=alert["rule"]["id"], label=alert["rule"]["title"])
        matched = ", ".join(sorted({f"{hit['text']} ({hit['field']})" for hit in alert["hits"]}))
        summary = item.get("summary") or ""
        sub(entry, "summary", (summary + ("\n\n" if summary else "") + f"Matched: {matched}").strip())
    body: bytes = ET.tostring(feed, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
