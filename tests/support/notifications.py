"""Notifications per event per channel: a labelled story set replayed through the real pipeline into real
webhook receivers.

The set's items are served as RSS by a FeedServer on 127.0.0.1, one feed per labelled outlet, and polled in
publication order (each feed is polled when one of its items is published, with the pipeline's clock at that
moment; feeds with reports at the same moment one after the other, by name), with the default rules, a real SQLite file and two webhook channels: `grouped` (the default, one
notification per story) and `per-alert` (``group_by: [rule, story]``, the behaviour before issue 8). Every
message a receiver got is mapped to the labelled events of the items it carries (each alert's item); the figure
is the number of messages that name an event, averaged over the events named at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from monitor.config import load_config
from monitor.rules import RuleSet, load_rules
from monitor.service import open_runtime, poll_all
from tests.support.alerts import alerts_in
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.support.story_sets import LabelledItem, load_set


@dataclass(frozen=True)
class ChannelFigure:
    messages: int  # messages the channel's receiver got (notifications and updates, or alerts)
    events: int  # labelled events named by at least one of them
    updates: int  # of the messages, updates (a later rule on a story already notified)

    messages_naming_events: int = 0  # Σ over events of the messages that name it
    threads_naming_events: int = 0  # the same without updates: Σ over events of the stories that carry it

    @property
    def per_event(self) -> float:
        return self.messages_naming_events / self.events if self.events else 0.0

    @property
    def threads_per_event(self) -> float:
        """First notifications per event: what the clustering decides (an event split into several stories
        is several threads); the rest of `per_event` are updates."""
        return self.threads_naming_events / self.events if self.events else 0.0


@dataclass(frozen=True)
class SetFigures:
    name: str
    items: int
    events: int
    grouped: ChannelFigure
    per_alert: ChannelFigure

    def row(self) -> str:
        return (
            f"{self.name:28} {self.items:4d} items {self.events:3d} events | notifications per event per channel: "
            f"grouped {self.grouped.per_event:.2f} ({self.grouped.messages} messages, {self.grouped.updates} "
            f"updates, {self.grouped.events} events; threads per event {self.grouped.threads_per_event:.2f}), "
            f"per alert {self.per_alert.per_event:.2f} "
            f"({self.per_alert.messages} messages)"
        )


def _rss(title: str, items: Sequence[LabelledItem]) -> bytes:
    from xml.sax.saxutils import escape

    parts = [
        f"<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel><title>{escape(title)}</title>"
    ]
    for it in items:
        parts.append(
            f"<item><title>{escape(it.title)}</title>"
            + (f"<link>{escape(it.link)}</link>" if it.link else "")
            + f"<guid isPermaLink='false'>{escape(it.id)}</guid>"
            f"<description>{escape(it.summary)}</description>"
            f"<pubDate>{it.published.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def _figure(bodies: Sequence[dict[str, Any]], event_of: dict[tuple[str, str], str]) -> ChannelFigure:
    per_event: dict[str, int] = defaultdict(int)
    threads: dict[str, int] = defaultdict(int)
    for body in bodies:
        named = {event_of.get((a["item"]["feed"]["title"], a["item"]["title"])) for a in alerts_in(body)}
        for event in named - {None}:
            assert event is not None
            per_event[event] += 1
            if body.get("type") != "update":
                threads[event] += 1
    return ChannelFigure(
        messages=len(bodies),
        events=len(per_event),
        updates=sum(1 for body in bodies if body.get("type") == "update"),
        messages_naming_events=sum(per_event.values()),
        threads_naming_events=sum(threads.values()),
    )


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def replay_notifications(path: Path, tmp: Path, *, group_wait: timedelta | None = None) -> SetFigures:
    """Replay the labelled set at `path` through the pipeline (see the module docstring) in `tmp`. `group_wait`
    gives every rule that `group_wait` (the opt-in trade-off: a later first message that takes in the rules firing
    meanwhile); None keeps the rules as they are (no wait by default)."""
    items = load_set(path)
    feeds = sorted({it.feed for it in items})
    event_of = {(it.feed, it.title): it.event for it in items}
    with FeedServer() as server, WebhookReceiver() as grouped, WebhookReceiver() as per_alert:
        paths = {feed: f"/{n}.xml" for n, feed in enumerate(feeds)}
        for feed in feeds:
            server.set(paths[feed], _rss(feed, []))
        config_path = tmp / "monitor.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "database": str(tmp / "monitor.db"),
                    "allow_private_networks": ["127.0.0.1/32"],
                    "feeds": [{"url": server.url(paths[feed]), "title": feed} for feed in feeds],
                    # One server on 127.0.0.1 stands in for every outlet of the set: per-host politeness
                    # would only space the replay's polls 200 ms apart.
                    "fetch": {"per_host_concurrency": 0, "per_host_gap": "0s"},
                    "channels": {
                        "grouped": {"type": "webhook", "url": grouped.url},
                        "per-alert": {"type": "webhook", "url": per_alert.url, "group_by": ["rule", "story"]},
                    },
                }
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)
        clock = _Clock(items[0].published)

        async def run() -> None:
            rules = load_rules(config.rules)
            if group_wait is not None:
                rules = RuleSet(
                    tuple(dataclasses.replace(rule, group_wait=group_wait) for rule in rules.rules),
                    rules.actors,
                )
            async with open_runtime(config, rules, clock=clock) as runtime:
                published: dict[str, list[LabelledItem]] = defaultdict(list)
                by_time: dict[datetime, list[LabelledItem]] = defaultdict(list)
                for it in items:
                    by_time[it.published].append(it)
                for moment in sorted(by_time):
                    clock.now = moment
                    changed = {it.feed for it in by_time[moment]}
                    for it in by_time[moment]:
                        published[it.feed].append(it)
                    for feed in changed:
                        server.set(paths[feed], _rss(feed, published[feed]))
                    # One feed after the other, in a fixed order: concurrent polls would commit (and so cluster)
                    # reports published at the same moment in whatever order they finish, and the figure with them.
                    for feed in sorted(changed):
                        await poll_all(runtime, [server.url(paths[feed])])
                    await runtime.deliver(now=moment)
                if group_wait is not None:  # what is still held goes out once the last wait is over
                    clock.now = items[-1].published + group_wait
                    await runtime.deliver(now=clock.now)

        asyncio.run(run())
        return SetFigures(
            name=f"{path.parent.name}/{path.name}",
            items=len(items),
            events=len({it.event for it in items}),
            grouped=_figure([r.json() for r in grouped.requests], event_of),
            per_alert=_figure([r.json() for r in per_alert.requests], event_of),
        )
