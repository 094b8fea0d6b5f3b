"""`monitor match` (a dry run of the rules over feed files or URLs) and `monitor rules test|list`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from monitor.cli import emit_json
from monitor.cli.ops_cmds import open_existing_store
from monitor.cli.progress import Progress
from monitor.config import DEFAULT_RULES, load_config
from monitor.errors import FetchError, MonitorError, ParseError
from monitor.feedlanguage import FeedLanguages
from monitor.fetch import Fetcher, FetchSettings
from monitor.netpolicy import NetworkPolicy
from monitor.normalize import normalize_entries
from monitor.parse import parse_feed
from monitor.replay import ReplayStory, replay
from monitor.rules import RuleSet, load_rules
from monitor.rules.explain import format_explanation
from monitor.store import AlertState
from monitor.text import prefer_languages
from monitor.timeutil import parse_duration, to_iso, utcnow
from monitor.types import Item, Match

__all__ = ["cmd_match", "cmd_rules", "match_record"]


def cmd_match(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.match_config) if args.match_config else None
    sources: list[str] = args.sources or ([feed.url for feed in config.feeds] if config else [])
    if not sources:
        raise MonitorError("match needs a SOURCE (a feed file or URL), or --config with feeds")
    ruleset = load_rules(args.rules or (config.rules if config else DEFAULT_RULES))
    prefer_languages(language for rule in ruleset.rules for language in rule.languages)
    feed_languages = FeedLanguages()
    setting = config.allow_private_networks if config else False
    policy = NetworkPolicy.from_setting(True if args.allow_private_networks else setting)
    # A source that is one of the config's feed URLs is read as that feed: its tags, language and title, so
    # rules scoped by `tags:` or `languages:` fire in the dry run as they will in the daemon.
    configured = {feed.url: feed for feed in config.feeds} if config else {}
    failures = 0
    for source in sources:
        try:
            data = asyncio.run(_fetch(source, policy)) if _is_url(source) else _read(source)
            parsed = parse_feed(data, source=source, base_url=source if _is_url(source) else None)
        except (FetchError, ParseError, OSError) as exc:
            print(f"monitor match: {exc}", file=sys.stderr)
            failures += 1
            continue
        for warning in parsed.warnings:
            print(f"monitor match: {source}: warning: {warning}", file=sys.stderr)
        feed = configured.get(source)
        for item in normalize_entries(
            parsed,
            feed_url=source,
            feed_title=feed.title if feed else None,
            feed_tags=feed.tags if feed else (),
            language_override=feed.language if feed else None,
            feed_languages=feed_languages,
        ):
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
    if args.rules_command == "replay":
        return _replay(args, out)
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


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    """`monitor rules replay`: see monitor.replay. Reads the store, writes nothing."""
    config = load_config(args.config)
    try:
        since = utcnow() - parse_duration(args.since)
    except ValueError as exc:
        raise MonitorError(f"--since: {exc}") from exc
    ruleset = load_rules(args.rules or config.rules)
    unknown = [rule for rule in args.rule if rule not in ruleset.ids]
    if unknown:
        raise MonitorError(
            f"no rule {', '.join(map(repr, unknown))} (rules: {', '.join(sorted(ruleset.ids))})"
        )
    prefer_languages(language for rule in ruleset.rules for language in rule.languages)
    feed_tags = {feed.url: feed.tags for feed in config.feeds}
    with open_existing_store(args, config) as store:
        stored = store.stored_items(since)
        progress = Progress.for_output(out, "replaying stored items", len(stored), as_json=args.json)
        try:
            stories, seen = replay(
                stored, ruleset, feed_tags=feed_tags, rule_ids=args.rule, progress=progress.update
            )
        finally:
            progress.close()
        states = store.alert_states((rule, story.story_id) for story in stories for rule in story.rules)
    would = sum(len(story.rules) for story in stories)
    fresh = sum(1 for story in stories for rule in story.rules if (rule, story.story_id) not in states)
    for story in stories:
        if args.json:
            emit_json(out, _replay_json(story, states))
            continue
        out.write(
            f"{story.story_id}  {story.title}\n  first matched item fetched {to_iso(story.first_fetched)}, "
            f"{story.items} item{'s' if story.items != 1 else ''}\n"
        )
        for rule, hits in story.rules.items():
            state = states.get((rule, story.story_id))
            known = f"alerted as {state.alert_id}" if state else "no alert for this story yet"
            out.write(f"  {rule}: {len(hits)} item{'s' if len(hits) != 1 else ''} ({known})\n")
            for hit in hits:
                item = hit.stored.item
                out.write(
                    f"    {to_iso(hit.stored.fetched_at)}  {item.title or '(untitled)'}  "
                    f"[{item.feed_title or item.feed_url}]\n      {item.link or item.guid or ''}\n"
                )
    if not args.json:
        out.write(
            f"{len(stories)} stories, {would} alerts ({fresh} for stories not alerted before) from {seen} "
            f"stored items fetched since {to_iso(since)}; nothing was sent or written\n"
        )
    return 0


def _replay_json(story: ReplayStory, states: Mapping[tuple[str, str], AlertState]) -> dict[str, Any]:
    return {
        "story": story.story_id,
        "title": story.title,
        "first_fetched": to_iso(story.first_fetched),
        "rules": {
            rule: {
                "alerted": state.alert_id if (state := states.get((rule, story.story_id))) else None,
                "items": [
                    {
                        "key": hit.stored.item.key,
                        "title": hit.stored.item.title,
                        "link": hit.stored.item.link,
                        "feed": hit.stored.item.feed_url,
                        "fetched_at": to_iso(hit.stored.fetched_at),
                        "why": [{"term": h.term, "field": h.field, "text": h.text} for h in hit.match.hits],
                    }
                    for hit in hits
                ],
            }
            for rule, hits in story.rules.items()
        },
    }


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
