"""Event-level story clustering (issue 8): the scores of every labelled set, which fail when they drop; the
blind sets' shape; the confounders; the event features (actors, name skeletons, figures with units); restart.

The thresholds are the scores measured when the event tier was tuned, minus a margin of 0.02 (see
docs/design/stories.md for the before and after tables). The `holdout` stories of tests/data/stories are the
blind part: tuned on their scores only, never on their errors.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import pytest

from monitor.analysis import analyse, analyse_item
from monitor.config import DEFAULT_RULES
from monitor.rules import RuleSet, load_rules
from monitor.stories import StoredSignature, StoryAssignment, StoryIndex, event_features, name_skeleton
from monitor.stories.cleaning import clean_summary, clean_title
from monitor.stories.event import EventIndex
from monitor.stories.features import (
    FIGURE,
    KIND_MASK,
    MEASURE,
    MEASURE_MASK,
    _compound_parts,
    feature_id,
    label_of,
)
from tests.support.story_sets import (
    DATA,
    LabelledItem,
    as_item,
    errors,
    load_set,
    replay,
    replay_assignments,
    score,
    score_events,
    score_subset,
)

MARGIN = 0.02
# Sets whose errors are never printed: the current blind round (docs/design/stories-blind7.md). Round 6's sets
# are fitted since round 7, round 5's since round 6.
STILL_BLIND = {"stories/blind7_rewrites.yaml", "stories/blind7_crosslang.yaml"}


@cache
def _rules() -> RuleSet:
    return load_rules(DEFAULT_RULES)


@cache
def _items(name: str) -> list[LabelledItem]:
    return load_set(DATA / name)


@cache
def _predicted(name: str) -> list[str]:
    return replay(_items(name), StoryIndex(), _rules())


@dataclass(frozen=True)
class Expected:
    name: str
    part: str  # all | fitted | blind
    precision: float
    recall: float
    bcubed_f1: float


# Measured with the event tier's defaults (threshold 0.2, content share 0.5, cross-language evidence 1.5, a
# figure with its unit weighing 1.5 times, the within-language join by cross-language evidence of round 5) and
# round 6's features (docs/design/stories-blind6.md).
EXPECTED = [
    Expected("stories/rewrites.yaml", "all", 1.000, 0.975, 0.990),
    Expected("stories/rewrites.yaml", "fitted", 1.000, 0.984, 0.993),
    Expected("stories/rewrites.yaml", "blind", 1.000, 0.935, 0.978),
    Expected("stories/crosslang.yaml", "all", 1.000, 0.881, 0.958),
    Expected("stories/crosslang.yaml", "fitted", 1.000, 0.901, 0.963),
    Expected("stories/crosslang.yaml", "blind", 1.000, 0.769, 0.933),
    # Blind round 4 (docs/design/stories-blind4.md), fitted since round 5.
    Expected("stories/blind4_rewrites.yaml", "all", 1.000, 0.873, 0.962),
    Expected("stories/blind4_crosslang.yaml", "all", 1.000, 0.864, 0.960),
    # Blind round 5 (docs/design/stories-blind5.md), fitted since round 6; 0.663/0.877 and 0.622/0.860 on main
    # edca973 before round 5's changes.
    Expected("stories/blind5_rewrites.yaml", "all", 1.000, 0.815, 0.935),
    Expected("stories/blind5_crosslang.yaml", "all", 1.000, 0.703, 0.894),
    # Blind round 6 (docs/design/stories-blind6.md), fitted since round 7 (its two en/ru events linked since).
    Expected("stories/blind6_rewrites.yaml", "all", 1.000, 0.300, 0.698),
    Expected("stories/blind6_crosslang.yaml", "all", 1.000, 0.581, 0.834),
    # Blind round 7 (docs/design/stories-blind7.md): every story blind, scored on main 629b208 before any change
    # of round 7.
    Expected("stories/blind7_rewrites.yaml", "blind", 0.758, 0.237, 0.621),
    Expected("stories/blind7_crosslang.yaml", "blind", 0.875, 0.496, 0.775),
    # The syndication sets against their event-level labels (their `events:` lists).
    Expected("syndication/items.yaml", "all", 1.000, 0.664, 0.931),
    Expected("syndication/blind2.yaml", "all", 1.000, 0.810, 0.975),
    Expected("syndication/blind3.yaml", "all", 1.000, 1.000, 1.000),
]


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: f"{e.name}-{e.part}")
def test_event_level_scores_do_not_drop(expected: Expected) -> None:
    items, predicted = _items(expected.name), _predicted(expected.name)
    if expected.part == "all":
        scores = score_events(items, predicted)
    else:
        scores = score_subset(items, predicted, holdout=expected.part == "blind")
    # The errors of blind stories are not shown (a failure prints the fitted part's errors only); those of
    # earlier rounds are, since their errors may be read now (round 7 is the blind one).
    hidden = expected.part == "blind" or expected.name in STILL_BLIND
    shown = [(i, p) for i, p in zip(items, predicted, strict=True) if not (hidden and i.holdout)]
    print(f"\n{expected.name} {expected.part}: {scores.row()}")
    detail = (scores, errors([i for i, _ in shown], [p for _, p in shown]))
    assert scores.pair_precision >= expected.precision - MARGIN, detail
    assert scores.pair_recall >= expected.recall - MARGIN, detail
    assert scores.bcubed_f1 >= expected.bcubed_f1 - MARGIN, detail


def test_the_targets_of_issue_8_hold() -> None:
    rewrites = score_events(_items("stories/rewrites.yaml"), _predicted("stories/rewrites.yaml"))
    crosslang = score_events(_items("stories/crosslang.yaml"), _predicted("stories/crosslang.yaml"))
    assert rewrites.pair_precision >= 0.97
    assert crosslang.pair_precision >= 0.95 and crosslang.pair_recall >= 0.70
    # Rewrites recall: 0.975 measured since round 6 (0.924 after round 5, 0.892 before), the target is 0.90; on
    # unseen text it is not met (docs/design/stories-blind6.md: 0.329 on blind6).
    assert rewrites.pair_recall >= 0.90


# Today's copy-tier scores (main before issue 8): the exact and near-duplicate tiers lose nothing.
COPY_TIERS = {
    "syndication/items.yaml": (1.0, 78 / 80),
    "syndication/blind2.yaml": (1.0, 80 / 85),
    "syndication/blind3.yaml": (1.0, 55 / 57),
}


@pytest.mark.parametrize("name", sorted(COPY_TIERS))
def test_copy_tiers_lose_nothing(name: str) -> None:
    items = _items(name)
    copies = score([i.story for i in items], replay(items, StoryIndex(events=False), _rules()))
    precision, recall = COPY_TIERS[name]
    assert copies.pair_precision >= precision and copies.pair_recall >= recall, copies


@pytest.mark.parametrize("name", ["stories/rewrites.yaml", "stories/crosslang.yaml"])
def test_the_event_tier_only_adds_to_the_copy_tiers(name: str) -> None:
    items = _items(name)
    copies = score_events(items, replay(items, StoryIndex(events=False), _rules()))
    events = score_events(items, _predicted(name))
    assert events.pair_recall > copies.pair_recall + 0.5


def test_rewrites_set_is_shaped_as_issue_8_asks() -> None:
    items = _items("stories/rewrites.yaml")
    assert len(items) >= 120 and len({i.id for i in items}) == len(items)
    assert len({i.story for i in items}) >= 30
    assert set(Counter(i.language for i in items)) == {"de", "en", "ru"}
    assert Counter(i.kind for i in items)["rewrite"] >= 0.4 * len(items)
    languages: dict[str, set[str]] = defaultdict(set)
    for item in items:
        languages[item.story].add(item.language)
    assert all(len(found) == 1 for found in languages.values())  # within one language only


def test_crosslang_set_is_shaped_as_issue_8_asks() -> None:
    items = _items("stories/crosslang.yaml")
    assert len(items) >= 60 and len({i.id for i in items}) == len(items)
    languages: dict[str, set[str]] = defaultdict(set)
    for item in items:
        languages[item.story].add(item.language)
    assert len(languages) >= 15
    assert all(len(found) >= 2 for found in languages.values())


CONFOUNDERS = {
    "stories/rewrites.yaml": [
        ("en-a1", "en-b1"),  # Manturov on one day: magnets, then the MC-21
        ("ru-rb1", "ru-rc1"),  # Novak on one day: oil output, then petrol exports
        ("de-r1", "de-s1"),  # Pistorius on one day: military service, then Eurofighters
        ("en-n1", "en-o1"),  # Trump on one day: India tariffs, then meeting Xi
        ("ru-rm1", "ru-rn1"),  # Putin on one day: the EEF, then Malaysia's prime minister
        ("en-c1", "en-d1"),  # Ukraine guarantees: Washington, then Paris
        ("de-da1", "de-db1"),  # Wadephul: Washington, then Warsaw
        ("ru-rh1", "ru-ri1"),  # a prisoner exchange agreed, then another exchange
        ("en-e1", "en-f1"),  # a metal-rich meteorite, rare-earth metals
        ("de-t1", "de-u1"),
        ("ru-re1", "ru-rf1"),
        ("de-v1", "de-w1"),  # one template, other facts: ifo and ZEW
        ("ru-rk1", "ru-rl1"),  # Sber and VTB results
    ],
    "stories/crosslang.yaml": [
        ("en-x1a", "en-x2a"),  # Putin on one day: the call with Trump, the plutonium law
        ("ru-x1d", "ru-x2c"),
        ("en-x10a", "en-x10d"),  # gold at $4,000, silver at $50
    ],
    "stories/blind4_rewrites.yaml": [
        ("en-t1", "en-u1"),  # Trump on one day: truck tariffs, then reactors
        ("de-g1", "de-h1"),  # Bas on one day: the Grundsicherung, then the pension commission
        ("ru-p1", "ru-q1"),  # Putin on one day: Tokayev, then the budget law
        ("en-x1", "en-y1"),  # frozen Russian assets: Brussels, then the G7 in Toronto
        ("en-v1", "en-w1"),  # a strike and a drone strike
        ("ru-t1", "ru-u1"),  # Severstal the hockey club, Severstal the steelmaker
        ("de-j1", "de-k1"),  # one template, other facts: German and euro-area inflation
        ("ru-r1", "ru-s1"),  # two bond auctions a week apart
    ],
    "stories/blind4_crosslang.yaml": [
        ("en-m1", "en-n2"),  # Dmitriev on one day: Witkoff in Miami, then an Arctic fund
        ("ru-m2", "ru-n1"),
        ("en-p1", "en-q1"),  # Zelensky signing: jets in Paris, then gas in Athens
        ("en-r1", "en-s1"),  # Brent up on Monday, down on Tuesday
    ],
    "stories/blind5_rewrites.yaml": [
        ("en-a1", "en-b1"),  # Trump on one day: the envoy to Moscow, then food tariffs
        ("de-a1", "de-b1"),  # Merz on one day: the pension deal, then hosting Zelensky
        ("ru-a1", "ru-b1"),  # Putin on one day: Bishkek, then the VAT law
        ("en-c1", "en-d1"),  # rare earths on one day: Lynas and the Pentagon, the EU and China in Brussels
        ("en-d1", "en-e1"),  # rare earths: Brussels, then the G7 in Toronto
        ("en-h1", "en-i1"),  # Amazon the cloud, the Amazon rainforest
        ("de-f1", "de-g1"),  # Bayern the club, Bayern the state
        ("ru-g1", "ru-h1"),  # the Soyuz rocket, the Union State
        ("en-f1", "en-g1"),  # one template, other facts: jobless claims a week apart
        ("de-c1", "de-d1"),  # German output, German exports
        ("ru-e1", "ru-f1"),  # weekly inflation a week apart
    ],
    "stories/blind5_crosslang.yaml": [
        ("en-a1", "en-b1"),  # U.S.-Ukrainian talks: Geneva, then Florida
        ("ru-a3", "ru-b2"),
        ("ru-c2", "ru-d1"),  # Dmitriev on one day: Putin's talks with Witkoff, an Indian urea plant
        ("en-h1", "en-i1"),  # Bitcoin below $85,000 on Monday, above $92,000 on Wednesday
    ],
    "stories/blind6_rewrites.yaml": [
        ("en-a1", "en-b1"),  # Putin on one day: Witkoff and Kushner in the Kremlin, then the VTB forum
        ("ru-a1", "ru-b1"),
        ("de-a1", "de-b1"),  # the Bundestag on one day: the pension package, then military service
        ("ru-c1", "ru-d1"),  # one day: the Bank of Russia's cut, Putin's year-end phone-in
        ("en-d1", "en-e1"),  # Warner Bros.: Netflix's deal, then Paramount's hostile bid
        ("en-f1", "en-g1"),  # rare earths: the EU's RESourceEU, then China's general licences
        ("de-b1", "de-c1"),  # military service: the Bundestag's vote, the school strike against it
        ("en-h1", "en-i1"),  # Jaguar Land Rover, jaguars in Argentina
        ("de-d1", "de-e1"),  # Puma the sportswear maker, the Puma infantry fighting vehicle
        ("ru-f1", "ru-g1"),  # the retailer Magnit, rare-earth magnets
        ("de-g1", "de-h1"),  # one template, other facts: the ifo index and the ZEW index
    ],
    "stories/blind7_rewrites.yaml": [
        ("en-d1", "en-e1"),  # Trump on one day: the Davos speech, then the Greenland framework with Rutte
        ("en-g1", "en-h1"),  # one day: Trump names Warsh for the Fed, gold and silver crash
        ("de-h1", "de-i1"),  # Reiche on one day: the annual economic report, then gas power plants
        ("ru-n1", "ru-o1"),  # Peskov on one day: Telegram's restrictions, then the delegation for Geneva
        ("de-d1", "de-e1"),  # Davos on one day: Merz's speech, Zelensky meeting Trump
        ("en-b1", "en-c1"),  # Maduro captured, then arraigned two days later
        ("ru-d1", "ru-h1"),  # Abu Dhabi: the first round, then the second twelve days later
        ("ru-h1", "ru-o1"),  # the second Abu Dhabi round, then the delegation for Geneva
        ("ru-c1", "ru-d1"),  # Putin receiving Witkoff and Kushner, then the Abu Dhabi round the next day
        ("ru-g1", "ru-h1"),  # New START's expiry during the second Abu Dhabi round
        ("de-b1", "de-k1"),  # guarantees for Ukraine: the Paris coalition summit, then the Ramstein group
        ("de-k1", "de-l1"),  # the Ramstein group in Brussels, then the Munich Security Conference
        ("en-f1", "en-g1"),  # the Fed's January meeting, then the nomination of its next chair
        ("en-k1", "en-l1"),  # a rare meteorite rich in metals, rare-earth metals at the minerals ministerial
        ("en-m1", "en-n1"),  # Shell's results, artillery shells
        ("de-m1", "de-l2"),  # Allianz the insurer, "die Allianz" as NATO
        ("de-m1", "de-n1"),  # Allianz's results, Allianz Trade's insolvency forecast
        ("ru-a1", "ru-b1"),  # the «Мир» payment system, "мир" as peace
        ("ru-i1", "ru-j1"),  # the "победа" of Takaichi's party, the airline «Победа»
        ("en-i1", "en-j1"),  # one template, other facts: U.S. consumer prices, then producer prices
        ("de-f1", "de-g1"),  # the ifo index, then the GfK consumer climate
        ("ru-e1", "ru-f1"),  # Russia's manufacturing PMI, then its services PMI
    ],
    # Written by helper blind7x: every pair listed in the header of the set (story / story).
    "stories/blind7_crosslang.yaml": [
        ("ru-h1", "ru-i1"),  # manturov-rare-earths / manturov-aircraft
        ("en-h2", "en-i3"),
        ("de-h3", "de-i2"),
        ("en-d1", "en-w2"),  # vance-munich / vance-weidel
        ("de-d4", "de-w1"),
        ("ru-d3", "ru-w3"),
        ("en-y1", "en-q1"),  # uk-defence-spending / starmer-washington
        ("de-y2", "de-q2"),
        ("ru-h1", "ru-j1"),  # manturov-rare-earths / meteorite
        ("en-h2", "en-j2"),
        ("de-h3", "de-j3"),
        ("en-l2", "en-j2"),  # putin-rare-earths / meteorite
        ("de-l3", "de-j3"),
        ("en-e2", "en-n1"),  # paris-february / macron-washington
        ("de-e3", "de-n2"),
        ("ru-e4", "ru-n3"),
        ("en-n1", "en-q1"),  # macron-washington / starmer-washington
        ("de-n2", "de-q2"),
        ("ru-n3", "ru-q4"),
        ("de-e1", "de-s1"),  # paris-february / paris-march
        ("en-e2", "en-s2"),
        ("ru-e4", "ru-s3"),
        ("en-x1", "en-s2"),  # london-summit / paris-march
        ("de-x2", "de-s1"),
        ("ru-x3", "ru-s3"),
        ("en-x1", "en-q1"),  # london-summit / starmer-washington
        ("ru-x3", "ru-q4"),
        ("de-x2", "de-r2"),  # london-summit / oval-office
        ("ru-f1", "ru-p1"),  # riyadh / istanbul-talks
        ("en-f2", "en-p2"),
        ("ru-f4", "ru-p3"),
        ("en-o1", "en-r1"),  # minerals-deal / oval-office
        ("de-o2", "de-r2"),
        ("ru-o3", "ru-r3"),
        ("ru-l1", "ru-o3"),  # putin-rare-earths / minerals-deal
        ("en-l2", "en-o1"),
        ("de-l3", "de-o2"),
        ("en-a1", "en-b2"),  # ecb-january / ecb-march
        ("de-a2", "de-b1"),
        ("ru-a3", "ru-b3"),
        ("en-a1", "en-u1"),  # ecb-january / boe-february
        ("de-a2", "de-u3"),
        ("ru-v1", "ru-b3"),  # cbr-february / ecb-march
        ("en-v2", "en-b2"),
        ("en-m1", "en-n1"),  # un-vote / macron-washington
        ("de-m2", "de-n2"),
        ("ru-m3", "ru-n3"),
        ("ru-m3", "ru-l1"),  # un-vote / putin-rare-earths
        ("en-t1", "en-j2"),  # asteroid / meteorite
        ("de-t2", "de-j3"),
        ("ru-t3", "ru-j1"),
    ],
    "stories/blind6_crosslang.yaml": [
        ("en-a2", "en-b1"),  # Ukraine and the U.S. envoys: Miami, then Berlin ten days later
        ("ru-a3", "ru-b2"),
        ("en-i1", "en-j1"),  # gold above $4,400 on Monday, silver above $70 on Tuesday
        ("ru-i3", "ru-j2"),
        ("ru-g1", "ru-l3"),  # one day: Putin in New Delhi, the EU's fine for X
    ],
}


# The shape each blind round promised (items, events, share of rewrites): (min items, min events, min rewrites).
BLIND_SHAPES = {
    "stories/blind4_rewrites.yaml": (50, 18, 0.55),
    "stories/blind4_crosslang.yaml": (25, 10, 0.0),
    "stories/blind5_rewrites.yaml": (60, 15, 0.4),
    "stories/blind5_crosslang.yaml": (30, 8, 0.0),
    "stories/blind6_rewrites.yaml": (60, 18, 0.4),
    "stories/blind6_crosslang.yaml": (36, 12, 0.0),
    "stories/blind7_rewrites.yaml": (125, 32, 0.45),
    "stories/blind7_crosslang.yaml": (86, 25, 0.0),
}


@pytest.mark.parametrize("name", sorted(BLIND_SHAPES))
def test_blind_sets_are_blind_and_shaped(name: str) -> None:
    min_items, min_events, min_rewrites = BLIND_SHAPES[name]
    items = _items(name)
    assert len({i.id for i in items}) == len(items) and all(i.holdout for i in items)
    assert set(Counter(i.language for i in items)) == {"de", "en", "ru"}
    languages: dict[str, set[str]] = defaultdict(set)
    for item in items:
        languages[item.story].add(item.language)
    assert len(items) >= min_items and len(languages) >= min_events
    if "rewrites" in name:
        assert all(len(found) == 1 for found in languages.values())
        assert Counter(i.kind for i in items)["rewrite"] >= min_rewrites * len(items)
    else:
        assert all(len(found) >= 2 for found in languages.values())


# Confounder pairs of a blind set that the code of its round merged before any change: the count must not rise
# (which pairs they are is not looked at while the set is blind). On main 629b208: 3 of 22 in blind7_rewrites,
# 3 of 51 in blind7_crosslang.
MERGED_BEFORE = {"stories/blind7_rewrites.yaml": 3, "stories/blind7_crosslang.yaml": 3}


def test_round_7_rewrites_set_is_shaped_as_its_brief_asks() -> None:
    """At least 35 items in each language, about a tenth of them copies, one first report per event."""
    items = _items("stories/blind7_rewrites.yaml")
    kinds = Counter(i.kind for i in items)
    assert min(Counter(i.language for i in items).values()) >= 35
    assert 0.05 * len(items) <= kinds["copy"] <= 0.2 * len(items)
    assert kinds["original"] == len({i.story for i in items})


@pytest.mark.parametrize("name", sorted(CONFOUNDERS))
def test_confounders_stay_apart(name: str) -> None:
    by_id = dict(zip((i.id for i in _items(name)), _predicted(name), strict=True))
    merged = [pair for pair in CONFOUNDERS[name] if by_id[pair[0]] == by_id[pair[1]]]
    shown = f"{len(merged)} of {len(CONFOUNDERS[name])} merged" if name in STILL_BLIND else merged
    assert len(merged) <= MERGED_BEFORE.get(name, 0), shown


def _assigned(name: str) -> dict[str, StoryAssignment]:
    items = _items(name)
    return dict(zip((i.id for i in items), replay_assignments(items, StoryIndex(), _rules()), strict=True))


def test_a_rewrite_joins_by_the_evidence_a_translation_would_need() -> None:
    # Trump's truck tariff in other words ("White House slaps duty on foreign-built heavy trucks"): the blend is
    # 0.179, under the 0.2 threshold, but the rewrite shares the actor, the 25% and the month (what would link a
    # report in another language) and content words: it joins. Without that rule it opened a story of its own.
    # (Round 5's example, Pistorius' Eurofighters, passes the blend since round 6's compound heads.)
    name = "stories/blind4_rewrites.yaml"
    found = _assigned(name)
    assert found["en-t4"].story_id == found["en-t1"].story_id
    assert found["en-t4"].reason == "event" and found["en-t4"].similarity < 0.2
    old = dict(
        zip(
            (i.id for i in _items(name)),
            replay(_items(name), StoryIndex(event_index=EventIndex(within_by_evidence=False)), _rules()),
            strict=True,
        )
    )
    assert old["en-t4"] != old["en-t1"]


def test_names_alone_do_not_join_a_report_in_its_own_language() -> None:
    # The SPD's member vote and the coalition talks of the same morning share "SPD", one skeleton for
    # Koalitionsvertrag and Koalitionsverhandlungen and one for Merz and Miersch: names only (in German, any
    # nouns), no actor, no figure. They stay apart.
    found = _assigned("syndication/blind2.yaml")
    assert found["de-v4"].story_id != found["de-v1"].story_id


def test_a_shared_actor_alone_does_not_lift_the_names_veto() -> None:
    # The BoE's rate view and the ECB's, one template ("policymakers ... rate cut as tariffs bite"): each names
    # two institutions or places of its own and they share only the U.S. actor. The blend passed (0.23); two
    # reports that name two names each and share none of them, nor a figure, are about other people and places,
    # and a shared actor is the same people, not the same event.
    found = _assigned("syndication/blind2.yaml")
    assert found["en-w4"].story_id != found["en-w1"].story_id


def test_a_figure_with_its_unit_is_strong_evidence_across_languages() -> None:
    # Gold at $4,000, a 50% rise this year: two figures with units and nothing else in common with the English
    # report. At their plain IDF the evidence is 1.48, under 1.5; a figure with its unit weighs 1.5 times.
    found = _assigned("stories/crosslang.yaml")
    assert found["ru-x10c"].story_id == found["en-x10a"].story_id
    assert found["ru-x10c"].reason == "cross-language"
    plain = replay(
        _items("stories/crosslang.yaml"), StoryIndex(event_index=EventIndex(unit_weight=1.0)), _rules()
    )
    by_id = dict(zip((i.id for i in _items("stories/crosslang.yaml")), plain, strict=True))
    assert by_id["ru-x10c"] != by_id["en-x10a"]


def test_a_later_death_toll_does_not_veto_its_event() -> None:
    # The Hong Kong fire: 44 dead (and 300 missing) in the first report, 128 in the last. Small bare counts are
    # details the next report states otherwise; with the words of the event in common they veto nothing (round
    # 6). Before, the bare counts vetoed it and the last report opened a story of its own.
    found = _assigned("stories/blind5_crosslang.yaml")
    assert found["en-j4"].story_id == found["en-j1"].story_id and found["en-j4"].reason == "event"


def test_a_unit_after_a_hyphen_links_a_translation() -> None:
    # "Dmitriev's 28-point plan" and "план из 28 пунктов": one figure with its unit in both (before, the
    # hyphenated form was a bare 28 and the Russian report opened a story of its own).
    found = _assigned("stories/blind4_crosslang.yaml")
    assert found["ru-m2"].story_id == found["en-m1"].story_id
    assert found["ru-m2"].reason == "cross-language" and "f:28:pt" in found["ru-m2"].evidence


def test_reports_in_three_languages_join_one_story_with_evidence() -> None:
    items = _items("stories/crosslang.yaml")
    assigned = [
        a
        for i, a in zip(items, replay_assignments(items, StoryIndex(), _rules()), strict=True)
        if i.id
        in ("en-x3a", "ru-x3d", "de-x3c", "en-x3b")  # Dmitriev, Дмитриев, Dmitrijew (ru-x3e is missed)
    ]
    assert len({a.story_id for a in assigned}) == 1
    cross = [a for a in assigned if a.reason == "cross-language"]
    assert cross and {a.language for a in assigned} == {"en", "de", "ru"}
    assert any("n:dmtrv" in a.evidence or "a:dmitriev" in a.evidence for a in cross)
    assert all(a.tier == "event (cross-language)" for a in cross)


# -- the features ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spellings",
    [
        ("дмитриев", "dmitrijew", "dmitriev", "dmitriyev", "дмитриева"),
        ("мантуров", "manturow", "manturov", "мантурова", "мантуровым"),
        ("зеленский", "selenskyj", "zelensky", "зеленского"),
        ("макрон", "macron"),
        ("лекорню", "lecornu"),
    ],
)
def test_one_name_in_every_spelling_has_one_skeleton(spellings: tuple[str, ...]) -> None:
    assert len({name_skeleton(s) for s in spellings}) == 1


def test_unrelated_names_have_other_skeletons() -> None:
    assert name_skeleton("dmitriev") != name_skeleton("dmitri")
    assert name_skeleton("manturov") != name_skeleton("mantua")


def _features(title: str, summary: str, language: str) -> set[str]:
    analysis = analyse(title, summary, language=language)
    found = event_features(analysis, (("title", clean_title(title)), ("summary", clean_summary(summary))))
    return set(found.labels.values())


def test_figures_with_units_read_alike_in_three_languages() -> None:
    en = _features("Plan", "The plant will cost 15 billion roubles and make 1,200 tonnes a year.", "en")
    de = _features("Plan", "Das Werk kostet 15 Milliarden Rubel und liefert 1.200 Tonnen im Jahr.", "de")
    ru = _features("План", "Завод обойдется в 15 млрд рублей и выпустит 1200 тонн в год.", "ru")
    expected = {"f:1.5e+10:rub", "f:1200:t"}
    assert expected <= en and expected <= de and expected <= ru


@pytest.mark.parametrize(
    ("title", "summary", "language", "name"),
    [
        ("Talks", "Ushakov told reporters the talks were useful.", "en", "n:uskv"),
        ("Переговоры", "Ушаков заявил журналистам, что встреча была полезной.", "ru", "n:uskv"),
        ("Rente", "Pistorius sagte, die Truppe brauche mehr Soldaten.", "de", "n:pstrs"),
        ("Мантуров: завод заработает в 2027 году", "", "ru", "n:mntrv"),
    ],
)
def test_a_sentence_initial_name_that_speaks_is_a_name(
    title: str, summary: str, language: str, name: str
) -> None:
    assert name in _features(title, summary, language)


@pytest.mark.parametrize(
    ("title", "summary", "language", "word"),
    [
        ("Talks", "Officials said the talks were useful.", "en", "n:ofsl"),  # a plural subject
        ("Talks", "Analysts expect a deal. Officials said no.", "en", "n:anlst"),  # no verb of speech
        ("Бензин", "Власти заявили о продлении запрета.", "ru", "n:vlst"),  # a plural verb
        ("Rente", "Regierung beschließt Rentenpaket.", "de", "n:rgrng"),
    ],
)
def test_other_sentence_initial_words_are_no_names(
    title: str, summary: str, language: str, word: str
) -> None:
    assert word not in _features(title, summary, language)


def test_a_rewrite_joins_by_a_name_that_starts_its_sentence() -> None:
    # Novak extends the petrol export ban: the rewrite's summary names him only at the start of a sentence
    # ("Новак сообщил …"), which was no name feature; now it is, and the rewrite joins the first report.
    found = _assigned("stories/rewrites.yaml")
    assert found["ru-rc2"].story_id == found["ru-rc1"].story_id and found["ru-rc2"].reason == "event"
    assert "n:nvk" in found["ru-rc2"].evidence


@pytest.mark.parametrize(
    ("title", "summary", "language", "key"),
    [
        ("ЦБ снизил ставку", "", "ru", "n:=bank-of-russia"),
        ("Ставка", "Совет директоров Банка России снизил ставку.", "ru", "n:=bank-of-russia"),
        ("Zinsen", "Die Europäische Zentralbank lässt die Zinsen unverändert.", "de", "n:=ecb"),
        ("EZB lässt Zinsen unverändert", "", "de", "n:=ecb"),
        ("Rates", "The European Central Bank held rates.", "en", "n:=ecb"),
        ("ЕЦБ сохранил ставку", "", "ru", "n:=ecb"),
        ("Rates", "The Fed cut rates; the Federal Reserve said so.", "en", "n:=fed"),
    ],
)
def test_an_organisation_has_one_key_in_its_abbreviations_and_full_names(
    title: str, summary: str, language: str, key: str
) -> None:
    assert key in _features(title, summary, language)


@pytest.mark.parametrize(
    ("title", "summary", "language", "key", "left_out"),
    [
        ("Ставка", "Вчера Центральный банк России снизил ставку.", "ru", "n:=bank-of-russia", "n:8ntrl"),
        ("Zinsen", "Die Europäische Zentralbank lässt die Zinsen.", "de", "n:=ecb", "n:erps"),
        ("EZB lässt Zinsen unverändert", "", "de", "n:=ecb", "n:esb"),
    ],
)
def test_an_institutions_words_are_its_key_only(
    title: str, summary: str, language: str, key: str, left_out: str
) -> None:
    # No name of its own: the skeleton of "Центральный" or "Europäische" would be shared with every report on a
    # central bank or on Europe. (Its words stay content words: dropping them too changed no fitted set.)
    found = _features(title, summary, language)
    assert key in found
    assert not {label for label in found if label.startswith(left_out)}


@pytest.mark.parametrize(
    ("title", "summary", "language"),
    [
        ("Strike", "Workers were fed up with the un-named firm.", "en"),  # lower case: no abbreviation
        ("Банки", "Прибыль крупнейших банков России выросла.", "ru"),  # Russia's banks, not its central bank
    ],
)
def test_other_words_are_no_organisation(title: str, summary: str, language: str) -> None:
    assert not {label for label in _features(title, summary, language) if label.startswith("n:=")}


def test_an_abbreviation_links_the_full_name_of_its_organisation() -> None:
    # "Банк России снизил ключевую ставку" and "ЦБ снова смягчил политику": one central bank. Without one key
    # for both, the rewrite opened a story of its own (round 5's known cause).
    found = _assigned("stories/rewrites.yaml")
    assert found["ru-ra3"].story_id == found["ru-ra1"].story_id and found["ru-ra3"].reason == "event"
    assert "n:=bank-of-russia" in found["ru-ra3"].evidence


@pytest.mark.parametrize(
    ("word", "parts"),
    [
        ("rohstoffabkommen", ("abkommen",)),
        ("generalsanierung", ("sanierung",)),
        ("tiefbahnhof", ("bahnhof",)),
        ("verhandlungen", ()),  # a head only where four letters or more come before it
        ("koalitionsvertrag", ("vertrag",)),
    ],
)
def test_a_german_compound_counts_its_head(word: str, parts: tuple[str, ...]) -> None:
    assert _compound_parts(word) == parts


def test_a_rewrite_joins_by_the_head_of_a_compound() -> None:
    # VW's chip shortage in Zwickau told in other words ("Halbleiter-Engpass trifft Volkswagen in Sachsen"): the
    # heads of the compounds both reports use count as content words too (t:de:wag of "Volkswagen"), and the
    # rewrite joins at 0.217 (it opened a story of its own at 0.199).
    found = _assigned("stories/rewrites.yaml")
    assert found["de-dc3"].story_id == found["de-dc1"].story_id and found["de-dc3"].reason == "event"


def test_a_unit_after_a_hyphen_counts() -> None:
    assert "f:28:pt" in _features("Plan", "Witkoff brought a 28-point plan.", "en")
    assert "f:28:pt" in _features("Plan", "Witkoff brachte den 28-Punkte-Plan mit.", "de")
    assert "f:25" in _features(
        "Case", "A 25-year-old man was arrested.", "en"
    )  # no unit: "year" is for years


@pytest.mark.parametrize(
    ("figure", "measure"),
    [
        ("f:27", False),  # "27 member states": a small bare count
        ("f:319", False),
        ("f:216000", True),  # "216,000 claims"
        ("f:87.7", True),
        ("f:25:pct", True),
        ("f:3-1:result", True),
    ],
)
def test_a_figures_id_says_whether_it_is_a_measure(figure: str, measure: bool) -> None:
    fid = feature_id(figure)
    assert fid & KIND_MASK == FIGURE
    assert (fid & MEASURE_MASK == MEASURE) is measure


def test_a_word_that_starts_like_a_unit_is_no_unit() -> None:
    assert "f:20" in _features("Auftrag", "Die Luftwaffe bekommt 20 Eurofighter.", "de")


def test_actor_ids_come_from_the_rule_set_and_replace_the_name_words() -> None:
    item = as_item(
        LabelledItem(
            "en-t1",
            "t",
            "wire-en",
            None,
            "Kirill Dmitriev meets Witkoff",
            "Kirill Dmitriev, head of the Russian Direct Investment Fund, met Steve Witkoff in Miami.",
            _items("stories/crosslang.yaml")[0].published,
        )
    )
    analysis = analyse_item(item)
    _, actors = _rules().match_with_actors(item, analysis)
    assert {"dmitriev", "rdif"} <= actors.ids
    found = event_features(analysis, (("title", item.title), ("summary", item.summary)), actors)
    # `labels` holds the language-independent features; content words are read back with `label_of` (since the
    # word cache of the features, their labels live there). Witkoff is the united-states actor now (issue 15's
    # co-occurrence rules), and its span is the name alone: the plain words around it stay content words.
    labels = set(found.labels.values())
    assert {"a:dmitriev", "a:rdif", "a:united-states"} <= labels
    words = {label_of(term) for term in found.terms}
    assert "t:en:kirill" not in words and "t:en:head" not in words  # counted once, as the actor
    assert {"t:en:miami", "t:en:meet"} <= words


# -- restart -----------------------------------------------------------------------------------------------


def _stored(
    items: list[LabelledItem], index: StoryIndex, story_ids: list[str], languages: list[str | None]
) -> list[StoredSignature]:
    rows = []
    for labelled, story_id, language in zip(items, story_ids, languages, strict=True):
        item = as_item(labelled)
        rows.append(
            StoredSignature(
                item_key=item.key,
                story_id=story_id,
                signature=index.signature(item.key),
                published=labelled.published,
                url=item.url,
                content_hash=item.content_hash,
                title=item.title,
                summary=item.summary,
                source=item.feed_url,
                language=language,
                event_features=index.event_features(item.key),
            )
        )
    return rows


def test_the_event_tier_survives_a_restart() -> None:
    items = _items("stories/crosslang.yaml")
    half = len(items) // 2
    uninterrupted = _predicted("stories/crosslang.yaml")
    before = StoryIndex()
    first = replay_assignments(items[:half], before, _rules())
    rows = _stored(items[:half], before, [a.story_id for a in first], [a.language for a in first])
    restarted = StoryIndex()
    assert restarted.load(rows) == half
    assert [a.story_id for a in first] + replay(items[half:], restarted, _rules()) == uninterrupted
    # Features of another version are recomputed from the stored text (without the actors, which come from the
    # rule set): the stories found after the restart are still those of the uninterrupted run, here.
    rebuilt = StoryIndex()
    rebuilt.load([dataclasses.replace(r, event_features=b"EV\x00old") for r in rows])
    after = replay(items[half:], rebuilt, _rules())
    agree = sum(a == b for a, b in zip(after, uninterrupted[half:], strict=True))
    assert agree >= 0.9 * len(after)


def test_a_story_stops_taking_event_joins_after_its_maximum_age() -> None:
    items = [i for i in _items("stories/rewrites.yaml") if i.story == "en-quake-balikesir"]
    first, rewrite = items[0], next(i for i in items if i.kind == "rewrite")
    late = LabelledItem(
        rewrite.id, rewrite.story, rewrite.feed, rewrite.link, rewrite.title, rewrite.summary,
        first.published + timedelta(days=8),
    )  # fmt: skip
    predicted = replay([first, late], StoryIndex(window=timedelta(days=30)), _rules())
    assert predicted[0] != predicted[1]
