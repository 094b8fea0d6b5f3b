"""`monitor run`, `monitor once`, `monitor check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TextIO

from monitor import logs
from monitor.config import MonitorConfig, load_config
from monitor.pipeline import FeedOutcome
from monitor.service import Daemon, check_config, open_runtime, poll_all

__all__ = ["cmd_check", "cmd_once", "cmd_run", "format_outcome", "run_once"]


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    logs.configure(logging.DEBUG if args.verbose else config.log_level, config.log_format)
    asyncio.run(Daemon(args.config, drain_timeout=config.drain_timeout.total_seconds()).run())
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    ruleset = check_config(config)
    out.write(
        f"{args.config}: OK: {len(config.feeds)} feeds, {len(ruleset.rules)} rules from {config.rules}, "
        f"{len(config.channels)} channels ({', '.join(config.channels) or 'none'}), database {config.database}\n"
    )
    return 0


def cmd_once(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    outcomes, delivered = asyncio.run(run_once(config))
    for outcome in outcomes:
        out.write(format_outcome(outcome) + "\n")
    failed = [o for o in outcomes if o.status == "error"]
    out.write(
        f"{len(outcomes)} feeds polled, {len(failed)} failed; "
        f"{sum(o.alerts for o in outcomes)} alerts; deliveries: {delivered}\n"
    )
    return 0


async def run_once(config: MonitorConfig) -> tuple[list[FeedOutcome], str]:
    """Poll every configured feed once, then deliver everything that is due. Returns the outcomes and a
    one-line delivery summary."""
    ruleset = check_config(config)
    async with open_runtime(config, ruleset) as runtime:
        outcomes = await poll_all(runtime)
        report = await runtime.deliver()
        pending = runtime.store.delivery_counts().get("pending", 0)
        return outcomes, f"{report}; {pending} pending"


def format_outcome(outcome: FeedOutcome) -> str:
    if outcome.status == "error":
        return f"FAILED  {outcome.url}: {outcome.error}"
    if outcome.status == "not-modified":
        return f"ok      {outcome.url}: not modified"
    return (
        f"ok      {outcome.url}: {outcome.entries} entries, {outcome.new_items} new, "
        f"{outcome.matches} matches, {outcome.alerts} alerts"
        + (f", {outcome.folded} folded into earlier alerts" if outcome.folded else "")
    )
