"""`monitor run`, `monitor once`, `monitor check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TextIO

from monitor import logs
from monitor.cli.progress import Progress
from monitor.config import load_config, refused_urls
from monitor.once import run_once
from monitor.pipeline import FeedOutcome
from monitor.service import Daemon, check_config

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
