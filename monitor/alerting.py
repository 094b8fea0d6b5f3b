"""Per-(rule, story) alert suppression: what a new matching item does to the alert of its story; and when a
story a rule alerted has spread far enough to escalate.

Pure: no I/O, no clock (time comes in as data). Kept apart from story clustering (`monitor.stories`) because
the two change for different reasons: clustering decides which items are one story, this decides when a story
is worth telling the analyst about again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

from monitor.types import SEVERITIES, Severity

__all__ = ["AlertDecision", "AlertStateView", "alert_decision", "outlets_within", "reaches"]

AlertDecision = Literal["new", "attach", "realert"]


class AlertStateView(Protocol):
    """What the suppression decision reads of the newest alert of a (rule, story)."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def pending(self) -> bool: ...


def alert_decision(
    existing: AlertStateView | None, *, now: datetime, realert: timedelta | None
) -> AlertDecision:
    """What a new matching item of a story does to the (rule, story) alert.

    * no alert yet → ``"new"``;
    * the alert is still pending (held by group_wait or not yet tried) → ``"attach"``: it goes out with the
      item in it;
    * `realert` is set and at least that long has passed since the newest alert → ``"realert"``: the story
      kept growing, so a fresh alert is sent;
    * otherwise → ``"attach"``: the item is folded into the alert ("also reported by ...").
    """
    if existing is None:
        return "new"
    if existing.pending:
        return "attach"
    if realert is not None and now - existing.created_at >= realert:
        return "realert"
    return "attach"


def outlets_within(reports: Sequence[tuple[str, datetime]], within: timedelta) -> list[str]:
    """The most distinct outlets whose reports of one story fall into one window of length `within`, in the
    order they first reported in that window (the earliest such window when several tie).

    `reports` are (outlet, time) pairs in any order. A sliding window over the reports sorted by time: the
    count only grows when a report from an outlet not yet in the window arrives, so it is O(n log n)."""
    ordered = sorted(reports, key=lambda report: report[1])
    in_window: dict[str, int] = {}
    best: list[str] = []
    left = 0
    for right, (outlet, moment) in enumerate(ordered):
        in_window[outlet] = in_window.get(outlet, 0) + 1
        while moment - ordered[left][1] > within:
            gone = ordered[left][0]
            in_window[gone] -= 1
            if not in_window[gone]:
                del in_window[gone]
            left += 1
        if len(in_window) > len(best):
            seen: list[str] = []
            for name, _ in ordered[left : right + 1]:
                if name not in seen:
                    seen.append(name)
            best = seen
    return best


def reaches(severity: Severity, minimum: Severity) -> bool:
    """Whether a notification of `severity` passes a channel's `min_severity`."""
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)
