"""The fetch stage: one HTTP GET per feed, conditional, bounded in time and size, policed hop by hop.

Semantics of `Fetcher.fetch`:

- Conditional GET: the stored ETag and Last-Modified go out as If-None-Match / If-Modified-Since; a 304 answer
  gives `FetchResult(status=304, content=None)`, any 2xx gives the decompressed body and the new validators.
- Redirects (301, 302, 303, 307, 308) are followed here, not by the HTTP client, so that every hop's URL passes the
  `NetworkPolicy` before anything connects to it (its scheme and host here, its addresses in the transport as it
  connects); at most `max_redirects` hops, relative Locations resolved against the hop that sent them, only http
  and https.
- The HTTP client is a transport behind a small seam (`Wire`, `WireResponse` below), chosen by
  `FetchSettings.transport` (`fetch.transport` in monitor.yaml): aiohttp (monitor.fetch_aiohttp, the default)
  or httpx (monitor.fetch_httpx). Each connects only where the policy allows: the host is resolved once, every
  address is checked, and the socket connects to a checked address (TLS still verifies and sends SNI for the
  host name), so a DNS answer that changes between the check and the connect (DNS rebinding) cannot reach a
  refused address. Each maps its library's exceptions to the FetchErrors below; everything else (redirects,
  caps, decoding, validators, the result) is here, the same for both. See docs/design/fetch.md.
- Limits: connect and read timeouts per socket operation, one overall deadline per fetch (all hops, DNS,
  body), and a cap on the *decompressed* body that is enforced while reading, before the bytes are held.
- Every failure is a `FetchError` with a short human message ("HTTP 503 Service Unavailable", "timed out
  after 60s", "connection refused") and `retryable` set: network trouble, 5xx, 408 and 429 may pass; other
  4xx, refused URLs, redirect loops and oversized bodies will not pass by themselves.

`backoff_delay` is the pure schedule for a feed's next attempt after consecutive failures.
"""

from __future__ import annotations

import asyncio
import math
import random
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import TracebackType
from typing import Literal, Protocol, Self

import monitor
from monitor.cachehints import http_lifetime
from monitor.errors import FetchError, NetworkPolicyError, ResponseTooLargeError
from monitor.hostlimits import HostGate, HostPaused
from monitor.netpolicy import NetworkPolicy
from monitor.timeutil import parse_retry_after
from monitor.types import FetchResult

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_BACKOFF",
    "MAX_BACKOFF_FACTOR",
    "MAX_RETRY_AFTER",
    "TRANSPORTS",
    "FetchSettings",
    "Fetcher",
    "Transport",
    "Wire",
    "WireResponse",
    "backoff_delay",
]

Transport = Literal["aiohttp", "httpx"]
TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "httpx")

DEFAULT_USER_AGENT = (
    f"monitor/{monitor.__version__} (+https://github.com/monitor/monitor; news monitoring daemon)"
)

# What we can parse, best first; servers that negotiate get a feed rather than an HTML page.
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
# Only encodings the bounded decoder below understands; the clients would add br/zstd when those packages exist.
ACCEPT_ENCODING = "gzip, deflate"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})
HOST_WAIT = 15.0  # seconds a fetch may wait for its host's pause (monitor.hostlimits)
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})

MAX_BACKOFF = timedelta(hours=24)
MAX_BACKOFF_FACTOR = 16
MAX_RETRY_AFTER = timedelta(hours=24)
BACKOFF_JITTER = 0.1  # up to +10 %: feeds that failed together (an outage) do not all retry in one instant

_READ_CHUNK = 64 * 1024
# A response whose body we do not use (a 304, a redirect, an error page) is read up to this many bytes so that its
# connection goes back to the pool: closing a response before its end closes the connection, and every 304 would
# then cost a new TCP (and TLS) handshake. A longer body is not worth reading: that one connection is dropped.
DRAIN_LIMIT = 64 * 1024

