"""parse_feed never reads files or the network, caps what it inflates and returns, and raises only ParseError.

The network checks use a real HTTP server on 127.0.0.1 and assert it received no request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.parse._body import MAX_DECOMPRESSED_BYTES
from tests.support.feedserver import FeedServer


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as feeds:
        feeds.set("/feed.xml", b'<rss version="2.0"><channel><title>fetched</title></channel></rss>')
        feeds.set("/secret.dtd", b'<!ENTITY secret "FETCHED-BY-DTD">')
        yield feeds


def rss(items: str, *, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{prolog}<rss version="2.0"><channel><title>t</title>'
        f"<link>https://example.org/</link>{items}</channel></rss>"
    ).encode()


def test_a_body_that_is_a_url_is_not_fetched(server: FeedServer) -> None:
    url = server.url("/feed.xml").encode()
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(url, source="body-is-a-url")
    assert server.requests == []


def test_a_body_that_is_a_path_is_not_opened(tmp_path: Path) -> None:
    feed_file = tmp_path / "feed.xml"
    feed_file.write_bytes(rss("<item><title>from disk</title></item>"))
    with pytest.raises(ParseError, match="not a feed"):
        parse_feed(str(feed_file).encode(), source="body-is-a-path")


def test_external_entities_and_dtds_are_not_resolved(server: FeedServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-FILE-CONTENT")
    prolog = (
        f'<!DOCTYPE rss SYSTEM "{server.url("/secret.dtd")}" ['
        f'<!ENTITY file SYSTEM "file://{secret}">'
        f'<!ENTITY remote SYSTEM "{server.url("/feed.xml")}">]>'
    )
    body = rss("<item><title>a &file; b &remote; c</title><guid>1</guid></item>", prolog=prolog)
    feed = parse_feed(body, source="xxe")
    text = repr(feed)
    assert "TOP-SECRET" not in text
    assert "fetched" not in text and "FETCHED-BY-DTD" not in text
    assert feed.entries[0].guid == "1"
    assert server.requests == []


def test_entity_expansion_bomb_stays_small() -> None:
    lol = '<!ENTITY a "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    body = rss("<item><title>&i;</title><guid>1</guid></item>", prolog=f"<!DOCTYPE rss [{lol}]>")
    feed = parse_feed(body, source="billion-laughs")
    assert len(repr(feed)) < 100_000


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * (MAX_DECOMPRESSED_BYTES + 1024), compresslevel=9)
    assert len(bomb) < 100_000
    with pytest.raises(ParseError, match="expands beyond 32 MiB"):
        parse_feed(bomb, source="bomb.gz")


def test_truncated_gzip_keeps_what_it_gave_and_says_so() -> None:
    # Distinct items, so that half of the compressed stream holds real text (repetition compresses to nothing).
    items = "".join(
        f"<item><title>kept</title><guid>{hashlib.sha256(bytes([i])).hexdigest()}</guid></item>"
        for i in range(200)
    )
    whole = gzip.compress(rss(items))
    feed = parse_feed(whole[: len(whole) // 2], source="cut.gz")
    assert feed.entries and feed.entries[0].title == "kept"
    assert any("truncated" in w for w in feed.warnings)


def test_corrupt_gzip_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="cannot be decompressed"):
        parse_feed(b"\x1f\x8b\x08\x00garbage-after-the-magic", source="bad.gz")


def test_entries_beyond_the_cap_are_dropped_with_a_warning() -> None:
    body = rss("".join(f"<item><title>n{i}</title><guid>{i}</guid></item>" for i in range(7)))
    feed = parse_feed(body, source="capped", max_entries=3)
    assert [e.guid for e in feed.entries] == ["0", "1", "2"]
    assert "feed has 7 entries; kept the first 3 in document order and ignored 4" in feed.warnings


def test_content_decides_the_format_over_a_wrong_content_type() -> None:
    as_json = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "j", "title": "J"}]}
    )
    assert parse_feed(as_json.encode(), source="s", content_type="text/xml").entries[0].guid == "j"
    xml_feed = rss("<item><title>X</title><guid>x</guid></item>")
    assert parse_feed(xml_feed, source="s", content_type="application/json").entries[0].guid == "x"


def test_charset_in_content_type_decodes_an_undeclared_document() -> None:
    body = rss("<item><title>Мирные переговоры</title><guid>1</guid></item>").replace(
        b' encoding="utf-8"', b""
    )
    cp1251 = body.decode().encode("cp1251")
    feed = parse_feed(cp1251, source="s", content_type="text/xml; charset=windows-1251")
    assert feed.entries[0].title == "Мирные переговоры"


def test_links_resolve_against_base_url_and_unsafe_schemes_are_dropped() -> None:
    items = (
        "<item><title>a</title><link>../a.html</link></item>"
        "<item><title>b</title><link>data:text/html,hi</link></item>"
        "<item><title>c</title><link>HTTPS://Example.org/c</link></item>"
    )
    feed = parse_feed(rss(items), source="s", base_url="https://feeds.example.net/x/feed.xml")
    assert [e.link for e in feed.entries] == [
        "https://feeds.example.net/a.html",
        None,
        "https://Example.org/c",
    ]
    assert any("1 entry links are not absolute http(s) URLs" in w for w in feed.warnings)


def test_html_page_gets_a_clear_error() -> None:
    page = b"<!doctype html><html lang=en><head><title>Shop</title></head><body>hi</body></html>"
    with pytest.raises(ParseError, match="the document is an HTML page"):
        parse_feed(page, source="https://example.org/")


@pytest.mark.parametrize("body", [b"", b"   \n\t ", b"\xef\xbb\xbf  \n"])
def test_empty_bodies(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty body"):
        parse_feed(body, source="empty")


def test_json_that_is_not_an_object() -> None:
    with pytest.raises(ParseError, match="JSON document is a list"):
        parse_feed(b"[1, 2]", source="list.json")


def test_deeply_nested_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_feed(b"[" * 100_000 + b"]" * 100_000, source="deep.json")


_FEEDISH = st.sampled_from(
    [
        b"<rss",
        b"<channel>",
        b"<item>",
        b"</item>",
        b"<title>",
        b"&amp;",
        b"&bogus;",
        b"<![CDATA[",
        b"]]>",
        b'{"version":"https://jsonfeed.org/version/1","items":[',
        b"\x1f\x8b",
        b"\xef\xbb\xbf",
        b"<feed>",
        b'<?xml version="1.0" encoding="gb2312"?>',
        b"<entry>",
        b"<link href='x'/>",
        b'"',
        b"}",
        b"]",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_FEEDISH, st.binary(max_size=20)), max_size=25).map(b"".join))
def test_any_bytes_give_a_feed_or_a_parse_error(data: bytes) -> None:
    try:
        feed = parse_feed(data, source="fuzz")
    except ParseError as exc:
        assert exc.source == "fuzz" and exc.message
    else:
        assert all(isinstance(e.title, str) for e in feed.entries)
