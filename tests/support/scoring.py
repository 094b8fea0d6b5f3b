"""Micro precision and recall of rule predictions over (item, rule) pairs, as ../shared/eval/score.py counts
them: rules in an item's `optional` list are neither rewarded nor penalised."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from monitor.rules import RuleSet
from monitor.types import Item

__all__ = ["score_rules"]


def score_rules(
    ruleset: RuleSet,
    entries: Iterable[dict[str, Any]],
    as_item: Callable[[dict[str, Any]], Item],
    *,
    key: str,
) -> tuple[float, float, list[str]]:
    """(precision, recall, errors), each error as 'FP|FN <entry[key]> <rule>'."""
    tp = fp = fn = 0
    errors: list[str] = []
    for entry in entries:
        expected, optional = set(entry["labels"]), set(entry.get("optional", []))
        got = {match.rule_id for match in ruleset.match(as_item(entry))}
        tp += len(got & expected)
        fp += len(got - expected - optional)
        fn += len(expected - got)
        errors += [f"FP {entry[key]} {rule}" for rule in sorted(got - expected - optional)]
        errors += [f"FN {entry[key]} {rule}" for rule in sorted(expected - got)]
    return tp / (tp + fp), tp / (tp + fn), errors