_JITTER = random.Random()


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Limits for one fetch. Timeouts in seconds; `max_bytes` caps the decompressed body."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0  # overall deadline per fetch: DNS, every redirect hop and the whole body
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    per_host_concurrency: int = 2  # fetches to one host at a time; 0: no limit (monitor.hostlimits)
    per_host_gap: float = 0.2  # seconds between the starts of two fetches to one host
    # The HTTP client (see the module docstring). aiohttp: about a tenth of httpx's CPU per request
    # (bench/RESULTS.md, "CPU per 304"); httpx: the transport of earlier versions, kept behind the same seam.
    transport: Transport = "aiohttp"

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            value = getattr(self, name)
            if not value > 0 or math.isinf(value):
                raise ValueError(f"FetchSettings.{name} must be a positive number of seconds, not {value!r}")
        if self.max_bytes < 1:
            raise ValueError(f"FetchSettings.max_bytes must be at least 1, not {self.max_bytes!r}")
        if self.max_redirects < 0:
            raise ValueError(f"FetchSettings.max_redirects must not be negative, not {self.max_redirects!r}")
        if not self.user_agent.strip():
            raise ValueError("FetchSettings.user_agent must not be empty")
        if self.per_host_concurrency < 0 or not 0 <= self.per_host_gap < math.inf:
            raise ValueError("FetchSettings per-host limits must not be negative")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"FetchSettings.transport must be one of {TRANSPORTS}, not {self.transport!r}")


