"""The per-feed language memory (monitor.feedlanguage): weak detections take the feed's language, a single
confident item in another language keeps its own and does not move the feed, memory decays so a feed that
changes language follows, and a re-polled item counts once."""

from __future__ import annotations

from monitor.feedlanguage import FeedLanguages
from monitor.normalize import normalize_entries
from monitor.text import detect_language, language_evidence
from monitor.types import Entry, ParsedFeed

FEED = "https://zeitung.example/feed.xml"
GERMAN = [
    "Die Regierung hat sich nach langen Verhandlungen auf einen Haushalt geeinigt",
    "Bundestag stimmt für neues Gesetz zur Förderung der Windenergie",
    "Verhandlungen in Genf sind am Abend ohne Ergebnis abgebrochen worden",
    "Die Inflation ist im November leicht gesunken, teilte das Statistische Bundesamt mit",
]
# Alone, these short German headlines are detected as English (weakly).
WEAK_GERMAN = ["Dmitrijew in Miami", "Trump in Tokio"]
ENGLISH = "The government said on Monday that it will publish the new budget plan next week"


def test_the_short_headlines_are_weak_english_on_their_own() -> None:
    for title in WEAK_GERMAN:
        language, evidence = language_evidence(title)
        assert language == "en" and evidence < 10, title


def test_a_weak_item_takes_the_language_of_its_feed() -> None:
    memory = FeedLanguages()
    for index, title in enumerate(GERMAN):
        assert memory.language_of(FEED, f"k{index}", title) == "de"
    assert memory.feed_language(FEED) == "de"
    for title in WEAK_GERMAN:
        assert memory.language_of(FEED, title, title) == "de"
    # Another feed has no memory yet: the item's own detection stands.
    assert memory.language_of("https://other.example/feed", "x", WEAK_GERMAN[0]) == "en"


def test_one_confident_item_keeps_its_language_and_does_not_move_the_feed() -> None:
    memory = FeedLanguages()
    for index, title in enumerate(GERMAN * 3):
        memory.language_of(FEED, f"k{index}", title)
    assert memory.language_of(FEED, "press-release", ENGLISH) == "en"
    assert memory.feed_language(FEED) == "de"
    assert memory.language_of(FEED, "weak", WEAK_GERMAN[1]) == "de"


def test_a_feed_that_changes_language_is_followed_after_some_items() -> None:
    memory = FeedLanguages()
    for index, title in enumerate(GERMAN * 3):
        memory.language_of(FEED, f"de{index}", title)
    flipped_after = None
    for count in range(1, 40):
        memory.language_of(FEED, f"en{count}", f"{ENGLISH} ({count})")
        if memory.feed_language(FEED) == "en":
            flipped_after = count
            break
    # 1 - 0.9**k >= 0.75 from a saturated feed: k = 14 (module doc).
    assert flipped_after is not None and 10 <= flipped_after <= 16


def test_a_repolled_item_keeps_its_language_and_counts_once() -> None:
    memory = FeedLanguages()
    memory.language_of(FEED, "same", ENGLISH)
    for _ in range(20):
        assert memory.language_of(FEED, "same", GERMAN[0]) == "en"  # remembered, not detected again
    assert memory.feed_language(FEED) is None  # one item is not yet a feed language


def test_normalization_uses_the_memory_across_polls() -> None:
    memory = FeedLanguages()
    first = ParsedFeed(
        title="Zeitung", entries=tuple(Entry(guid=f"g{i}", title=t) for i, t in enumerate(GERMAN))
    )
    second = ParsedFeed(title="Zeitung", entries=(Entry(guid="weak", title=WEAK_GERMAN[0]),))
    assert {item.language for item in normalize_entries(first, feed_url=FEED, feed_languages=memory)} == {
        "de"
    }
    (item,) = normalize_entries(second, feed_url=FEED, feed_languages=memory)
    assert item.language == "de"
    # Without the memory the same entry is detected on its own, and the declared language always wins.
    (alone,) = normalize_entries(second, feed_url=FEED)
    assert alone.language == detect_language(WEAK_GERMAN[0]) == "en"
    declared = ParsedFeed(title="Zeitung", language="en-GB", entries=second.entries)
    (item,) = normalize_entries(declared, feed_url=FEED, feed_languages=memory)
    assert item.language == "en"
