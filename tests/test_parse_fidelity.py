"""Field fidelity found on feedparser's and miniflux's test feeds: each field is the entry's own."""

from __future__ import annotations

import pytest

from monitor.htmltext import html_to_text
from monitor.parse import parse_feed

ATOM = '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>{}</feed>'


def test_an_atom_entry_title_is_its_own_not_a_nested_image_title() -> None:
    entry = (
        "<entry><title>Entry title</title><id>1</id><link href='http://e.org/a'/>"
        "<image><title>Image title</title><url>http://e.org/i.png</url></image></entry>"
    )
    feed = parse_feed(ATOM.format(entry).encode(), source="a")
    assert feed.entries[0].title == "Entry title"


def test_an_rss_item_title_is_its_own_not_a_nested_image_title() -> None:
    data = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title><image><title>Logo</title>'
        b"<url>http://e.org/logo.png</url><link>http://e.org/</link></image>"
        b"<item><title>Item title</title><guid>1</guid><image><title>Pic</title></image></item></channel></rss>"
    )
    feed = parse_feed(data, source="a")
    assert feed.title == "F"
    assert feed.entries[0].title == "Item title"


@pytest.mark.parametrize(
    "links",
    [
        '<link rel="enclosure" href="http://e.org/a.mp3" type="audio/mpeg"/><link href="http://e.org/page"/>',
        '<link href="http://e.org/page"/><link rel="enclosure" href="http://e.org/a.mp3" type="audio/mpeg"/>',
        '<link rel="enclosure" href="http://e.org/a.mp3"/><link rel="alternate" type="text/html" href="http://e.org/page"/>',
    ],
)
def test_the_page_link_wins_over_an_enclosure_link(links: str) -> None:
    feed = parse_feed(ATOM.format(f"<entry><id>1</id><title>T</title>{links}</entry>").encode(), source="a")
    assert feed.entries[0].link == "http://e.org/page"


def test_text_after_an_unclosed_object_is_kept() -> None:
    assert html_to_text("<p>before <object data='x.swf'> after the object</p><p>next</p>") == (
        "before after the object\n\nnext"
    )


def test_script_and_style_content_stays_hidden_even_when_unclosed() -> None:
    assert html_to_text("<p>text</p><script>var secret = 1;") == "text"
    assert html_to_text("<p>text</p><style>p { color: red }") == "text"
    assert html_to_text("a <object><script>code()</script>fallback</object> b") == "a b"


def test_an_unclosed_comment_does_not_leak_into_the_text() -> None:
    assert html_to_text("<p>kept text</p><!-- secret comment never closed") == "kept text"
    assert html_to_text("a <!-- closed --> b <!-- open") == "a b"


def test_windows_1252_declared_but_valid_utf8_decodes_as_utf8_with_a_warning() -> None:
    title = "Grüße aus Köln"
    data = (
        '<?xml version="1.0" encoding="windows-1252"?><rss version="2.0"><channel><title>F</title>'
        f"<item><title>{title}</title><guid>1</guid></item></channel></rss>"
    ).encode()
    # The fetch stage always passes the final URL: that path used to trust the declaration.
    for options in (
        {},
        {"base_url": "http://e.org/feed"},
        {"content_type": "text/xml; charset=windows-1252"},
    ):
        feed = parse_feed(data, source="a", **options)  # type: ignore[arg-type]
        assert feed.entries[0].title == title, options
        assert any("UTF-8" in w or "utf-8" in w for w in feed.warnings), (options, feed.warnings)


def test_real_windows_1252_still_decodes_as_declared() -> None:
    data = (
        '<?xml version="1.0" encoding="windows-1252"?><rss version="2.0"><channel><title>F</title>'
        "<item><title>Grüße – “quoted”</title><guid>1</guid></item></channel></rss>"
    ).encode("cp1252")
    feed = parse_feed(data, source="a", base_url="http://e.org/feed")
    assert feed.entries[0].title == "Grüße – “quoted”"


def test_a_json_feed_item_without_an_author_inherits_the_feeds_authors() -> None:
    data = (
        b'{"version":"https://jsonfeed.org/version/1.1","title":"t","authors":[{"name":"Feed Author"}],'
        b'"items":[{"id":"1","title":"x"},{"id":"2","title":"y","authors":[{"name":"Own"}]}]}'
    )
    assert [e.author for e in parse_feed(data, source="a").entries] == ["Feed Author", "Own"]
    old = b'{"version":"https://jsonfeed.org/version/1","author":{"name":"Old Style"},"items":[{"id":"1","title":"x"}]}'
    assert parse_feed(old, source="a").entries[0].author == "Old Style"
