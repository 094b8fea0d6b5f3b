"""Identity: canonical URLs (table), content hashes, item keys (scoping, fallbacks, GUID churn)."""

from __future__ import annotations

import hashlib

import pytest

from monitor.identify import canonical_url, content_hash, item_key, normalize_text

CANONICAL = [
    # tracking parameters, sorting, fragments
    ("https://example.com/a?utm_source=rss&utm_medium=feed", "https://example.com/a"),
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?fbclid=X&gclid=Y&id=7#comments", "https://example.com/a?id=7"),
    (
        "https://example.com/a?mc_cid=1&mc_eid=2&igshid=3&yclid=4&msclkid=5&dclid=6&_ga=7",
        "https://example.com/a",
    ),
    ("https://example.com/a?at_medium=rss&at_campaign=x&pk_campaign=y", "https://example.com/a"),
    ("https://example.com/a?UTM_Source=x&Ref=hn&ref_src=twsrc", "https://example.com/a"),
    ("https://github.com/o/r/blob/x?ref=main", "https://github.com/o/r/blob/x?ref=main"),
    ("https://example.com/#!/story/12", "https://example.com/#!/story/12"),
    # case, default ports, www, scheme
    ("HTTP://WWW.Example.COM:80/Path", "https://example.com/Path"),
    ("https://example.com:443/p", "https://example.com/p"),
    ("http://example.com:8080/p", "http://example.com:8080/p"),
    ("https://Example.com./p", "https://example.com/p"),
    # trailing slash, duplicate slashes, dot segments, empty path
    ("https://example.com/a/b/", "https://example.com/a/b"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com//a///b/./c/../d", "https://example.com/a/b/d"),
    # percent-encoding
    ("https://example.com/%7euser/stra%c3%9fe", "https://example.com/~user/stra%C3%9Fe"),
    ("https://example.com/straße", "https://example.com/stra%C3%9Fe"),
    ("https://example.com/s?q=a+b", "https://example.com/s?q=a%20b"),
    ("https://example.com/s?q=a%20b", "https://example.com/s?q=a%20b"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    # AMP variants
    ("https://example.com/news/amp/story-1", "https://example.com/news/story-1"),
    ("https://example.com/news/story-1/amp/", "https://example.com/news/story-1"),
    ("https://example.com/news/story-1?amp=1", "https://example.com/news/story-1"),
    ("https://example.com/news/story-1?amp", "https://example.com/news/story-1"),
    ("https://example.com/news/story-1?output=amp", "https://example.com/news/story-1"),
    ("https://amp.example.com/news/story-1", "https://example.com/news/story-1"),
    ("https://example.com/news/story-1.amp.html", "https://example.com/news/story-1.html"),
    ("https://example.com/news/story-1.amp", "https://example.com/news/story-1"),
    (
        "https://www-example-com.cdn.ampproject.org/c/s/www.example.com/news/story-1?utm_source=x",
        "https://example.com/news/story-1",
    ),
    ("https://amp.dev/about", "https://amp.dev/about"),
    ("https://example.com/s?amp=0", "https://example.com/s?amp=0"),
    # not http(s), relative, blank, unparsable: stripped, otherwise unchanged
    ("urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6", "urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6"),
    ("tag:example.com,2025:42", "tag:example.com,2025:42"),
    ("/relative/path", "/relative/path"),
    ("  https://example.com/p  ", "https://example.com/p"),
    ("https://[::1", "https://[::1"),
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize(("url", "expected"), CANONICAL)
def test_canonical_url_table(url: str | None, expected: str | None) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(("url", "_expected"), [row for row in CANONICAL if row[1] is not None])
def test_canonical_url_is_idempotent(url: str, _expected: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


def test_normalize_text_folds_case_width_punctuation_and_invisibles() -> None:
    assert normalize_text("  „Seltene   Erden“ — Export\u00adstopp!  ") == "seltene erden exportstopp"
    assert normalize_text("ＦＵＬＬ width") == "full width"
    assert normalize_text("Straße") == normalize_text("STRASSE")
    assert normalize_text("Путин, Трамп: итоги") == "путин трамп итоги"


def test_content_hash_equal_for_formatting_only_differences() -> None:
    base = content_hash("China curbs rare earth exports", "Beijing added seven elements to its list.")
    assert base.startswith("v1:")
    assert base == content_hash(
        "CHINA CURBS RARE-EARTH EXPORTS!", "  Beijing added seven elements to its list… "
    )
    assert base == content_hash(
        "China\u00a0curbs rare earth exports", "Beijing added seven elements to its list"
    )


def test_content_hash_differs_for_different_words_or_fields() -> None:
    base = content_hash("China curbs rare earth exports", "Beijing added seven elements.")
    assert base != content_hash("China curbs rare earth exports", "Beijing added six elements.")
    assert base != content_hash("China curbs rare earth", "exports Beijing added seven elements.")
    assert content_hash("", "") != content_hash("a", "")


FEED = "https://feeds.example.org/world.xml"


def test_item_key_prefers_guid_then_link_then_content() -> None:
    by_guid = item_key(FEED, "guid-1", "https://example.com/a", "T", "S")
    assert by_guid.startswith("g:") and len(by_guid) == 34
    assert by_guid == item_key(FEED, " guid-1 ", "https://example.com/other", "Other", "text")
    by_link = item_key(FEED, None, "https://example.com/a?utm_source=x", "T", "S")
    assert by_link.startswith("u:")
    assert by_link == item_key(FEED, "", "https://www.example.com/a/", "changed", "text")
    by_hash = item_key(FEED, None, None, "Title", "Summary")
    assert by_hash.startswith("h:")
    assert by_hash == item_key(FEED, "  ", "", "TITLE", "summary!")
    assert by_hash != item_key(FEED, None, None, "Title", "Another summary")


def test_item_key_is_scoped_to_the_feed() -> None:
    assert item_key(FEED, "g", None, "", "") != item_key("https://other.example/feed", "g", None, "", "")
    # Spelling of the feed URL's scheme/host/port does not split its items ...
    assert item_key(FEED, "g", None, "", "") == item_key(
        "HTTPS://Feeds.Example.org:443/world.xml", "g", None, "", ""
    )
    # ... but its query may select another feed.
    assert item_key(FEED, "g", None, "", "") != item_key(FEED + "?lang=de", "g", None, "", "")


def test_item_key_kinds_do_not_collide() -> None:
    link = "https://example.com/a"
    assert item_key(FEED, link, None, "", "") != item_key(FEED, None, link, "", "")


def test_permalink_guid_with_rotating_tracking_parameters_is_one_item() -> None:
    keys = {
        item_key(FEED, f"https://example.com/story/42?utm_campaign=fetch{n}", None, "T", "S")
        for n in range(5)
    }
    assert len(keys) == 1


def test_item_key_is_stable_across_processes() -> None:
    # Spelled out: the key must never depend on Python's per-process hash salt or on library versions.
    assert (
        item_key("https://f.example/x", "abc", None, "", "")
        == "g:" + hashlib.sha256(b"https://f.example/x\0g\0abc").hexdigest()[:32]
    )
