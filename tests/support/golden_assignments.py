"""Every labelled set's story assignments, as a golden file: the story index's data structures may change (issue
10: bounded time and memory), its decisions may not. Regenerate only for a change meant to alter clustering,
and say so in the commit:

    PYTHONPATH=. .venv/bin/python -m tests.support.golden_assignments > tests/data/stories/assignments.golden.json
"""

from __future__ import annotations

import json
import sys

from monitor.config import DEFAULT_RULES
from monitor.rules import load_rules
from monitor.stories import StoryIndex
from tests.support.story_sets import DATA, load_set, replay_assignments

SETS = (
    "stories/rewrites.yaml",
    "stories/crosslang.yaml",
    "stories/blind4_rewrites.yaml",
    "stories/blind4_crosslang.yaml",
    "stories/blind5_rewrites.yaml",
    "stories/blind5_crosslang.yaml",
    "syndication/items.yaml",
    "syndication/blind2.yaml",
    "syndication/blind3.yaml",
)


def assignments(name: str, *, events: bool = True) -> list[list[object]]:
    """Per item in publication order: its id, the id of the first item of its story, the reason, the score."""
    items = load_set(DATA / name)
    found = replay_assignments(items, StoryIndex(events=events), load_rules(DEFAULT_RULES))
    first: dict[str, str] = {}
    rows: list[list[object]] = []
    for item, assignment in zip(items, found, strict=True):
        opener = first.setdefault(assignment.story_id, item.id)
        rows.append([item.id, opener, assignment.reason, round(assignment.similarity, 6)])
    return rows


def main() -> None:
    golden = {name: assignments(name) for name in SETS}
    golden |= {f"{name} (copy tiers)": assignments(name, events=False) for name in SETS}
    # One line per item, so that a diff names the items whose assignment changed.
    sets = [
        f"{json.dumps(name)}: [\n" + ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n]"
        for name, rows in golden.items()
    ]
    sys.stdout.write("{\n" + ",\n".join(sets) + "\n}\n")


if __name__ == "__main__":
    main()
