"""`monitor feeds add|remove|import|export`: edits of a real config file that keep its comments, checked like
the daemon loads it and against the network policy; OPML as Feedly, NetNewsWire and Miniflux export it; and a
running `monitor run` that picks an added feed up on SIGHUP."""

from __future__ import annotations

import difflib
import os
import signal
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.opml import read_opml
from monitor.store import SQLiteStore
from tests.support.daemonproc import DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import wait_until

HAND_WRITTEN = """\
# Our newsroom's monitor. Ask the desk before changing the interval.
database: ./state/monitor.db   # next to this file
{private}
interval: 10m

feeds:
  # German public broadcasters
  - url: https://www.tagesschau.de/xml/rss2/
    title: Tagesschau            # their own title is too long
    tags: [de, public-broadcaster]
  # wires
  - url: https://wire.example.org/rss
    interval: 5m

# channels come later
"""


def _config(tmp_path: Path, private: str = "") -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(HAND_WRITTEN.format(private=private), encoding="utf-8")
    return path


def _comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def test_add_keeps_every_comment_and_gives_a_config_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    before = config.read_text(encoding="utf-8")
    url = "https://news.example.com/world.xml"
    args = ["feeds", "add", url, "--interval", "15m", "--tags", "en, world", "--title", "World"]
    assert main([*args, "--config", str(config)]) == 0
    assert f"added {url}" in capsys.readouterr().out
    after = config.read_text(encoding="utf-8")
    assert _comments(after) == _comments(before)
    assert after.startswith(before.split("\n# channels")[0])  # everything above is byte for byte the same
    feeds = {feed.url: feed for feed in load_config(config).feeds}
    assert list(feeds)[-1] == url
    assert feeds[url].interval is not None and feeds[url].interval.total_seconds() == 900
    assert feeds[url].tags == ("en", "world") and feeds[url].title == "World"
    assert feeds["https://www.tagesschau.de/xml/rss2/"].tags == ("de", "public-broadcaster")


def test_add_refuses_a_listed_url_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    before = config.read_bytes()
    assert main(["feeds", "add", "https://wire.example.org/rss", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{config}:12:" in err and "already listed" in err
    assert config.read_bytes() == before


def test_add_refuses_a_bad_interval_as_the_daemon_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    before = config.read_bytes()
    assert (
        main(["feeds", "add", "https://a.example.org/f", "--interval", "banana", "--config", str(config)])
        == 1
    )
    err = capsys.readouterr().err
    assert f"{config}:" in err and "feeds.2.interval" in err
    assert config.read_bytes() == before


@pytest.mark.parametrize(
    ("private", "url", "allowed"),
    [
        ("", "http://127.0.0.1:8080/feed.xml", False),
        ("", "http://localhost/feed.xml", False),
        ("", "http://[::ffff:10.0.0.1]/feed.xml", False),
        ('allow_private_networks: ["127.0.0.1/32"]', "http://127.0.0.1:8080/feed.xml", True),
        ("allow_private_networks: true", "http://10.1.2.3/feed.xml", True),
        ("allow_private_networks: true", "http://169.254.169.254/latest/meta-data/", False),
        ("", "ftp://example.org/feed.xml", False),
    ],
)
def test_add_checks_the_url_against_the_files_network_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], private: str, url: str, allowed: bool
) -> None:
    config = _config(tmp_path, private)
    before = config.read_bytes()
    status = main(["feeds", "add", url, "--config", str(config)])
    err = capsys.readouterr().err
    if allowed:
        assert status == 0, err
        assert url in {feed.url for feed in load_config(config).feeds}
    else:
        assert status == 1
        assert url in err and str(config) in err
        assert "refused by the network policy" in err or "http(s) URL" in err
        assert config.read_bytes() == before