class WireResponse(Protocol):
    """A response whose head has arrived; the body is read through `raw` (still encoded as it came)."""

    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str: ...

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), None when absent."""

    def header_list(self, name: str) -> list[str]:
        """Every value of a header, in order."""

    def raw(self, chunk_size: int) -> AsyncIterator[bytes]:
        """The body as it came (transfer coding removed, content coding kept)."""

    async def drain(self, limit: int) -> None:
        """Read and drop up to `limit` bytes of the body, so the connection can be reused (see `_drain`)."""


class Wire(Protocol):
    """What the Fetcher needs of an HTTP client. `get` sends one GET, never following redirects, connecting
    only to addresses the policy allows; its context maps every failure of the library, while sending and
    while the body is read inside the block, to a FetchError or NetworkPolicyError naming `url`."""

    def get(
        self, url: str, hop_url: str, headers: dict[str, str]
    ) -> AbstractAsyncContextManager[WireResponse]: ...

    def join(self, base: str, location: str) -> str:
        """`location` resolved against `base`, without its fragment. Raises ValueError for an invalid URL."""

    async def aclose(self) -> None: ...


def open_wire(settings: FetchSettings, policy: NetworkPolicy, ssl_context: ssl.SSLContext | None) -> Wire:
    """The configured transport. Imported here, not at the top: a process loads only the client it uses."""
    if settings.transport == "httpx":
        from monitor.fetch_httpx import HttpxWire

        return HttpxWire(settings, policy, ssl_context)
    from monitor.fetch_aiohttp import AiohttpWire

    return AiohttpWire(settings, policy, ssl_context)


def request_headers(settings: FetchSettings) -> dict[str, str]:
    """The headers every request carries (a transport adds nothing else but Host and its framing)."""
    return {"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}


def seconds(value: float) -> str:
    return f"{value:g}s"


class Fetcher:
    """Fetches feeds over one pooled client of the configured transport (HTTP/1.1). Use as
    `async with Fetcher(...)`.

    `ssl_context` replaces the default trust store (certifi), e.g. for an internal CA.
    Safe to call `fetch` concurrently from several tasks.
    """

    def __init__(
        self, settings: FetchSettings, policy: NetworkPolicy, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self.policy = policy
        self._ssl_context = ssl_context
        self._wire: Wire | None = None
        # A fetch waits for a host's pause only briefly; a longer pause fails it at once (retryable, with the rest
        # of the pause as its Retry-After), so that a paused host never holds poll slots.
        self.hosts = HostGate(
            settings.per_host_concurrency,
            settings.per_host_gap,
            max_wait=min(settings.total_timeout, HOST_WAIT),
        )

    async def __aenter__(self) -> Self:
        if self._wire is not None:
            raise RuntimeError("Fetcher is already open")
        self._wire = open_wire(self.settings, self.policy, self._ssl_context)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        wire, self._wire = self._wire, None
        if wire is not None:
            await wire.aclose()

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """GET `url` (conditionally when validators are given). Raises FetchError; see the module docstring."""
        wire = self._wire
        if wire is None:
            raise RuntimeError("Fetcher is not open; use 'async with Fetcher(...)'")
        # One deadline covers the wait for a turn at the host and the fetch itself: a claimed feed's fetch then
        # always ends within its lease (cluster.lease > fetch.total_timeout), and another node never fetches
        # it meanwhile.
        started = time.monotonic()
        admitted = False
        try:
            async with asyncio.timeout(self.settings.total_timeout), self.hosts.slot(url):
                admitted = True
                try:
                    return await self._fetch(wire, url, etag, last_modified, started)
                except FetchError as exc:
                    if exc.status == 429 or (exc.status == 503 and exc.retry_after is not None):
                        # The server's answer to this client, not to this one feed: its other feeds wait too.
                        # A bare 503 is often one broken endpoint, not the server asking for a pause.
                        self.hosts.slow_down(url, exc.retry_after, f"HTTP {exc.status} on {url}")
                    raise
        except HostPaused as exc:
            raise FetchError(url, str(exc), retry_after=exc.remaining) from None
        except TimeoutError as exc:
            if not admitted:
                raise HostBusyError(
                    url,
                    f"no turn at {HostGate.host_of(url)} within {seconds(self.settings.total_timeout)} (its "
                    "other feeds held fetch.per_host_concurrency); not fetched, tried again on the next tick",
                ) from exc
            raise FetchError(url, f"timed out after {seconds(self.settings.total_timeout)}") from exc

    async def _fetch(
        self, wire: Wire, url: str, etag: str | None, last_modified: str | None, started: float
    ) -> FetchResult:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        hop_url = url
        # The feed's new home: where the leading run of permanent redirects points. A temporary hop (302, 303,
        # 307) ends the run: what follows it may change back, so it is followed but not remembered.
        moved_to: str | None = None
        permanent = True
        for _hop in range(self.settings.max_redirects + 1):
            self._check(url, hop_url)
            async with wire.get(url, hop_url, headers) as response:
                status = response.status
                if status in REDIRECT_STATUSES:
                    hop_url = self._redirect_target(wire, url, hop_url, response)
                    permanent = permanent and status in PERMANENT_REDIRECTS
                    if permanent:
                        moved_to = hop_url
                    await response.drain(DRAIN_LIMIT)
                    continue
                if status == 304 or 200 <= status < 300:
                    if status == 304:
                        await response.drain(DRAIN_LIMIT)
                    content = None if status == 304 else await self._read_body(url, response)
                    return FetchResult(
                        url=url,
                        final_url=hop_url,
                        status=status,
                        content=content,
                        etag=response.header("ETag"),
                        last_modified=response.header("Last-Modified"),
                        content_type=response.header("Content-Type"),
                        elapsed=time.monotonic() - started,
                        fresh_for=http_lifetime(
                            response.header("Cache-Control"),
                            response.header("Expires"),
                            response.header("Date"),
                            datetime.now(UTC),
                        ),
                        moved_to=moved_to if moved_to != url else None,
                        links=", ".join(response.header_list("Link")) or None,
                    )
                error = _status_error(url, response)
                await response.drain(DRAIN_LIMIT)
                raise error
        raise FetchError(
            url, f"too many redirects (more than {self.settings.max_redirects})", retryable=False
        )

    def _check(self, url: str, hop_url: str) -> None:
        """The hop's scheme and host, before anything is sent. Its addresses are judged by the transport when it
        connects (every new connection, so every hop to a new host): resolving here as well cost a lookup per
        fetch of a named host and protected nothing more (docs/design/fetch.md)."""
        try:
            self.policy.check_scheme(hop_url)
        except NetworkPolicyError as exc:
            if hop_url == url:
                raise
            raise NetworkPolicyError(url, f"redirected to {hop_url}: {exc.message}") from exc

    def _redirect_target(self, wire: Wire, url: str, hop_url: str, response: WireResponse) -> str:
        location = response.header("Location")
        if not location:
            raise FetchError(
                url, f"HTTP {response.status} redirect without a Location header", retryable=False
            )
        try:
            return wire.join(hop_url, location.strip())
        except ValueError as exc:
            raise FetchError(url, f"redirect to an invalid URL {location!r}: {exc}", retryable=False) from exc

    async def _read_body(self, url: str, response: WireResponse) -> bytes:
        """Read and decompress the body, failing as soon as it grows past max_bytes."""
        limit = self.settings.max_bytes
        decoder = _decoder_for(url, response.header("Content-Encoding"))
        declared = response.header("Content-Length")
        if isinstance(decoder, _Identity) and declared and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLargeError(
                url, f"response of {int(declared)} bytes exceeds the limit of {limit} bytes"
            )
        body = bytearray()
        try:
            async for chunk in response.raw(_READ_CHUNK):
                body += decoder.decode(chunk, limit - len(body) + 1)
                if len(body) > limit:
                    raise ResponseTooLargeError(url, f"response exceeds the limit of {limit} bytes")
            body += decoder.flush(limit - len(body) + 1)
        except zlib.error as exc:
            raise FetchError(url, f"corrupt compressed body: {exc}") from exc
        if len(body) > limit:
            raise ResponseTooLargeError(url, f"response exceeds the limit of {limit} bytes")
        return bytes(body)


class HostBusyError(FetchError):
    """The fetch never started: its host's slots stayed taken by this node's other fetches for the whole
    deadline. Not the feed's failure: nothing is recorded, and the feed is claimed again on a later tick."""


