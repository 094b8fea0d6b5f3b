"""The fetch stage against a real HTTP server on 127.0.0.1 (tests/support/feedserver.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import random
import socket
import ssl
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

import monitor
import monitor.fetch
from monitor.errors import FetchError, NetworkPolicyError, ResponseTooLargeError
from monitor.fetch import (
    TRANSPORTS,
    Fetcher,
    FetchSettings,
    Transport,
    backoff_delay,
)
from monitor.netpolicy import NetworkPolicy
from monitor.timeutil import parse_retry_after
from monitor.types import FetchResult
from tests.support import feedserver
from tests.support.connects import recorded_connects
from tests.support.feedserver import FeedServer, Route
from tests.support.tls import SelfSigned, self_signed

ALLOW_LOOPBACK = NetworkPolicy.from_setting(["127.0.0.1/32"])
# The shared fixture, made available here the way any test module can take it.
feed_server = feedserver.feed_server

QUICK = FetchSettings(connect_timeout=2.0, read_timeout=2.0, total_timeout=5.0)
RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
LAST_MODIFIED = "Mon, 05 Jan 2026 12:00:00 GMT"


@pytest.fixture(autouse=True, params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Transport:
    """Every test of this module runs on each transport behind the Fetcher's seam (monitor.fetch.Wire): the
    settings a test builds get the transport of this run when the Fetcher opens its client."""
    chosen: Transport = request.param
    real = monitor.fetch.open_wire

    def open_wire(
        settings: FetchSettings, policy: NetworkPolicy, ssl_context: ssl.SSLContext | None
    ) -> object:
        return real(dataclasses.replace(settings, transport=chosen), policy, ssl_context)

    monkeypatch.setattr(monitor.fetch, "open_wire", open_wire)
    return chosen


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def fetch(
    url: str,
    *,
    settings: FetchSettings = QUICK,
    policy: NetworkPolicy = ALLOW_LOOPBACK,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(settings, policy) as fetcher:
            return await fetcher.fetch(url, etag=etag, last_modified=last_modified)

    return asyncio.run(run())


def fetch_error(url: str, **options: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **options)  # type: ignore[arg-type]
    return info.value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- conditional GET ---------------------------------------------------------------------------------------


def test_first_fetch_returns_body_and_validators_then_304_with_if_none_match(server: FeedServer) -> None:
    server.set("/feed", RSS, etag='"v1"', last_modified=LAST_MODIFIED)
    first = fetch(server.url("/feed"))
    assert first.status == 200
    assert first.content == RSS
    assert first.etag == '"v1"'
    assert first.last_modified == LAST_MODIFIED
    assert first.content_type == "application/rss+xml; charset=utf-8"
    assert first.final_url == first.url == server.url("/feed")
    assert first.elapsed > 0

    second = fetch(server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified
    assert second.status == 304
    assert second.content is None
    assert second.etag == '"v1"'
    sent = server.requests_for("/feed")
    assert "if-none-match" not in sent[0].headers
    assert sent[1].headers["if-none-match"] == '"v1"'
    assert sent[1].headers["if-modified-since"] == LAST_MODIFIED


def test_304s_redirects_and_error_pages_leave_the_connection_open_for_the_next_fetch(
    server: FeedServer,
) -> None:
    # Without reading the rest of a response, httpcore closes its connection: every 304 of a round of polls
    # then cost a new TCP (and TLS) handshake.
    server.set("/feed", RSS, etag='"v1"')
    server.set("/moved", b"", redirect_to="/feed", status=302)
    server.set("/broken", b"<html>" + b"x" * 2000 + b"</html>", status=500)

    async def run() -> list[int]:
        statuses = []
        async with Fetcher(QUICK, ALLOW_LOOPBACK) as fetcher:
            for _ in range(3):
                statuses.append((await fetcher.fetch(server.url("/feed"), etag='"v1"')).status)
            statuses.append((await fetcher.fetch(server.url("/moved"), etag='"v1"')).status)
            with pytest.raises(FetchError):
                await fetcher.fetch(server.url("/broken"))
            statuses.append((await fetcher.fetch(server.url("/feed"))).status)
        return statuses

    assert asyncio.run(run()) == [304, 304, 304, 304, 200]
    peers = {request.peer for request in server.requests}
    assert len(server.requests) == 7
    assert len(peers) == 1, f"{len(peers)} connections for {len(server.requests)} requests"


def test_changed_feed_is_fetched_again_despite_validators(server: FeedServer) -> None:
    server.set("/feed", b"<rss>new</rss>", etag='"v2"')
    result = fetch(server.url("/feed"), etag='"v1"')
    assert result.status == 200
    assert result.content == b"<rss>new</rss>"
    assert result.etag == '"v2"'


def test_last_modified_alone_gives_304(server: FeedServer) -> None:
    server.set("/feed", RSS, last_modified=LAST_MODIFIED)
    result = fetch(server.url("/feed"), last_modified=LAST_MODIFIED)
    assert result.not_modified
    assert result.etag is None
    assert result.last_modified == LAST_MODIFIED
    assert server.requests_for("/feed")[0].headers["if-modified-since"] == LAST_MODIFIED
    assert "if-none-match" not in server.requests_for("/feed")[0].headers


def test_user_agent_names_the_project_and_feed_types_are_accepted(server: FeedServer) -> None:
    server.set("/feed", RSS)
    fetch(server.url("/feed"))
    headers = server.requests_for("/feed")[0].headers
    assert headers["user-agent"].startswith(f"monitor/{monitor.__version__} ")
    assert "application/rss+xml" in headers["accept"]
    assert headers["accept-encoding"] == "gzip, deflate"


def test_custom_user_agent_is_sent(server: FeedServer) -> None:
    server.set("/feed", RSS)
    fetch(server.url("/feed"), settings=FetchSettings(user_agent="monitor-test/1"))
    assert server.requests_for("/feed")[0].headers["user-agent"] == "monitor-test/1"


# -- content encodings -------------------------------------------------------------------------------------


def test_gzip_body_is_decompressed(server: FeedServer) -> None:
    body = RSS * 200
    server.set("/feed", body, gzip=True)
    result = fetch(server.url("/feed"))
    assert result.content == body


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib-deflate", "raw-deflate"])
def test_deflate_body_is_decompressed_in_both_forms_servers_send(server: FeedServer, wbits: int) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    wire = compressor.compress(RSS * 50) + compressor.flush()
    server.set("/feed", wire, headers={"Content-Encoding": "deflate"})
    assert fetch(server.url("/feed")).content == RSS * 50


def test_concatenated_gzip_members_form_one_body(server: FeedServer) -> None:
    server.set(
        "/feed", gzip.compress(b"<rss>") + gzip.compress(b"</rss>"), headers={"Content-Encoding": "gzip"}
    )
    assert fetch(server.url("/feed")).content == b"<rss></rss>"


def test_corrupt_gzip_is_a_fetch_error(server: FeedServer) -> None:
    server.set("/feed", b"\x1f\x8b\x08\x00garbage" * 10, headers={"Content-Encoding": "gzip"})
    error = fetch_error(server.url("/feed"))
    assert "corrupt compressed body" in error.message


def test_truncated_gzip_is_a_fetch_error_not_a_shorter_body(server: FeedServer) -> None:
    server.set("/feed", gzip.compress(RSS * 100)[:-40], headers={"Content-Encoding": "gzip"})
    error = fetch_error(server.url("/feed"))
    assert "truncated" in error.message
    assert error.retryable


def test_empty_gzip_body_is_empty(server: FeedServer) -> None:
    server.set("/feed", gzip.compress(b""), headers={"Content-Encoding": "gzip"})
    assert fetch(server.url("/feed")).content == b""


def test_unsupported_content_encoding_is_refused(server: FeedServer) -> None:
    server.set("/feed", b"\x00\x01", headers={"Content-Encoding": "br"})
    error = fetch_error(server.url("/feed"))
    assert error.message == "unsupported Content-Encoding 'br'"
    assert not error.retryable


# -- redirects ---------------------------------------------------------------------------------------------


def test_redirect_chain_is_followed_and_final_url_reported(server: FeedServer) -> None:
    server.set("/old", redirect_to="/middle", status=301)  # relative Location
    server.set("/middle", redirect_to=server.url("/new?x=1"), status=307)  # absolute Location
    server.set("/new", RSS, etag='"n"')
    result = fetch(server.url("/old"), etag='"stale"')
    assert result.status == 200
    assert result.content == RSS
    assert result.url == server.url("/old")
    assert result.final_url == server.url("/new?x=1")
    assert [r.path for r in server.requests] == ["/old", "/middle", "/new?x=1"]
    # Validators go along to the final resource, which owns them.
    assert server.requests[-1].headers["if-none-match"] == '"stale"'


def test_redirect_to_a_304_is_not_modified(server: FeedServer) -> None:
    server.set("/old", redirect_to="/new")
    server.set("/new", RSS, etag='"n"')
    result = fetch(server.url("/old"), etag='"n"')
    assert result.not_modified
    assert result.final_url == server.url("/new")


def test_too_many_redirects(server: FeedServer) -> None:
    server.set("/loop", redirect_to="/loop")
    error = fetch_error(server.url("/loop"), settings=FetchSettings(max_redirects=3))
    assert error.message == "too many redirects (more than 3)"
    assert not error.retryable
    assert error.url == server.url("/loop")
    assert server.count("/loop") == 4  # the first request and three followed hops


def test_max_redirects_zero_refuses_the_first_redirect(server: FeedServer) -> None:
    server.set("/old", redirect_to="/new")
    server.set("/new", RSS)
    error = fetch_error(server.url("/old"), settings=FetchSettings(max_redirects=0))
    assert "too many redirects" in error.message
    assert server.count("/new") == 0


def test_redirect_without_location_is_an_error(server: FeedServer) -> None:
    server.set("/old", status=302)
    error = fetch_error(server.url("/old"))
    assert error.message == "HTTP 302 redirect without a Location header"
    assert not error.retryable


# -- status codes ------------------------------------------------------------------------------------------


def test_404_is_not_retryable(server: FeedServer) -> None:
    error = fetch_error(server.url("/missing"))
    assert isinstance(error, FetchError)
    assert error.message == "HTTP 404 Not Found"
    assert error.status == 404
    assert not error.retryable
    assert str(error) == f"{server.url('/missing')}: HTTP 404 Not Found"


def test_503_is_retryable_and_carries_retry_after(server: FeedServer) -> None:
    server.set("/feed", b"busy", status=503, retry_after="120")
    error = fetch_error(server.url("/feed"))
    assert isinstance(error, FetchError)
    assert error.message == "HTTP 503 Service Unavailable"
    assert error.retryable
    assert error.status == 503
    assert error.retry_after == 120.0


def test_429_with_http_date_retry_after(server: FeedServer) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    server.set("/feed", status=429, retry_after=format_datetime(later, usegmt=True))
    error = fetch_error(server.url("/feed"))
    assert isinstance(error, FetchError)
    assert error.retryable
    assert error.message == "HTTP 429 Too Many Requests"
    assert error.retry_after is not None
    assert 500 < error.retry_after <= 600


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (410, False),
        (408, True),
        (500, True),
        (502, True),
        (300, False),
    ],
)
def test_status_retryability(server: FeedServer, status: int, retryable: bool) -> None:
    server.set("/feed", status=status)
    error = fetch_error(server.url("/feed"))
    assert error.status == status
    assert error.retryable is retryable
    assert getattr(error, "retry_after", "missing") is None


# -- network failures and limits ---------------------------------------------------------------------------


def test_connection_refused_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/feed"
    error = fetch_error(url)
    assert error.message == "connection refused"
    assert error.retryable
    assert error.url == url


def test_read_timeout(server: FeedServer) -> None:
    server.set("/slow", RSS, delay=5.0)
    error = fetch_error(server.url("/slow"), settings=FetchSettings(read_timeout=0.2, total_timeout=5.0))
    assert error.message == "read timed out after 0.2s"
    assert error.retryable


def test_overall_deadline_covers_the_whole_fetch(server: FeedServer) -> None:
    server.set("/slow", RSS, delay=5.0)
    error = fetch_error(server.url("/slow"), settings=FetchSettings(read_timeout=10.0, total_timeout=0.3))
    assert error.message == "timed out after 0.3s"
    assert error.retryable


def test_body_too_large_with_content_length_is_refused_before_reading(server: FeedServer) -> None:
    server.set("/big", size=5_000_000)
    error = fetch_error(server.url("/big"), settings=FetchSettings(max_bytes=1000))
    assert isinstance(error, ResponseTooLargeError)
    assert error.message == "response of 5000000 bytes exceeds the limit of 1000 bytes"


def test_body_too_large_without_content_length_stops_while_reading(server: FeedServer) -> None:
    server.set("/big", size=5_000_000, content_length=False)
    error = fetch_error(server.url("/big"), settings=FetchSettings(max_bytes=100_000))
    assert isinstance(error, ResponseTooLargeError)
    assert error.message == "response exceeds the limit of 100000 bytes"


def test_gzip_bomb_is_stopped_at_the_decompressed_limit(server: FeedServer) -> None:
    server.set("/bomb", size=2_000_000_000, gzip=True)  # 2 GB of zeros, about 2 MB on the wire
    error = fetch_error(server.url("/bomb"), settings=FetchSettings(max_bytes=1_000_000))
    assert isinstance(error, ResponseTooLargeError)


def test_body_of_exactly_the_limit_is_accepted(server: FeedServer) -> None:
    server.set("/exact", size=100_000, content_length=False)
    result = fetch(server.url("/exact"), settings=FetchSettings(max_bytes=100_000))
    assert result.content is not None
    assert len(result.content) == 100_000


def test_gzip_body_at_the_limit_is_accepted(server: FeedServer) -> None:
    server.set("/zeros", size=300_000, gzip=True)
    result = fetch(server.url("/zeros"), settings=FetchSettings(max_bytes=300_000))
    assert result.content == b"\0" * 300_000


def test_concurrent_fetches_share_one_client(server: FeedServer) -> None:
    for n in range(6):
        server.set(f"/f{n}", f"<rss>{n}</rss>".encode())

    async def run() -> list[FetchResult]:
        async with Fetcher(QUICK, ALLOW_LOOPBACK) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(server.url(f"/f{n}")) for n in range(6)))

    results = asyncio.run(run())
    assert [r.content for r in results] == [f"<rss>{n}</rss>".encode() for n in range(6)]


def test_fetch_outside_the_context_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        asyncio.run(Fetcher(QUICK, ALLOW_LOOPBACK).fetch("http://127.0.0.1/"))


@pytest.mark.parametrize(
    "options",
    [
        {"connect_timeout": 0},
        {"total_timeout": -1.0},
        {"max_bytes": 0},
        {"max_redirects": -1},
        {"user_agent": " "},
    ],
)
def test_settings_are_validated(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="FetchSettings"):
        FetchSettings(**options)  # type: ignore[arg-type]


# -- network policy ----------------------------------------------------------------------------------------


def test_default_policy_refuses_loopback_before_connecting(server: FeedServer) -> None:
    server.set("/feed", RSS)
    error = fetch_error(server.url("/feed"), policy=NetworkPolicy())
    assert isinstance(error, NetworkPolicyError)
    assert not error.retryable
    assert "127.0.0.1" in error.message
    assert server.count("/feed") == 0


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "resolves to 169.254.169.254, a non-public address"),
        ("http://127.0.0.2/admin", "resolves to 127.0.0.2, a non-public address"),
        ("http://[::1]/", "resolves to ::1, a non-public address"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ],
)
def test_redirect_hop_to_a_refused_address_is_not_followed(
    server: FeedServer, target: str, reason: str
) -> None:
    server.set("/feed", redirect_to=target)
    error = fetch_error(server.url("/feed"))
    assert isinstance(error, NetworkPolicyError)
    assert error.url == server.url("/feed")
    assert error.message.startswith(f"redirected to {target.split('//')[0]}")
    assert reason in error.message
    assert server.count("/feed") == 1


# IPv6 literals that carry a private IPv4 address: not routable here, so the test is that each is refused
# before any socket connects, by the connect-time check (the Fetcher itself checks only scheme and host).
CARRIER_URLS = [
    "http://[2002:7f00:1::]:{port}/feed",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::7f00:1]:{port}/feed",  # NAT64 local-use
    "http://[::127.0.0.1]:{port}/feed",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]:{port}/feed",  # IPv4-translated
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/feed",  # Teredo, client 127.0.0.1
    "http://[fec0::1]/feed",  # site-local
]


@pytest.mark.parametrize("template", CARRIER_URLS)
def test_feed_url_with_an_ipv6_carrier_of_a_private_address_is_refused_before_connecting(
    server: FeedServer, template: str
) -> None:
    url = template.format(port=server.port)
    with recorded_connects() as attempts:
        error = fetch_error(url, policy=NetworkPolicy())
    assert isinstance(error, NetworkPolicyError), error
    assert "non-public address" in error.message
    assert attempts == []


@pytest.mark.parametrize("template", CARRIER_URLS)
def test_connect_time_check_refuses_ipv6_carriers_too(server: FeedServer, template: str) -> None:
    with recorded_connects() as attempts:
        error = fetch_error(template.format(port=server.port), policy=CheckThatSawAPublicAnswer())
    assert isinstance(error, NetworkPolicyError), error
    assert attempts == []


def test_ipv4_mapped_loopback_is_refused_though_it_would_reach_the_server(server: FeedServer) -> None:
    # [::ffff:127.0.0.1] does reach a server on 127.0.0.1 on a dual-stack host: the policy must stop it.
    server.set("/feed", RSS)
    error = fetch_error(f"http://[::ffff:127.0.0.1]:{server.port}/feed", policy=NetworkPolicy())
    assert isinstance(error, NetworkPolicyError)
    assert server.count("/feed") == 0


def test_metadata_address_is_refused_even_with_allow_private_networks() -> None:
    with recorded_connects() as attempts:
        error = fetch_error(
            "http://169.254.169.254/latest/meta-data/", policy=NetworkPolicy.from_setting(True)
        )
    assert isinstance(error, NetworkPolicyError)
    assert attempts == []


class CheckThatSawAPublicAnswer(NetworkPolicy):
    """Stands in for DNS rebinding: an up-front check (webhooks still make one; the Fetcher no longer does)
    passed, the name now resolves to loopback."""

    async def check_url(self, url: str) -> None:
        self.check_scheme(url)


def test_connection_goes_only_to_addresses_the_policy_allows(server: FeedServer) -> None:
    server.set("/feed", RSS)
    error = fetch_error(server.url("/feed", host="localhost"), policy=CheckThatSawAPublicAnswer())
    assert isinstance(error, NetworkPolicyError)
    assert "resolves to" in error.message
    assert "non-public address" in error.message
    assert server.count("/feed") == 0


class AnswerThatChanges(CheckThatSawAPublicAnswer):
    """DNS rebinding across a redirect: the first address judged is allowed, every later one is refused."""

    def __init__(self) -> None:
        super().__init__(allow_all_private=True)
        object.__setattr__(self, "judged", [])

    def is_allowed(self, address: object) -> bool:
        self.judged.append(address)  # type: ignore[attr-defined]
        return len(self.judged) == 1  # type: ignore[attr-defined]


def test_a_redirect_hop_is_checked_again_when_it_connects(server: FeedServer) -> None:
    server.set("/feed", redirect_to=server.url("/moved", host="localhost"))
    server.set("/moved", RSS)
    error = fetch_error(server.url("/feed"), policy=AnswerThatChanges())
    assert isinstance(error, NetworkPolicyError), error
    assert error.message.startswith(f"redirected to {server.url('/moved', host='localhost')}: ")
    assert "non-public address" in error.message
    assert server.count("/feed") == 1 and server.count("/moved") == 0


def test_a_name_that_does_not_resolve_is_a_retryable_fetch_error() -> None:
    # The Fetcher no longer resolves a hop itself (the transport does, as it connects): the failure must still
    # say which name did not resolve, and be retryable (DNS trouble passes), on both transports.
    error = fetch_error("http://feed.example.invalid/feed", policy=NetworkPolicy(allow_all_private=True))
    assert type(error) is FetchError, error
    assert error.retryable
    assert error.message.startswith("cannot resolve host 'feed.example.invalid'"), error.message


def test_proxy_settings_of_the_environment_are_not_honoured(
    server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would connect on our behalf, past the address check: the fetch must go to the feed's host itself.
    with FeedServer() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        server.set("/feed", RSS)
        assert fetch(server.url("/feed")).content == RSS
        assert server.count("/feed") == 1 and proxy.requests == []


def test_connection_by_host_name_works_when_allowed(server: FeedServer) -> None:
    server.set("/feed", RSS)
    result = fetch(server.url("/feed", host="localhost"), policy=NetworkPolicy(allow_all_private=True))
    assert result.content == RSS
    assert server.requests_for("/feed")[0].headers["host"] == f"localhost:{server.port}"


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """A throw-away certificate for the name `localhost` only (no IP address: the test below needs that)."""
    return self_signed(tmp_path_factory.mktemp("tls"), dns=("localhost",), ips=())


def test_https_by_name_verifies_the_name_while_connecting_to_the_checked_address(
    localhost_cert: SelfSigned,
) -> None:
    server_tls = localhost_cert.server_context()
    client_tls = ssl.create_default_context(cafile=str(localhost_cert.cert))

    async def run(url: str) -> FetchResult:
        policy = NetworkPolicy(allow_all_private=True)
        async with Fetcher(QUICK, policy, ssl_context=client_tls) as fetcher:
            return await fetcher.fetch(url)

    with FeedServer(tls=server_tls) as tls_server:
        tls_server.set("/feed", RSS)
        assert asyncio.run(run(tls_server.url("/feed", host="localhost"))).content == RSS
        # The certificate names localhost, not 127.0.0.1: verification must use the URL's host.
        with pytest.raises(FetchError):
            asyncio.run(run(tls_server.url("/feed", host="127.0.0.1")))


# -- Retry-After and backoff -------------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("Mon, 05 Jan 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now) == 0.0  # in the past: go now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after(None, now) is None


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


class MostJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


M, H = timedelta(minutes=1), timedelta(hours=1)


@pytest.mark.parametrize(
    ("interval", "errors", "expected"),
    [
        (10 * M, 1, 10 * M),
        (10 * M, 2, 20 * M),
        (10 * M, 3, 40 * M),
        (10 * M, 4, 80 * M),
        (10 * M, 5, 160 * M),  # 16 x interval: the cap
        (10 * M, 6, 160 * M),
        (10 * M, 10_000, 160 * M),  # no overflow however long the streak
        (1 * H, 5, 16 * H),
        (6 * H, 2, 12 * H),
        (6 * H, 3, 24 * H),  # 24 h: the absolute cap
        (6 * H, 9, 24 * H),
        (48 * H, 1, 48 * H),  # a feed polled less than daily keeps its interval
        (48 * H, 7, 48 * H),
        (timedelta(seconds=1), 3, timedelta(seconds=4)),
    ],
)
def test_backoff_doubles_from_the_interval_up_to_the_cap(
    interval: timedelta, errors: int, expected: timedelta
) -> None:
    assert backoff_delay(errors, interval, rng=NoJitter()) == expected
    assert backoff_delay(errors, interval, rng=MostJitter()) == expected * 1.1


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (3600.0, 1 * H),  # the server's wish is longer than the backoff: honoured
        (60.0, 10 * M),  # shorter: the backoff stands
        (30 * 24 * 3600.0, 24 * H),  # a month is capped at a day
        (float("nan"), 10 * M),
        (-5.0, 10 * M),
        (None, 10 * M),
    ],
)
def test_backoff_honours_retry_after_within_a_cap(retry_after: float | None, expected: timedelta) -> None:
    assert backoff_delay(1, 10 * M, retry_after, rng=NoJitter()) == expected


def test_backoff_jitter_spreads_retries_but_never_shortens_them() -> None:
    rng = random.Random(7)
    delays = {backoff_delay(2, 10 * M, rng=rng) for _ in range(100)}
    assert len(delays) > 90
    assert all(20 * M <= d <= 22 * M for d in delays)


@pytest.mark.parametrize(("errors", "interval"), [(0, 10 * M), (-1, 10 * M), (1, timedelta(0))])
def test_backoff_rejects_meaningless_input(errors: int, interval: timedelta) -> None:
    with pytest.raises(ValueError):
        backoff_delay(errors, interval)


def test_shared_fixture_serves_and_counts(feed_server: FeedServer) -> None:
    feed_server.set("/a?page=2", b"second page")
    feed_server.set("/a", b"first page")
    assert fetch(feed_server.url("/a?page=2")).content == b"second page"
    assert fetch(feed_server.url("/a?other=1")).content == b"first page"  # falls back to the bare path
    feed_server.remove("/a")
    assert fetch_error(feed_server.url("/a")).status == 404
    assert feed_server.count("/a") == 1
    assert [r.method for r in feed_server.requests] == ["GET"] * 3


def test_route_defaults_are_plain_200() -> None:
    assert Route().effective_status == 200
    assert Route(redirect_to="/x").effective_status == 302
