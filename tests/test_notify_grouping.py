"""One notification per story per channel (issue 8, item 3), through the whole pipeline.

Real parts: feeds from an HTTP server on 127.0.0.1, a real SQLite file, real webhook receivers and a real SMTP
server (aiosmtpd). Time is driven through the pipeline's clock and the `now` of the outbox. A channel without
`group_by` gets one message per story naming every rule that fired on it; a rule that fires later on a story
already notified sends an update into the story's thread; `group_by: [rule, story]` keeps one message per
alert beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor.cli import main
from monitor.config import load_config
from monitor.notify import payload_schema
from monitor.store import open_store
from tests.support.feedserver import FeedServer
from tests.support.receivers import SMTPReceiver, WebhookReceiver
from tests.test_story_alerts import Clock, deliver, poll, rss, write_config

T0 = datetime(2025, 4, 4, 12, 0, tzinfo=UTC)

RULES = """\
rules:
  - id: ree
    title: Rare earths
    any: ['Seltene Erden', 'Seltener Erden', 'Seltenen Erden']
  - id: manturov
    title: Denis Manturov
    any: [Manturow]
  - id: talks
    title: Talks begun
    any: ['Gespräche']
"""

TITLE = "Russland bietet den USA Zusammenarbeit bei Seltenen Erden an"
SUMMARY = (
    "Russlands Vizepremier Denis Manturow hat den Vereinigten Staaten eine Zusammenarbeit beim Abbau Seltener "
    "Erden angeboten. Die Vorkommen in Sibirien seien gewaltig, sagte er am Freitag in Moskau vor Journalisten."
)


def first_report(guid: str = "a-1", link: str = "https://a.example/ree") -> dict[str, Any]:
    return {"guid": guid, "title": TITLE, "link": link, "summary": SUMMARY}


def later_report(guid: str = "b-1", link: str = "https://b.example/ree-talks") -> dict[str, Any]:
    """A copy of the first report with one sentence added, which fires the `talks` rule."""
    return {
        "guid": guid,
        "title": TITLE,
        "link": link,
        "summary": SUMMARY + " Gespräche darüber hätten bereits begonnen.",
    }


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def validate(body: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(payload_schema()).validate(body)


def rules_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + extra, encoding="utf-8")
    return path


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_notification_per_story_names_every_rule_and_a_later_rule_replies_in_its_thread(
    tmp_path: Path,
    server: FeedServer,
    capsys: pytest.CaptureFixture[str],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    with WebhookReceiver() as hook, WebhookReceiver() as legacy, SMTPReceiver() as smtp:
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        server.set("/b.xml", rss([], title="Wire B"))
        channels = {
            "hook": {"type": "webhook", "url": hook.url},
            "legacy": {"type": "webhook", "url": legacy.url, "group_by": ["rule", "story"]},
            "mail": {
                "type": "email",
                "host": smtp.host,
                "port": smtp.port,
                "sender": "monitor@example.org",
                "to": ["analyst@example.org"],
            },
        }
        path = write_config(
            tmp_path, [server.url("/a.xml"), server.url("/b.xml")], channels, rules_file(tmp_path)
        )
        if backend == "postgres":  # the same path through PostgresStore
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            document["database"] = request.getfixturevalue("postgres_db").url
            path.write_text(yaml.safe_dump(document), encoding="utf-8")
        config = load_config(path)
        clock = Clock(T0)
        poll(config, clock)

        # One message per story on the grouped channels, naming both rules, each with its explanation.
        (first,) = hook.requests
        body = first.json()
        validate(body)
        assert body["type"] == "notification" and body["version"] == 2
        assert body["id"] == first.headers["webhook-id"] == body["thread"]
        assert body["in_reply_to"] is None
        assert [rule["id"] for rule in body["rules"]] == ["ree", "manturov"]
        explanations = [a["explanation"] for a in body["alerts"]]
        assert "('Seltenen Erden') in title" in explanations[0]
        assert explanations[1] == "matched 'Manturow' in summary"
        assert body["item"]["title"] == TITLE
        (mail,) = smtp.messages
        assert "Rare earths, Denis Manturov" in mail["Subject"]
        text = mail.get_body(preferencelist=("plain",)).get_content()
        assert "Rare earths: matched" in text and "Denis Manturov: matched" in text
        assert mail["In-Reply-To"] is None
        # group_by: [rule, story] keeps one message per alert, as before.
        assert sorted(r.json()["rule"]["id"] for r in legacy.requests) == ["manturov", "ree"]
        assert all(r.json()["type"] == "alert" for r in legacy.requests)
        for request in legacy.requests:
            validate(request.json())

        # A later report of the same story fires `talks`: an update into the story's thread, not a new one.
        clock.now = T0 + timedelta(hours=1)
        server.set("/b.xml", rss([later_report()], title="Wire B"))
        poll(config, clock)
        assert len(hook.requests) == 2
        update = hook.requests[1].json()
        validate(update)
        assert update["type"] == "update"
        assert update["in_reply_to"] == update["thread"] == body["id"]
        assert update["id"] == hook.requests[1].headers["webhook-id"] != body["id"]
        assert [rule["id"] for rule in update["rules"]] == ["talks"]
        assert update["story"]["id"] == body["story"]["id"]
        second_mail = smtp.messages[1]
        assert second_mail["In-Reply-To"] == second_mail["References"] == mail["Message-ID"]
        assert second_mail["Subject"].startswith("[monitor] Update: Talks begun")
        assert len(legacy.requests) == 3 and legacy.requests[2].json()["rule"]["id"] == "talks"

        # The items of `ree` and `manturov` folded in silently: no third message on the grouped channels.
        assert len(hook.requests) == 2 and len(smtp.messages) == 2
        with open_store(config.database) as store:
            kinds = sorted(d.kind for d in store.list_deliveries(statuses=None) if d.channel == "hook")
        assert kinds == ["story", "update"]
        # `monitor deliveries` says what each delivery is, and which notification an update replies to.
        assert main(["deliveries", "--all", "--config", str(tmp_path / "monitor.yaml")]) == 0
        listing = capsys.readouterr().out
        assert f"{update['id']}  sent    hook         update to {body['id']}" in listing
        assert main(["deliveries", "--all", "--json", "--config", str(tmp_path / "monitor.yaml")]) == 0
        rows = {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
        assert rows[update["id"]]["kind"] == "update" and rows[update["id"]]["in_reply_to"] == body["id"]
        assert rows[body["id"]]["kind"] == "story" and rows[body["id"]]["story"] == body["story"]["id"]


def test_reports_arriving_before_the_notification_is_sent_fold_into_it(
    tmp_path: Path, server: FeedServer
) -> None:
    hold = "  - id: hold\n    title: Held\n    any: [Sibirien]\n    group_wait: 10m\n"
    with WebhookReceiver() as hook:
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        server.set("/b.xml", rss([], title="Wire B"))
        rules = tmp_path / "rules.yaml"
        rules.write_text(
            RULES.replace("    any: [Manturow]\n", "    any: [Manturow]\n    group_wait: 10m\n") + hold
        )
        rules.write_text(
            rules.read_text().replace(
                "    any: ['Seltene Erden', 'Seltener Erden', 'Seltenen Erden']\n",
                "    any: ['Seltene Erden', 'Seltener Erden', 'Seltenen Erden']\n    group_wait: 10m\n",
            )
        )
        config = load_config(
            write_config(
                tmp_path,
                [server.url("/a.xml"), server.url("/b.xml")],
                {"hook": {"type": "webhook", "url": hook.url, "preset": "slack"}},
                rules,
            )
        )
        clock = Clock(T0)
        poll(config, clock)
        assert hook.requests == []  # every rule that fired holds it for 10 minutes
        clock.now = T0 + timedelta(minutes=5)
        server.set("/b.xml", rss([later_report()], title="Wire B"))
        poll(config, clock)  # `talks` fires without group_wait: the notification goes out now, with both
        (request,) = hook.requests
        text = request.json()["text"]
        assert "Rare earths, Denis Manturov, Held, Talks begun · Wire A" in text
        assert "also reported by 1 more outlet (Wire B)" in text
        deliver(config, T0 + timedelta(minutes=30))
        assert len(hook.requests) == 1


def test_a_notification_keeps_its_webhook_id_across_retries(tmp_path: Path, server: FeedServer) -> None:
    with WebhookReceiver(statuses=[503]) as hook:
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        config = load_config(
            write_config(
                tmp_path,
                [server.url("/a.xml")],
                {"hook": {"type": "webhook", "url": hook.url}},
                rules_file(tmp_path),
            )
        )
        poll(config, Clock(T0))
        deliver(config, T0 + timedelta(minutes=1))
        assert hook.answers == [503, 200]
        first, retry = hook.requests
        assert first.headers["webhook-id"] == retry.headers["webhook-id"] == retry.json()["id"]
        assert first.json()["rules"] == retry.json()["rules"]


def test_realert_goes_out_as_an_update_in_the_story_thread(tmp_path: Path, server: FeedServer) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - id: ree\n    title: Rare earths\n    any: ['Seltener Erden']\n    realert: 6h\n",
        encoding="utf-8",
    )
    with WebhookReceiver() as hook:
        feeds = [server.url("/a.xml"), server.url("/b.xml")]
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        server.set("/b.xml", rss([], title="Wire B"))
        config = load_config(
            write_config(tmp_path, feeds, {"hook": {"type": "webhook", "url": hook.url}}, rules)
        )
        poll(config, Clock(T0))
        server.set("/b.xml", rss([later_report()], title="Wire B"))
        poll(config, Clock(T0 + timedelta(hours=7)))
        first, again = (r.json() for r in hook.requests)
        assert (first["type"], again["type"]) == ("notification", "update")
        assert again["in_reply_to"] == first["id"]


@pytest.mark.parametrize(
    ("interval", "updates"), [(None, [["talks", "washington"]]), ("0s", [["talks"], ["washington"]])]
)
def test_updates_of_one_wave_wait_for_group_interval_and_go_out_as_one(
    tmp_path: Path, server: FeedServer, interval: str | None, updates: list[list[str]]
) -> None:
    extra = "  - id: washington\n    title: Washington\n    any: [Washington]\n"
    third = later_report("c-1", "https://c.example/ree")
    third["summary"] += " Washington prüfe das Angebot."
    channel: dict[str, Any] = {"type": "webhook"}
    if interval is not None:
        channel["group_interval"] = interval
    with WebhookReceiver() as hook:
        channel["url"] = hook.url
        for name in ("a", "b", "c"):
            server.set(f"/{name}.xml", rss([], title=f"Wire {name.upper()}"))
        config = load_config(
            write_config(
                tmp_path,
                [server.url(f"/{name}.xml") for name in ("a", "b", "c")],
                {"hook": channel},
                rules_file(tmp_path, extra),
            )
        )
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        poll(config, Clock(T0))
        server.set("/b.xml", rss([later_report()], title="Wire B"))
        poll(config, Clock(T0 + timedelta(minutes=10)))
        server.set("/c.xml", rss([third], title="Wire C"))
        poll(config, Clock(T0 + timedelta(minutes=20)))
        deliver(config, T0 + timedelta(minutes=30))  # the default group_interval (30m) after the notification
        bodies = [r.json() for r in hook.requests]
        assert bodies[0]["type"] == "notification"
        assert [[rule["id"] for rule in b["rules"]] for b in bodies[1:]] == updates
        assert all(b["type"] == "update" and b["in_reply_to"] == bodies[0]["id"] for b in bodies[1:])
