"""One bad entry never costs the feed: lone surrogates, huge JSON numbers and broken entries beside good ones."""

from __future__ import annotations

import json

from monitor.parse import parse_feed

JSON_FEED = "https://jsonfeed.org/version/1.1"


def json_feed(*items: str) -> bytes:
    return ('{"version":"' + JSON_FEED + '","title":"t","items":[' + ",".join(items) + "]}").encode()


def assert_encodable(feed: object) -> None:
    """Every text field can be written as UTF-8 (the store, the payload and the mail all need that)."""
    for entry in feed.entries:  # type: ignore[attr-defined]
        for value in (entry.guid, entry.link, entry.title, entry.summary, entry.content, entry.author):
            if value is not None:
                value.encode("utf-8")
        for category in entry.categories:
            category.encode("utf-8")


def test_a_lone_surrogate_in_json_is_replaced() -> None:
    feed = parse_feed(
        json_feed('{"id":"1","title":"a\\ud800b","summary":"x\\udfffy"}', '{"id":"2","title":"ok"}'),
        source="s",
    )
    assert [e.title for e in feed.entries] == ["a\ufffdb", "ok"]
    assert feed.entries[0].summary == "x\ufffdy"
    assert_encodable(feed)


def test_a_lone_surrogate_character_reference_in_xml_is_replaced_not_fatal() -> None:
    data = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a&#xD800;b</title><guid>1</guid><description>c&#56320;d</description></item>"
        b"<item><title>ok</title><guid>2</guid></item></channel></rss>"
    )
    feed = parse_feed(data, source="s")
    assert [e.title for e in feed.entries] == ["a\ufffdb", "ok"]
    assert feed.entries[0].summary == "c\ufffdd"
    assert_encodable(feed)


def test_surrogate_bytes_in_utf8_xml_do_not_cost_the_feed() -> None:
    data = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a\xed\xa0\x80b</title><guid>1</guid></item>"
        b"<item><title>\xc3\xbcber</title><guid>2</guid></item></channel></rss>"
    )
    feed = parse_feed(data, source="s")
    assert len(feed.entries) == 2
    assert_encodable(feed)


def test_a_json_number_over_4300_digits_is_a_warning_not_a_value_error() -> None:
    huge = "9" * 5000
    feed = parse_feed(
        json_feed('{"id":' + huge + ',"title":"bad id"}', '{"id":"2","title":"ok","x":' + huge + "}"),
        source="s",
    )
    assert [e.title for e in feed.entries] == ["bad id", "ok"]
    assert feed.entries[0].guid is None
    assert any("4300 digits" in w for w in feed.warnings), feed.warnings


def test_an_item_that_cannot_be_read_is_skipped_and_its_neighbours_kept() -> None:
    # Values of the wrong JSON type in every field: the item yields what it can, or is skipped with a warning.
    odd = json.dumps(
        {
            "id": {"a": 1},
            "title": ["x"],
            "url": 5,
            "tags": "not a list",
            "authors": {"name": "x"},
            "date_published": [],
            "content_html": {},
        }
    )
    feed = parse_feed(json_feed(odd, '{"id":"2","title":"ok"}'), source="s")
    assert [e.title for e in feed.entries][-1] == "ok"
