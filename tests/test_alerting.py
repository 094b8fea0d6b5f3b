"""alert_decision: what a new matching item of a story does to its (rule, story) alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from monitor.alerting import alert_decision

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
