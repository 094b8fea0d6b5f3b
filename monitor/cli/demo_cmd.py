"""`monitor demo`: the product working offline within seconds."""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path
from typing import TextIO

from monitor.cli.daemon_cmds import format_outcome
from monitor.demo import DemoResult, run_demo

__all__ = ["cmd_demo"]


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    if args.keep:
        result = run_demo(Path(args.keep))
        _report(result, out)
        out.write(f"\nState kept in {args.keep}; try: monitor alerts --config {result.config_path}\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        result = run_demo(Path(tmp))
        _report(result, out)
    return 0


def _report(result: DemoResult, out: TextIO) -> None:
    out.write(
        "monitor demo: bundled feeds served on 127.0.0.1, default rules, webhook receiver on 127.0.0.1\n\n"
    )
    for outcome in result.outcomes:
        out.write(format_outcome(outcome) + "\n")
    out.write(f"\n{len(result.alerts)} alerts; deliveries: {result.delivery_summary}\n")
    out.write(f"webhook receiver got {len(result.webhook_bodies)} POSTs\n\n")
    by_rule = Counter(alert["rule"] for alert in result.alerts)
    for rule, count in sorted(by_rule.items()):
        out.write(f"  {rule:24} {count} alerts\n")
    # Alerts with folded copies first: that is the story clustering at work; then the newest.
    shown = sorted(result.alerts, key=lambda alert: len(alert["items"]), reverse=True)[:12]
    out.write("\nAlerts (those with syndicated copies folded in first):\n")
    for alert in shown:
        first = alert["items"][0] if alert["items"] else {}
        more = len(alert["items"]) - 1
        also = f"  (+{more} more report{'s' if more > 1 else ''} folded in)" if more > 0 else ""
        out.write(f"  [{alert['rule']}] {first.get('title', '')}{also}\n")
