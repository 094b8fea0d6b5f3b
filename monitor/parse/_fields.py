"""Field-level conversions shared by the XML and JSON readers: dates, links, languages, categories, ids.

Every function here is total: bad input gives None (or an empty result), never an exception, because one
odd field must not cost the whole feed. Callers count what was unreadable and report it in warnings.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

__all__ = [
    "Unusable",
    "absolute_http_url",
    "categories",
    "datetime_from_struct",
    "datetime_from_text",
    "language_tag",
    "optional_text",
    "summary_and_content",
]

# Schemes an entry link may have. Anything else (javascript:, data:, mailto:, file:) is not a page a news
# alert should point to, and javascript:/data: links would be dangerous in an HTML email.
_LINK_SCHEMES = frozenset({"http", "https"})


def datetime_from_struct(value: time.struct_time | None) -> datetime | None:
    """feedparser's *_parsed (a UTC struct_time) as an aware UTC datetime; None if absent or impossible."""
    if value is None:
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def datetime_from_text(value: object) -> datetime | None:
    """An RFC 3339 / ISO 8601 or RFC 822 date string as an aware UTC datetime; None if unreadable.

    A date without a zone is taken as UTC: JSON Feed requires a zone, and guessing the publisher's local
    zone would be no better.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def absolute_http_url(link: object, *bases: str | None) -> str | None:
    """`link` made absolute against the first usable base; None unless the result is an http(s) URL."""
    if not isinstance(link, str):
        return None
    link = link.strip()
    if not link:
        return None
    try:
        if not urlsplit(link).scheme:
            for base in bases:
                if base and urlsplit(base).scheme in _LINK_SCHEMES:
                    link = urljoin(base.strip(), link)
                    break
        parts = urlsplit(link)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in _LINK_SCHEMES or not parts.netloc:
        return None
    return link


def language_tag(value: object) -> str | None:
    """A declared language tag, lower-case with '-' separators ("de_DE " → "de-de"); None if empty.

    The region is kept: normalize reduces it to ISO 639-1 where it needs to, and "pt-br" vs "pt-pt" or
    "zh-cn" vs "zh-tw" is information a later stage may want.
    """
    if not isinstance(value, str):
        return None
    tag = value.strip().replace("_", "-").lower()
    return tag or None


def categories(terms: Iterable[object]) -> tuple[str, ...]:
    """Category terms stripped, empty ones dropped, duplicates (ignoring case) dropped, first order kept."""
    seen: set[str] = set()
    result: list[str] = []
    for term in terms:
        if not isinstance(term, str):
            continue
        text = " ".join(term.split())
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            result.append(text)
    return tuple(result)


def optional_text(value: object) -> str | None:
    """A stripped string, None when absent or empty. Numbers are accepted (some JSON Feeds use numeric ids)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text or None


def summary_and_content(summary: str, contents: Iterable[str]) -> tuple[str, str]:
    """(summary, content): content is the longest candidate, or "" when it only repeats the summary.

    Feeds often carry the same text twice (RSS description and content:encoded, Atom summary copied from
    content); keeping it once avoids matching and showing it twice.
    """
    content = max(contents, key=len, default="")
    if content == summary:
        content = ""
    return summary, content


class Unusable:
    """Collects entry dates and links that were present but unusable, for one summary warning per kind.

    One warning per feed (with a count and an example) says what was lost without flooding the log with
    one line per entry.
    """

    def __init__(self) -> None:
        self.dates: list[str] = []
        self.links: list[str] = []

    def date(self, text: object) -> None:
        if isinstance(text, str) and text.strip():
            self.dates.append(text.strip()[:80])

    def link(self, text: object) -> None:
        if isinstance(text, str) and text.strip():
            self.links.append(text.strip()[:200])

    def report(self, warnings: list[str]) -> None:
        if self.dates:
            warnings.append(
                f"{len(self.dates)} entry dates could not be read and were left empty (e.g. {self.dates[0]!r})"
            )
        if self.links:
            warnings.append(
                f"{len(self.links)} entry links are not absolute http(s) URLs and were left empty "
                f"(e.g. {self.links[0]!r})"
            )
