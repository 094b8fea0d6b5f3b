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
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.store import SQLiteStore
from monitor.timeutil import to_iso

__all__ = ["StatusServer", "health", "prometheus_text", "snapshot"]

log = logging.getLogger("monitor.status")

MAX_REQUEST_BYTES = 8192


def snapshot(store: SQLiteStore, now: datetime) -> dict[str, Any]:
    """What an operator asks first: are feeds failing, is anything stuck in the outbox, are channels off."""
    feeds = [f for f in store.list_feeds() if f.active]
    deliveries = store.delivery_counts()
    pending = store.list_deliveries(statuses=("pending",), limit=1)
    successes = [f.last_success_at for f in feeds if f.last_success_at is not None]
    return {
        "time": to_iso(now),
        "feeds": {
            "active": len(feeds),
            "failing": sum(1 for f in feeds if f.error_count > 0),
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


def prometheus_text(snap: dict[str, Any]) -> str:
    """The snapshot as Prometheus exposition text (gauges; totals are gauges of the current table sizes)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, value: float, labels: str = "") -> None:
        if not any(line.startswith(f"# HELP {name} ") for line in lines):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{labels} {value:g}")

    gauge("monitor_feeds_active", "Feeds in the configuration.", snap["feeds"]["active"])
    gauge("monitor_feeds_failing", "Feeds whose last poll failed.", snap["feeds"]["failing"])
    for status in ("pending", "dead", "sent"):
        gauge(
            "monitor_deliveries",
            "Deliveries by status.",
            snap["deliveries"][status],
            f'{{status="{status}"}}',
        )
    gauge(
        "monitor_oldest_pending_delivery_seconds",
        "Age of the oldest delivery not yet accepted by its receiver.",
        snap["deliveries"]["oldest_pending_seconds"],
    )
    gauge("monitor_channels_disabled", "Channels disabled after HTTP 410.", len(snap["disabled_channels"]))
    for table, count in sorted(snap["totals"].items()):
        gauge("monitor_rows", "Rows per store table.", count, f'{{table="{table}"}}')
    return "\n".join(lines) + "\n"


@dataclass
class StatusServer:
    """A minimal HTTP/1.1 server on asyncio streams: three GET routes, one response per connection."""

    store: SQLiteStore
    clock: Callable[[], datetime]
    last_tick: Callable[[], datetime | None]
    tick_seconds: float
    host: str = "127.0.0.1"
    port: int = 9464
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
            status, content_type, body = self.respond(head[:MAX_REQUEST_BYTES])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def respond(self, head: bytes) -> tuple[str, str, bytes]:
        """(status line, content type, body) for one request head. Pure apart from reading the store."""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        now = self.clock()
        if target == "/healthz":
            ok, reason = health(self.last_tick(), now, self.tick_seconds)
            return ("200 OK" if ok else "503 Service Unavailable"), "text/plain", f"{reason}\n".encode()
        if target == "/status":
            body = json.dumps(snapshot(self.store, now), indent=2).encode() + b"\n"
            return "200 OK", "application/json", body
        if target == "/metrics":
            return "200 OK", "text/plain; version=0.0.4", prometheus_text(snapshot(self.store, now)).encode()
        return "404 Not Found", "text/plain", b"not found: try /healthz, /status, /metrics\n"
