"""A farm of generated RSS feeds on 127.0.0.1, for benchmarks that fetch many feeds.

The text is generated from the words of the demo's own de/en/ru feeds (written for this project, no publisher's
text), seeded, so every run serves the same bytes. Each feed keeps its newest 50 items; `advance(n)` publishes n new items per
feed (the oldest fall off), which changes the feed's ETag. Requests carrying the current ETag in
If-None-Match get a 304 with no body.

The server runs in its own process, so its CPU is not charged to the tool being measured. It counts requests,
304s and TCP connections, which the benchmark reads between rounds through a pipe (not over HTTP, so the
counts are not disturbed by the measuring).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import multiprocessing as mp
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ITEMS_PER_FEED = 50
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

_LANGS = ("en", "de", "ru")
_DEMO_DATA = Path(__file__).resolve().parent.parent / "monitor" / "demo" / "data"
_DEMO_FILES = {"en": ["wire-en.xml"], "de": ["wire-de.xml", "welt-de.xml"], "ru": ["wire-ru.xml"]}


@functools.cache
def vocabulary(lang: str) -> tuple[list[str], list[float]]:
    """The words of the demo's own feeds in `lang` (text written for this project), with Zipf weights by their
    frequency rank: generated sentences then have real words, a realistic mix of common and rare ones, and
    word pairs that rarely repeat, as in a real news stream (a small template set would make every item a
    near-copy of the others and measure the story tier's worst case instead)."""
    counts: Counter[str] = Counter()
    for name in _DEMO_FILES[lang]:
        xml = (_DEMO_DATA / name).read_text(encoding="utf-8")
        fields = re.findall(r"<(title|description)>(.*?)</\1>", xml, flags=re.S)
        text = html.unescape(re.sub(r"<[^>]+>|https?://\S+", " ", " ".join(body for _, body in fields)))
        counts.update(re.findall(r"[^\W\d_][^\W_]*(?:-[^\W\d_]+)*", text))
    words = [word for word, _ in counts.most_common()]
    return words, [1.0 / (rank + 1) for rank in range(len(words))]


def _words(rng: random.Random, lang: str, low: int, high: int) -> str:
    words, weights = vocabulary(lang)
    picked = rng.choices(words, weights, k=rng.randint(low, high))
    return " ".join(picked)


def generate_item(feed: int, serial: int) -> dict[str, str]:
    """Item number `serial` of feed `feed`: deterministic, a 6-11 word title and 3-5 sentences of summary."""
    rng = random.Random(feed * 1_000_003 + serial)
    lang = _LANGS[feed % 3]
    title = _words(rng, lang, 6, 11)
    sentences = [_words(rng, lang, 9, 18) for _ in range(rng.randint(3, 5))]
    summary = " ".join(s[:1].upper() + s[1:] + "." for s in sentences)
    published = T0 + timedelta(minutes=7 * serial + feed % 60)
    return {
        "guid": f"urn:bench:{feed}:{serial}",
        "link": f"http://127.0.0.1/news/{feed}/{serial}.html",
        "title": title[:1].upper() + title[1:],
        "summary": f"<p>{summary}</p>",
        "date": format_datetime(published),
        "lang": lang,
    }


def render_feed(
    feed: int, newest: int, items: int = ITEMS_PER_FEED, extra: Sequence[dict[str, str]] = ()
) -> bytes:
    """RSS 2.0 bytes with items newest-items+1 .. newest, newest first, after the `extra` items (probes)."""
    first = max(0, newest - items + 1)
    lang = _LANGS[feed % 3]
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Bench feed {feed}</title><link>http://127.0.0.1/{feed}</link>",
        f"<description>generated</description><language>{lang}</language>",
    ]
    for item in [*extra, *(generate_item(feed, serial) for serial in range(newest, first - 1, -1))]:
        parts.append(
            f"<item><title>{escape(item['title'])}</title><link>{item['link']}</link>"
            f'<guid isPermaLink="false">{item["guid"]}</guid><pubDate>{item["date"]}</pubDate>'
            f"<description>{escape(item['summary'])}</description></item>"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode()


@dataclass
class _Counters:
    requests: int = 0
    not_modified: int = 0
    connections: int = 0
    paths: dict[str, int] = field(default_factory=dict)


class _Farm:
    def __init__(self, feeds: int, items: int = ITEMS_PER_FEED) -> None:
        self.feeds = feeds
        self.items = items
        self.newest = [items - 1] * feeds
        self.bodies: list[bytes] = []
        self.etags: list[str] = []
        self.counters = _Counters()
        # Probe items (bench_steady): prepended to a feed's items; the wall-clock time a body carrying a probe
        # was first served is kept by the probe's marker, for the latency from fetch to webhook.
        self.extra: dict[int, list[dict[str, str]]] = {}
        self.unserved: dict[int, list[str]] = {}
        self.served: dict[str, float] = {}
        self._render_all()

    def _render(self, n: int) -> None:
        body = render_feed(n, self.newest[n], self.items, self.extra.get(n, ()))
        self.bodies[n] = body
        self.etags[n] = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'

    def _render_all(self) -> None:
        self.bodies = [b""] * self.feeds
        self.etags = [""] * self.feeds
        for n in range(self.feeds):
            self._render(n)

    def advance(self, per_feed: int) -> None:
        self.newest = [n + per_feed for n in self.newest]
        self._render_all()

    def advance_some(self, feeds: Sequence[int]) -> None:
        """One new generated item in each of `feeds` (the others keep their ETag)."""
        for n in feeds:
            self.newest[n] += 1
            self._render(n)

    def publish(self, n: int, item: dict[str, str], marker: str) -> None:
        """Prepend `item` to feed n; the first 200 response carrying it stamps `marker`'s serve time."""
        self.extra.setdefault(n, []).insert(0, item)
        del self.extra[n][10:]
        self.unserved.setdefault(n, []).append(marker)
        self._render(n)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                self.counters.requests += 1
                self.counters.paths[path] = self.counters.paths.get(path, 0) + 1
                writer.write(self._respond(path, headers))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass  # the client went away, or the farm is stopping with keep-alive connections open
        finally:
            writer.close()

    def _respond(self, path: str, headers: dict[str, str]) -> bytes:
        try:
            n = int(path.rsplit("/", 1)[-1].removesuffix(".xml"))
            body, etag = self.bodies[n], self.etags[n]
        except (ValueError, IndexError):
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        if headers.get("if-none-match") == etag:
            self.counters.not_modified += 1
            return f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode()
        for marker in self.unserved.pop(n, ()):
            self.served[marker] = time.time()
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\nETag: {etag}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


def _serve(feeds: int, conn: Any, items: int = ITEMS_PER_FEED) -> None:
    async def main() -> None:
        farm = _Farm(feeds, items)
        server = await asyncio.start_server(farm.handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "advance":
                farm.advance(command[1])
                conn.send("ok")
            elif command[0] == "advance_some":
                farm.advance_some(command[1])
                conn.send("ok")
            elif command[0] == "publish":
                farm.publish(*command[1:])
                conn.send("ok")
            elif command[0] == "served":
                conn.send(dict(farm.served))
            elif command[0] == "stats":
                c = farm.counters
                conn.send(
                    {
                        "requests": c.requests,
                        "not_modified": c.not_modified,
                        "connections": c.connections,
                        "max_fetches_per_feed": max(c.paths.values(), default=0),
                    }
                )
                farm.counters = _Counters()
            elif command[0] == "stop":
                server.close()
                conn.send("ok")
                return

    asyncio.run(main())


class FeedFarm:
    """Handle on the server process: `urls`, `advance(n)`, `stats()` (and reset), `stop()`."""

    def __init__(self, feeds: int, items_per_feed: int = ITEMS_PER_FEED) -> None:
        self._conn, child = mp.Pipe()
        self.feeds = feeds
        self._proc = mp.get_context("spawn").Process(
            target=_serve, args=(feeds, child, items_per_feed), daemon=True
        )
        self._proc.start()
        self.port: int = self._conn.recv()
        self.urls = [f"http://127.0.0.1:{self.port}/feeds/{n}.xml" for n in range(feeds)]

    def _ask(self, *command: Any) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def advance(self, per_feed: int) -> None:
        self._ask("advance", per_feed)

    def advance_some(self, feeds: Sequence[int]) -> None:
        self._ask("advance_some", list(feeds))

    def publish(self, feed: int, item: dict[str, str], marker: str) -> None:
        self._ask("publish", feed, item, marker)

    def served(self) -> dict[str, float]:
        """Probe marker → wall-clock time (time.time) its body was first served."""
        result: dict[str, float] = self._ask("served")
        return result

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self._ask("stats")
        return result

    def stop(self) -> None:
        self._ask("stop")
        self._proc.join(5)
