"""Per-host politeness: how many fetches one host gets at once, how far apart they start, and a pause for the
whole host when one of its feeds says "too many requests" (429) or "unavailable" (503).

A publisher serves many feeds from one host (a broadcaster's thirty section feeds); polled together they are
one client hammering one server, and a 429 on one of them is the server's answer to all of them. So:

- at most `concurrency` fetches per host at a time (2 by default: what HTTP/1.1 clients were long asked to
  keep to, RFC 2616 8.1.4), the rest wait their turn;
- the starts of two fetches to one host are at least `gap` apart (200 ms by default: five requests a second);
- a 429 pauses the host for its Retry-After (60 s without one, at most MAX_PAUSE), and so does a 503 that
  carries a Retry-After (a bare 503 is as often one broken endpoint as an overloaded server). A fetch that
  would wait for a pause longer than `max_wait` (15 s) is refused at once with a retryable error that carries
  the rest of the pause as its Retry-After, so the feed backs off instead of holding a poll slot.

The host is the URL's host name as written (lower-cased): feeds on one IP behind different names count apart,
which errs on the side of the publisher's own naming. Redirects to another host count against the first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["DEFAULT_PAUSE", "MAX_PAUSE", "HostGate", "HostPaused"]

DEFAULT_PAUSE = 60.0  # a 429/503 without Retry-After
MAX_PAUSE = 6 * 3600.0  # the same cap as a feed's own Retry-After


class HostPaused(Exception):
    """The host asked for a pause that outlasts what a fetch may wait; `remaining` seconds are left of it."""

    def __init__(self, host: str, remaining: float, reason: str) -> None:
        self.host = host
        self.remaining = remaining
        self.reason = reason
        super().__init__(f"{host} asked to slow down ({reason}); {remaining:.0f}s of its pause are left")


@dataclass
class _Host:
    slots: asyncio.Semaphore
    next_start: float = 0.0  # monotonic time before which no fetch to this host starts
    paused_until: float = 0.0
    reason: str = ""
    users: int = 0  # fetches holding or waiting for this entry: an idle host's entry is dropped
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class HostGate:
    """The per-host limits of one Fetcher (module doc). Not thread-safe: one event loop."""

    def __init__(self, concurrency: int = 2, gap: float = 0.2, max_wait: float = 60.0) -> None:
        if concurrency < 0 or gap < 0 or max_wait < 0:
            raise ValueError("host limits must not be negative")
        self.concurrency = concurrency  # 0: no limit
        self.gap = gap
        self.max_wait = max_wait
        self._hosts: dict[str, _Host] = {}

    @staticmethod
    def host_of(url: str) -> str:
        return (urlsplit(url).hostname or "").lower()

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Hold one of the host's fetch slots, started no sooner than the gap and any pause allow."""
        name = self.host_of(url)
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(asyncio.Semaphore(self.concurrency or 1_000_000))
        host.users += 1
        try:
            async with host.slots:
                async with host.lock:  # starts are spaced one after another, in arrival order
                    now = time.monotonic()
                    if host.paused_until > now:
                        remaining = host.paused_until - now
                        if remaining > self.max_wait:
                            raise HostPaused(name, remaining, host.reason)
                    start = max(host.next_start, host.paused_until)
                    if start > now:
                        await asyncio.sleep(start - now)
                    host.next_start = time.monotonic() + self.gap
                yield
        finally:
            host.users -= 1
            if (
                host.users == 0
                and host.paused_until <= time.monotonic()
                and host.next_start <= time.monotonic()
            ):
                self._hosts.pop(name, None)

    def slow_down(self, url: str, seconds: float | None, reason: str) -> None:
        """The host answered 429/503: no fetch to it starts for `seconds` (DEFAULT_PAUSE when None)."""
        pause = DEFAULT_PAUSE if seconds is None or not seconds > 0 else min(seconds, MAX_PAUSE)
        name = self.host_of(url)
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(asyncio.Semaphore(self.concurrency or 1_000_000))
        until = time.monotonic() + pause
        if until > host.paused_until:
            host.paused_until = until
            host.reason = reason

    def paused(self, url: str) -> float:
        """Seconds left of the host's pause (0 when it is not paused)."""
        host = self._hosts.get(self.host_of(url))
        return max(0.0, host.paused_until - time.monotonic()) if host is not None else 0.0
