"""normalize + identify: turn a parsed entry into an Item placed in its feed. Pure.

The item's language is, in order: the language the operator configured for the feed, the entry's declared
language, the feed's declared language, and else the one detected from the text — steadied by the feed's recent
items when a FeedLanguages memory is passed (monitor.feedlanguage). Languages are reduced to their primary subtag
("de-DE" → "de"), which is what stemmers and rules scope on.
"""

from __future__ import annotations

from monitor.feedlanguage import FeedLanguages
from monitor.identify import canonical_url, content_hash, identity_key, item_key
from monitor.text import detect_language
from monitor.types import Entry, Item, ParsedFeed, PendingEntry, PendingFeed

__all__ = ["keyed_entries", "normalize_entries", "normalize_entry", "primary_language"]


def primary_language(tag: str | None) -> str | None:
    """ "de-DE" → "de", "en_us" → "en", "" → None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def normalize_entry(
    entry: Entry,
    *,
    feed_url: str,
    feed_title: str,
    feed_language: str | None = None,
    feed_tags: tuple[str, ...] = (),
    language_override: str | None = None,
    feed_languages: FeedLanguages | None = None,
) -> Item:
    key = item_key(feed_url, entry.guid, entry.link, entry.title, entry.summary or entry.content)
    language = (
        primary_language(language_override)
        or primary_language(entry.language)
        or primary_language(feed_language)
    )
    if language is None:
        text = " ".join(part for part in (entry.title, entry.summary, entry.content[:2000]) if part)
        if feed_languages is not None:
            language = feed_languages.language_of(feed_url, key, text)
        else:
            language = detect_language(text)
    return Item(
        key=key,
        feed_url=feed_url,
        feed_title=feed_title,
        guid=entry.guid,
        link=entry.link,
        url=canonical_url(entry.link),
        title=entry.title,
        summary=entry.summary,
        content=entry.content,
        categories=entry.categories,
        language=language,
        published=entry.published or entry.updated,
        content_hash=content_hash(entry.title, entry.summary or entry.content),
        feed_tags=feed_tags,
    )


def normalize_entries(
    feed: ParsedFeed,
    *,
    feed_url: str,
    feed_title: str | None = None,
    feed_tags: tuple[str, ...] = (),
    language_override: str | None = None,
    feed_languages: FeedLanguages | None = None,
) -> list[Item]:
    """All entries of a parsed feed as Items, first occurrence kept when a feed repeats an identity key."""
    title = feed_title or feed.title or feed_url
    items: dict[str, Item] = {}
    for entry in feed.entries:
        item = normalize_entry(
            entry,
            feed_url=feed_url,
            feed_title=title,
            feed_language=feed.language,
            feed_tags=feed_tags,
            language_override=language_override,
            feed_languages=feed_languages,
        )
        items.setdefault(item.key, item)
    return list(items.values())


def keyed_entries(feed: PendingFeed, *, feed_url: str) -> dict[str, PendingEntry]:
    """The entries of a feed by identity key, first occurrence kept (as `normalize_entries` keeps it).

    An entry with a guid or a link is keyed without converting its text; only the others are converted, to
    be keyed by their content hash. The keys equal those of `normalize_entry`."""
    keyed: dict[str, PendingEntry] = {}
    for pending in feed.entries:
        key = identity_key(feed_url, pending.guid, pending.link)
        if key is None:
            entry = pending.entry()
            key = item_key(feed_url, entry.guid, entry.link, entry.title, entry.summary or entry.content)
        keyed.setdefault(key, pending)
    return keyed
