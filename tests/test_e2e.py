"""The whole daemon path, end to end, against real parts.

Feeds come over HTTP from a FeedServer on 127.0.0.1 (with ETag and 304), alerts go out by email to an aiosmtpd
server and by webhook to a real HTTP receiver, and the state is a real SQLite file in tmp_path. Every run goes
through the CLI entry point (`monitor.cli.main`) in-process, the way an operator's cron job would.

Both channels here say `group_by: [rule, story]`: one message per (rule, story) alert, the behaviour before
issue 8, so these tests count deliveries per alert; tests/test_notify_grouping.py covers the default (one
notification per story).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.cli import main
from tests.support.alerts import alerts_in
from tests.support.feedserver import FeedServer
from tests.support.receivers import SMTPReceiver, WebhookReceiver

SECRET_KEY = b"end-to-end test key, 32 bytes!!!"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()

RULES = """\
rules:
  - id: rare
    title: Rare earths
    any: [rare earth, Seltene Erden]
  - id: peace
    title: Peace talks
    any: [ceasefire]
    notify: [hook]
"""


def rss(title: str, items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 feed of (guid, title, description) items; links are derived from the guids."""
    body = "".join(
        f"<item><guid isPermaLink='false'>{escape(guid)}</guid><title>{escape(t)}</title>"
        f"<link>https://news.example.org/{escape(guid)}</link><description>{escape(d)}</description></item>"
        for guid, t, d in items
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{escape(title)}</title>"
        f"<link>https://news.example.org/</link><description>test</description>{body}</channel></rss>"
    ).encode()


FEED_A = [
    ("a1", "Rare earth export deal signed", "Two governments agreed on a rare earth supply contract."),
    ("a2", "Ceasefire talks resume in Geneva", "Delegations met again on Monday."),
    ("a3", "Weather: sunny weekend ahead", "Temperatures rise across the region."),
]
FEED_B = [
    ("b1", "Markets rally on strong earnings", "Stocks rose for a third day."),
    ("b2", "Ceasefire holds as miners restart", "Rare earth mines reopened after the ceasefire."),
]


