"""Operator views of the store: `monitor feeds`, `alerts [show ID]`, `stories [show ID]`, `deliveries [retry]`,
`nodes`, and `migrate` (SQLite to PostgreSQL)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from monitor.cli import emit_json
from monitor.cli.progress import Progress
from monitor.config import MonitorConfig, load_config
from monitor.configedit import FeedEdit, NewFeed, add_feeds, remove_feeds
from monitor.dburl import Database, PostgresURL, parse_database
from monitor.errors import MonitorError
from monitor.opml import OpmlFeed, read_opml, write_opml
from monitor.redact import register_secret
from monitor.store import DeliveryRow, FeedRow, Store, StoryRow, database_exists, open_store
from monitor.timeutil import to_iso, utcnow

__all__ = ["cmd_alerts", "cmd_deliveries", "cmd_feeds", "cmd_migrate", "cmd_nodes", "cmd_stories"]


@contextmanager
def open_existing_store(args: argparse.Namespace, config: MonitorConfig | None = None) -> Iterator[Store]:
    config = config or load_config(args.config)
    if not database_exists(config.database):
        raise MonitorError(f"no database at {config.database} yet: run `monitor once` or `monitor run` first")
    store = open_store(config.database)
    try:
        yield store
    finally:
        store.close()


def cmd_feeds(args: argparse.Namespace, out: TextIO) -> int:
    if args.action in _FEED_LIST_EDITS:
        return _FEED_LIST_EDITS[args.action](args, out)
    with open_existing_store(args) as store:
        if args.action == "unpark":
            if not args.urls:
                raise MonitorError("feeds unpark needs the URL of a parked feed")
            for url in args.urls:
                if not store.unpark_feed(url, utcnow()):
                    raise MonitorError(f"{url} is not a parked feed (see `monitor feeds`)")
                out.write(f"unparked {url}: it is polled again at once\n")
            return 0
        for feed in store.list_feeds():
            if args.json:
                emit_json(out, _feed_json(feed))
                continue
            state = "active" if feed.active else "removed"
            if feed.parked_at is not None:
                state = f"PARKED since {to_iso(feed.parked_at)} ({feed.parked_reason}), not polled"
            errors = f"  errors: {feed.error_count} ({feed.last_error})" if feed.error_count else ""
            next_poll = "never (unpark it)" if feed.parked_at is not None else to_iso(feed.next_fetch_at)
            moved = (
                f"  moved to {feed.moved_to} (permanent redirect): polled there; the config still says "
                "the old URL\n"
                if feed.moved_to and feed.moved_to != feed.url
                else ""
            )
            out.write(
                f"{feed.url}\n  {state}, every {int(feed.interval_seconds)}s, next {next_poll}, "
                f"last success {to_iso(feed.last_success_at) or 'never'}{errors}\n{moved}"
            )
    return 0


def _feed_json(feed: FeedRow) -> dict[str, object]:
    return {
        "url": feed.url,
        "title": feed.title,
        "active": feed.active,
        "interval_seconds": feed.interval_seconds,
        "next_fetch_at": to_iso(feed.next_fetch_at),
        "last_success_at": to_iso(feed.last_success_at),
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "parked_at": to_iso(feed.parked_at),
        "parked_reason": feed.parked_reason,
        "moved_to": feed.moved_to if feed.moved_to != feed.url else None,
    }


def _feeds_add(args: argparse.Namespace, out: TextIO) -> int:
    if len(args.urls) != 1:
        raise MonitorError("feeds add needs exactly one URL (several: write an OPML file and import it)")
    tags = tuple(tag.strip() for tag in (args.tags or "").split(",") if tag.strip())
    edit = add_feeds(
        args.config, [NewFeed(args.urls[0], interval=args.interval, title=args.title, tags=tags)]
    )
    _report_edit(edit, "added", args, out)
    return 0


def _feeds_remove(args: argparse.Namespace, out: TextIO) -> int:
    if not args.urls:
        raise MonitorError("feeds remove needs the URL of a listed feed (see `monitor feeds`)")
    edit = remove_feeds(args.config, args.urls)
    _report_edit(edit, "removed", args, out)
    return 0


def _feeds_import(args: argparse.Namespace, out: TextIO) -> int:
    if len(args.urls) != 1:
        raise MonitorError("feeds import needs one OPML file")
    source = Path(args.urls[0])
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise MonitorError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    listed = read_opml(data, str(source))
    # The slow part of an import is judging each new URL by the network policy (DNS): that is what is counted.
    progress = Progress.for_output(out, "checking feeds", None, as_json=args.json)

    def checked(done: int, total: int) -> None:
        progress.total = total
        progress.update(done)

    try:
        edit = add_feeds(
            args.config,
            [
                NewFeed(feed.url, title=feed.title, tags=feed.tags, line=feed.line, source=str(source))
                for feed in listed
            ],
            skip_listed=True,
            on_checked=checked if progress.live else None,
        )
    finally:
        progress.close()
    _report_edit(edit, "added", args, out)
    out.write(f"{len(edit.changed)} of {len(listed)} feeds added from {source}\n")
    return 0


def _feeds_export(args: argparse.Namespace, out: TextIO) -> int:
    config = load_config(args.config)
    feeds = [OpmlFeed(feed.url, feed.title, feed.tags, None) for feed in config.feeds]
    out.write(write_opml(feeds, title=f"monitor feeds from {args.config}").decode("utf-8"))
    return 0


def _report_edit(edit: FeedEdit, verb: str, args: argparse.Namespace, out: TextIO) -> None:
    for url in edit.changed:
        out.write(f"{verb} {url}\n")
    for url, why in edit.skipped:
        out.write(f"skipped {url}: {why}\n")
    for note in edit.notes:
        print(f"monitor feeds: note: {note}", file=sys.stderr)
    if edit.changed:
        out.write(
            f"{args.config} updated; a running daemon picks it up on reload "
            "(`systemctl reload monitor`, or kill -HUP its pid)\n"
        )


_FEED_LIST_EDITS = {
    "add": _feeds_add,
    "remove": _feeds_remove,
    "import": _feeds_import,
    "export": _feeds_export,
}


def cmd_alerts(args: argparse.Namespace, out: TextIO) -> int:
    with open_existing_store(args) as store:
        if args.action == "show":
            if not args.alert_id:
                raise MonitorError("alerts show needs an alert id")
            alert = store.get_alert(args.alert_id)
            if alert is None:
                raise MonitorError(f"no alert {args.alert_id!r}")
            if args.json:
                emit_json(out, alert)
            else:
                out.write(json.dumps(alert, ensure_ascii=False, indent=2, default=str) + "\n")
            return 0
        for alert in store.list_alerts(limit=args.limit):
            if args.json:
                emit_json(
                    out,
                    {
                        "id": alert["id"],
                        "rule": alert["rule"],
                        "story": alert["story"],
                        "created_at": alert["created_at"],
                        "silenced_by": alert.get("silenced_by"),
                        "items": [
                            {"link": i["link"], "feed": i["feed"], "title": i["title"]}
                            for i in alert["items"]
                        ],
                        "deliveries": alert["deliveries"],
                    },
                )
                continue
            first = alert["items"][0] if alert["items"] else {}
            statuses = (
                ", ".join(f"{d['channel']}={d['status']}" for d in alert["deliveries"]) or "no channels"
            )
            if alert.get("silenced_by"):
                statuses = f"none: silenced by {alert['silenced_by']}"
            more = f" (+{len(alert['items']) - 1} more reports)" if len(alert["items"]) > 1 else ""
            out.write(
                f"{alert['id']}  {alert['created_at']}  {alert['rule']}\n"
                f"  {first.get('title') or ''}{more}\n  {first.get('link') or ''}\n  deliveries: {statuses}\n"
            )
    return 0


def cmd_stories(args: argparse.Namespace, out: TextIO) -> int:
    with open_existing_store(args) as store:
        if args.action == "show":
            if not args.story_id:
                raise MonitorError("stories show needs a story id (see `monitor stories`)")
            story = store.get_story(args.story_id)
            if story is None:
                raise MonitorError(f"no story with id {args.story_id!r}")
            _show_story(story, out, as_json=args.json)
            return 0
        for story in store.list_stories(limit=args.limit):
            if args.json:
                emit_json(out, _story_json(story))
                continue
            languages = ", ".join(story.languages)
            outlets = story.outlets
            out.write(
                f"{story.id}  {story.title}\n  {_count(len(story.items), 'item')} from "
                f"{_count(len(outlets), 'outlet')} in {_count(len(story.languages), 'language')} ({languages}): "
                f"{', '.join(outlets)}\n"
            )
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _story_json(story: StoryRow) -> dict[str, object]:
    return {
        "id": story.id,
        "title": story.title,
        "created_at": to_iso(story.created_at),
        "updated_at": to_iso(story.updated_at),
        "item_count": story.item_count,
        "languages": story.languages,
        "outlets": story.outlets,
        "items": [
            {key: item.get(key) for key in ("link", "feed", "feed_title", "title", "language")}
            for item in story.items
        ],
    }


def _show_story(story: StoryRow, out: TextIO, *, as_json: bool) -> None:
    """Each item of the story and why it joined: the tier, the score, the item it matched, the evidence."""
    keys = {item["key"]: n for n, item in enumerate(story.items, 1)}
    if as_json:
        document = _story_json(story)
        document["items"] = [
            {**{k: item.get(k) for k in ("key", "link", "feed", "feed_title", "title", "language")},
             "published": item.get("published"), "tier": item.get("tier") or "unknown", "reason": item.get("reason"),
             "score": item.get("score"), "matched": item.get("matched"), "evidence": item.get("evidence") or []}
            for item in story.items
        ]  # fmt: skip
        emit_json(out, document)
        return
    out.write(
        f"{story.id}  {story.title}\n  {len(story.items)} items, languages: {', '.join(story.languages)}; "
        f"outlets: {', '.join(story.outlets)}\n"
    )
    for n, item in enumerate(story.items, 1):
        outlet = item.get("feed_title") or item["feed"]
        out.write(
            f"\n  [{n}] {item['title']}\n      {outlet} ({item.get('language') or '?'}), {item.get('published')}\n"
        )
        tier = item.get("tier")
        if tier is None:
            out.write("      joined: not recorded (stored before story membership was kept)\n")
            continue
        matched = keys.get(item.get("matched") or "")
        if item.get("reason") == "new":
            out.write("      opened the story\n")
            continue
        target = f"item [{matched}]" if matched else "an item no longer stored"
        out.write(
            f"      joined by the {tier} tier, score {item.get('score') or 0.0:.2f}, matching {target}\n"
        )
        evidence = item.get("evidence") or []
        if evidence:
            out.write(f"      evidence: {', '.join(evidence)}\n")


def cmd_deliveries(args: argparse.Namespace, out: TextIO) -> int:
    with open_existing_store(args) as store:
        if args.action == "retry":
            if not args.ids and not args.dead:
                raise MonitorError("deliveries retry needs delivery ids or --dead")
            count = store.retry_deliveries(utcnow(), ids=args.ids, all_dead=args.dead)
            out.write(f"{count} deliveries queued again\n")
            return 0
        if args.action == "enable":
            return _enable_channel(store, args.ids, out)
        disabled = store.disabled_channel_reasons()
        for channel, (reason, since) in sorted(disabled.items()):
            # With --json stdout holds only delivery objects; the warning still reaches the person.
            print(
                f"CHANNEL DISABLED {channel} since {to_iso(since)}: {reason}",
                file=sys.stderr if args.json else out,
            )
        rows = store.list_deliveries(statuses=None if args.all else ("pending", "dead"), limit=1000)
        for row in rows:
            if args.json:
                emit_json(out, row.as_json())
            else:
                out.write(_delivery_line(row) + "\n")
        counts = store.delivery_counts()
        if not args.json:
            out.write(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no deliveries")
            out.write("\n")
    return 0


def _enable_channel(store: Store, names: list[str], out: TextIO) -> int:
    """Re-enable one channel disabled after HTTP 410, and make its parked pending deliveries due now.

    Its dead deliveries (the one that met the 410 among them) stay dead: the operator decides whether to
    re-drive them (`deliveries retry --dead`), since they may be old by now."""
    if len(names) != 1:
        raise MonitorError("deliveries enable needs exactly one channel name")
    channel = names[0]
    if not store.enable_channel(channel):
        disabled = ", ".join(sorted(store.disabled_channels())) or "none"
        raise MonitorError(f"channel {channel!r} is not disabled (disabled channels: {disabled})")
    parked = [
        row.id
        for row in store.list_deliveries(statuses=("pending",), limit=1_000_000)
        if row.channel == channel
    ]
    requeued = store.retry_deliveries(utcnow(), ids=parked) if parked else 0
    dead = sum(
        1 for row in store.list_deliveries(statuses=("dead",), limit=1_000_000) if row.channel == channel
    )
    out.write(f"channel {channel} enabled; {requeued} parked deliveries due now")
    if dead:
        out.write(
            f"; {dead} dead deliveries stay dead (re-drive them with `monitor deliveries retry --dead`)"
        )
    out.write("\n")
    return 0


def _delivery_line(row: DeliveryRow) -> str:
    when = f"next {to_iso(row.next_attempt_at)}" if row.status == "pending" else to_iso(row.sent_at) or ""
    error = f"\n  last error: {row.last_error}" if row.last_error else ""
    # The kind says what the analyst gets: a story's first notification, an update into its thread (with the
    # delivery it replies to), an escalation, a digest, one alert (group_by: [rule, story]) or a notice.
    reply = f" to {row.in_reply_to}" if row.in_reply_to else ""
    kind = f"{row.kind}{reply}"
    return f"{row.id}  {row.status:7} {row.channel:12} {kind:12} attempts {row.attempts}  {when}{error}"


def cmd_nodes(args: argparse.Namespace, out: TextIO) -> int:
    """The daemons on this database: live ones (heard from within cluster.dead_after), or with --all also the
    stopped and silent ones of the last week; each with its share of the feeds and what it holds now."""
    config = load_config(args.config)
    dead_after = config.cluster.dead_after.total_seconds()
    now = utcnow()
    with open_existing_store(args, config) as store:
        nodes = store.list_nodes(now)
    shown = [node for node in nodes if args.all or node.alive(now, dead_after)]
    for node in shown:
        if args.json:
            emit_json(out, node.as_json(now, dead_after))
            continue
        if node.stopped_at is not None:
            state = f"stopped {to_iso(node.stopped_at)}"
        elif node.alive(now, dead_after):
            state = "live"
        else:
            state = (
                f"SILENT for {(now - node.heartbeat_at).total_seconds():.0f}s (dead: its leases are released)"
            )
        out.write(
            f"{node.id}  {state}\n  host {node.host}, pid {node.pid}, monitor {node.version}, up since "
            f"{to_iso(node.started_at)}, last heartbeat {to_iso(node.heartbeat_at)} "
            f"({(now - node.heartbeat_at).total_seconds():.0f}s ago)\n  {node.feeds} feeds last polled by it, "
            f"{node.leased} being fetched, {node.deliveries} deliveries being sent\n"
        )
    if not args.json:
        live = sum(1 for node in nodes if node.alive(now, dead_after))
        out.write(f"{live} live node{'s' if live != 1 else ''}\n")
    return 0


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def cmd_migrate(args: argparse.Namespace, out: TextIO) -> int:
    """Copy an SQLite database into an empty PostgreSQL database (monitor.store.migrate), verified by counts.
    The SQLite file's process lock is held meanwhile, so no daemon writes to it during the copy."""
    from monitor.service import DatabaseLock
    from monitor.store.migrate import copy_sqlite_to_postgres

    source = parse_database_arg(args.source, "--from")
    target = parse_database_arg(_expand(args.target), "--to")
    if not isinstance(source, Path):
        raise MonitorError("--from must be the path of an SQLite database file")
    if not isinstance(target, PostgresURL):
        raise MonitorError("--to must be a postgresql:// URL")
    lock = DatabaseLock(source)
    lock.acquire()
    progress = Progress.for_output(out, "copying", None)

    def copied(table: str, rows: int) -> None:
        progress.label = f"copying {table}"
        progress.update(rows)

    try:
        copies = copy_sqlite_to_postgres(source, target, progress=copied if progress.live else None)
    finally:
        progress.close()
        lock.release()
    for copy in copies:
        out.write(f"{copy.table:18} {copy.source_rows:>9} rows copied, {copy.target_rows} in the target\n")
    total = sum(copy.source_rows for copy in copies)
    out.write(
        f"copied {total} rows of {len(copies)} tables from {source} to {target}; every table's count matches. "
        f"Now set `database: {target}` in monitor.yaml and start the daemons.\n"
    )
    return 0


def parse_database_arg(value: str, option: str) -> Database:
    try:
        return parse_database(value)
    except ValueError as exc:
        raise MonitorError(f"{option}: {exc}") from None


def _expand(value: str) -> str:
    """${VAR} from the environment, as in monitor.yaml; each value is then masked in everything printed."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MonitorError(f"environment variable {name} is not set")
        register_secret(os.environ[name], match.group(0))
        return os.environ[name]

    return _VARIABLE.sub(one, value)
