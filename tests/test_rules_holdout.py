"""The default rules on hand-written holdout items (tests/data/rules/holdout.yaml), written to find weaknesses
that the dev set does not show; scored like ../shared/eval/score.py (micro-averaged over (item, rule) pairs)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.rules import RuleSet, load_rules, matcher
from monitor.types import Item, Match
from tests.support.scoring import score_rules

REPO = Path(__file__).resolve().parents[1]
HOLDOUT = Path(__file__).parent / "data" / "rules" / "holdout.yaml"


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules(REPO / "rules")


def load_items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(HOLDOUT.read_text(encoding="utf-8"))["items"]
    return items


def as_item(entry: dict[str, Any]) -> Item:
    return Item(
        key=entry["id"],
        feed_url="https://news.example/feed",
        feed_title="",
        guid=entry["id"],
        link=None,
        url=None,
        title=entry["title"],
        summary=entry["summary"],
        content="",
        categories=(),
        language=entry["lang"],
        published=None,
        content_hash="",
    )


def test_holdout_is_well_formed(ruleset: RuleSet) -> None:
    items = load_items()
    assert len(items) >= 40
    assert len({entry["id"] for entry in items}) == len(items)
    assert {entry["lang"] for entry in items} == {"de", "en", "ru"}
    assert sum(1 for entry in items if not entry["labels"]) >= 15  # hard negatives
    for entry in items:
        assert set(entry["labels"]) | set(entry.get("optional", [])) <= set(ruleset.ids), entry["id"]


def test_holdout_precision_and_recall(ruleset: RuleSet) -> None:
    precision, recall, errors = score_rules(ruleset, load_items(), as_item, key="id")
    assert precision >= 0.95 and recall >= 0.95, (round(precision, 3), round(recall, 3), errors)


def test_results_do_not_depend_on_what_the_lexicon_has_learned(monkeypatch: pytest.MonkeyPatch) -> None:
    # The matcher remembers each distinct token's stem and candidate terms; forgetting everything before each
    # field (limit 0) must give the same matches, hits and spans as a lexicon warmed by earlier items.
    items = [as_item(entry) for entry in load_items()]
    warm = load_rules(REPO / "rules")
    for entry in items:
        warm.match(entry)
    expected = [warm.match(entry) for entry in items]
    monkeypatch.setattr(matcher, "_LEXICON_LIMIT", 0)
    forgetful = load_rules(REPO / "rules")
    assert [forgetful.match(entry) for entry in items] == expected


def test_threads_learning_at_once_get_the_sequential_results() -> None:
    items = [as_item(entry) for entry in load_items()]
    expected = [load_rules(REPO / "rules").match(entry) for entry in items]
    shared = load_rules(REPO / "rules")  # fresh: all threads learn new tokens at the same time
    results: dict[int, list[list[Match]]] = {}

    def work(worker: int) -> None:
        results[worker] = [shared.match(entry) for entry in items]

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[worker] == expected for worker in range(4))
