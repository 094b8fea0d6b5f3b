"""`monitor run`, `monitor once`, `monitor check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from monitor import logs
from monitor.cli.progress import Progress
from monitor.config import MonitorConfig, load_config, refused_urls
from monitor.notify import DeliveryReport
from monitor.pipeline import FeedOutcome
from monitor.service import Daemon, check_config, open_runtime, poll_all
from monitor.store.records import DeliveryRow

__all__ = ["cmd_check", "cmd_once", "cmd_run", "format_outcome", "run_once"]


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    logs.configure(logging.DEBUG if args.verbose else config.log_level, config.log_format)
    asyncio.run(Daemon(args.config, drain_timeout=config.drain_timeout.total_seconds()).run())
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    ruleset = check_config(config)
    refused = refused_urls(config)
    for problem in refused:
        print(f"monitor: configuration error: {problem}", file=sys.stderr)
    if refused:
        return 1
    out.write(
        f"{args.config}: OK: {len(config.feeds)} feeds, {len(ruleset.rules)} rules from {config.rules}, "
        f"{len(config.channels)} channels ({', '.join(config.channels) or 'none'}), database {config.database}\n"
    )
    return 0


def cmd_once(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    progress = Progress.for_output(out, "polling feeds", len(config.feeds))
    done: list[FeedOutcome] = []

    def count(outcome: FeedOutcome) -> None:
        done.append(outcome)
        progress.update(len(done))

    try:
        outcomes, delivered = asyncio.run(
            run_once(
                config,
                deadline=getattr(args, "deadline", 300.0),
                force=getattr(args, "force", False),
                on_polled=count if progress.live else None,
            )
        )
    finally:
        progress.close()
    for outcome in outcomes:
        out.write(format_outcome(outcome) + "\n")
    failed = [o for o in outcomes if o.status == "error"]
    skipped = sum(1 for o in outcomes if o.status in ("skipped", "stale"))
    out.write(
        f"{len(outcomes) - skipped} feeds polled, {len(failed)} failed"
        + (f", {skipped} skipped" if skipped else "")
        + f"; {sum(o.alerts for o in outcomes)} alerts; deliveries: {delivered}\n"
    )
    # A feed's own failure is the feed's (exit 0, it is listed); a poll the store could not record is the
    # installation's: nothing of it was kept, and cron should hear about it.
    return 1 if any(o.unrecorded for o in outcomes) else 0


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
        pending = runtime.store.list_deliveries(statuses=("pending",), limit=100_000)
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


def format_outcome(outcome: FeedOutcome) -> str:
    if outcome.status == "error":
        return f"FAILED  {outcome.url}: {outcome.error}"
    if outcome.status == "not-modified":
        return f"ok      {outcome.url}: not modified"
    if outcome.status in ("skipped", "stale"):
        return f"skipped {outcome.url}: {outcome.error}"
    return (
        f"ok      {outcome.url}: {outcome.entries} entries, {outcome.new_items} new, "
        f"{outcome.matches} matches, {outcome.alerts} alerts"
        + (f", {outcome.folded} folded into earlier alerts" if outcome.folded else "")
    )