@dataclass
class Setup:
    feeds: FeedServer
    hook: WebhookReceiver
    smtp: SMTPReceiver
    config: Path
    tmp: Path

    def once(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
        code = main(["once", "--config", str(self.config)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
        code = main([*args, "--config", str(self.config)])
        return code, capsys.readouterr().out


def write_config(
    tmp: Path, feed_urls: list[str], *, hook_url: str, smtp_port: int, hook_concurrency: int = 4
) -> Path:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    feeds = "\n".join(f"  - url: {url}" for url in feed_urls)
    config = tmp / "monitor.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            database: ./state/monitor.db
            rules: ./rules.yaml
            allow_private_networks: ["127.0.0.1/32"]
            feeds:
            {feeds}
            channels:
              mail:
                type: email
                host: 127.0.0.1
                port: {smtp_port}
                sender: monitor@example.org
                to: [analyst@example.org]
                group_by: [rule, story]
              hook:
                type: webhook
                url: {hook_url}
                secret: {secret}
                concurrency: {hook_concurrency}
                group_by: [rule, story]
            """
        ).format(
            feeds=feeds,
            smtp_port=smtp_port,
            hook_url=hook_url,
            secret=SECRET,
            hook_concurrency=hook_concurrency,
        ),
        encoding="utf-8",
    )
    return config


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with FeedServer() as feeds, WebhookReceiver() as hook, SMTPReceiver() as smtp:
        feeds.set("/a.xml", rss("Feed A", FEED_A), etag='"a-v1"')
        feeds.set("/b.xml", rss("Feed B", FEED_B), etag='"b-v1"')
        config = write_config(
            tmp_path, [feeds.url("/a.xml"), feeds.url("/b.xml")], hook_url=hook.url, smtp_port=smtp.port
        )
        yield Setup(feeds, hook, smtp, config, tmp_path)


def webhook_pairs(hook: WebhookReceiver) -> list[tuple[str, str]]:
    return sorted((r.json()["rule"]["id"], r.json()["item"]["link"]) for r in hook.requests)


def mail_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def verify_signature(headers: dict[str, str], body: bytes) -> bool:
    """An independent Standard Webhooks verifier (the spec's algorithm, not the project's code)."""
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(SECRET_KEY, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, g) for g in given)


def link(guid: str) -> str:
    return f"https://news.example.org/{guid}"


def test_once_delivers_by_email_and_webhook_then_a_rerun_sends_nothing(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = setup.once(capsys)
    assert code == 0, out
    assert "2 feeds polled, 0 failed" in out

    # Webhook: every (rule, matching item) once; `peace` notifies only the hook.
    assert webhook_pairs(setup.hook) == [
        ("peace", link("a2")),
        ("peace", link("b2")),
        ("rare", link("a1")),
        ("rare", link("b2")),
    ]
    for request in setup.hook.requests:
        assert verify_signature(request.headers, request.body)
        assert request.headers["webhook-id"]
        assert request.headers["webhook-timestamp"].isdigit()
    assert len({r.headers["webhook-id"] for r in setup.hook.requests}) == 4

    # Email: only `rare` (the rule without `notify` goes to every channel); subject and body name it all.
    messages = setup.smtp.messages
    assert len(messages) == 2
    by_title = {str(m["Subject"]): m for m in messages}
    subject_a1 = next(s for s in by_title if "Rare earth export deal signed" in s)
    assert "Rare earths" in subject_a1 and "Feed A" in subject_a1
    body = mail_text(by_title[subject_a1])
    assert "Rare earths" in body and "(rare)" in body
    assert "Rare earth export deal signed" in body
    assert "Feed A" in body
    assert link("a1") in body
    assert any("Ceasefire holds as miners restart" in s and "Feed B" in s for s in by_title)
    assert all(m.get_body(preferencelist=("html",)) is not None for m in messages)
    assert setup.smtp.mails[0].rcpt_tos == ("analyst@example.org",)

    # A second run: both feeds answer 304 to the stored ETags, nothing is sent again.
    code, out, _ = setup.once(capsys)
    assert code == 0
    assert out.count("not modified") == 2
    assert len(setup.hook.requests) == 4
    assert len(setup.smtp.messages) == 2
    for path, etag in (("/a.xml", '"a-v1"'), ("/b.xml", '"b-v1"')):
        assert setup.feeds.requests_for(path)[-1].headers.get("if-none-match") == etag


def test_a_new_item_is_alerted_alone_once_per_matching_rule(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.once(capsys)[0] == 0
    hooks_before, mails_before = len(setup.hook.requests), len(setup.smtp.messages)

    new = ("a4", "Ceasefire deal covers rare earth mines", "Negotiators added a rare earth clause.")
    setup.feeds.set("/a.xml", rss("Feed A", [new, *FEED_A]), etag='"a-v2"')
    code, out, _ = setup.once(capsys)
    assert code == 0
    assert "1 new" in out

    fresh_hooks = setup.hook.requests[hooks_before:]
    assert sorted((r.json()["rule"]["id"], r.json()["item"]["link"]) for r in fresh_hooks) == [
        ("peace", link("a4")),
        ("rare", link("a4")),
    ]
    fresh_mails = setup.smtp.messages[mails_before:]
    assert len(fresh_mails) == 1
    assert "Ceasefire deal covers rare earth mines" in str(fresh_mails[0]["Subject"])

    # And a re-fetch of the changed feed with a changed ETag but the same items sends nothing.
    setup.feeds.set("/a.xml", rss("Feed A", [new, *FEED_A]), etag='"a-v3"')
    assert setup.once(capsys)[0] == 0
    assert len(setup.hook.requests) == hooks_before + 2
    assert len(setup.smtp.messages) == mails_before + 1


@pytest.mark.parametrize(
    "failure",
    ["http-500", "unparsable", "connection-refused"],
)
def test_a_failing_feed_does_not_stop_the_others(
    failure: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as feeds, WebhookReceiver() as hook, SMTPReceiver() as smtp:
        feeds.set("/good.xml", rss("Good", FEED_A), etag='"g1"')
        if failure == "http-500":
            feeds.set("/bad.xml", b"oops", status=500)
            bad_url = feeds.url("/bad.xml")
        elif failure == "unparsable":
            feeds.set("/bad.xml", b"\x00\x01 this is not a feed at all {", content_type="text/plain")
            bad_url = feeds.url("/bad.xml")
        else:
            bad_url = f"http://127.0.0.1:{closed_port()}/bad.xml"
        config = write_config(
            tmp_path, [bad_url, feeds.url("/good.xml")], hook_url=hook.url, smtp_port=smtp.port
        )
        code = main(["once", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0
        assert f"FAILED  {bad_url}" in out
        assert "2 feeds polled, 1 failed" in out
        assert webhook_pairs(hook) == [("peace", link("a2")), ("rare", link("a1"))]
        assert len(smtp.messages) == 1

        # The failure is recorded on the feed with its error, and shown by `monitor feeds`.
        assert main(["feeds", "--config", str(config)]) == 0
        listing = capsys.readouterr().out
        assert "errors: 1" in listing


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_default_policy_refuses_a_loopback_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as feeds:
        feeds.set("/a.xml", rss("Feed A", FEED_A))
        (tmp_path / "rules.yaml").write_text(RULES.replace("    notify: [hook]\n", ""), encoding="utf-8")
        config = tmp_path / "monitor.yaml"
        config.write_text(
            f"database: ./monitor.db\nrules: ./rules.yaml\nfeeds:\n  - url: {feeds.url('/a.xml')}\n",
            encoding="utf-8",
        )
        code = main(["once", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0
        failed = [line for line in out.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 1
        assert "127.0.0.1" in failed[0]
        assert "allow_private_networks" in failed[0]
        assert feeds.count("/a.xml") == 0, "the refused feed must not have been contacted"


def seed_feed(seeds: Path) -> bytes:
    """An RSS feed with one item per seed article: its headline as title, the article as description."""
    items = []
    for path in sorted(seeds.glob("*.txt")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        # The headline is the first short line that is not the publication line.
        title = next(line for line in lines if len(line) < 120 and not line.startswith("Veröffentlichung"))
        items.append((f"seed-{path.stem}", title, " ".join(line for line in lines if line != title)))
    return rss("Seeds", items)


def test_the_seed_articles_fire_their_rules_through_the_pipeline(
    repo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FeedServer() as feeds, WebhookReceiver() as hook:
        feeds.set("/seeds.xml", seed_feed(repo_dir / "tests" / "data" / "seeds"))
        config = tmp_path / "monitor.yaml"
        config.write_text(
            textwrap.dedent(
                f"""\
                database: ./monitor.db
                allow_private_networks: ["127.0.0.1/32"]
                feeds:
                  - url: {feeds.url("/seeds.xml")}
                channels:
                  hook: {{type: webhook, url: "{hook.url}"}}
                """
            ),
            encoding="utf-8",
        )
        assert main(["once", "--config", str(config)]) == 0
        capsys.readouterr()
        fired: dict[str, set[str]] = {}
        for request in hook.requests:  # one notification per story, each naming every rule that fired
            for alert in alerts_in(request.json()):
                fired.setdefault(alert["item"]["link"].rsplit("/", 1)[1], set()).add(alert["rule"]["id"])
    # What each seed is about (../shared/eval/README.md gives the meaning of each rule).
    assert fired["seed-000_2b055ce7dbbe14c1"] >= {
        "rare-earths",
        "us-russia-cooperation",
        "actor-dmitriev",
        "actor-rdif",
    }
    assert fired["seed-002_f9b4a1e422ebceec"] >= {"rare-earths", "us-russia-cooperation", "actor-manturov"}


def test_operator_views_list_alerts_and_stories_as_json_lines(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup.once(capsys)[0] == 0

    code, out = setup.cli(capsys, "alerts", "--json")
    assert code == 0
    alerts = [json.loads(line) for line in out.splitlines()]
    assert sorted((a["rule"], a["items"][0]["link"]) for a in alerts) == [
        ("peace", link("a2")),
        ("peace", link("b2")),
        ("rare", link("a1")),
        ("rare", link("b2")),
    ]
    for alert in alerts:
        assert {"id", "rule", "story", "items"} <= alert.keys()
        assert alert["story"]
        for item in alert["items"]:
            assert {"link", "feed", "title"} <= item.keys()
            assert item["feed"] in (setup.feeds.url("/a.xml"), setup.feeds.url("/b.xml"), "Feed A", "Feed B")

    code, out = setup.cli(capsys, "stories", "--json")
    assert code == 0
    stories = [json.loads(line) for line in out.splitlines()]
    assert {"id", "items"} <= stories[0].keys()
    story_links = {item["link"] for story in stories for item in story["items"]}
    assert {link("a1"), link("a2"), link("b2")} <= story_links
    assert all({"link", "feed", "title"} <= item.keys() for s in stories for item in s["items"])
    # Every alert points at a listed story.
    assert {a["story"] for a in alerts} <= {s["id"] for s in stories}

    # `alerts show ID` shows the alert with its deliveries, one per channel it went to.
    rare_a1 = next(a for a in alerts if a["rule"] == "rare" and a["items"][0]["link"] == link("a1"))
    code, out = setup.cli(capsys, "alerts", "show", rare_a1["id"])
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == rare_a1["id"]
    assert sorted((d["channel"], d["status"]) for d in shown["deliveries"]) == [
        ("hook", "sent"),
        ("mail", "sent"),
    ]


def test_a_dead_delivery_is_shown_and_re_driven_and_a_disabled_channel_re_enabled(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    # The receiver answers 410 Gone to the first POST: that delivery is dead and the channel disabled; the
    # other hook deliveries of the run are parked, the mail channel is not affected. One send at a time, so
    # the 410 is met before the other deliveries start.
    write_config(
        setup.tmp,
        [setup.feeds.url("/a.xml"), setup.feeds.url("/b.xml")],
        hook_url=setup.hook.url,
        smtp_port=setup.smtp.port,
        hook_concurrency=1,
    )
    setup.hook.respond_with([410])
    assert setup.once(capsys)[0] == 0
    assert setup.hook.answers == [410]
    assert len(setup.smtp.messages) == 2

    code, out = setup.cli(capsys, "deliveries")
    assert code == 0
    assert "CHANNEL DISABLED hook" in out
    dead = [line for line in out.splitlines() if " dead " in line]
    assert len(dead) == 1 and "hook" in dead[0]
    assert "410" in out.split(dead[0], 1)[1].splitlines()[1], "the dead delivery shows its last error"
    assert "3 pending" in out

    code, out = setup.cli(capsys, "deliveries", "enable", "hook")
    assert code == 0
    assert "channel hook enabled; 3 parked deliveries due now; 1 dead" in out
    code, out = setup.cli(capsys, "deliveries", "retry", "--dead")
    assert code == 0
    assert out.startswith("1 deliveries queued again")

    assert setup.once(capsys)[0] == 0
    assert setup.hook.answers == [410, 200, 200, 200, 200]
    delivered = sorted(
        (r.json()["rule"]["id"], r.json()["item"]["link"])
        for r, status in zip(setup.hook.requests, setup.hook.answers, strict=True)
        if status == 200
    )
    assert delivered == [
        ("peace", link("a2")),
        ("peace", link("b2")),
        ("rare", link("a1")),
        ("rare", link("b2")),
    ]
    code, out = setup.cli(capsys, "deliveries")
    assert "CHANNEL DISABLED" not in out
    assert "dead" not in out.replace("0 dead", "") and "pending" not in out.replace("0 pending", "")
    assert "6 sent" in out

    # Enabling a channel that is not disabled is an error that says so.
    code = main(["deliveries", "enable", "hook", "--config", str(setup.config)])
    assert code == 1
    assert "not disabled" in capsys.readouterr().err


def test_once_delivers_everything_it_decided_not_just_one_batch(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    # 6 deliveries (4 webhook, 2 mail) with a batch of 1: one delivery run used to send one of them.
    text = setup.config.read_text(encoding="utf-8")
    setup.config.write_text(text + "delivery:\n  batch: 1\n", encoding="utf-8")
    code, out, _ = setup.once(capsys)
    assert code == 0, out
    assert len(setup.hook.requests) == 4 and len(setup.smtp.messages) == 2
    assert "sent 6" in out and "0 pending" in out


def test_once_prints_what_is_still_pending_and_why(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.hook.respond_with([503] * 10)
    code, out, _ = setup.once(capsys)
    assert code == 0, out
    assert len(setup.smtp.messages) == 2  # the mail channel is unaffected
    assert "4 pending" in out
    pending = [line for line in out.splitlines() if line.startswith("pending")]
    assert pending, out
    assert any("hook" in line and "HTTP 503" in line and "next attempt" in line for line in pending), pending