@pytest.mark.parametrize(
    "text",
    [
        # dash at the key's column, lists elsewhere in the file too
        "database: ./s/m.db\nfeeds:\n- url: https://a.example.org/f\n  tags:\n  - x\ndelivery:\n"
        "  retry_schedule:\n  - 5s\n  - 1m\n",
        # four spaces, dash indented by two
        "fetch:\n    concurrency: 2\nfeeds:\n  -   url: https://a.example.org/f\n",
        # no list yet, a mapping indented by four
        "fetch:\n    concurrency: 2\n",
    ],
)
def test_add_only_inserts_lines_whatever_the_files_indentation(tmp_path: Path, text: str) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["feeds", "add", "https://new.example.org/f", "--tags", "a,b", "--config", str(config)]) == 0
    after = config.read_text(encoding="utf-8")
    operations = difflib.SequenceMatcher(a=text.splitlines(), b=after.splitlines()).get_opcodes()
    assert {op for op, *_ in operations} <= {"equal", "insert"}, after
    assert [f.tags for f in load_config(config).feeds][-1] == ("a", "b")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_an_edit_keeps_the_files_owner_group_and_mode(tmp_path: Path) -> None:
    """/etc/monitor/monitor.yaml is root:monitor 0640; `sudo monitor feeds add` must not leave it root:root."""
    config = _config(tmp_path)
    os.chown(config, 65534, 65534)
    config.chmod(0o640)
    assert main(["feeds", "add", "https://new.example.org/f", "--config", str(config)]) == 0
    status = config.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (65534, 65534, 0o640)
    assert main(["feeds", "remove", "https://new.example.org/f", "--config", str(config)]) == 0
    status = config.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o777) == (65534, 65534, 0o640)


def test_removing_the_last_feed_leaves_an_empty_list_and_the_comments(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("feeds:   # ours\n  - url: https://a.example.org/f\n# the end\n", encoding="utf-8")
    assert main(["feeds", "remove", "https://a.example.org/f", "--config", str(config)]) == 0
    assert config.read_text(encoding="utf-8") == "feeds: []   # ours\n# the end\n"
    assert load_config(config).feeds == ()


def test_remove_keeps_the_others_and_their_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["feeds", "remove", "https://wire.example.org/rss", "--config", str(config)]) == 0
    after = config.read_text(encoding="utf-8")
    assert [feed.url for feed in load_config(config).feeds] == ["https://www.tagesschau.de/xml/rss2/"]
    for comment in ("# German public broadcasters", "# their own title is too long", "# channels come later"):
        assert comment in after
    capsys.readouterr()
    before = config.read_bytes()
    assert main(["feeds", "remove", "https://nowhere.example.org/", "--config", str(config)]) == 1
    assert "not listed" in capsys.readouterr().err
    assert config.read_bytes() == before


# -- OPML ---------------------------------------------------------------------------------------------------
# Written from each reader's documented export: Feedly (OPML 1.0, one folder level, type="rss"), NetNewsWire
# (OPML 1.1, folders, description/version attributes, a top-level feed), Miniflux (OPML 2.0, a folder per
# category, no type attribute), plus the OPML 2.0 specification's `category` attribute.

FEEDLY = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
    <head>
        <title>Alex subscriptions in feedly Cloud</title>
    </head>
    <body>
        <outline text="World" title="World">
            <outline type="rss" text="BBC News - World" title="BBC News - World"
                     xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml" htmlUrl="https://www.bbc.co.uk/news/"/>
            <outline type="rss" text="tagesschau.de" title="tagesschau.de"
                     xmlUrl="https://www.tagesschau.de/xml/rss2/" htmlUrl="https://www.tagesschau.de"/>
        </outline>
        <outline text="Markets" title="Markets">
            <outline type="rss" text="Mining.com" title="Mining.com" xmlUrl="https://www.mining.com/feed/"
                     htmlUrl="https://www.mining.com"/>
        </outline>
    </body>
