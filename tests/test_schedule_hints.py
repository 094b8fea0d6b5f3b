"""Cache hints, `once` under backoff, and permanent moves (issue 13 items 1, 4, 5).

The pure rules (monitor.cachehints) are checked on tables; the behaviour end to end with `monitor once`'s own
code against a real feed server on 127.0.0.1, reading the schedule back from the SQLite file it wrote.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from monitor.cachehints import feed_hints, http_lifetime, next_poll_at
from monitor.cli.daemon_cmds import run_once
from monitor.config import load_config
from monitor.store import SQLiteStore
from monitor.types import FeedHints, FeedState
from tests.support.daemonproc import FeedBuilder, write_config
from tests.support.feedserver import FeedServer

NOW = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)  # a Wednesday
REPO = Path(__file__).resolve().parents[1]

# -- the pure rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "expires", "date", "seconds"),
    [
        ("max-age=600", None, None, 600.0),
        ("public, max-age=3600, must-revalidate", None, None, 3600.0),
        ('max-age="120"', None, None, 120.0),
        ("no-cache", None, None, None),
        ("no-store, max-age=600", None, None, None),
        ("max-age=0", None, None, None),
        ("s-maxage=600", None, None, None),  # for shared caches, not for us
        (None, "Wed, 02 Dec 2026 11:30:00 GMT", "Wed, 02 Dec 2026 10:30:00 GMT", 3600.0),
        (None, "Wed, 02 Dec 2026 11:00:00 GMT", None, 1800.0),  # no Date: against now
        (None, "0", None, None),
        (None, "-1", "Wed, 02 Dec 2026 10:30:00 GMT", None),
        (None, "Wed, 02 Dec 2026 09:00:00 GMT", None, None),  # already expired
        ("max-age=60", "Wed, 02 Dec 2026 20:30:00 GMT", None, 60.0),  # max-age wins over Expires
        (None, None, None, None),
    ],
)
def test_http_lifetime(
    cache_control: str | None, expires: str | None, date: str | None, seconds: float | None
) -> None:
    assert http_lifetime(cache_control, expires, date, NOW) == seconds


def channel(head: str, items: str = "<item><title>x</title></item>") -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/">'
        f"<channel><title>t</title>{head}{items}</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ("<ttl>60</ttl>", FeedHints(ttl_seconds=3600.0)),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>",
            FeedHints(ttl_seconds=1800.0),
        ),
        ("<sy:updatePeriod>daily</sy:updatePeriod>", FeedHints(ttl_seconds=86400.0)),
        (
            "<ttl>30</ttl><sy:updatePeriod>daily</sy:updatePeriod>",
            FeedHints(ttl_seconds=1800.0),
        ),  # the shorter
        ("<ttl>0</ttl>", FeedHints()),
        ("<sy:updatePeriod>fortnightly</sy:updatePeriod>", FeedHints()),
        (
            "<skipHours><hour>0</hour><hour>1</hour><hour>24</hour></skipHours>"
            "<skipDays><day>Saturday</day><day>sunday</day><day>Caturday</day></skipDays>",
            FeedHints(skip_hours=frozenset({0, 1}), skip_days=frozenset({5, 6})),
        ),
        ("", FeedHints()),
    ],
)
def test_feed_hints(head: str, expected: FeedHints) -> None:
    assert feed_hints(channel(head)) == expected


def test_a_ttl_inside_an_item_is_not_the_feeds() -> None:
    assert feed_hints(channel("", "<item><title>x</title><ttl>600</ttl></item>")) == FeedHints()


def test_next_poll_at() -> None:
    interval = timedelta(minutes=10)
    cap = timedelta(hours=2)

    def at(http: float | None = None, hints: FeedHints | None = None, honour: bool = False) -> datetime:
        hints = hints or FeedHints()
        return next_poll_at(NOW, interval, http_seconds=http, hints=hints, cap=cap, honour_skip=honour)[0]

    assert at() == NOW + interval
    assert at(http=60) == NOW + interval, "a hint below the interval never makes a poll sooner"
    assert at(http=3600) == NOW + timedelta(hours=1)
    assert at(hints=FeedHints(ttl_seconds=1800)) == NOW + timedelta(minutes=30)
    assert at(http=7 * 86400) == NOW + cap, "a week-long max-age is capped"
    skip = FeedHints(skip_hours=frozenset({10, 11, 12}))
    assert at(hints=skip) == NOW + interval, "skipHours only where the config says so"
    assert at(hints=skip, honour=True) == datetime(2026, 12, 2, 13, 0, tzinfo=UTC)
    weekend = FeedHints(skip_days=frozenset({2, 3}))  # Wednesday, Thursday
    assert at(hints=weekend, honour=True) == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    broken = FeedHints(skip_hours=frozenset(range(24)))
    assert at(hints=broken, honour=True) == NOW + interval, "a feed that skips every hour is ignored"


# -- end to end ----------------------------------------------------------------------------------------------


def config_for(tmp_path: Path, urls: list[str], extra: str = "") -> Path:
    path = write_config(tmp_path, feed_urls=urls, interval="1m")
    path.write_text(path.read_text() + extra, encoding="utf-8")
    return path


def once(config: Path, *, force: bool = False) -> list[str]:
    outcomes, _ = asyncio.run(run_once(load_config(config), force=force))
    return [f"{o.status} {o.error or ''}" for o in outcomes]


def state(config: Path, url: str) -> FeedState:
    with SQLiteStore(config.parent / "state" / "monitor.db") as store:
        found = store.feed_state(url)
    assert found is not None
    return found


def delay_of(found: FeedState) -> timedelta:
    assert found.next_fetch_at is not None and found.last_fetched_at is not None
    return found.next_fetch_at - found.last_fetched_at


def quiet_feed(head: str = "") -> bytes:
    feed = FeedBuilder()
    feed.add("q1", "Local bakery wins national award", "Bread.")
    return feed.rss().replace(
        b"<description>tests</description>", b"<description>tests</description>" + head.encode(), 1
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({"headers": {"Cache-Control": "max-age=3600"}}, timedelta(hours=1)),
        ({"headers": {"Cache-Control": "max-age=2592000"}}, timedelta(hours=3)),  # capped (config: 3h)
        # The server sends its own Date, so Expires is written relative to now, when the test runs.
        ({"headers": {"Expires": "in 40 minutes"}}, timedelta(minutes=40)),
        ({"headers": {"Cache-Control": "no-cache"}}, timedelta(minutes=1)),
        ({"body": "<ttl>90</ttl>"}, timedelta(minutes=90)),
        (
            {"body": "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>"},
            timedelta(minutes=15),
        ),
    ],
    ids=["max-age", "max-age-capped", "expires", "no-cache", "ttl", "sy-update"],
)
def test_each_cache_hint_sets_a_floor_under_the_next_poll(
    tmp_path: Path, route: dict[str, object], expected: timedelta
) -> None:
    with FeedServer() as server:
        head = route.get("body")
        headers = dict(route.get("headers") or {})  # type: ignore[call-overload]
        if headers.get("Expires") == "in 40 minutes":
            headers["Expires"] = format_datetime(datetime.now(UTC) + timedelta(minutes=40), usegmt=True)
        options = {"headers": headers} if headers else {}
        server.set("/f.xml", quiet_feed(str(head) if head else ""), etag='"v1"', **options)
        config = config_for(tmp_path, [server.url("/f.xml")], "fetch:\n  max_cache_hint: 3h\n")
        assert once(config) == ["ok "]
        first = state(config, server.url("/f.xml"))
        assert abs(delay_of(first) - expected) < timedelta(seconds=5)
        # A 304 keeps the document's hints (and carries the server's own headers again).
        assert once(config) == ["not-modified "]
        assert server.requests_for("/f.xml")[-1].headers.get("if-none-match") == '"v1"'
        assert abs(delay_of(state(config, server.url("/f.xml"))) - expected) < timedelta(seconds=5)


def test_skip_hours_are_honoured_only_where_configured(tmp_path: Path) -> None:
    every_hour_but_one = "".join(f"<hour>{h}</hour>" for h in range(24) if h != 5)
    with FeedServer() as server:
        server.set("/f.xml", quiet_feed(f"<skipHours>{every_hour_but_one}</skipHours>"))
        (tmp_path / "a").mkdir()
        plain = config_for(tmp_path / "a", [server.url("/f.xml")])
        assert once(plain) == ["ok "]
        assert delay_of(state(plain, server.url("/f.xml"))) == timedelta(minutes=1)
        (tmp_path / "b").mkdir()
        honoured = config_for(tmp_path / "b", [server.url("/f.xml")], "fetch:\n  honour_skip_hours: true\n")
        assert once(honoured) == ["ok "]
        due = state(honoured, server.url("/f.xml")).next_fetch_at
        assert due is not None and due.astimezone(UTC).hour == 5 and due.minute == 0


def test_once_skips_a_feed_under_retry_after_unless_forced(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/f.xml", b"busy", status=503, retry_after="3600")
        config = config_for(tmp_path, [server.url("/f.xml")])
        assert once(config)[0].startswith("error HTTP 503")
        assert server.count("/f.xml") == 1
        skipped = once(config)
        assert (
            skipped[0].startswith("skipped backing off after 1 failed attempts") and "--force" in skipped[0]
        )
        assert server.count("/f.xml") == 1, "the server that asked for an hour's pause was not asked again"
        server.set("/f.xml", quiet_feed())
        assert once(config, force=True) == ["ok "]
        assert server.count("/f.xml") == 2


def test_once_cli_says_skipped_and_force_polls(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/f.xml", b"down", status=500)
        config = config_for(tmp_path, [server.url("/f.xml")])
        once(config)
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "once", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
        assert f"skipped {server.url('/f.xml')}: backing off" in done.stdout
        assert "0 feeds polled, 0 failed, 1 skipped" in done.stdout
        forced = subprocess.run(
            [sys.executable, "-m", "monitor", "once", "--force", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert "FAILED" in forced.stdout and "1 feeds polled, 1 failed" in forced.stdout
        assert server.count("/f.xml") == 2


@pytest.mark.parametrize("status", [301, 308])
def test_a_permanent_redirect_moves_the_feed_without_rewriting_the_config(
    tmp_path: Path, status: int
) -> None:
    with FeedServer() as server:
        server.set("/new.xml", quiet_feed(), etag='"n"')
        server.set("/old.xml", status=status, redirect_to=server.url("/new.xml"))
        config = config_for(tmp_path, [server.url("/old.xml")])
        before = config.read_text()
        assert once(config) == ["ok "]
        assert state(config, server.url("/old.xml")).moved_to == server.url("/new.xml")
        assert once(config) == ["not-modified "]
        assert server.count("/old.xml") == 1, "the second poll went to the new home directly"
        assert server.count("/new.xml") == 2
        assert config.read_text() == before
        listing = subprocess.run(
            [sys.executable, "-m", "monitor", "feeds", "--config", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert f"moved to {server.url('/new.xml')}" in listing.stdout


@pytest.mark.parametrize("status", [302, 307])
def test_a_temporary_redirect_changes_nothing(tmp_path: Path, status: int) -> None:
    with FeedServer() as server:
        server.set("/new.xml", quiet_feed())
        server.set("/old.xml", status=status, redirect_to=server.url("/new.xml"))
        config = config_for(tmp_path, [server.url("/old.xml")])
        assert once(config) == ["ok "]
        assert state(config, server.url("/old.xml")).moved_to is None
        once(config)
        assert server.count("/old.xml") == 2, "every poll starts at the configured URL"


def test_a_permanent_hop_after_a_temporary_one_is_not_remembered(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/final.xml", quiet_feed())
        server.set("/mid.xml", status=301, redirect_to=server.url("/final.xml"))
        server.set("/old.xml", status=302, redirect_to=server.url("/mid.xml"))
        config = config_for(tmp_path, [server.url("/old.xml")])
        assert once(config) == ["ok "]
        assert state(config, server.url("/old.xml")).moved_to is None


def test_a_410_parks_the_feed(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.set("/gone.xml", b"gone", status=410)
        config = config_for(tmp_path, [server.url("/gone.xml")])
        once(config)
        with SQLiteStore(tmp_path / "state" / "monitor.db") as store:
            (row,) = store.list_feeds()
        assert row.parked_at is not None
        assert once(config) == [], "a parked feed is not polled"
        assert server.count("/gone.xml") == 1
