"""Parse stage: the bytes of a feed document → ParsedFeed. Pure: never opens paths or URLs.

Formats: RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 (feedparser; plain UTF-8 RSS 2.0 through a faster lxml path that
gives the same fields, see `_fast`), JSON Feed 1.0/1.1 and RSS-in-JSON (json). The
format is chosen by content; the Content-Type only decides when the content does not (see `_body`).

What `parse_feed` guarantees:

- It returns a ParsedFeed, or raises ParseError(source, message) for bodies that are no feed (empty,
  HTML pages, invalid JSON, garbage). It raises nothing else on any input (tests/test_fuzz.py holds it to
  that); an unexpected exception inside becomes a ParseError naming it.
- No text it returns holds a lone surrogate (see `_clean`): every str encodes as UTF-8.
- One entry that cannot be read is skipped with a warning; the entries beside it are kept.
- What it recovered from is listed in ParsedFeed.warnings: malformed XML read leniently, a character
  encoding other than the declared one, a gzip body, unreadable dates, unusable links, entries beyond the cap.
- Entry text fields are plain text (HTML reduced by monitor.htmltext.html_to_text); dates are aware UTC
  datetimes or None; links are absolute http(s) URLs or None; languages are lower-case tags as declared.
- Entries with no id, link, title or text at all are dropped, and counted in the warnings.
- At most `max_entries` entries are returned, in document order (feeds list newest first); a feed with
  more says so in its warnings.
"""

from __future__ import annotations

from monitor.errors import ParseError
from monitor.parse._body import gunzip_if_compressed, sniff_format, strip_leading_whitespace
from monitor.parse._clean import scrub_surrogates, scrub_text
from monitor.parse._fast import read_plain_rss
from monitor.parse._json import parse_json_feed
from monitor.parse._xml import parse_xml_feed
from monitor.types import Entry, ParsedFeed, PendingEntry, PendingFeed

__all__ = ["DEFAULT_MAX_ENTRIES", "parse_feed", "read_feed"]

# Far above any real news feed (the corpus peaks at 730 podcast episodes), low enough that one hostile or
# broken feed cannot flood matching and storage in a single fetch.
DEFAULT_MAX_ENTRIES = 5000


def parse_feed(
    data: bytes,
    *,
    source: str,
    content_type: str | None = None,
    base_url: str | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    fast_path: bool = True,
) -> ParsedFeed:
    """Parse one feed document.

    `source` (a URL or file name) is used only in error messages. `content_type` is the HTTP Content-Type,
    whose charset feedparser weighs against the document's own declaration. `base_url` is the URL the
    document was fetched from (after redirects): relative links are resolved against it, else against the
    feed's own link. `fast_path=False` reads every XML document with feedparser (to compare the paths).
    """
    pending = read_feed(
        data,
        source=source,
        content_type=content_type,
        base_url=base_url,
        max_entries=max_entries,
        fast_path=fast_path,
    )
    try:
        return pending.parsed()
    except ParseError:
        raise
    except Exception as exc:
        raise _parse_error(source, exc) from exc


def read_feed(
    data: bytes,
    *,
    source: str,
    content_type: str | None = None,
    base_url: str | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    fast_path: bool = True,
) -> PendingFeed:
    """`parse_feed`, with each entry's text converted only when asked for (see PendingEntry).

    Everything but the entries' text is final here: the warnings, the empty entries dropped and the cap.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"parse_feed takes the document as bytes, not {type(data).__name__}")
    try:
        return _parse(
            bytes(data),
            source=source,
            content_type=content_type,
            base_url=base_url,
            max_entries=max_entries,
            fast_path=fast_path,
        )
    except ParseError:
        raise
    except Exception as exc:
        raise _parse_error(source, exc) from exc


def _parse_error(source: str, exc: Exception) -> ParseError:
    """The promise above: a bug or a library's surprise still costs one feed, cleanly."""
    if isinstance(exc, RecursionError):
        return ParseError(source, "document is nested too deeply to read")
    return ParseError(source, f"cannot read this document: {type(exc).__name__}: {exc}")


def _parse(
    data: bytes,
    *,
    source: str,
    content_type: str | None,
    base_url: str | None,
    max_entries: int,
    fast_path: bool,
) -> PendingFeed:
    warnings: list[str] = []
    body = gunzip_if_compressed(bytes(data), source=source, warnings=warnings)
    body = strip_leading_whitespace(body, warnings=warnings)
    if not body.removeprefix(b"\xef\xbb\xbf").strip():
        raise ParseError(source, "empty body: no feed document")
    feed: PendingFeed
    if sniff_format(body, content_type) == "json":
        parsed = parse_json_feed(body, source=source, base_url=base_url, warnings=warnings)
        feed = PendingFeed(
            title=parsed.title,
            link=parsed.link,
            language=parsed.language,
            entries=tuple(PendingEntry.ready(entry) for entry in parsed.entries),
        )
    else:
        # Plain UTF-8 RSS 2.0 is read by lxml; whatever its gate refuses goes to feedparser (see `_fast`).
        fast = (
            read_plain_rss(body, content_type=content_type, base_url=base_url, warnings=warnings)
            if fast_path
            else None
        )
        feed = fast or parse_xml_feed(
            body, source=source, content_type=content_type, base_url=base_url, warnings=warnings
        )
    # An entry with a guid or a link is never empty; only the others need converting to tell.
    entries = tuple(
        entry for entry in feed.entries if entry.guid or entry.link or not _is_empty(entry.entry())
    )
    if len(entries) < len(feed.entries):
        warnings.append(
            f"skipped {len(feed.entries) - len(entries)} empty entries (no id, link, title or text; "
            "e.g. a stray <item/>)"
        )
    if len(entries) > max_entries:
        warnings.append(
            f"feed has {len(entries)} entries; kept the first {max_entries} in document order "
            f"and ignored {len(entries) - max_entries}"
        )
        entries = entries[:max_entries]
    return PendingFeed(
        title=_scrub(feed.title),
        link=_scrub(feed.link),
        language=_scrub(feed.language),
        entries=tuple(_scrubbed(entry) for entry in entries),
        warnings=tuple(warnings),
    )


def _scrub(text: str | None) -> str | None:
    return None if text is None else scrub_text(text)


def _scrubbed(pending: PendingEntry) -> PendingEntry:
    """`pending` with lone surrogates replaced in its identity now and in its text when it is converted."""
    return PendingEntry(_scrub(pending.guid), _scrub(pending.link), lambda: scrub_surrogates(pending.entry()))


def _is_empty(entry: Entry) -> bool:
    """An entry with nothing to identify, match or show: what a stray empty <item/> element gives."""
    return not (entry.guid or entry.link or entry.title or entry.summary or entry.content)
