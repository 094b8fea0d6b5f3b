"""`monitor once` without its printing: poll every feed once, deliver until nothing is due or a deadline, and
say what is left. The CLI prints it; the demo and tests call it directly (nothing imports monitor.cli)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from monitor.config import MonitorConfig
from monitor.notify import DeliveryReport
from monitor.pipeline import FeedOutcome
from monitor.service import check_config, open_runtime, poll_all
from monitor.store.records import DeliveryRow

__all__ = ["run_once"]


async def run_once(
    config: MonitorConfig,
    *,
    deadline: float = 300.0,
    force: bool = False,
    on_polled: Callable[[FeedOutcome], None] | None = None,
) -> tuple[list[FeedOutcome], str]:
    """Poll every configured feed once, then deliver batch after batch until nothing is due or `deadline`
    seconds have passed. Returns the outcomes and a delivery summary: one line, then per channel and reason a
    "pending" line for what is still pending (a later retry, a deferral, or the deadline)."""
    ruleset = check_config(config)
    async with open_runtime(config, ruleset) as runtime:
        outcomes = await poll_all(runtime, respect_backoff=not force, on_done=on_polled)
        total = DeliveryReport()
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + deadline
        timed_out = False
        while True:
            if loop.time() >= stop_at:
                timed_out = True
                break
            try:
                report = await asyncio.wait_for(runtime.deliver(), timeout=max(stop_at - loop.time(), 0.001))
            except TimeoutError:
                timed_out = True
                break
            _add(total, report)
            if report.sent + report.retried + report.dead + report.deferred == 0:
                break  # nothing was due any more
        pending = await runtime.store_thread.run(
            runtime.store.list_deliveries, statuses=("pending",), limit=100_000
        )
        summary = f"{total}; {len(pending)} pending"
        return outcomes, "\n".join([summary, *_pending_lines(pending, timed_out, deadline)])


def _add(total: DeliveryReport, report: DeliveryReport) -> None:
    total.sent += report.sent
    total.retried += report.retried
    total.dead += report.dead
    total.deferred += report.deferred
    total.disabled.extend(name for name in report.disabled if name not in total.disabled)
    for channel, messages in report.errors.items():
        for message in messages:
            total.add_error(channel, message)


def _pending_lines(pending: list[DeliveryRow], timed_out: bool, deadline: float) -> list[str]:
    """One line per (channel, reason): how many, when the next one is due, and the last error."""
    groups: dict[tuple[str, str], list[DeliveryRow]] = {}
    for row in pending:
        reason = row.last_error or (
            f"not attempted before the {deadline:g}s deadline" if timed_out else "not attempted yet"
        )
        groups.setdefault((row.channel, reason), []).append(row)
    lines = []
    for (channel, reason), rows in sorted(groups.items()):
        soonest = min(row.next_attempt_at for row in rows)
        lines.append(
            f"pending {channel}: {len(rows)} deliveries, next attempt at "
            f"{soonest.isoformat(timespec='seconds')}: {reason}"
        )
    return lines