</opml>
"""

NETNEWSWIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- OPML generated by NetNewsWire -->
<opml version="1.1">
\t<head>
\t\t<title>Subscriptions-OnMyMac.opml</title>
\t</head>
<body>
\t<outline text="Russia" title="Russia">
\t\t<outline text="TASS" title="TASS" description="" type="rss" version="RSS" htmlUrl="https://tass.ru/" xmlUrl="https://tass.ru/rss/v2.xml"/>
\t</outline>
\t<outline text="The Guardian" title="The Guardian" description="" type="rss" version="RSS" htmlUrl="https://www.theguardian.com/world" xmlUrl="https://www.theguardian.com/world/rss"/>
</body>
</opml>
"""

MINIFLUX = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head>
    <title>Miniflux</title>
    <dateCreated>Tue, 01 Dec 2026 09:00:00 UTC</dateCreated>
  </head>
  <body>
    <outline text="Economy">
      <outline title="Reuters Business" text="Reuters Business" xmlUrl="https://www.reutersagency.com/feed/?best-topics=business" htmlUrl="https://www.reuters.com" description=""></outline>
    </outline>
    <outline text="All">
      <outline title="Spiegel" text="Spiegel" xmlUrl="https://www.spiegel.de/schlagzeilen/index.rss" htmlUrl="https://www.spiegel.de" description="" category="/de/Politik,press"></outline>
    </outline>
  </body>
