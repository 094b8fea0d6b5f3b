"""`monitor silence add | list | expire`: mute alerts of a rule, a story and/or a feed for a while.

The silence is stored (table `silences`), so it survives restarts, and a running daemon reads the silences
once per poll that matched anything: no reload is needed. See docs/design.md "Silences"."""

from __future__ import annotations

import argparse
import secrets
from typing import TextIO

from monitor.cli import emit_json
from monitor.config import load_config
from monitor.errors import ConfigError, MonitorError
from monitor.rules import load_rules
from monitor.store import SilenceRow, open_store
from monitor.timeutil import parse_duration, to_iso, utcnow

__all__ = ["cmd_silence"]


def cmd_silence(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    now = utcnow()
    # open_store creates the database when there is none yet: a silence may be set before the first run.
    with open_store(config.database) as store:
        if args.action == "add":
            if not (args.rule or args.story or args.feed):
                raise MonitorError("silence add needs at least one of --rule, --story, --feed")
            if not args.reason or not args.reason.strip():
                raise MonitorError('silence add needs --reason "why" (shown by `monitor silence list`)')
            try:
                duration = parse_duration(args.duration)
            except (ConfigError, ValueError) as exc:
                raise MonitorError(f"--for {args.duration!r}: {exc}") from None
            if duration.total_seconds() <= 0:
                raise MonitorError(f"--for {args.duration!r}: must be longer than 0")
            # A typo would make a silence that mutes nothing while the analyst believes it does: refuse it.
            if args.rule is not None and args.rule not in {
                rule.id for rule in load_rules(config.rules).rules
            }:
                raise MonitorError(
                    f"--rule {args.rule!r}: no such rule in {config.rules} (see `monitor rules list`)"
                )
            if args.feed is not None and args.feed not in {feed.url for feed in config.feeds}:
                raise MonitorError(f"--feed {args.feed!r}: not a configured feed (see `monitor feeds`)")
            if args.story is not None and store.get_story(args.story) is None:
                raise MonitorError(
                    f"--story {args.story!r}: no such story (see `monitor stories`, `monitor alerts`)"
                )
            silence = SilenceRow(
                id=f"sil_{secrets.token_hex(6)}",
                rule_id=args.rule,
                story_id=args.story,
                feed_url=args.feed,
                reason=args.reason.strip(),
                created_at=now,
                ends_at=now + duration,
            )
            store.add_silence(silence)
            if args.json:
                emit_json(out, silence.as_json(now))
            else:
                out.write(f"{silence.id}  silenced until {to_iso(silence.ends_at)}: {_matchers(silence)}\n")
            return 0
        if args.action == "expire":
            if not args.silence_id:
                raise MonitorError("silence expire needs a silence id (see `monitor silence list`)")
            if not store.expire_silence(args.silence_id, now):
                raise MonitorError(
                    f"no active silence {args.silence_id!r} (see `monitor silence list --all`)"
                )
            out.write(f"{args.silence_id}  expired; later alerts it would have held are sent\n")
            return 0
        for silence in store.silences(now, ended=args.all):
            if args.json:
                emit_json(out, silence.as_json(now))
                continue
            state = "active" if silence.active(now) else "ended"
            out.write(
                f"{silence.id}  {state} until {to_iso(silence.ends_at)}  {_matchers(silence)}\n"
                f"  {silence.reason}\n"
            )
    return 0


def _matchers(silence: SilenceRow) -> str:
    parts = [
        f"{name}={value}"
        for name, value in (
            ("rule", silence.rule_id),
            ("story", silence.story_id),
            ("feed", silence.feed_url),
        )
        if value is not None
    ]
    return " and ".join(parts)
