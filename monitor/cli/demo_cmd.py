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
    out.write(f"webhook receiver got {len(result.webhook_bodies)} POSTs\n")
    # What the analyst saw: one notification per story, naming every rule that fired on it (issue 8).
    out.write(
        f"\nThe analyst got {len(result.webhook_bodies)} notifications for {result.items} items in "
        f"{result.stories} stories ({result.stories_alerted} of them matched a rule; {len(result.alerts)} "
        "alerts, one per rule and story, grouped into one message per story).\n\n"
    )
    by_rule = Counter(alert["rule"] for alert in result.alerts)
    for rule, count in sorted(by_rule.items()):
        out.write(f"  {rule:24} {count} alerts\n")
    # The stories the most rules fired on first: each is one message naming all of them.
    notifications = [b for b in result.webhook_bodies if b.get("type") == "notification"]
    if notifications:
        out.write("\nNotifications (those naming the most rules first):\n")
        widest = sorted(notifications, key=lambda b: len(b.get("alerts") or ()), reverse=True)[:8]
        for body in widest:
            rules = ", ".join(rule["id"] for rule in body.get("rules") or ())
            story = body.get("story") or {}
            count = int(story.get("item_count") or 1)
            languages = story.get("languages") or []
            also = f"  ({count} reports" + (f", in {len(languages)} languages" if len(languages) > 1 else "")
            also = also + ")" if count > 1 else ""
            out.write(f"  [{rules}] {(body.get('item') or {}).get('title', '')}{also}\n")
        out.write("\n")
    # Alerts with folded copies first: that is the story clustering at work; then the newest.
    shown = sorted(result.alerts, key=lambda alert: len(alert["items"]), reverse=True)[:12]
    out.write("\nAlerts (those with syndicated copies folded in first):\n")
    for alert in shown:
        first = alert["items"][0] if alert["items"] else {}
        more = len(alert["items"]) - 1
        also = f"  (+{more} more report{'s' if more > 1 else ''} folded in)" if more > 0 else ""
        out.write(f"  [{alert['rule']}] {first.get('title', '')}{also}\n")
