"""Every real feed in ../shared/corpus/feeds/ gives entries or a clear ParseError, never another exception.

The corpus holds publishers' documents collected by other projects; they are read from ../shared, never
copied here. Besides the blanket run, specific facts are checked on files chosen for one quirk each.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.types import ParsedFeed
from tests.conftest import SHARED

CORPUS = SHARED / "corpus" / "feeds"
CORPUS_FILES = sorted(p.name for p in CORPUS.glob("*") if p.name != "SOURCES.md") if CORPUS.is_dir() else []

# The corpus files that are no readable feed, and the reason each one must give.
EXPECTED_ERRORS = {
    "Ranchero-Software__NetNewsWire__allthis-truncated.json": "the document looks truncated",
}


@pytest.fixture(scope="module")
def corpus(shared_dir: Path) -> Path:
    folder = shared_dir / "corpus" / "feeds"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def parse(corpus: Path, name: str) -> ParsedFeed:
    return parse_feed((corpus / name).read_bytes(), source=name)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_file_gives_entries_or_a_parse_error(corpus: Path, name: str) -> None:
    if name in EXPECTED_ERRORS:
        with pytest.raises(ParseError) as caught:
            parse(corpus, name)
        assert EXPECTED_ERRORS[name] in caught.value.message
        assert caught.value.source == name
        return
    feed = parse(corpus, name)
    assert feed.entries, f"{name}: no entries (warnings: {feed.warnings})"
    for entry in feed.entries:
        for moment in (entry.published, entry.updated):
            assert moment is None or moment.utcoffset() == timedelta(0), (name, moment)
        if entry.link is not None:
            parts = urlsplit(entry.link)
            assert parts.scheme in ("http", "https") and parts.netloc, (name, entry.link)
        assert "\ufffd" not in entry.title + entry.summary + entry.content, (name, entry.title)
        assert "<![CDATA[" not in entry.summary + entry.content, (name, entry.title)
        assert entry.title == " ".join(entry.title.split()), "titles are one line"
        assert entry.language is None or entry.language == entry.language.lower()
        assert len(set(c.casefold() for c in entry.categories)) == len(entry.categories)
    assert feed.language is None or re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", feed.language), feed.language


def test_corpus_is_present_and_mostly_readable(corpus: Path) -> None:
    assert len(CORPUS_FILES) >= 90
    assert set(EXPECTED_ERRORS) <= set(CORPUS_FILES)


def _script_share(text: str, script: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(script in unicodedata.name(c, "") for c in letters) / max(len(letters), 1)


def test_windows_1251_decodes_to_cyrillic(corpus: Path) -> None:
    feed = parse(corpus, "danmactough__node-feedparser__oren-ru-windows1251.xml")
    assert len(feed.entries) == 10
    assert feed.title and _script_share(feed.title, "CYRILLIC") > 0.9
    assert all(_script_share(e.title, "CYRILLIC") > 0.8 for e in feed.entries)
    assert feed.warnings == ()


@pytest.mark.parametrize(
    "name",
    ["rbren__rss-parser__qq-news-gb2312.xml", "Ranchero-Software__NetNewsWire__kc0011-forum-gb2312.rss"],
)
def test_gb2312_decodes_to_chinese(corpus: Path, name: str) -> None:
    feed = parse(corpus, name)
    assert feed.language == "zh-cn"
    assert len(feed.entries) == 20
    titles = "".join(e.title for e in feed.entries)
    assert _script_share(titles, "CJK UNIFIED IDEOGRAPH") > 0.7


def test_latin1_without_prolog_is_read_as_windows_1252_and_says_so(corpus: Path) -> None:
    feed = parse(corpus, "rbren__rss-parser__uol-noticias-noprolog-latin1.rss")
    assert len(feed.entries) == 15
    text = " ".join(e.title + e.summary for e in feed.entries)
    assert re.search("[ãçéõ]", text)
    assert any("parsed as windows-1252" in w for w in feed.warnings)
    # Portuguese day and month names ("Seg, 24 Set 2018") are not RFC 822: counted, not silently lost.
    assert any("entry dates could not be read" in w for w in feed.warnings)


def test_tagesschau_atom_03(corpus: Path) -> None:
    feed = parse(corpus, "feeddeck__feeddeck__tagesschau-atom03.xml")
    assert feed.language == "de"
    assert len(feed.entries) == 2
    first = feed.entries[0]
    assert first.title == "Haushaltskrise: Um wie viele Milliarden es wirklich geht"
    assert first.link == "https://www.tagesschau.de/wirtschaft/haushalt-volumen-100.html"
    assert first.published is not None and first.published.isoformat() == "2023-12-12T14:20:21+00:00"
    # The escaped content wraps its HTML in a literal CDATA section; the text inside is kept, tags are not.
    assert first.content.startswith("Die Spitzen der Ampelkoalition")
    assert "<" not in first.content


@pytest.mark.parametrize(
    "name",
    [
        "feeddeck__feeddeck__tagesschau-rss2.xml",
        "feeddeck__feeddeck__tagesschau-rss10-rdf.xml",
        "feeddeck__feeddeck__googlenews-de-topic.xml",
        "feed-rs__feed-rs__spiegel-update-podcast.xml",
        "spacecowboy__Feeder__golem-de-iso8859.xml",
    ],
)
def test_german_feeds_declare_german(corpus: Path, name: str) -> None:
    feed = parse(corpus, name)
    assert feed.language == "de"
    assert any(re.search("[äöüß]", e.title + e.summary) for e in feed.entries)


def test_json_feed_1_1_in_german(corpus: Path) -> None:
    feed = parse(corpus, "Ranchero-Software__NetNewsWire__fboes-blog-jsonfeed11-de.json")
    assert feed.language == "de-de"
    assert feed.title == "fboës - Der Blog | Startseite"
    assert len(feed.entries) == 20
    first = feed.entries[0]
    assert first.link == "https://journal.3960.org/posts/2020-02-21-lecker-lecker/"
    assert first.author == "Frank Boës"
    assert first.published is not None and first.published.isoformat() == "2020-02-21T17:08:06+00:00"
    assert first.content == "Da ist es zwar nicht ganz billig,\ndafür schmeckt's aber auch nicht."


def test_json_feed_1_1_with_rfc822_dates(corpus: Path) -> None:
    feed = parse(corpus, "feed-rs__feed-rs__influxdata-jsonfeed11.json")
    assert feed.language == "en-us"
    assert feed.warnings == ()  # every date that is there was read
    first, second, third = feed.entries
    assert first.published is not None and first.published.isoformat() == "2019-05-31T19:17:58+00:00"
    assert second.published is not None and second.published.isoformat() == "2018-02-06T13:34:12+00:00"
    assert third.published is None  # this item has no date


def test_json_feed_with_http_version_url_and_escaped_titles(corpus: Path) -> None:
    feed = parse(corpus, "Ranchero-Software__NetNewsWire__pixelenvy-jsonfeed-http-version.json")
    assert len(feed.entries) == 20
    assert not any(re.search(r"&(#\d+|[a-z]+);", e.title) for e in feed.entries)
    assert any("\u2018" in e.title for e in feed.entries)  # &#8216; decoded


def test_rss_in_json(corpus: Path) -> None:
    feed = parse(corpus, "Ranchero-Software__NetNewsWire__scriptingnews-rss-in-json.json")
    assert feed.title == "Scripting News"
    assert feed.language == "en-us"
    assert len(feed.entries) == 50
    assert feed.entries[0].guid == "http://scripting.com/2017/06/26.html#a080605"
    assert all(e.published is not None for e in feed.entries)


def test_gzip_body_is_decompressed_and_reported(corpus: Path) -> None:
    feed = parse(corpus, "danmactough__node-feedparser__nshipster-gzip-body.xml.gz")
    assert len(feed.entries) == 25
    assert any(w.startswith("body was gzip-compressed") for w in feed.warnings)


@pytest.mark.parametrize(
    "name",
    [
        "spacecowboy__Feeder__londonist-huge-leading-newline.xml",
        "feed-rs__feed-rs__ebmpapst-leading-newline.atom",
        "kagisearch__fastfeedparser__kagifeedback-flarum-leading-newline.atom",
    ],
)
def test_whitespace_before_the_prolog_is_removed_so_the_strict_parser_reads_it(
    corpus: Path, name: str
) -> None:
    feed = parse(corpus, name)
    assert any("whitespace before the XML declaration" in w for w in feed.warnings)
    assert not any("not well-formed" in w for w in feed.warnings)


def test_double_escaped_markup_stays_literal_text(corpus: Path) -> None:
    feed = parse(corpus, "spacecowboy__Feeder__jakpsatweb-czech-double-escaped.xml")
    (entry,) = feed.entries
    assert entry.title == "Kajman, O této diskusi: test <pre> in <description> and <b>bold</b> in title"
    assert entry.summary.startswith("Code text in <pre>...\n\nSELECT *")


def test_malformed_xml_is_recovered_with_a_located_warning(corpus: Path) -> None:
    feed = parse(corpus, "spacecowboy__Feeder__guardian-world-news-2022-ukraine.xml")
    assert len(feed.entries) == 54
    assert any(re.search(r"not well-formed at line \d+, column \d+", w) for w in feed.warnings)


def test_stray_empty_items_are_dropped_and_counted(corpus: Path) -> None:
    feed = parse(corpus, "danmactough__node-feedparser__pcmag-dvorak-illegally-nested.xml")
    assert len(feed.entries) == 10
    assert all(e.title and e.link for e in feed.entries)
    assert any("skipped 10 empty entries" in w for w in feed.warnings)


def test_relative_atom_links_resolve_against_the_self_link(corpus: Path) -> None:
    feed = parse(corpus, "danmactough__node-feedparser__intertwingly.atom")
    assert feed.link == "http://intertwingly.net/blog/"
    assert feed.entries[0].link == "http://intertwingly.net/blog/2012/07/16/Inhibiting-Suspend"
    assert feed.entries[0].guid == "tag:intertwingly.net,2004:3299"


def test_huge_podcast_feed_keeps_every_entry_under_the_default_cap(corpus: Path) -> None:
    feed = parse(corpus, "rbren__rss-parser__giantbomb-podcast-huge.rss")
    assert len(feed.entries) == 730
    assert feed.warnings == ()
