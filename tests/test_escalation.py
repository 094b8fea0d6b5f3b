"""Escalation (issue 8, item 4), end to end: feeds served on 127.0.0.1, the real pipeline and store, real webhook
receivers on 127.0.0.1, and a real SMTP server. A rule with `escalate: {outlets: 3, within: 30m}` sends one
escalation when a story it alerted reaches three distinct outlets within 30 minutes, into the story's thread;
a channel with `min_severity: high` hears only that."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monitor.config import load_config
from monitor.notify import payload_schema
from monitor.store import open_store
from tests.support.feedserver import FeedServer
from tests.support.receivers import SMTPReceiver, WebhookReceiver
from tests.test_story_alerts import Clock, poll, rss, write_config

T0 = datetime(2025, 4, 4, 12, 0, tzinfo=UTC)
OUTLETS = ("Wire A", "Wire B", "Wire C", "Wire D")

RULES = """\
rules:
  - id: ree
    title: Rare earths
    any: ['Seltener Erden', 'Seltenen Erden']
    escalate: {outlets: 3, within: 30m, severity: high}
  - id: manturov
    title: Denis Manturov
    any: [Manturow]
"""

TITLE = "Russland bietet den USA Zusammenarbeit bei Seltenen Erden an"
SUMMARY = (
    "Russlands Vizepremier Denis Manturow hat den Vereinigten Staaten eine Zusammenarbeit beim Abbau Seltener "
    "Erden angeboten. Die Vorkommen in Sibirien seien gewaltig, sagte er am Freitag in Moskau vor Journalisten."
)


def report(n: int, published: datetime) -> dict[str, Any]:
    return {
        "guid": f"r-{n}",
        "title": TITLE,
        "link": f"https://outlet{n}.example/ree",
        "summary": SUMMARY,
        "date": published.strftime("%a, %d %b %Y %H:%M:%S +0000"),
    }


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def setup_config(
    tmp_path: Path, server: FeedServer, channels: dict[str, Any], database: str | None = None
) -> Any:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    for n, outlet in enumerate(OUTLETS):
        server.set(f"/{n}.xml", rss([], title=outlet))
    urls = [server.url(f"/{n}.xml") for n in range(len(OUTLETS))]
    path = write_config(tmp_path, urls, channels, rules)
    if database is not None:  # the same test on PostgreSQL
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        path.write_text(yaml.safe_dump({**config, "database": database}), encoding="utf-8")
    return load_config(path)


def publish(server: FeedServer, n: int, published: datetime) -> None:
    server.set(f"/{n}.xml", rss([report(n, published)], title=OUTLETS[n]))


def escalations(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [r.json() for r in hook.requests if r.json()["type"] == "escalation"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_story_reaching_three_outlets_in_30_minutes_escalates_once_into_its_thread(
    tmp_path: Path, server: FeedServer, backend: str, request: pytest.FixtureRequest
) -> None:
    database = request.getfixturevalue("postgres_db").url if backend == "postgres" else None
    with WebhookReceiver() as desk, WebhookReceiver() as pager, SMTPReceiver() as smtp:
        config = setup_config(
            tmp_path,
            server,
            {
                "desk": {"type": "webhook", "url": desk.url},
                "pager": {"type": "webhook", "url": pager.url, "min_severity": "high"},
                "mail": {
                    "type": "email",
                    "host": smtp.host,
                    "port": smtp.port,
                    "sender": "monitor@example.org",
                    "to": ["analyst@example.org"],
                },
            },
            database,
        )
        clock = Clock(T0)
        publish(server, 0, T0)
        poll(config, clock)
        (first,) = (r.json() for r in desk.requests)
        assert first["type"] == "notification"
        assert pager.requests == []  # normal alerts are below the pager's min_severity

        clock.now = T0 + timedelta(minutes=10)
        publish(server, 1, T0 + timedelta(minutes=10))
        poll(config, clock)
        assert len(desk.requests) == 1 and escalations(desk) == []  # two outlets: folded, nothing sent

        clock.now = T0 + timedelta(minutes=25)
        publish(server, 2, T0 + timedelta(minutes=25))
        result = poll(config, clock)
        assert [o.escalations for o in result["outcomes"] if o.url.endswith("/2.xml")] == [1]
        (escalation,) = escalations(desk)
        jsonschema.Draft202012Validator(payload_schema()).validate(escalation)
        assert escalation["severity"] == "high" and escalation["rule"]["id"] == "ree"
        assert escalation["outlets"] == 3 and escalation["story"]["outlets"] == ["Wire A", "Wire B", "Wire C"]
        assert escalation["threshold"] == {"outlets": 3, "within": "30m"}
        assert escalation["story"]["id"] == first["story"]["id"]
        assert escalation["in_reply_to"] == escalation["thread"] == first["id"]  # in the story's thread
        (paged,) = (r.json() for r in pager.requests)
        assert paged["type"] == "escalation" and paged["id"] == escalation["id"]
        assert paged["in_reply_to"] is None  # the pager never got the story's first notification
        assert pager.requests[0].headers["webhook-id"] != desk.requests[1].headers["webhook-id"]
        mail = smtp.messages[-1]
        assert mail["Subject"].startswith("[monitor] Escalation (HIGH): " + TITLE)
        assert mail["In-Reply-To"] == smtp.messages[0]["Message-ID"]
        assert "Wire A, Wire B, Wire C" in mail.get_body(preferencelist=("plain",)).get_content()

        # A fourth outlet does not escalate again: once per (rule, story).
        clock.now = T0 + timedelta(minutes=28)
        publish(server, 3, T0 + timedelta(minutes=28))
        poll(config, clock)
        assert len(escalations(desk)) == 1 and len(pager.requests) == 1
        with open_store(config.database) as store:
            assert {d.kind for d in store.list_deliveries(statuses=None)} == {"story", "escalation"}


def test_reports_spread_wider_than_the_window_do_not_escalate(tmp_path: Path, server: FeedServer) -> None:
    with WebhookReceiver() as desk:
        config = setup_config(tmp_path, server, {"desk": {"type": "webhook", "url": desk.url}})
        for n, minutes in enumerate((0, 20, 45, 70)):  # never three within 30 minutes
            clock = Clock(T0 + timedelta(minutes=minutes))
            publish(server, n, clock.now)
            poll(config, clock)
        assert [r.json()["type"] for r in desk.requests] == ["notification"]


def test_a_backlog_counts_by_publication_time_not_by_when_it_was_fetched(
    tmp_path: Path, server: FeedServer
) -> None:
    """Four outlets' reports from over two hours, all fetched in one go: no surge."""
    with WebhookReceiver() as desk:
        config = setup_config(tmp_path, server, {"desk": {"type": "webhook", "url": desk.url}})
        for n in range(4):
            publish(server, n, T0 + timedelta(minutes=40 * n))
        poll(config, Clock(T0 + timedelta(hours=3)))
        assert escalations(desk) == []
        # The same four within ten minutes, fetched in one go, do escalate: when the third outlet's feed is in.
    with WebhookReceiver() as desk:
        other = tmp_path / "second"
        other.mkdir()
        config = setup_config(other, server, {"desk": {"type": "webhook", "url": desk.url}})
        for n in range(4):
            publish(server, n, T0 + timedelta(minutes=3 * n))
        poll(config, Clock(T0 + timedelta(hours=3)))
        (escalation,) = escalations(desk)
        assert escalation["outlets"] == 3