def _status_error(url: str, response: WireResponse) -> FetchError:
    status = response.status
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = response.reason or ""
    # 5xx and the 4xx that mean "not now" may pass; other 4xx and unfollowable 3xx (300, 305) will not.
    retryable = status >= 500 or status in RETRYABLE_CLIENT_STATUSES
    message = f"HTTP {status} {phrase}".rstrip()
    return FetchError(
        url,
        message,
        retryable=retryable,
        status=status,
        retry_after=parse_retry_after(response.header("Retry-After")),
    )


class _Identity:
    def decode(self, data: bytes, max_length: int) -> bytes:
        return data

    def flush(self, max_length: int) -> bytes:
        return b""


class _Inflate:
    """gzip or deflate, decoded in bounded steps so a small compressed body cannot expand in one go.

    `decode` returns at most `max_length` bytes (the caller passes "room left + 1"), keeping the rest of the
    compressed input for the next call; the caller stops at the first chunk past the limit anyway.
    """

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._first = True
        self._pending = b""
        self._decompressor = self._new()

    def _new(self, raw: bool = False) -> zlib._Decompress:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" should be zlib-wrapped (RFC 9110) but some servers send raw deflate.
        return zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)

    def decode(self, data: bytes, max_length: int) -> bytes:
        if self._first and data:
            self._first = False
            if not self._gzip and (data[0] & 0x0F) != 8:  # not a zlib header: raw deflate
                self._decompressor = self._new(raw=True)
        self._pending += data
        out = bytearray()
        while self._pending and len(out) < max_length:
            produced = self._decompressor.decompress(self._pending, max_length - len(out))
            out += produced
            if self._decompressor.eof:
                rest = self._decompressor.unused_data
                # Concatenated gzip members form one body; trailing garbage after deflate is ignored.
                self._pending = rest if self._gzip and rest.lstrip(b"\0") else b""
                if self._pending:
                    self._decompressor = self._new()
            else:
                self._pending = self._decompressor.unconsumed_tail
                if not produced and not self._pending:
                    break
        return bytes(out)

    def flush(self, max_length: int) -> bytes:
        """The rest of the body once the input has ended; raises zlib.error if the stream was cut short."""
        out = self.decode(b"", max_length)
        if len(out) < max_length:
            out += self._decompressor.flush()
            if not self._first and not self._decompressor.eof:
                # A body cut mid-stream would otherwise pass as a shorter, "complete" document.
                raise zlib.error("compressed stream ends before its end marker (truncated)")
        return out


def _decoder_for(url: str, content_encoding: str | None) -> _Identity | _Inflate:
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflate(codings[0])
    raise FetchError(url, f"unsupported Content-Encoding {content_encoding!r}", retryable=False)


def backoff_delay(
    error_count: int,
    interval: timedelta,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait before the next attempt after `error_count` consecutive failures (1 = the first).

    Doubles from the feed's own interval: interval x 2**(error_count - 1), capped at 16 x interval and at 24 h
    (but never below the interval, so a daily feed stays daily), then lengthened by up to 10 % of jitter.
    A failing feed is thus never polled more often than a healthy one. A server's Retry-After (seconds) is
    honoured as a minimum, itself capped at 24 h so a stray header cannot silence a feed for weeks.
    """
    if error_count < 1:
        raise ValueError(f"error_count must be at least 1, not {error_count!r}")
    if interval <= timedelta(0):
        raise ValueError(f"interval must be positive, not {interval!r}")
    cap = max(interval, min(interval * MAX_BACKOFF_FACTOR, MAX_BACKOFF))
    # The cap is at most 16 x interval, so doubling past 2**5 changes nothing; bounding the exponent keeps a
    # streak of thousands of failures from overflowing timedelta.
    delay = min(interval * (1 << min(error_count - 1, 5)), cap)
    jitter = (rng or _JITTER).uniform(0.0, BACKOFF_JITTER)
    delay = delay * (1.0 + jitter)
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        # Cap the number before it becomes a timedelta: a huge value would overflow it.
        delay = max(delay, timedelta(seconds=min(retry_after, MAX_RETRY_AFTER.total_seconds())))
    return delay
