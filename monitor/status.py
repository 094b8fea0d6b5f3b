"""Health and metrics over HTTP for a running daemon: `/healthz`, `/status` (JSON) and `/metrics` (Prometheus).

Off unless `status.listen` is set (e.g. "127.0.0.1:9464"). It serves only what the store and the daemon's
clock already know, read on each request; it never changes state.

`/healthz` answers 200 while the scheduler's tick ran recently (a hung event loop or a dead scheduler turns it
into 503, which a load balancer or an external prober sees), `/status` the snapshot below as JSON, `/metrics`
the same figures in the Prometheus text format.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry

from monitor import web
from monitor.errors import StoreError
from monitor.metrics import CONTENT_TYPE, Metrics, StoreCollector
from monitor.store import Store
from monitor.storethread import StoreThread
from monitor.timeutil import to_iso
from monitor.web.page import CONTENT_SECURITY_POLICY

__all__ = ["StatusServer", "health", "prometheus_text", "snapshot"]

log = logging.getLogger("monitor.status")

DEFAULT_DEAD_AFTER = timedelta(minutes=1)  # config.cluster.dead_after's default
MAX_REQUEST_BYTES = 8192
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
PAGE_ALERTS = 30
PAGE_STORIES = 30
JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
PAGES = frozenset({"/", "/alerts.atom", "/api/feeds", "/api/alerts", "/api/stories", "/api/openapi.json"})


def snapshot(store: Store, now: datetime, *, dead_after: timedelta = DEFAULT_DEAD_AFTER) -> dict[str, Any]:
    """What an operator asks first: are feeds failing, is anything stuck in the outbox, are channels off,
    which nodes are polling (each live node with its share of the feeds and its last heartbeat)."""
    feeds = [f for f in store.list_feeds() if f.active]
    parked = [f for f in feeds if f.parked_at is not None]
    polled = [f for f in feeds if f.parked_at is None]
    deliveries = store.delivery_counts()
    pending = store.list_deliveries(statuses=("pending",), limit=1)
    successes = [f.last_success_at for f in feeds if f.last_success_at is not None]
    return {
        "time": to_iso(now),
        "feeds": {
            "active": len(feeds),
            "failing": sum(1 for f in polled if f.error_count > 0),
            "parked": len(parked),
            "never_succeeded": sum(1 for f in feeds if f.last_success_at is None),
            "last_success": to_iso(max(successes)) if successes else None,
        },
        "deliveries": {
            "pending": deliveries.get("pending", 0),
            "dead": deliveries.get("dead", 0),
            "sent": deliveries.get("sent", 0),
            "oldest_pending_seconds": (now - pending[0].created_at).total_seconds() if pending else 0.0,
        },
        "disabled_channels": sorted(store.disabled_channels()),
        "nodes": [
            node.as_json(now, dead_after.total_seconds())
            for node in store.list_nodes(now)
            if node.alive(now, dead_after.total_seconds())
        ],
        "totals": store.counts(),
    }


def health(last_tick: datetime | None, now: datetime, tick_seconds: float) -> tuple[bool, str]:
    """Healthy while the scheduler's tick ran within three tick periods (at least 30 s)."""
    if last_tick is None:
        return False, "starting: no tick yet"
    age = (now - last_tick).total_seconds()
    limit = max(3 * tick_seconds, 30.0)
    if age > limit:
        return False, f"scheduler stalled: last tick {age:.0f}s ago (limit {limit:.0f}s)"
    return True, "ok"


