"""A real HTTP server on 127.0.0.1 that serves feeds for tests, threaded, started and stopped per test.

Usage::

    with FeedServer() as server:                       # or the `feed_server` pytest fixture
        server.set("/feed.xml", b"<rss>...</rss>", etag='"v1"', last_modified="Mon, 05 Jan 2026 12:00:00 GMT")
        url = server.url("/feed.xml")                  # http://127.0.0.1:PORT/feed.xml
        ...                                            # fetch it
        server.set("/feed.xml", b"<rss>new</rss>", etag='"v2"')   # change it while the server runs
        assert server.count("/feed.xml") == 1
        assert server.requests_for("/feed.xml")[0].headers["user-agent"].startswith("monitor/")

What a `Route` can do (all fields optional; see its docstring):

- `etag` / `last_modified`: sent as validators; a request whose If-None-Match matches the ETag (or "*"), or
  whose If-Modified-Since is not older than Last-Modified, gets 304 Not Modified with no body;
- `gzip=True`: the body is sent gzip-compressed with Content-Encoding: gzip;
- `redirect_to="/other"` (absolute or relative) with `status` 301/302/303/307/308 (default 302);
- `status=503, retry_after="120"`: any status code, with an optional Retry-After header;
- `delay=2.0`: wait before answering (read timeouts); a closing server cuts the wait short;
- `size=50_000_000`: a generated body of that many bytes, streamed in chunks without being held in memory;
  `content_length=False` sends it (or `body`) chunked, with no Content-Length; with `gzip=True` it is a
  compression bomb: `size` zero bytes once inflated, a few KiB on the wire;
- `headers={...}`: any extra response headers.

`FeedServer(tls=context)` serves https with a server-side ssl.SSLContext instead.

Paths are matched with their query string first, then without it; unknown paths get 404. Every request is
recorded (method, path, lower-cased headers) before it is answered. The server closes its socket and joins
its threads on exit, so tests running under `filterwarnings = error` see no ResourceWarning.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import pytest

__all__ = ["FeedServer", "RecordedRequest", "Route", "feed_server"]

RSS_TYPE = "application/rss+xml; charset=utf-8"
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Route:
    """How the server answers one path.

    body          the response body (ignored when `size` is set or for 304/redirects)
    status        status code; 302 by default when `redirect_to` is set, else 200
    content_type  Content-Type of 2xx answers
    etag          ETag validator (quoted, as sent on the wire: '"v1"' or 'W/"v1"')
    last_modified Last-Modified validator, an HTTP date
    gzip          compress the body (Content-Encoding: gzip)
    redirect_to   Location header value
    retry_after   Retry-After header value
    delay         seconds to wait before answering
    size          generate a body of this many bytes instead of `body`
    content_length  False: no Content-Length, chunked transfer encoding
    headers       extra response headers
    """

    body: bytes = b""
    status: int | None = None
    content_type: str = RSS_TYPE
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    redirect_to: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    size: int | None = None
    content_length: bool = True
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def effective_status(self) -> int:
        if self.status is not None:
            return self.status
        return 302 if self.redirect_to is not None else 200


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    peer: tuple[str, int] = ("", 0)  # the client's address and port: one TCP connection per distinct peer
    at: float = 0.0  # time.monotonic() when it arrived (how close together two fetches of a feed came)


class FeedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving `routes`. Use as a context manager (or call close())."""

    def __init__(self, routes: dict[str, Route] | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        """Start serving at once. `tls`: a server-side SSLContext to serve https instead of http."""
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = dict(routes or {})
        self._requests: list[RecordedRequest] = []
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests answered at the same time (per-host politeness tests)
        self.closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self.port: int = self._httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="feed-server", daemon=True
        )
        self._thread.start()

    # -- configuration ------------------------------------------------------------------------------------

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        """The absolute URL of `path` on this server (`host` may be a name that resolves to 127.0.0.1)."""
        return f"{self.scheme}://{host}:{self.port}{path if path.startswith('/') else '/' + path}"

    @property
    def base_url(self) -> str:
        return self.url("").rstrip("/")

    def set(self, path: str, body: bytes = b"", **options: object) -> Route:
        """Serve `body` at `path` with the given Route options (replacing what was there). Returns the route."""
        route = Route(body=body, **options)  # type: ignore[arg-type]
        self.route(path, route)
        return route

    def route(self, path: str, route: Route) -> None:
        with self._lock:
            self._routes[path] = route

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def lookup(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    # -- observation --------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def count(self, path: str) -> int:
        """How many requests asked for `path` (exactly, query string included)."""
        return len(self.requests_for(path))

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def entered(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def left(self) -> None:
        with self._lock:
            self._in_flight -= 1

    # -- lifecycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving, wake delayed handlers, join the threads and close the listening socket."""
        if self.closing.is_set():
            return
        self.closing.set()
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()  # joins handler threads (block_on_close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A FeedServer for one test, closed after it.

    To use it in a test module, bind it there: `feed_server = feedserver.feed_server` (a plain
    `from ... import feed_server` works too but trips ruff's F811 on the test's parameter), or list
    "tests.support.feedserver" in `pytest_plugins` of tests/conftest.py to offer it everywhere.
    """
    with FeedServer() as server:
        yield server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True
    # socketserver's default backlog is 5: with eight fetches at once and the accept thread starved of CPU on a
    # loaded machine, further SYNs were dropped and the client's connect timed out after 10 s.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], feeds: FeedServer
    ) -> None:
        self.feeds = feeds
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-body (size limits, timeouts) is expected in these tests, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.feeds.entered()
        try:
            self._answer(send_body=True)
        finally:
            self.server.feeds.left()

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        feeds = self.server.feeds
        feeds.record(
            RecordedRequest(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                (str(self.client_address[0]), int(self.client_address[1])),
                time.monotonic(),
            )
        )
        route = feeds.lookup(self.path)
        if route is None:
            self._simple(404, b"not found\n", send_body)
            return
        if route.delay and feeds.closing.wait(route.delay):
            self.close_connection = True
            return
        status = route.effective_status
        if 200 <= status < 300 and self._not_modified(route):
            self.send_response(304)
            for name, value in route.headers.items():  # Cache-Control, Expires: a 304 carries them too
                self.send_header(name, value)
            self._validators(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        if route.redirect_to is not None:
            self.send_header("Location", route.redirect_to)
        if route.retry_after is not None:
            self.send_header("Retry-After", route.retry_after)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self._validators(route)
        self.send_header("Content-Type", route.content_type)
        if route.size is not None:
            self._send_generated(route, send_body)
            return
        body = gzip.compress(route.body) if route.gzip else route.body
        if route.gzip:
            self.send_header("Content-Encoding", "gzip")
        self._send_chunks([body] if body else [], len(body), route.content_length, send_body)

    def _send_generated(self, route: Route, send_body: bool) -> None:
        assert route.size is not None
        size = route.size
        if route.gzip:  # a compression bomb: tiny on the wire, `size` bytes once inflated
            self.send_header("Content-Encoding", "gzip")
            self._send_chunks(_gzip_zeros(size), None, False, send_body)
            return
        self._send_chunks(_filler(size), size, route.content_length, send_body)

    def _send_chunks(
        self, chunks: Iterator[bytes] | list[bytes], length: int | None, content_length: bool, send_body: bool
    ) -> None:
        chunked = not content_length or length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if not send_body:
            return
        try:
            for chunk in chunks:
                if self.server.feeds.closing.is_set():
                    self.close_connection = True
                    return
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _validators(self, route: Route) -> None:
        if route.etag is not None:
            self.send_header("ETag", route.etag)
        if route.last_modified is not None:
            self.send_header("Last-Modified", route.last_modified)

    def _not_modified(self, route: Route) -> bool:
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2); weak comparison.
            tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
            return route.etag is not None and ("*" in tags or route.etag.removeprefix("W/") in tags)
        since = self.headers.get("If-Modified-Since")
        if since is not None and route.last_modified is not None:
            try:
                return parsedate_to_datetime(since) >= parsedate_to_datetime(route.last_modified)
            except (TypeError, ValueError):
                return False
        return False

    def _simple(self, status: int, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


def _filler(size: int) -> Iterator[bytes]:
    block = (b"<!-- filler -->\n" * (_CHUNK // 16))[:_CHUNK]
    sent = 0
    while sent < size:
        part = block[: min(_CHUNK, size - sent)]
        sent += len(part)
        yield part


def _gzip_zeros(size: int) -> Iterator[bytes]:
    """One gzip member that inflates to `size` zero bytes, produced incrementally."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * _CHUNK
    sent = 0
    while sent < size:
        part = zeros[: min(_CHUNK, size - sent)]
        sent += len(part)
        yield compressor.compress(part)
    yield compressor.flush()
