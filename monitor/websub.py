"""WebSub push (W3C WebSub Recommendation): subscribe to the hubs feeds name, verify, renew, take pushes.

Off unless `websub.callback_url` is set. The pipeline records the hub and topic each fetched feed names
(monitor.websub_discovery, Store.record_hub); this module does the rest:

- `maintain(now)` (the daemon's "websub" job) subscribes where a hub is new or changed, asks again where a
  hub refused or never verified, and renews an active lease at 80 % of its length. A subscribe request is a
  form POST of hub.mode=subscribe, hub.topic, hub.callback (`callback_url/<callback id>`, random per
  subscription), hub.secret (random per subscription, kept in the store) and hub.lease_seconds. The row is
  marked pending *before* the POST: a hub may verify before it answers.
- The listener (`websub.listen`) answers the hub's verification GET by echoing hub.challenge, only for a
  subscription that is pending (or being renewed) with the same topic; anything else gets 404. The lease the
  hub grants is recorded, and the feed is polled at `websub.safety_interval` from then on.
- A content distribution POST is checked against `X-Hub-Signature: sha1|sha256|sha384|sha512=HEX`, an HMAC of
  the body with the subscription's secret. The spec (§8) says a subscriber MUST ignore a message whose
  signature does not match and MAY still acknowledge it with a 2xx: so a bad or missing signature gets 202
  like a good one (a forger learns nothing, and the hub does not retry it), and is dropped with a warning.
  A good one is acknowledged at once and recorded like a polled body (Pipeline.push).

Hub and callback URLs go through the network policy: the subscribe request uses the policed transport, and
`monitor check` refuses a callback_url the policy refuses (monitor.config.refused_urls).

Store calls go through the store thread; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta

import httpx

from monitor import __version__
from monitor.config import MonitorConfig
from monitor.errors import StoreError
from monitor.netpolicy import NetworkPolicy
from monitor.pipeline import FeedOutcome, Pipeline
from monitor.policed_http import policed_transport
from monitor.store import Store, WebSubRow
from monitor.storethread import StoreThread
from monitor.timeutil import utcnow

__all__ = ["RENEW_AT", "WebSub", "signature_valid"]

log = logging.getLogger("monitor.websub")

RENEW_AT = 0.8  # renew a lease when this share of it has passed
RETRY_AFTER = timedelta(minutes=15)  # a refused or never-verified subscription is asked again after this
MAX_HEAD_BYTES = 8192
_DIGESTS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def signature_valid(header: str | None, body: bytes, secret: str) -> bool:
    """True when `header` (X-Hub-Signature: METHOD=HEX) is the HMAC of `body` under `secret` with one of
    the methods the spec names, compared in constant time."""
    if not header:
        return False
    method, _, signature = header.strip().partition("=")
    digest = _DIGESTS.get(method.strip().lower())
    if digest is None or not signature:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


class WebSub:
    """The subscriber: subscription upkeep (`maintain`) and the callback listener (`start`/`stop`)."""

    def __init__(
        self,
        config: MonitorConfig,
        store: Store,
        pipeline: Pipeline,
        store_thread: StoreThread,
        policy: NetworkPolicy,
        *,
        on_push: Callable[[FeedOutcome], Awaitable[None]] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        assert config.websub.callback_url is not None, "websub is off"
        self.config = config
        self.options = config.websub
        self.callback_base: str = config.websub.callback_url
        self.store = store
        self.pipeline = pipeline
        self.store_thread = store_thread
        self.policy = policy
        self.on_push = on_push
        self.clock = clock
        self.host, self.port = config.websub.address()
        self.ignored = 0  # pushes dropped for a bad or missing signature
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(
            transport=policed_transport(policy),
            timeout=httpx.Timeout(config.fetch.total_timeout, connect=config.fetch.connect_timeout),
            headers={"User-Agent": f"monitor/{__version__} (WebSub subscriber)"},
            follow_redirects=False,
        )

    def callback_for(self, row: WebSubRow) -> str:
        return f"{self.callback_base}/{row.callback_id}"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listener and mark the feeds with a live lease as pushed (polled at the safety interval)."""
        now = self.clock()
        for row in await self.store_thread.run(self.store.websub_subscriptions):
            if row.state == "active" and row.expires_at is not None and row.expires_at > now:
                self.pipeline.pushed_feeds.add(row.feed_url)
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info(
            "WebSub callback listener on %s:%d (callbacks under %s)", self.host, self.port, self.callback_base
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.config.drain_timeout.total_seconds())
        await self._client.aclose()

    # -- subscribing -------------------------------------------------------------------------------------------

    def due(self, row: WebSubRow, now: datetime) -> bool:
        """Whether `row` needs a subscribe request now."""
        if row.feed_url not in self.pipeline.feed_urls:
            return False
        if row.state == "discovered":
            return True
        if row.state == "active":
            if row.expires_at is None or row.verified_at is None:
                return True
            if row.requested_at is not None and row.requested_at > row.verified_at:
                return row.requested_at + RETRY_AFTER <= now  # a renewal is on its way
            return row.verified_at + (row.expires_at - row.verified_at) * RENEW_AT <= now
        # pending (never verified) or denied: ask again after a while
        return row.requested_at is None or row.requested_at + RETRY_AFTER <= now

    async def maintain(self, now: datetime | None = None) -> int:
        """Send the subscribe requests that are due; returns how many were sent and accepted by the hub."""
        now = now or self.clock()
        try:
            rows = await self.store_thread.run(self.store.websub_subscriptions)
        except StoreError as exc:
            log.error("WebSub upkeep skipped: %s", exc)
            return 0
        for row in rows:
            if row.state == "active" and row.expires_at is not None and row.expires_at <= now:
                # The lease ran out before a renewal was verified: poll at the feed's own interval again.
                self.pipeline.pushed_feeds.discard(row.feed_url)
        sent = 0
        for row in (r for r in rows if self.due(r, now)):
            sent += await self.subscribe(row, now)
        return sent

    async def subscribe(self, row: WebSubRow, now: datetime) -> int:
        renewing = row.state == "active"
        asked = replace(row, state="active" if renewing else "pending", requested_at=now, last_error=None)
        # Recorded before the request: a hub may send its verification GET before it answers the POST.
        await self.store_thread.run(self.store.save_websub, asked)
        form = {
            "hub.mode": "subscribe",
            "hub.topic": row.topic,
            "hub.callback": self.callback_for(row),
            "hub.secret": row.secret,
            "hub.lease_seconds": str(int(self.options.lease.total_seconds())),
        }
        try:
            response = await self._client.post(row.hub, data=form)
            error = None if 200 <= response.status_code < 300 else f"hub answered {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"subscribe request failed: {type(exc).__name__}: {exc}"
        if error is None:
            log.info(
                "feed %s: %s WebSub hub %s",
                row.feed_url,
                "renewing at" if renewing else "subscribing to",
                row.hub,
                extra={"feed": row.feed_url},
            )
            return 1
        log.warning("feed %s: WebSub hub %s: %s", row.feed_url, row.hub, error, extra={"feed": row.feed_url})
        current = await self.store_thread.run(self.store.websub_by_callback, row.callback_id)
        if current is not None and current.verified_at == row.verified_at:
            # Not verified meanwhile: a renewal keeps its lease until it ends; a first request is refused.
            state = "active" if renewing else "denied"
            await self.store_thread.run(
                self.store.save_websub, replace(current, state=state, last_error=error)
            )
        return 0

    # -- the listener ------------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, body = "400 Bad Request", b"bad request\n"
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                status, body = await self._respond(head[:MAX_HEAD_BYTES], reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        except StoreError as exc:
            status, body = "503 Service Unavailable", f"{exc}\n".encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _respond(self, head: bytes, reader: asyncio.StreamReader) -> tuple[str, bytes]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", b"bad request\n"
        method, target = parts[0], parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition("?")
        # The last path segment is the subscription: a reverse proxy may mount callback_url's path anywhere.
        callback_id = urllib.parse.unquote(path.rstrip("/").rpartition("/")[2])
        if not callback_id:
            return "404 Not Found", b"not found\n"
        if method == "GET":
            return await self._verify(callback_id, urllib.parse.parse_qs(query, keep_blank_values=True))
        if method == "POST":
            return await self._content(callback_id, headers, reader)
        return "405 Method Not Allowed", b"only GET and POST\n"

    async def _verify(self, callback_id: str, query: dict[str, list[str]]) -> tuple[str, bytes]:
        """Intent verification (§5.3): echo hub.challenge for a subscription we asked for; 404 otherwise."""

        def one(name: str) -> str:
            values = query.get(name, [])
            return values[-1] if values else ""

        mode, topic, challenge = one("hub.mode"), one("hub.topic"), one("hub.challenge")
        row = await self.store_thread.run(self.store.websub_by_callback, callback_id)
        if row is None or topic != row.topic:
            return "404 Not Found", b"no such subscription\n"
        now = self.clock()
        if mode == "denied":
            # §5.2: the hub refused the subscription (or withdrew it).
            reason = one("hub.reason") or "denied by the hub"
            log.warning(
                "feed %s: WebSub hub %s: %s", row.feed_url, row.hub, reason, extra={"feed": row.feed_url}
            )
            self.pipeline.pushed_feeds.discard(row.feed_url)
            await self.store_thread.run(
                self.store.save_websub, replace(row, state="denied", last_error=reason)
            )
            return "200 OK", b""
        asked = row.state == "pending" or (
            row.state == "active"
            and row.requested_at is not None
            and (row.verified_at is None or row.requested_at > row.verified_at)
        )
        if mode != "subscribe" or not asked or not challenge:
            return "404 Not Found", b"not expecting this verification\n"
        granted = one("hub.lease_seconds")
        lease = int(granted) if granted.isdigit() else int(self.options.lease.total_seconds())
        verified = replace(
            row,
            state="active",
            verified_at=now,
            expires_at=now + timedelta(seconds=lease),
            lease_seconds=lease,
            last_error=None,
        )
        await self.store_thread.run(self.store.save_websub, verified)
        self.pipeline.pushed_feeds.add(row.feed_url)
        log.info(
            "feed %s: WebSub subscription verified, lease %ds; polled every %s as a safety net",
            row.feed_url,
            lease,
            self.options.safety_interval,
            extra={"feed": row.feed_url},
        )
        return "200 OK", challenge.encode()

    async def _content(
        self, callback_id: str, headers: dict[str, str], reader: asyncio.StreamReader
    ) -> tuple[str, bytes]:
        """Content distribution (§7, §8): a body signed with the subscription's secret is recorded."""
        length = headers.get("content-length", "")
        if not length.isdigit():
            return "411 Length Required", b"Content-Length required\n"
        if int(length) > self.config.fetch.max_bytes:
            return "413 Content Too Large", b"too large\n"
        body = await reader.readexactly(int(length))
        row = await self.store_thread.run(self.store.websub_by_callback, callback_id)
        if row is None or row.feed_url not in self.pipeline.feed_urls:
            return "404 Not Found", b"no such subscription\n"
        if not signature_valid(headers.get("x-hub-signature"), body, row.secret):
            self.ignored += 1
            log.warning(
                "feed %s: pushed body ignored: X-Hub-Signature %s",
                row.feed_url,
                "missing" if "x-hub-signature" not in headers else "does not match",
                extra={"feed": row.feed_url},
            )
            return "202 Accepted", b""
        self.accepted += 1
        task = asyncio.ensure_future(self._record(row.feed_url, body, headers.get("content-type")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return "202 Accepted", b""

    async def _record(self, url: str, body: bytes, content_type: str | None) -> None:
        try:
            outcome = await self.pipeline.push(url, body, content_type)
        except StoreError as exc:
            # Nothing recorded; the safety-net poll (or the hub's next push) brings the items again.
            log.error("feed %s: pushed body not recorded: %s", url, exc, extra={"feed": url})
            return
        if outcome.status == "ok":
            log.info(
                "feed %s: pushed: %d new items, %d alerts",
                url,
                outcome.new_items,
                outcome.alerts,
                extra={"feed": url},
            )
        if self.on_push is not None:
            try:
                await self.on_push(outcome)
            except Exception:
                log.exception("feed %s: after a push", url, extra={"feed": url})
