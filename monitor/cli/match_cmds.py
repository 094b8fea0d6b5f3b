"""`monitor match` (a dry run of the rules over feed files or URLs) and `monitor rules test|list`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, TextIO

from monitor.cli import emit_json
from monitor.config import DEFAULT_RULES
from monitor.errors import FetchError, MonitorError, ParseError
from monitor.feedlanguage import FeedLanguages
from monitor.fetch import Fetcher, FetchSettings
from monitor.netpolicy import NetworkPolicy
from monitor.normalize import normalize_entries
from monitor.parse import parse_feed
from monitor.rules import RuleSet, load_rules
from monitor.rules.explain import format_explanation
from monitor.text import prefer_languages
from monitor.types import Item, Match

__all__ = ["cmd_match", "cmd_rules", "match_record"]


def cmd_match(args: argparse.Namespace, out: TextIO) -> int:
    ruleset = load_rules(args.rules or DEFAULT_RULES)
    prefer_languages(language for rule in ruleset.rules for language in rule.languages)
    feed_languages = FeedLanguages()
    policy = NetworkPolicy.from_setting(bool(args.allow_private_networks))
    failures = 0
    for source in args.sources:
        try:
            data = asyncio.run(_fetch(source, policy)) if _is_url(source) else _read(source)
            parsed = parse_feed(data, source=source, base_url=source if _is_url(source) else None)
        except (FetchError, ParseError, OSError) as exc:
            print(f"monitor match: {exc}", file=sys.stderr)
            failures += 1
            continue
        for warning in parsed.warnings:
            print(f"monitor match: {source}: warning: {warning}", file=sys.stderr)
        for item in normalize_entries(parsed, feed_url=source, feed_languages=feed_languages):
            matches = ruleset.match(item)
            if args.json:
                emit_json(out, match_record(item, matches, source))
            elif matches or args.all:
                _print_item(out, item, matches, explain=args.explain)
    return 1 if failures else 0


def match_record(item: Item, matches: list[Match], source: str) -> dict[str, Any]:
    """The `monitor match --json` object for one entry (a contract: `id` and `rules` are scored by tools)."""
    return {
        "id": item.guid or item.link or item.key,
        "rules": [m.rule_id for m in matches],
        "title": item.title,
        "link": item.link,
        "source": source,
        "language": item.language,
        "why": {
            m.rule_id: [
                {"term": h.term, "field": h.field, "text": h.text, "start": h.start, "end": h.end}
                for h in m.hits
            ]
            for m in matches
        },
    }


def _print_item(out: TextIO, item: Item, matches: list[Match], *, explain: bool) -> None:
    rules = ", ".join(m.rule_id for m in matches) or "(no rule)"
    out.write(f"{item.title or '(untitled)'}\n  {item.link or item.guid or ''}\n  rules: {rules}\n")
    if explain:
        for match in matches:
            for line in format_explanation(match).splitlines():
                out.write(f"    {line}\n")
    out.write("\n")


def cmd_rules(args: argparse.Namespace, out: TextIO) -> int:
    ruleset: RuleSet = load_rules(args.rules or DEFAULT_RULES)
    if args.rules_command == "list":
        for rule in ruleset.rules:
            if getattr(args, "json", False):
                emit_json(
                    out,
                    {
                        "id": rule.id,
                        "title": rule.title,
                        "notify": list(rule.notify) if rule.notify is not None else None,
                        "file": str(rule.file),
                        "line": rule.line,
                    },
                )
                continue
            notify = ", ".join(rule.notify) if rule.notify is not None else "all channels"
            out.write(f"{rule.id:28} {rule.title}  [{notify}]  {rule.file}:{rule.line}\n")
        return 0
    if args.rule not in ruleset.ids:
        raise MonitorError(f"no rule {args.rule!r} (rules: {', '.join(sorted(ruleset.ids))})")
    match = ruleset.match_text(args.rule, args.text, language=args.language)
    if match is None:
        out.write(f"{args.rule}: no match\n")
        return 1
    out.write(f"{args.rule}: MATCH\n")
    for line in format_explanation(match).splitlines():
        out.write(f"  {line}\n")
    return 0


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _read(source: str) -> bytes:
    return Path(source).read_bytes()


async def _fetch(url: str, policy: NetworkPolicy) -> bytes:
    async with Fetcher(FetchSettings(), policy) as fetcher:
        result = await fetcher.fetch(url)
    if result.content is None:
        raise FetchError(url, f"HTTP {result.status} without a body")
    return result.content
