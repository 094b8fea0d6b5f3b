"""Clustering quality on a third, independently written labelled set (tests/data/syndication/blind3.yaml): wire
copies under other URL shapes (AMP, m. hosts, ?utm_*, trailing slashes, http), datelines and press-release
credits, markup leftovers, truncations, updates hours later, one event reported independently in other words,
and hard distinct pairs (daily price reports, one press-release template for two companies, match reports of
one structure, same topic and day with another event). The labelling rule is at the top of the YAML file.

Targets (issue 4): pairwise precision >= 0.95, recall >= 0.90.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from tests.test_stories_blind2 import clustering_errors
from tests.test_stories_syndication import (
    PRECISION_TARGET,
    RECALL_TARGET,
    Labelled,
    cluster,
    load_labelled,
    pairwise_scores,
)

DATA = Path(__file__).parent / "data" / "syndication" / "blind3.yaml"


def load_blind3() -> list[Labelled]:
    return load_labelled(DATA)


def test_blind3_set_is_well_formed() -> None:
    items = load_blind3()
    assert len({item.id for item in items}) == len(items)
    languages = Counter(item.id.split("-")[0] for item in items)
    assert set(languages) == {"de", "en", "ru"}
    assert min(languages.values()) >= 15
    stories = Counter(item.story for item in items)
    assert sum(1 for n in stories.values() if n >= 2) >= 15


def test_blind3_set_meets_targets() -> None:
    items = load_blind3()
    predicted = cluster(items)
    scores = pairwise_scores([item.story for item in items], predicted)
    errors = clustering_errors(items, predicted)
    print(f"\nblind3 set: {len(items)} items, {scores}\n" + "\n".join(errors))
    assert scores.precision >= PRECISION_TARGET, (scores, errors)
    assert scores.recall >= RECALL_TARGET, (scores, errors)


def test_blind3_template_twins_stay_apart() -> None:
    """The hard distinct pairs: one template or one topic and day, other facts. Each must be its own story."""
    items = load_blind3()
    by_id = dict(zip((item.id for item in items), cluster(items), strict=True))
    twins = [
        ("en-q1", "en-r1"),  # press release template, two companies
        ("en-s1", "en-t1"),  # daily price report, Monday / Tuesday
        ("en-u1", "en-v1"),  # match reports of one structure
        ("en-w1", "en-x1"),  # Brussels, rare earths, same day, other event
        ("de-q1", "de-r1"),
        ("de-s1", "de-t1"),
        ("de-u1", "de-v1"),
        ("de-w1", "de-x1"),
        ("ru-r1", "ru-s1"),
        ("ru-t1", "ru-u1"),
    ]
    merged = [pair for pair in twins if by_id[pair[0]] == by_id[pair[1]]]
    assert not merged


def test_a_headline_only_copy_with_a_publisher_suffix_joins() -> None:
    items = {item.id: item for item in load_blind3()}
    original = items["ru-p1"]
    aggregated = Labelled(
        "ru-x1",
        original.story,
        "aggregator-ru",
        "https://news-aggregator.example/rss/articles/CBMiX2h0",
        original.title + " - РИА Новости",
        "",
        original.published + timedelta(minutes=20),
    )
    predicted = cluster([original, aggregated])
    assert predicted[0] == predicted[1]
