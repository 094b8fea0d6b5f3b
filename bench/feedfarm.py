"""A farm of generated RSS feeds on 127.0.0.1, for benchmarks that fetch many feeds.

The text is generated from small de/en/ru word lists and sentence templates (no publisher's text), seeded, so
every run serves the same bytes. Each feed keeps its newest 50 items; `advance(n)` publishes n new items per
feed (the oldest fall off), which changes the feed's ETag. Requests carrying the current ETag in
If-None-Match get a 304 with no body.

The server runs in its own process, so its CPU is not charged to the tool being measured. It counts requests,
304s and TCP connections, which the benchmark reads between rounds through a pipe (not over HTTP, so the
counts are not disturbed by the measuring).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing as mp
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

ITEMS_PER_FEED = 50
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)

_WORDS: dict[str, dict[str, list[str]]] = {
    "en": {
        "who": [
            "The foreign minister",
            "Officials in Kyiv",
            "A Kremlin spokesman",
            "The US envoy",
            "Investors",
            "Analysts",
            "The central bank",
            "European diplomats",
            "The energy ministry",
            "Union leaders",
            "Farmers in the south",
            "The city council",
            "A government source",
            "Mining companies",
        ],
        "did": [
            "said on Monday that",
            "warned that",
            "confirmed that",
            "denied reports that",
            "expect that",
            "told reporters that",
            "announced that",
            "are worried that",
            "signalled that",
        ],
        "what": [
            "talks on a ceasefire would resume next week",
            "exports of grain rose sharply",
            "the new pipeline would be delayed",
            "rare earth supplies remain tight",
            "prices for fertiliser keep climbing",
            "a deal on prisoner exchanges is close",
            "sanctions on banks will be extended",
            "the summit in Geneva was postponed",
            "production of aircraft parts will double",
            "the budget gap is wider than planned",
            "a delegation will travel to Riyadh",
            "inflation slowed for the third month",
        ],
        "tail": [
            "according to a statement",
            "citing people familiar with the matter",
            "in an interview with local radio",
            "after a meeting in the capital",
            "late on Sunday",
        ],
    },
    "de": {
        "who": [
            "Der Außenminister",
            "Die Bundesregierung",
            "Ein Sprecher des Kremls",
            "Der US-Gesandte",
            "Anleger",
            "Analysten",
            "Die Notenbank",
            "Europäische Diplomaten",
            "Das Energieministerium",
            "Gewerkschafter",
            "Landwirte im Süden",
            "Der Stadtrat",
            "Bergbaukonzerne",
        ],
        "did": [
            "sagte am Montag, dass",
            "warnte, dass",
            "bestätigte, dass",
            "wies Berichte zurück, dass",
            "erwarten, dass",
            "kündigte an, dass",
            "befürchten, dass",
            "deutete an, dass",
        ],
        "what": [
            "die Gespräche über eine Waffenruhe nächste Woche weitergehen",
            "die Getreideexporte deutlich gestiegen sind",
            "sich die neue Pipeline verzögert",
            "seltene Erden weiterhin knapp bleiben",
            "die Düngerpreise weiter steigen",
            "ein Gefangenenaustausch bevorsteht",
            "die Sanktionen gegen Banken verlängert werden",
            "der Gipfel in Genf verschoben wurde",
            "die Produktion von Flugzeugteilen verdoppelt wird",
            "das Haushaltsloch größer ist als geplant",
            "die Inflation zum dritten Mal gesunken ist",
        ],
        "tail": [
            "wie aus einer Mitteilung hervorgeht",
            "berichten Insider",
            "in einem Radiointerview",
            "nach einem Treffen in der Hauptstadt",
            "am späten Sonntag",
        ],
    },
    "ru": {
        "who": [
            "Министр иностранных дел",
            "Власти Киева",
            "Пресс-секретарь Кремля",
            "Спецпосланник США",
            "Инвесторы",
            "Аналитики",
            "Центральный банк",
            "Европейские дипломаты",
            "Минэнерго",
            "Профсоюзы",
            "Фермеры на юге",
            "Городской совет",
            "Горнодобывающие компании",
        ],
        "did": [
            "заявил в понедельник, что",
            "предупредил, что",
            "подтвердил, что",
            "опроверг сообщения о том, что",
            "ожидают, что",
            "сообщил журналистам, что",
            "объявил, что",
            "опасаются, что",
        ],
        "what": [
            "переговоры о перемирии возобновятся на следующей неделе",
            "экспорт зерна резко вырос",
            "строительство нового трубопровода задержится",
            "поставки редкоземельных металлов ограничены",
            "цены на удобрения продолжают расти",
            "сделка по обмену пленными близка",
            "санкции против банков будут продлены",
            "саммит в Женеве перенесён",
            "производство авиационных деталей удвоится",
            "дефицит бюджета больше запланированного",
            "инфляция замедлилась третий месяц подряд",
        ],
        "tail": [
            "говорится в заявлении",
            "сообщают источники",
            "в интервью местному радио",
            "после встречи в столице",
            "поздно вечером в воскресенье",
        ],
    },
}
_LANGS = ("en", "de", "ru")


def _sentence(rng: random.Random, words: dict[str, list[str]]) -> str:
    return f"{rng.choice(words['who'])} {rng.choice(words['did'])} {rng.choice(words['what'])}, {rng.choice(words['tail'])}."


def generate_item(feed: int, serial: int) -> dict[str, str]:
    """Item number `serial` of feed `feed`: deterministic, about 400-700 characters of summary."""
    rng = random.Random(feed * 1_000_003 + serial)
    lang = _LANGS[feed % 3]
    words = _WORDS[lang]
    title = (
        f"{rng.choice(words['who'])} {rng.choice(words['did']).split(',')[0]}: {rng.choice(words['what'])}"
    )
    summary = " ".join(_sentence(rng, words) for _ in range(rng.randint(3, 5)))
    published = T0 + timedelta(minutes=7 * serial + feed % 60)
    return {
        "guid": f"urn:bench:{feed}:{serial}",
        "link": f"http://127.0.0.1/news/{feed}/{serial}.html",
        "title": title,
        "summary": f"<p>{summary}</p>",
        "date": format_datetime(published),
        "lang": lang,
    }


def render_feed(feed: int, newest: int) -> bytes:
    """RSS 2.0 bytes with items newest-ITEMS_PER_FEED+1 .. newest, newest first."""
    first = max(0, newest - ITEMS_PER_FEED + 1)
    lang = _LANGS[feed % 3]
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Bench feed {feed}</title><link>http://127.0.0.1/{feed}</link>",
        f"<description>generated</description><language>{lang}</language>",
    ]
    for serial in range(newest, first - 1, -1):
        item = generate_item(feed, serial)
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
    def __init__(self, feeds: int) -> None:
        self.feeds = feeds
        self.newest = [ITEMS_PER_FEED - 1] * feeds
        self.bodies: list[bytes] = []
        self.etags: list[str] = []
        self.counters = _Counters()
        self._render_all()

    def _render_all(self) -> None:
        self.bodies = [render_feed(n, self.newest[n]) for n in range(self.feeds)]
        self.etags = ['"' + hashlib.sha1(body).hexdigest()[:16] + '"' for body in self.bodies]

    def advance(self, per_feed: int) -> None:
        self.newest = [n + per_feed for n in self.newest]
        self._render_all()

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
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
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
        return (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\nETag: {etag}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


def _serve(feeds: int, conn: Any) -> None:
    async def main() -> None:
        farm = _Farm(feeds)
        server = await asyncio.start_server(farm.handle, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command[0] == "advance":
                farm.advance(command[1])
                conn.send("ok")
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

    def __init__(self, feeds: int) -> None:
        self._conn, child = mp.Pipe()
        self._proc = mp.get_context("spawn").Process(target=_serve, args=(feeds, child), daemon=True)
        self._proc.start()
        self.port: int = self._conn.recv()
        self.urls = [f"http://127.0.0.1:{self.port}/feeds/{n}.xml" for n in range(feeds)]

    def _ask(self, *command: Any) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def advance(self, per_feed: int) -> None:
        self._ask("advance", per_feed)

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = self._ask("stats")
        return result

    def stop(self) -> None:
        self._ask("stop")
        self._proc.join(5)