@pytest.mark.parametrize("preset", ["generic", "slack", "mattermost", "discord", "teams", "ntfy"])
def test_every_preset_sends_an_escalation(preset: str) -> None:
    """An escalation is a notice with a shape of its own: every webhook preset renders it (pure)."""
    from monitor.notify.notice import notice_subject, notice_webhook_body
    from monitor.notify.payload import escalation_payload

    notice = escalation_payload(
        escalation_id="esc_1",
        created_at=T0,
        severity="critical",
        rule_id="ree",
        rule_title="Rare earths",
        story_id="st_1",
        title=TITLE,
        outlets=list(OUTLETS),
        languages=["de"],
        item_count=4,
        threshold=3,
        within="30m",
    )
    jsonschema.Draft202012Validator(payload_schema()).validate(notice)
    body = notice_webhook_body(preset, notice)
    text = str(body)
    assert notice_subject(notice).startswith("[monitor] Escalation (CRITICAL): ")
    assert ("Escalation (CRITICAL)" in text) if preset != "generic" else body == notice
    if preset == "ntfy":
        assert body["priority"] == 5


def test_a_silence_holds_a_storys_escalation_until_it_ends_and_a_feed_silence_does_not(
    tmp_path: Path, server: FeedServer
) -> None:
    """A silence on the rule or the story (no feed matcher) holds the surge's escalation; it is not recorded as
    told, so the next report after the silence ended that still meets the threshold escalates. A silence on one
    feed mutes that feed only, not the story the other outlets carry."""
    from monitor.store.records import SilenceRow

    with WebhookReceiver() as desk:
        config = setup_config(tmp_path, server, {"desk": {"type": "webhook", "url": desk.url}})
        clock = Clock(T0)
        publish(server, 0, T0)
        poll(config, clock)
        (first,) = (r.json() for r in desk.requests)
        story = first["story"]["id"]
        with open_store(config.database) as store:
            store.add_silence(
                SilenceRow("sil_feed", None, None, server.url("/1.xml"), "noisy", T0, T0 + timedelta(hours=4))
            )
            store.add_silence(
                SilenceRow("sil_story", "ree", story, None, "on it", T0, T0 + timedelta(minutes=27))
            )
        for n, minutes in ((1, 10), (2, 25)):
            clock.now = T0 + timedelta(minutes=minutes)
            publish(server, n, clock.now)
            result = poll(config, clock)
        assert [o.escalations for o in result["outcomes"] if o.url.endswith("/2.xml")] == [0]
        assert escalations(desk) == []  # three outlets within 30 minutes, held by the story's silence
        with open_store(config.database) as store:
            assert {d.kind for d in store.list_deliveries(statuses=None)} == {"story"}

        clock.now = T0 + timedelta(minutes=28)  # the story's silence has ended; the feed's has not
        publish(server, 3, clock.now)
        poll(config, clock)
        (escalation,) = escalations(desk)
        assert escalation["story"]["id"] == story and escalation["outlets"] == 4
