"""The lxml fast path: its gate, and its agreement with feedparser per field on real and generated feeds.

The agreement is measured on the documents the gate lets through (for the others both paths are feedparser);
`pytest -s` prints the figures. The golden feeds run through both paths in tests/test_parse_golden.py.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.parse._body import gunzip_if_compressed, sniff_format, strip_leading_whitespace
from monitor.parse._fast import read_plain_rss

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
BENCH = Path(__file__).resolve().parents[1] / "bench"
FIELDS = ("guid", "link", "title", "summary", "content", "published", "updated", "categories", "author")
KEY_FIELDS = ("guid", "link", "title", "published")


def _agreement(documents: dict[str, bytes]) -> tuple[int, Counter[str], Counter[str], list[str]]:
    """(documents taken by the fast path, agreeing entries per field, entries per field, differences)."""
    taken = 0
    agree: Counter[str] = Counter()
    total: Counter[str] = Counter()
    differences: list[str] = []
    for name, data in documents.items():
        body = strip_leading_whitespace(gunzip_if_compressed(data, source=name, warnings=[]), warnings=[])
        if (
            sniff_format(body, None) == "json"
            or read_plain_rss(body, content_type=None, base_url=None, warnings=[]) is None
        ):
            continue
        taken += 1
        try:
            slow = parse_feed(data, source=name, fast_path=False)
        except ParseError as exc:
            differences.append(f"{name}: feedparser refuses it ({exc.message}), the fast path reads it")
            continue
        fast = parse_feed(data, source=name)
        for field in ("title", "link", "language", "warnings"):
            if getattr(slow, field) != getattr(fast, field):
                differences.append(
                    f"{name}: feed {field} {getattr(slow, field)!r} != {getattr(fast, field)!r}"
                )
        if len(slow.entries) != len(fast.entries):
            differences.append(f"{name}: {len(slow.entries)} entries != {len(fast.entries)}")
            continue
        for a, b in zip(slow.entries, fast.entries, strict=True):
            for field in FIELDS:
                total[field] += 1
                if getattr(a, field) == getattr(b, field):
                    agree[field] += 1
                else:
                    differences.append(
                        f"{name}: {field} {getattr(a, field)!r:.80} != {getattr(b, field)!r:.80}"
                    )
    return taken, agree, total, differences


def _report(label: str, taken: int, of: int, agree: Counter[str], total: Counter[str]) -> None:
    shares = ", ".join(f"{f} {agree[f] / total[f]:.2%}" for f in FIELDS if total[f])
    print(
        f"\n{label}: fast path took {taken} of {of} XML documents, {total['guid']} entries; agreement {shares}"
    )


def test_the_fast_path_agrees_with_feedparser_per_field_on_the_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"feed corpus not found at {CORPUS} (it lives in ../shared beside the worktree)")
    documents = {
        p.name: p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.is_file() and p.suffix != ".md"
    }
    taken, agree, total, differences = _agreement(documents)
    xml = sum(
        1
        for data in documents.values()
        if sniff_format(gunzip_if_compressed(data, source="", warnings=[]).lstrip(), None) == "xml"
    )
    _report("corpus", taken, xml, agree, total)
    assert taken >= 10, "the gate refuses nearly every real feed"
    for field in KEY_FIELDS:
        assert agree[field] >= 0.995 * total[field], (field, differences[:20])
    assert not [d for d in differences if "feed " in d or "entries" in d or "refuses" in d], differences[:20]


def test_the_fast_path_takes_and_agrees_on_every_generated_benchmark_feed() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from feedfarm import render_feed
    finally:
        sys.path.remove(str(BENCH))
    documents = {f"feed{n}": render_feed(n, 49 + 5 * (n % 3)) for n in range(30)}
    taken, agree, total, differences = _agreement(documents)
    _report("generated", taken, len(documents), agree, total)
    assert taken == len(documents)
    assert differences == []
    assert total["guid"] == 30 * 50


RSS_ITEM = "<item><guid>https://example.org/a</guid><title>A</title></item>"


def _rss(
    channel: str = "", item: str = RSS_ITEM, head: str = '<?xml version="1.0" encoding="utf-8"?>'
) -> bytes:
    return f'{head}<rss version="2.0"><channel><title>T</title>{channel}{item}</channel></rss>'.encode()


@pytest.mark.parametrize(
    ("label", "document", "content_type"),
    [
        ("plain", _rss(), None),
        ("windows-1252 declared", _rss(head='<?xml version="1.0" encoding="windows-1252"?>'), None),
        ("latin-1 charset", _rss(), "application/rss+xml; charset=iso-8859-1"),
        ("html content type", _rss(), "text/html; charset=utf-8"),
        ("not well-formed", _rss(item="<item><title>A &nbsp; B</title></item>"), None),
        ("unclosed", _rss()[:-20], None),
        ("doctype", _rss(head='<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY e "x">]>'), None),
        ("xml:base", _rss(item='<item xml:base="https://b.example/"><link>a</link></item>'), None),
        (
            "dc:date",
            _rss(item='<item xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:date>2026</dc:date></item>'),
            None,
        ),
        ("two titles", _rss(item="<item><title>A</title><title>B</title></item>"), None),
        ("markup in a title", _rss(item="<item><title>A <b>B</b></title></item>"), None),
        (
            "atom alternate link",
            _rss(channel='<link xmlns="http://www.w3.org/2005/Atom" href="https://x.example/"/>'),
            None,
        ),
        ("rss 0.91", _rss().replace(b'version="2.0"', b'version="0.91"'), None),
        (
            "description after content",
            _rss(
                item='<item xmlns:content="http://purl.org/rss/1.0/modules/content/"><content:encoded>c</content:encoded><description>d</description></item>'
            ),
            None,
        ),
    ],
)
def test_the_gate(label: str, document: bytes, content_type: str | None) -> None:
    taken = read_plain_rss(document, content_type=content_type, base_url=None, warnings=[]) is not None
    assert taken == (label == "plain")
    # Refused or not, parse_feed reads it the same way feedparser alone does (or refuses it the same way).
    try:
        slow = parse_feed(document, source=label, content_type=content_type, fast_path=False)
    except ParseError as exc:
        with pytest.raises(ParseError) as caught:
            parse_feed(document, source=label, content_type=content_type)
        assert caught.value.message == exc.message
        return
    assert parse_feed(document, source=label, content_type=content_type) == slow


def test_relative_links_permalink_guids_and_authors_as_feedparser_reads_them() -> None:
    item = (
        "<item><guid>/p/1</guid><title>Tips &amp;amp; Tricks</title><author>jo@example.org (Jo Doe)</author>"
        "<pubDate>Mon, 30 Nov 2026 06:00:00 +0100</pubDate><description>&lt;p&gt;Hi&lt;/p&gt;</description>"
        "<category>a</category><category>A</category></item>"
        '<item><guid isPermaLink="false">x</guid><link>/q?a=1&amp;amp;b=2</link><title>Q</title></item>'
    )
    document = _rss(item=item)
    fast = parse_feed(document, source="t", base_url="https://example.org/feed.xml")
    assert fast == parse_feed(document, source="t", base_url="https://example.org/feed.xml", fast_path=False)
    first, second = fast.entries
    assert (first.guid, first.link) == ("https://example.org/p/1", "https://example.org/p/1")
    assert (first.title, first.author, first.categories) == ("Tips & Tricks", "Jo Doe", ("a",))
    assert first.published is not None and first.published.isoformat() == "2026-11-30T05:00:00+00:00"
    assert (second.guid, second.link) == ("x", "https://example.org/q?a=1&b=2")
