"""The text cleaning and checks of story clustering, one test per general cause the blind syndication sets
exposed (tests/test_stories_blind.py scores the sets themselves): datelines and agency credits, headline kickers,
markup leftovers, figures that tell template twins apart, containment of short copies, signature versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.identify import content_hash
from monitor.stories import (
    _SIGNATURE_VERSION,
    StoredSignature,
    StoryIndex,
    clean_summary,
    clean_title,
    figures,
    figures_conflict,
    shingles,
)

# -- the general causes the blind sets exposed, one by one -------------------------------------------------------

BODY = "The central bank kept its key rate at 21 percent and said inflation was slowing faster than expected."


@pytest.mark.parametrize(
    "dateline",
    [
        "MOSCOW (Reuters) - ",
        "FRANKFURT/MAIN (dpa) - ",
        "YANGON, Myanmar (AP) \u2014 ",
        "PERTH, Australia, April 7, 2025 /PRNewswire/ -- ",
        "МУРМАНСК, 7 апреля. /ТАСС/. ",
        "МОСКВА, 7 апр \u2014 РИА Новости. ",
        "Hanau, 7. April 2025 \u2013 ",
        "Москва. 7 апреля. INTERFAX.RU - ",
        "(dpa) - ",
    ],
)
def test_wire_datelines_are_not_shingled(dateline: str) -> None:
    assert clean_summary(dateline + BODY) == BODY
    assert shingles("Rate unchanged", dateline + BODY) == shingles("Rate unchanged", BODY)


def test_a_dateline_keeps_the_sentence_after_it() -> None:
    # The agency part of "CITY, date — Agency." is capitalized words only: a sentence after the dash is kept.
    assert (
        clean_summary("Berlin, 7. April \u2013 die Regierung sagte nichts.") == "die Regierung sagte nichts."
    )
    assert clean_summary("МОСКВА, 7 апр \u2014 Кремль ответил. Подробности позже.") == (
        "Кремль ответил. Подробности позже."
    )
    assert clean_summary(BODY) == BODY
    # Slashes of dates and links are not an agency credit.
    for text in ("Prices rose on 7/4/2025 after the report.", "Read it at https://example.com/a/b today."):
        assert clean_summary(text) == text


def test_markup_leftovers_and_headline_kickers_are_not_shingled() -> None:
    assert clean_summary("<p>Prices rose.&nbsp;Traders cheered.</p>").split() == [
        "Prices",
        "rose.",
        "Traders",
        "cheered.",
    ]
    assert clean_title("&lt;b&gt;Lynas&lt;/b&gt; starts output") == " Lynas  starts output"
    assert clean_title("UPDATE 2-Lynas starts output") == "Lynas starts output"
    assert clean_title("ROHSTOFFE: Ölpreise geben nach") == "Ölpreise geben nach"
    assert clean_title("EU and NATO: a new pact") == "EU and NATO: a new pact"  # not at the start


def test_figures_ignore_separators_single_digits_and_years() -> None:
    assert figures("UPDATE 1-Toll rises to 3,500", "Since 2022, 12.5 percent; 3 500 people") == {
        "3500",
        "125",
    }
    assert figures("Toll 3.500", "") == figures("Toll 3 500", "") == {"3500"}


def test_conflicting_figures_need_figures_on_both_sides() -> None:
    monday, tuesday = frozenset({"412000", "166", "69"}), frozenset({"409500", "166", "692"})
    assert figures_conflict(monday, tuesday)
    assert not figures_conflict(monday, frozenset({"412000"}))  # a truncated copy keeps a subset
    assert not figures_conflict(monday, monday | {"9"})  # an extended copy adds some
    assert not figures_conflict(monday, frozenset())  # no figures: no evidence either way


T0 = datetime(2025, 4, 7, 9, 0, tzinfo=UTC)
REPORT = (
    "Neodymium oxide was quoted at {price} yuan a tonne on {day}, while dysprosium oxide held at {dy} million yuan. "
    "Traders cited thin volumes ahead of new export licensing rules and said buyers were waiting for clarity."
)


def _assign(index: StoryIndex, key: str, title: str, summary: str, source: str) -> str:
    return index.assign(
        item_key=key,
        title=title,
        summary=summary,
        url=None,
        content_hash=content_hash(title, summary),
        published=T0,
        source=source,
    ).story_id


def test_one_template_with_other_figures_is_another_story() -> None:
    index = StoryIndex()
    monday = REPORT.format(price="412,000", day="the day", dy="1.66")
    tuesday = REPORT.format(price="409,500", day="the day", dy="1.71")
    assert _assign(index, "a", "Rare earth prices", monday, "feed-a") != _assign(
        index, "b", "Rare earth prices", tuesday, "feed-b"
    )
    # The same report with the same figures under another headline is one story.
    assert (
        _assign(index, "c", "NdPr steady", monday, "feed-c")
        == index.assign(item_key="a", title="", summary="", url=None, content_hash="", published=T0).story_id
    )


LONG = (
    "Kirill Dmitriev, the head of Russia's sovereign wealth fund, arrived in Washington on Monday for talks with "
    "members of the administration, the first visit by a senior Russian official since 2022."
)


@pytest.mark.parametrize(
    ("title", "summary"),
    [
        ("Kremlin envoy Dmitriev arrives in Washington", ""),  # a headline alone: 5 shingles
        (
            "Dmitriev arrives in Washington",
            "Kirill Dmitriev, the head of Russia's sovereign wealth fund, arrived.",
        ),
    ],
)
def test_a_short_copy_inside_a_long_one_joins_it(title: str, summary: str) -> None:
    index = StoryIndex()
    first = _assign(index, "long", "Kremlin envoy Dmitriev arrives in Washington for talks", LONG, "wire")
    for n in range(40):  # unrelated stories in between, so the probe has to find the right row
        _assign(
            index,
            f"other{n}",
            f"Harvest report number {n} from the plains",
            f"Farmers in region {n} sow early.",
            "x",
        )
    assert _assign(index, "short", title, summary, "portal") == first


@pytest.mark.parametrize(
    "title",
    [
        "Dmitriev says sanctions relief was not discussed in Washington",
        "Kremlin envoy Dmitriev arrives in Riyadh for talks",  # one place changed: another event
    ],
)
def test_a_short_headline_sharing_only_some_words_stays_apart(title: str) -> None:
    index = StoryIndex()
    first = _assign(index, "long", "Kremlin envoy Dmitriev arrives in Washington for talks", LONG, "wire")
    assert _assign(index, "short", title, "", "portal") != first


def test_a_short_text_that_is_a_small_part_of_a_long_post_stays_apart() -> None:
    # The headline's 8 word pairs all occur in the post, but they are a twentieth of it: common phrases, not a copy.
    index = StoryIndex()
    post = (
        "Hi everyone, I am building a small home server and a lot of people told me that the parts are in short "
        "supply. I don't want to be in a situation where the board is dead on arrival, so which vendor would you "
        "pick? My budget is small, the case is a 1U chassis, the drives are old, and I would like to run a media "
        "server, a backup job and a game server for a few friends without noise at night. Last year my old tower "
        "died during a heat wave and took two disks with it, which is why redundancy matters more to me than "
        "speed. Any advice on power supplies, fans and a quiet switch for a cupboard under the stairs is welcome, "
        "as are stories of what went wrong when you tried something similar in a flat with thin walls."
    )
    first = _assign(index, "post", "Is this hardware enough for a home server?", post, "forum")
    assert _assign(index, "short", "I don't want to be in a situation", "", "blog") != first


def test_version_1_signatures_are_recomputed_on_load() -> None:
    index = StoryIndex()
    _assign(index, "k", "Kremlin envoy Dmitriev arrives in Washington for talks", LONG, "wire")
    blob = bytearray(index.signature("k"))
    assert blob[2] == _SIGNATURE_VERSION  # the current version
    blob[2] = 1
    restarted = StoryIndex()
    restarted.load(
        [
            StoredSignature(
                "k",
                "st_x",
                bytes(blob),
                T0,
                None,
                "h",
                "Kremlin envoy Dmitriev arrives in Washington for talks",
                LONG,
            )
        ]
    )
    assert restarted.signature("k") == index.signature("k")