def prometheus_text(
    store: Store, now: datetime, metrics: Metrics | None = None, *, dead_after: timedelta = DEFAULT_DEAD_AFTER
) -> bytes:
    """`/metrics`: the daemon's counters and histograms, then the gauges of the state of record (read now)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(lambda: snapshot(store, now, dead_after=dead_after), store.list_feeds))
    counters = metrics.exposition() if metrics is not None else b""
    return counters + prometheus_client.generate_latest(registry)


@dataclass
class StatusServer:
    """A minimal HTTP/1.1 server on asyncio streams: three GET routes, one response per connection."""

    store: Store
    clock: Callable[[], datetime]
    last_tick: Callable[[], datetime | None]
    tick_seconds: float
    metrics: Metrics | None = None
    token: str | None = None  # when set, every request but /healthz must carry it
    host: str = "127.0.0.1"
    port: int = 9464
    dead_after: timedelta = DEFAULT_DEAD_AFTER  # a node silent this long is not shown as live
    # Reads the store off the event loop (monitor.storethread): a busy database must not stall the daemon.
    store_thread: StoreThread = field(default_factory=StoreThread)
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.port = int(sockname[1])
        log.info("status endpoint on http://%s:%d/ (healthz, status, metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            head = head[:MAX_REQUEST_BYTES]
            try:
                if head.startswith((b"GET /healthz ", b"GET /healthz?")):
                    # Liveness reads no store: answered on the loop, never queued behind a busy database.
                    status, content_type, body = self.respond(head)
                else:
                    status, content_type, body = await self.store_thread.run(self.respond, head)
            except StoreError as exc:
                status, content_type, body = "503 Service Unavailable", "text/plain", f"{exc}\n".encode()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        extra = "Allow: GET\r\n" if status.startswith("405") else ""
        if content_type.startswith("text/html"):
            extra += (
                f"Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Content-Type-Options: nosniff\r\n"
            )
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Cache-Control: no-store\r\n{extra}Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def _authorized(self, head: bytes, query: dict[str, list[str]]) -> bool:
        """The configured token, as `Authorization: Bearer TOKEN` or `?token=TOKEN` (for a feed reader that
        cannot send headers), compared in constant time."""
        assert self.token is not None
        offered = query.get("token", [])
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "authorization":
                scheme, _, credential = value.strip().partition(" ")
                if scheme.lower() == "bearer":
                    offered.append(credential.strip())
        expected = self.token.encode()
        return any(hmac.compare_digest(candidate.encode(), expected) for candidate in offered)

    def respond(self, head: bytes) -> tuple[str, str, bytes]:
        """(status line, content type, body) for one request head. Pure apart from reading the store."""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        query = urllib.parse.parse_qs(parts[1].partition("?")[2])
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        now = self.clock()
        if target == "/healthz":
            ok, reason = health(self.last_tick(), now, self.tick_seconds)
            return ("200 OK" if ok else "503 Service Unavailable"), "text/plain", f"{reason}\n".encode()
        if self.token is not None and not self._authorized(head, query):
            return "401 Unauthorized", "text/plain", b"a token is required (Authorization: Bearer TOKEN)\n"
        if target in PAGES:
            return self._page(target, query, head, now)
        if target == "/status":
            body = (
                json.dumps(snapshot(self.store, now, dead_after=self.dead_after), indent=2).encode() + b"\n"
            )
            return "200 OK", "application/json", body
        if target == "/metrics":
            return (
                "200 OK",
                CONTENT_TYPE,
                prometheus_text(self.store, now, self.metrics, dead_after=self.dead_after),
            )
        return (
            "404 Not Found",
            "text/plain",
            b"not found: try /, /alerts.atom, /api/..., /healthz, /status, /metrics\n",
        )

    def _page(
        self, target: str, query: dict[str, list[str]], head: bytes, now: datetime
    ) -> tuple[str, str, bytes]:
        """The page, the Atom feed and the JSON API (monitor.web)."""
        if target == "/api/openapi.json":
            return "200 OK", JSON_TYPE, json.dumps(web.openapi_document(), indent=2).encode()
        if target == "/api/feeds":
            return "200 OK", JSON_TYPE, _json(web.feeds_view(self.store, now))
        try:
            limit = _limit(query)
        except ValueError as exc:
            return "400 Bad Request", JSON_TYPE, _json({"error": str(exc)})
        if target == "/api/alerts":
            return "200 OK", JSON_TYPE, _json(web.alerts_view(self.store, limit))
        if target == "/api/stories":
            return "200 OK", JSON_TYPE, _json(web.stories_view(self.store, limit))
        if target == "/alerts.atom":
            host = _header(head, "host") or f"{self.host}:{self.port}"
            feed = web.alerts_atom(
                web.alerts_view(self.store, limit), now=now, self_url=f"http://{host}/alerts.atom"
            )
            return "200 OK", web.ATOM_TYPE, feed
        page = web.render_page(
            now=now,
            feeds=web.feeds_view(self.store, now),
            alerts=web.alerts_view(self.store, min(limit, PAGE_ALERTS)),
            stories=web.stories_view(self.store, PAGE_STORIES),
            summary=snapshot(self.store, now, dead_after=self.dead_after),
        )
        return "200 OK", HTML_TYPE, page.encode("utf-8")


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _limit(query: dict[str, list[str]]) -> int:
    values = query.get("limit")
    if not values:
        return DEFAULT_LIMIT
    text = values[-1].strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {values[-1]!r}")
    return int(text)


def _header(head: bytes, wanted: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == wanted:
            # A Host header goes into a URL: keep it to what a host:port can hold.
            cleaned = value.strip()
            return cleaned if cleaned and all(c.isalnum() or c in ".-:[]" for c in cleaned) else None
    return None
