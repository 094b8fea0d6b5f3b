"""alert_decision: what a new matching item of a story does to its (rule, story) alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerting import alert_decision, outlets_within, reaches

T0 = datetime(2025, 4, 4, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class State:
    created_at: datetime
    pending: bool = False


HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("existing", "realert", "expected"),
    [
        (None, None, "new"),
        (None, HOUR, "new"),
        (State(T0 - 5 * HOUR), None, "attach"),  # default: once per (rule, story), forever
        (State(T0 - 30 * 60 * HOUR), None, "attach"),
        (State(T0 - 0.5 * HOUR), HOUR, "attach"),  # inside the realert window
        (State(T0 - HOUR), HOUR, "realert"),  # the window has passed and the story grew
        (State(T0 - 5 * HOUR), HOUR, "realert"),
        (State(T0 - 5 * HOUR, pending=True), HOUR, "attach"),  # still held (group_wait): fold into it
        (State(T0 + HOUR), HOUR, "attach"),  # clock went back: never re-alert early
        (State(T0), timedelta(0), "realert"),  # realert 0: every new item alerts
    ],
)
def test_alert_decision_table(existing: State | None, realert: timedelta | None, expected: str) -> None:
    assert alert_decision(existing, now=T0, realert=realert) == expected


MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("reports", "within", "expected"),
    [
        ([], 30 * MINUTE, []),
        ([("A", T0)], 30 * MINUTE, ["A"]),
        # three outlets inside 30 minutes; the same outlet twice counts once
        (
            [("A", T0), ("A", T0 + MINUTE), ("B", T0 + 10 * MINUTE), ("C", T0 + 29 * MINUTE)],
            30 * MINUTE,
            ["A", "B", "C"],
        ),
        # spread over two hours: never more than two in one window
        (
            [("A", T0), ("B", T0 + 20 * MINUTE), ("C", T0 + 60 * MINUTE), ("D", T0 + 110 * MINUTE)],
            30 * MINUTE,
            ["A", "B"],
        ),
        # the window slides: the dense burst comes late, and the order of the input does not matter
        (
            [("D", T0 + 5 * HOUR), ("A", T0), ("C", T0 + 5 * HOUR + MINUTE), ("B", T0 + 5 * HOUR)],
            30 * MINUTE,
            ["D", "B", "C"],
        ),
        # the window's edges are inclusive
        ([("A", T0), ("B", T0 + 30 * MINUTE)], 30 * MINUTE, ["A", "B"]),
        ([("A", T0), ("B", T0 + 31 * MINUTE)], 30 * MINUTE, ["A"]),
    ],
)
def test_outlets_within_a_window(
    reports: list[tuple[str, datetime]], within: timedelta, expected: list[str]
) -> None:
    assert sorted(outlets_within(reports, within)) == sorted(expected)


def test_severity_reaches_a_channel_at_or_below_it() -> None:
    assert reaches("high", "high") and reaches("critical", "high") and reaches("normal", "low")
    assert not reaches("normal", "high") and not reaches("high", "critical")
