"""GET /: the status page for a person. One HTML document, no JavaScript (the response forbids scripts by its
Content-Security-Policy), every feed text escaped by Jinja2's autoescape, matched spans wrapped in <mark>.

Feed text is untrusted: titles and summaries are escaped, and a link is made a link only when it is http(s) (a
`javascript:` link in a feed stays text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from monitor.timeutil import to_iso

__all__ = ["CONTENT_SECURITY_POLICY", "highlight", "render_page", "safe_link"]

CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'; frame-ancestors 'none'"

_env = Environment(
    loader=PackageLoader("monitor.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def safe_link(url: object) -> str | None:
    """The URL when it is an http(s) URL, else None (never a javascript: or data: link)."""
    if not isinstance(url, str):
        return None
    lowered = url.strip().lower()
    return url.strip() if lowered.startswith(("http://", "https://")) else None


def _spans(text: str, hits: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """Where the hits are in `text`: at their recorded offsets when the text there is the hit's text, else at
    the first place the hit's text occurs (the payload's summary may be a shortened copy)."""
    found: list[tuple[int, int]] = []
    folded = text.casefold()
    for hit in hits:
        start, end, word = int(hit.get("start", 0)), int(hit.get("end", 0)), str(hit.get("text", ""))
        if not word:
            continue
        if 0 <= start < end <= len(text) and text[start:end].casefold() == word.casefold():
            found.append((start, end))
            continue
        at = folded.find(word.casefold())
        if at >= 0 and len(folded) == len(text):  # casefold kept offsets (no ß → ss)
            found.append((at, at + len(word)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def highlight(text: str, hits: Sequence[Mapping[str, Any]], field: str) -> Markup:
    """`text` escaped, with the spans of the hits on `field` in <mark>."""
    relevant = [hit for hit in hits if hit.get("field") == field]
    out: list[str] = []
    position = 0
    for start, end in _spans(text, relevant):
        out.append(str(escape(text[position:start])))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        position = end
    out.append(str(escape(text[position:])))
    return Markup("".join(out))


def render_page(
    *,
    now: datetime,
    feeds: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
    stories: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
) -> str:
    template = _env.get_template("index.html")
    return template.render(
        now=to_iso(now),
        feeds=feeds,
        alerts=alerts,
        stories=stories,
        summary=summary,
        highlight=highlight,
        safe_link=safe_link,
    )
