"""Per-(rule, story) alert suppression: what a new matching item does to the alert of its story.

Pure: no I/O, no clock (time comes in as data). Kept apart from story clustering (`monitor.stories`) because
the two change for different reasons: clustering decides which items are one story, this decides when a story
is worth telling the analyst about again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Protocol

__all__ = ["AlertDecision", "AlertStateView", "alert_decision"]

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