</opml>
"""

EXPECTED = {
    "feedly": {
        "https://feeds.bbci.co.uk/news/world/rss.xml": ("BBC News - World", ("World",)),
        "https://www.tagesschau.de/xml/rss2/": ("tagesschau.de", ("World",)),
        "https://www.mining.com/feed/": ("Mining.com", ("Markets",)),
    },
    "netnewswire": {
        "https://tass.ru/rss/v2.xml": ("TASS", ("Russia",)),
        "https://www.theguardian.com/world/rss": ("The Guardian", ()),
    },
    "miniflux": {
        "https://www.reutersagency.com/feed/?best-topics=business": ("Reuters Business", ("Economy",)),
        "https://www.spiegel.de/schlagzeilen/index.rss": ("Spiegel", ("All", "de", "Politik", "press")),
    },
}


@pytest.mark.parametrize(
    ("reader", "document"), [("feedly", FEEDLY), ("netnewswire", NETNEWSWIRE), ("miniflux", MINIFLUX)]
)
def test_import_reads_each_readers_export_with_folders_and_categories_as_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader: str, document: bytes
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("# mine\ndatabase: ./state/monitor.db\nfeeds: []\n", encoding="utf-8")
    opml = tmp_path / f"{reader}.opml"
    opml.write_bytes(document)
    assert main(["feeds", "import", str(opml), "--config", str(config)]) == 0
    expected = EXPECTED[reader]
    assert f"{len(expected)} of {len(expected)} feeds added" in capsys.readouterr().out
    loaded = {feed.url: (feed.title, feed.tags) for feed in load_config(config).feeds}
    assert loaded == expected
    assert config.read_text(encoding="utf-8").startswith("# mine\n")

    # Importing the same file again changes nothing and says why.
    before = config.read_bytes()
    assert main(["feeds", "import", str(opml), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"0 of {len(expected)} feeds added" in out and "already listed at" in out
    assert config.read_bytes() == before


def test_import_takes_a_url_listed_twice_in_the_opml_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("feeds: []\n", encoding="utf-8")
    opml = tmp_path / "twice.opml"
    opml.write_bytes(
        b'<?xml version="1.0"?>\n<opml version="2.0"><head/><body>\n'
        b'<outline text="A" title="A"><outline text="x" xmlUrl="https://a.example.org/rss"/></outline>\n'
        b'<outline text="B" title="B"><outline text="x" xmlUrl="https://a.example.org/rss"/></outline>\n'
        b"</body></opml>\n"
    )
    assert main(["feeds", "import", str(opml), "--config", str(config)]) == 0
    assert "skipped https://a.example.org/rss: listed twice" in capsys.readouterr().out
    assert [(f.url, f.tags) for f in load_config(config).feeds] == [("https://a.example.org/rss", ("A",))]


def test_import_refuses_a_private_address_naming_the_opml_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    before = config.read_bytes()
    opml = tmp_path / "mixed.opml"
    opml.write_bytes(
        b'<?xml version="1.0"?>\n<opml version="2.0"><head/><body>\n'
        b'<outline text="ok" xmlUrl="https://ok.example.org/rss"/>\n'
        b'<outline text="router" xmlUrl="http://192.168.1.1/admin"/>\n'
        b"</body></opml>\n"
    )
    assert main(["feeds", "import", str(opml), "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"{opml}:4:" in err and "http://192.168.1.1/admin" in err and "network policy" in err
    assert config.read_bytes() == before


def test_import_never_expands_entities_or_reads_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    document = (
        f'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        '<opml version="2.0"><head/><body><outline text="&x;" title="&x;" '
        'xmlUrl="https://a.example.org/rss"/></body></opml>\n'
    ).encode()
    with pytest.raises(ConfigError) as refused:
        read_opml(document, "hostile.opml")
    assert str(refused.value).startswith("hostile.opml:3: ") and "external entity" in str(refused.value)
    assert "TOPSECRET" not in str(refused.value)


def test_export_is_opml_2_that_imports_back_to_the_same_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    assert main(["feeds", "export", "--config", str(config)]) == 0
    document = capsys.readouterr().out.encode()
    assert b'<opml version="2.0">' in document and b"<dateCreated>" in document
    back = {feed.url: (feed.title, feed.tags) for feed in read_opml(document, "export.opml")}
    assert back == {
        feed.url: (feed.title, feed.tags) for feed in load_config(config).feeds
    }  # the tagged feed sits in its first tag's folder and lists all its tags in `category`
    assert back["https://www.tagesschau.de/xml/rss2/"] == ("Tagesschau", ("de", "public-broadcaster"))

    # And into a fresh config: the same list.
    other = tmp_path / "other"
    other.mkdir()
    (other / "monitor.yaml").write_text("feeds: []\n", encoding="utf-8")
    (other / "export.opml").write_bytes(document)
    assert main(["feeds", "import", str(other / "export.opml"), "--config", str(other / "monitor.yaml")]) == 0
    assert {f.url: (f.title, f.tags) for f in load_config(other / "monitor.yaml").feeds} == back


# -- a running daemon ---------------------------------------------------------------------------------------


def test_a_running_daemon_picks_up_added_and_removed_feeds_on_sighup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as server:
        server.set("/a.xml", FeedBuilder().rss())
        server.set("/b.xml", FeedBuilder().rss())
        config = write_config(tmp_path, feed_urls=[server.url("/a.xml")])
        database = tmp_path / "state" / "monitor.db"
        with DaemonProcess(config) as daemon:
            daemon.wait_for_log("monitor running")
            wait_until(lambda: server.count("/a.xml") >= 1, timeout=60, what="the first feed polled")
            assert server.count("/b.xml") == 0
            assert main(["feeds", "add", server.url("/b.xml"), "--config", str(config)]) == 0
            assert main(["feeds", "remove", server.url("/a.xml"), "--config", str(config)]) == 0
            daemon.send(signal.SIGHUP)
            wait_until(lambda: server.count("/b.xml") >= 1, timeout=60, what="the added feed polled")

            def active() -> dict[str, bool]:
                store = SQLiteStore(database)
                try:
                    return {feed.url: feed.active for feed in store.list_feeds()}
                finally:
                    store.close()

            wait_until(
                lambda: active() == {server.url("/a.xml"): False, server.url("/b.xml"): True},
                timeout=60,
                what="the removed feed deactivated",
            )
            assert daemon.running()
            assert daemon.terminate() == 0
        assert "reload refused" not in daemon.log()
