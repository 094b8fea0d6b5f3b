"""Notifications per event per channel on the labelled story sets (issue 8: target ≤ 1.1).

Each set is replayed through the real pipeline (feeds served on 127.0.0.1, polled in publication order, the
default rules, a real SQLite file) into two real webhook receivers: the default channel (one notification per
story, later rules as updates) and a `group_by: [rule, story]` channel (one message per alert, as before); see
tests/support/notifications.py. The figure is the messages that name an event (through the items of their
alerts), averaged over the events named at all.

Measured after round 6's clustering changes, and round 7's blind sets before any change (messages per event on
the grouped channel; threads per event, i.e. without updates; the per-alert channel of the same run;
docs/design/stories-blind5.md, stories-blind6.md and stories-blind7.md have the before figures):

    set                          messages  threads  per alert
    stories/rewrites.yaml        1.12      1.06     1.44     16 events notified, 1 update
    stories/crosslang.yaml       1.25      1.25     2.75     4 events in 5 stories (cross-language links missed)
    stories/blind4_rewrites.yaml 1.00      1.00     1.00     6 events in 6 stories
    stories/blind4_crosslang.yaml 1.00     1.00     2.50     2 events in 2 stories (round 6; 1.50 before)
    stories/blind5_rewrites.yaml 1.33      1.17     1.83     12 events notified, 2 updates (round 6; 1.50 before)
    stories/blind5_crosslang.yaml 1.83     1.33     2.67     6 events notified, 3 updates
    stories/blind6_rewrites.yaml 2.29      2.00     3.29     7 events notified, 2 updates (1.78 / 1.56 / 2.56 and 9
                                                           events before two en/ru pairs were linked as one event each)
    stories/blind6_crosslang.yaml 1.67     1.33     2.00     3 events notified, 1 update (round 6, before any change)
    stories/blind7_rewrites.yaml 1.87      1.67     2.20     15 events notified, 3 updates (main 629b208, before round 7)
    stories/blind7_crosslang.yaml 1.94     1.75     3.25     16 events notified, 3 updates (main 629b208, before round 7)
    syndication/items.yaml       1.28      1.11     1.78     18 events in 20 stories, 3 updates (round 6; 1.33 before)
    syndication/blind2.yaml      1.27      1.07     1.53     15 events in 16 stories, 3 updates
    syndication/blind3.yaml      1.00      1.00     1.00

Two things keep a set above 1.1. The clustering splits an event into several stories, each its own thread
(threads per event above 1.0: the stories helper is raising recall). And updates: a rule that first fires on a
story already notified sends one (item 3 asks for it), as when a later report of Dmitriev's visit names Putin.
The ceilings fail the test when a change makes either worse; the strict xfails turn into failures when a set
comes under 1.1, so that its ceiling is lowered then.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest

from tests.support.notifications import SetFigures, replay_notifications
from tests.support.story_sets import DATA

TARGET = 1.1
# name: (messages per event, threads per event), as measured (see the docstring); an unlisted set must meet the
# target on both.
MEASURED = {
    "stories/rewrites.yaml": (1.12, 1.06),
    "stories/crosslang.yaml": (1.25, 1.25),
    "stories/blind5_rewrites.yaml": (1.33, 1.17),
    "stories/blind5_crosslang.yaml": (1.83, 1.33),
    "stories/blind6_rewrites.yaml": (2.29, 2.00),
    "stories/blind6_crosslang.yaml": (1.67, 1.33),
    "stories/blind7_rewrites.yaml": (1.87, 1.67),
    "stories/blind7_crosslang.yaml": (1.94, 1.75),
    "syndication/items.yaml": (1.28, 1.11),
    "syndication/blind2.yaml": (1.27, 1.07),
    "syndication/blind3.yaml": (1.00, 1.00),
}
SETS = sorted([*(DATA / "stories").glob("*.yaml"), *(DATA / "syndication").glob("*.yaml")])


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@cache
def figures(path: Path, tmp: Path) -> SetFigures:
    return replay_notifications(path, tmp)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("per-event")


def replayed(path: Path, workdir: Path) -> SetFigures:
    folder = workdir / path.parent.name / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    return figures(path, folder)


def measured(path: Path) -> tuple[float, float]:
    return MEASURED.get(name(path), (TARGET, TARGET))


@pytest.mark.parametrize("path", SETS, ids=name)
def test_notifications_per_event_per_channel_do_not_rise(path: Path, workdir: Path) -> None:
    result = replayed(path, workdir)
    print(result.row())
    assert result.grouped.events > 0, "no event of the set fired a rule: the figure would say nothing"
    messages, threads = measured(path)
    assert result.grouped.per_event <= messages + 0.005, result.row()
    assert result.grouped.threads_per_event <= threads + 0.005, result.row()
    # Grouping never sends more than one message per alert did.
    assert result.grouped.messages <= result.per_alert.messages, result.row()
    assert result.grouped.per_event <= result.per_alert.per_event, result.row()


def _above(index: int, why: str) -> list[object]:
    return [
        pytest.param(
            path,
            marks=pytest.mark.xfail(strict=True, reason=f"{measured(path)[index]:.2f} measured: {why}")
            if measured(path)[index] > TARGET
            else (),
        )
        for path in SETS
    ]


@pytest.mark.parametrize(
    "path",
    _above(
        1,
        "the event tier splits events across stories (each its own thread); the stories helper is "
        "raising its recall",
    ),
    ids=name,
)
def test_threads_per_event_per_channel_meet_the_target(path: Path, workdir: Path) -> None:
    """What the clustering decides: how many stories (threads) the channel opens per event."""
    assert replayed(path, workdir).grouped.threads_per_event <= TARGET


@pytest.mark.parametrize(
    "path",
    _above(
        0,
        "split events (see the threads test) plus updates for rules that first fire on a story "
        "already notified, which item 3 asks for",
    ),
    ids=name,
)
def test_notifications_per_event_per_channel_meet_the_target(path: Path, workdir: Path) -> None:
    """Every message, updates included: what the analyst gets per event."""
    assert replayed(path, workdir).grouped.per_event <= TARGET


@pytest.mark.parametrize(
    "path", [DATA / "stories" / "rewrites.yaml", DATA / "syndication" / "items.yaml"], ids=name
)
def test_an_opt_in_group_wait_folds_the_updates_of_one_wave_into_the_first_message(
    path: Path, workdir: Path
) -> None:
    """The default sends a story's first message at once (issue 10: new item to webhook p99 < 1 s), so a rule
    that fires on a later report sends an update. A rule's `group_wait` is the opt-in trade-off: the first message
    waits, and the rules firing meanwhile go out in it. Measured (docs/design/stories-blind5.md): with 2 h on
    every rule, rewrites 1.12 → 1.06 messages per event and syndication/items 1.33 → 1.17, updates 1 → 0 and 3 →
    0; threads per event unchanged (that is the clustering's)."""
    folder = workdir / "group-wait" / path.stem
    folder.mkdir(parents=True, exist_ok=True)
    waited = replay_notifications(path, folder, group_wait=timedelta(hours=2))
    default = replayed(path, workdir)
    print(waited.row())
    assert default.grouped.updates > 0 and waited.grouped.updates < default.grouped.updates, waited.row()
    assert waited.grouped.per_event < default.grouped.per_event
    assert waited.grouped.threads_per_event == default.grouped.threads_per_event
    assert waited.grouped.per_event <= TARGET or path.name != "rewrites.yaml"
