"""StoryIndex behaviour (hash/URL/near-duplicate rules, window, persistence, expiry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.identify import canonical_url, content_hash, item_key
from monitor.stories import StoredSignature, StoryIndex, shingles, story_id_for

T0 = datetime(2025, 4, 4, 8, 0, tzinfo=UTC)
TITLE = "Beijing adds seven rare earth elements to its export control list"
SUMMARY = (
    "The commerce ministry said exporters of samarium, gadolinium, terbium and dysprosium need a licence "
    "from Friday, a step analysts read as a reply to the latest round of tariffs."
)


def assign(index: StoryIndex, key: str, title: str = TITLE, summary: str = SUMMARY, **kw: object):  # type: ignore[no-untyped-def]
    link = kw.pop("link", None)
    assert link is None or isinstance(link, str)
    published = kw.pop("published", T0)
    assert isinstance(published, datetime)
    source = kw.pop("source", None)
    assert source is None or isinstance(source, str)
    return index.assign(
        item_key=key,
        title=title,
        summary=summary,
        url=canonical_url(link),
        content_hash=content_hash(title, summary),
        published=published,
        source=source,
    )


def test_shingles_fold_case_accents_and_cut_unspaced_scripts() -> None:
    assert shingles("Ёлка в Москве", "") == shingles("елка В МОСКВЕ", "")
    assert shingles("Café crème", "") == {"cafe creme"}
    assert shingles("稀土出口", "") == {"稀土 土出", "土出 出口"}  # overlapping character bigrams
    assert shingles("One", "") == {"one"}
    assert shingles("", "") == set()
    assert "a b" not in shingles("x a", "b y")  # no shingle spans title and summary


def test_first_item_opens_a_story_with_a_deterministic_id() -> None:
    first = assign(StoryIndex(), "k1")
    assert first.is_new_story and first.story_id == story_id_for("k1") and first.reason == "new"
    assert assign(StoryIndex(), "k1").story_id == first.story_id


def test_copy_hash_url_and_near_duplicate_join_the_story() -> None:
    index = StoryIndex()
    first = assign(index, "k1", link="https://a.example/news/rare-earths")
    copy = assign(index, "k2", TITLE.upper() + "!", SUMMARY, link="https://b.example/x")
    assert (copy.story_id, copy.reason, copy.matched_item_key) == (first.story_id, "hash", "k1")
    updated = assign(
        index,
        "k3",
        "Update: China widens its export curbs",
        SUMMARY.replace("Friday", "today"),
        link="https://a.example/news/rare-earths?utm_source=x",
    )
    assert (updated.story_id, updated.reason) == (first.story_id, "url")
    reused = assign(
        index,
        "k5",
        "Storm closes ports along the northern coast",
        "Ferries stopped running as winds reached 120 km/h, the coast guard said.",
        link="https://a.example/news/rare-earths",
    )
    assert reused.is_new_story  # a URL reused for an unrelated text is no evidence
    retitled = assign(
        index, "k4", "Rare earths: China turns the screw", SUMMARY + " Shares of magnet makers rose."
    )
    assert retitled.story_id == first.story_id and retitled.reason == "similar"
    assert 0.3 < retitled.similarity < 1.0 and not retitled.is_new_story


def test_reassigning_a_key_returns_its_story() -> None:
    index = StoryIndex()
    first = assign(index, "k1")
    again = assign(index, "k1", "other", "text entirely different from before, really")
    assert (again.story_id, again.is_new_story, again.reason) == (first.story_id, True, "known")
    assert len(index) == 1


def test_distinct_story_on_the_same_topic_stays_apart() -> None:
    index = StoryIndex()
    first = assign(index, "k1")
    other = assign(
        index,
        "k2",
        "Rare earth magnet plant opens in Texas",
        "The first US factory for neodymium magnets produced its first batch on Friday, "
        "the company said, amid Chinese export controls on rare earth elements.",
    )
    assert other.is_new_story and other.story_id != first.story_id


def test_the_window_bounds_a_story() -> None:
    index = StoryIndex(window=timedelta(hours=72))
    first = assign(index, "k1")
    assert assign(index, "k2", published=T0 + timedelta(hours=71)).story_id == first.story_id
    late = assign(index, "k3", published=T0 + timedelta(hours=100))
    assert late.story_id in (first.story_id, story_id_for("k3"))  # may join k2 (71 h), never k1 alone
    much_later = assign(index, "k4", published=T0 + timedelta(days=30))
    assert much_later.is_new_story


def test_short_texts_cluster_only_by_url() -> None:
    index = StoryIndex()
    a = assign(index, "k1", "Live updates", "", link="https://a.example/live/1")
    b = assign(index, "k2", "Live updates", "", link="https://b.example/live/2")
    assert b.is_new_story and b.story_id != a.story_id
    c = assign(index, "k3", "Live", "", link="https://a.example/live/1?utm_medium=rss")
    assert c.story_id == a.story_id and c.reason == "url"


def test_front_page_links_do_not_merge_items() -> None:
    index = StoryIndex()
    a = assign(index, "k1", link="https://news.example/")
    b = assign(
        index,
        "k2",
        "Storm closes ports along the northern coast",
        "Ferries stopped running on Friday as winds reached 120 km/h, the coast guard said.",
        link="https://news.example",
    )
    assert b.story_id != a.story_id


def test_items_of_one_feed_need_near_identical_text() -> None:
    footer = (
        " Subscribe to our newsletter to get the sanctions tracker, our analysis of the economy and "
        "the latest news in your inbox every week."
    )
    index = StoryIndex()
    a = assign(
        index, "k1", "Sanctions tracker, week 14", "Three shipping firms were listed." + footer, source="f"
    )
    b = assign(
        index, "k2", "Ruble outlook for April", "The key rate was kept unchanged." + footer, source="f"
    )
    assert b.story_id != a.story_id
    c = assign(
        index, "k3", "Ruble outlook for April", "The key rate was kept unchanged." + footer, source="g"
    )
    assert c.story_id == b.story_id


def test_guid_churn_keeps_one_story() -> None:
    """A feed that mints a new guid on every fetch: new item keys, but the content hash folds them."""
    index = StoryIndex()
    feed = "https://churn.example/feed.xml"
    keys = {item_key(feed, f"urn:uuid:{n}", None, TITLE, SUMMARY) for n in range(3)}
    assert len(keys) == 3
    stories = {
        assign(index, key, published=T0 + timedelta(minutes=10 * n)).story_id
        for n, key in enumerate(sorted(keys))
    }
    assert len(stories) == 1


def test_signatures_survive_a_restart() -> None:
    before = StoryIndex()
    first = assign(before, "k1", link="https://a.example/news/rare-earths")
    short = assign(before, "k2", "Live updates", "", link="https://a.example/live")
    rows = [
        StoredSignature(key, assignment.story_id, before.signature(key), T0, url, content_hash(t, s), t, s)
        for key, assignment, url, t, s in (
            ("k1", first, "https://a.example/news/rare-earths", TITLE, SUMMARY),
            ("k2", short, "https://a.example/live", "Live updates", ""),
        )
    ]
    after = StoryIndex()
    assert after.load(rows) == 2 and after.load(rows) == 0
    assert after.signature("k1") == before.signature("k1")
    retitled = assign(after, "k3", "Rare earths: China turns the screw", SUMMARY)
    assert retitled.story_id == first.story_id
    assert assign(after, "k4", "Live updates", "").is_new_story  # still too short to match by text


def test_load_accepts_store_rows_and_recomputes_unusable_signatures() -> None:
    rows = [
        {
            "item_key": "k1",
            "story_id": "st_x",
            "signature": None,
            "published": T0,
            "url": None,
            "content_hash": content_hash(TITLE, SUMMARY),
            "title": TITLE,
            "summary": SUMMARY,
        },
        {
            "item_key": "k2",
            "story_id": "st_y",
            "signature": b"garbage",
            "published": T0,
            "url": None,
            "content_hash": "v1:zz",
            "title": "Another thing happened somewhere far away",
            "summary": "",
        },
    ]
    index = StoryIndex()
    assert index.load(rows) == 2
    assert assign(index, "k3", "New headline on the rare earth curbs", SUMMARY).story_id == "st_x"
    assert index.signature("k2").startswith(b"SM")


def test_expire_forgets_old_items() -> None:
    index = StoryIndex()
    assign(index, "k1", published=T0)
    other = "Storm closes ports along the northern coast after winds reach hurricane strength"
    assign(index, "k2", other, "", published=T0 + timedelta(hours=10))
    assert index.expire(T0 + timedelta(hours=1)) == 1
    assert "k1" not in index and "k2" in index and len(index) == 1
    with pytest.raises(KeyError, match="k1"):
        index.signature("k1")
    assert assign(index, "k3", published=T0 + timedelta(hours=2)).is_new_story
    assert index.expire(T0 + timedelta(days=9)) == 2 and len(index) == 0


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        StoryIndex(threshold=0)
    with pytest.raises(ValueError, match="bands"):
        StoryIndex(num_perm=16, bands=20, rows=2)
