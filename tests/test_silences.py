"""Silences (issue 14 item 4) through the whole path: feeds on a FeedServer, `monitor silence` through
monitor.cli.main against the same SQLite file a running runtime polls with, the pipeline's decision, the outbox
and a real webhook receiver. The pipeline's clock runs ahead of the wall clock (the CLI stamps silences with the
wall clock) and is advanced by hand: no test waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli import main
from monitor.config import MonitorConfig, load_config
from monitor.rules import load_rules
from monitor.service import Runtime, open_runtime, poll_all
from monitor.store import SilenceRow
from monitor.timeutil import utcnow
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.test_notify_grouping import SUMMARY, TITLE, first_report
from tests.test_story_alerts import rss, write_config

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


class AheadClock:
    """The wall clock plus an offset that tests advance (so the CLI's silences, stamped with the wall clock,
    are in this clock's past)."""

    def __init__(self) -> None:
        self.offset = timedelta(seconds=1)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def setup(
    tmp_path: Path, server: FeedServer, hook: WebhookReceiver, feeds: list[str], database: str | None = None
) -> tuple[Path, MonitorConfig]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    path = write_config(
        tmp_path, [server.url(f) for f in feeds], {"hook": {"type": "webhook", "url": hook.url}}, rules
    )
    if database is not None:  # the same path through PostgresStore
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        document["database"] = database
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path, load_config(path)


def run(config: MonitorConfig, clock: AheadClock, steps: Callable[[Runtime], Awaitable[None]]) -> None:
    async def go() -> None:
        async with open_runtime(config, load_rules(config.rules), clock=clock) as runtime:
            await steps(runtime)

    asyncio.run(go())


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


def rules_in(hook: WebhookReceiver) -> list[list[str]]:
    return [[rule["id"] for rule in r.json()["rules"]] for r in hook.requests]


def report(guid: str, link: str, extra: str = "") -> dict[str, Any]:
    return {"guid": guid, "title": TITLE, "link": link, "summary": SUMMARY + extra}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_silence_added_while_running_holds_a_rule_records_its_alert_and_expiry_lets_the_story_alert_again(
    tmp_path: Path,
    server: FeedServer,
    hook: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    database = request.getfixturevalue("postgres_db").url if backend == "postgres" else None
    path, config = setup(tmp_path, server, hook, ["/a.xml"], database)
    server.set("/a.xml", rss([], title="Wire A"))
    clock = AheadClock()
    conf = ["--config", str(path)]
    held: dict[str, str] = {}

    async def steps(runtime: Runtime) -> None:
        await poll_all(runtime)  # the daemon is up and polling; nothing yet
        # Added by another process while the runtime runs: no reload.
        status, out = cli(
            capsys, "silence", "add", "--rule", "ree", "--for", "4h", "--reason", "noisy", "--json", *conf
        )
        assert status == 0
        held["id"] = json.loads(out)["id"]
        server.set("/a.xml", rss([first_report()], title="Wire A"))
        clock.advance(minutes=10)
        await poll_all(runtime)
        await runtime.deliver(now=clock())
        # One notification, naming only the rule that was not silenced.
        assert rules_in(hook) == [["manturov"]]
        # A second report of the story while the silence holds: folded into the silenced alert, nothing sent.
        server.set(
            "/a.xml",
            rss(
                [first_report(), report("a-2", "https://a.example/ree-2", " Zweiter Bericht.")],
                title="Wire A",
            ),
        )
        clock.advance(minutes=10)
        await poll_all(runtime)
        await runtime.deliver(now=clock())
        assert len(hook.requests) == 1
        status, out = cli(capsys, "silence", "expire", held["id"], *conf)
        assert status == 0 and held["id"] in out
        # After the silence: the story's next report alerts `ree` normally, and only that report goes out
        # (what the silence held is not re-sent).
        server.set(
            "/a.xml",
            rss(
                [
                    first_report(),
                    report("a-2", "https://a.example/ree-2", " Zweiter Bericht."),
                    report("a-3", "https://a.example/ree-3", " Dritter Bericht aus Moskau."),
                ],
                title="Wire A",
            ),
        )
        clock.advance(hours=1)
        await poll_all(runtime)
        await runtime.deliver(now=clock() + timedelta(hours=1))  # past the thread's group_interval

    run(config, clock, steps)
    assert rules_in(hook) == [["manturov"], ["ree"]]
    update = hook.requests[1].json()
    assert update["type"] == "update"
    assert update["item"]["url"] == "https://a.example/ree-3"
    assert "ree-2" not in json.dumps(update)

    # `monitor alerts` shows the silenced alert, with no deliveries, and its two reports.
    status, out = cli(capsys, "alerts", "--json", *conf)
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    silenced = [row for row in rows if row["silenced_by"] == held["id"]]
    assert len(silenced) == 1 and silenced[0]["rule"] == "ree" and silenced[0]["deliveries"] == []
    assert [i["link"] for i in silenced[0]["items"]] == ["https://a.example/ree", "https://a.example/ree-2"]
    assert sorted((row["rule"], row["silenced_by"] is None) for row in rows) == [
        ("manturov", True),
        ("ree", False),
        ("ree", True),
    ]
    status, out = cli(capsys, "alerts", *conf)
    assert f"deliveries: none: silenced by {held['id']}" in out


def test_matchers_combine_with_and_and_a_story_silence_survives_a_restart(
    tmp_path: Path, server: FeedServer, hook: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    path, config = setup(tmp_path, server, hook, ["/a.xml", "/b.xml"])
    conf = ["--config", str(path)]
    a = server.url("/a.xml")
    server.set("/a.xml", rss([first_report()], title="Wire A"))
    server.set("/b.xml", rss([{"guid": "b-1", "title": "Manturow in Peking", "link": "https://b.example/m"}]))
    # Mute `manturov` on feed A only: A's ree alert and B's manturov alert still go out.
    assert (
        cli(
            capsys, "silence", "add", "--rule", "manturov", "--feed", a, "--for", "2h", "--reason", "x", *conf
        )[0]
        == 0
    )
    clock = AheadClock()

    async def first(runtime: Runtime) -> None:
        await poll_all(runtime)
        await runtime.deliver(now=clock())

    run(config, clock, first)
    assert sorted(map(sorted, rules_in(hook))) == [["manturov"], ["ree"]]
    by_url = {r.json()["item"]["url"]: r.json() for r in hook.requests}
    assert [rule["id"] for rule in by_url["https://b.example/m"]["rules"]] == ["manturov"]
    story_a = by_url["https://a.example/ree"]["story"]["id"]
    # A silence on A's story, then a restart (a new runtime on the same file): it still holds. The story's next
    # report comes from feed B and fires `talks`, a rule the story had not alerted: without the silence that
    # would be an update in the story's thread.
    assert (
        cli(capsys, "silence", "add", "--story", story_a, "--for", "1h", "--reason", "seen it", *conf)[0] == 0
    )
    _, out = cli(capsys, "silence", "list", "--json", *conf)
    listed = [json.loads(line) for line in out.splitlines()]
    assert [(s["rule"], s["story"], s["feed"]) for s in listed] == [
        (None, story_a, None),
        ("manturov", None, a),
    ]
    server.set(
        "/b.xml",
        rss(
            [
                {"guid": "b-1", "title": "Manturow in Peking", "link": "https://b.example/m"},
                report("b-2", "https://b.example/ree-talks", " Gespräche darüber hätten bereits begonnen."),
            ]
        ),
    )
    clock.advance(minutes=30)

    async def second(runtime: Runtime) -> None:
        await poll_all(runtime)
        await runtime.deliver(now=clock() + timedelta(hours=1))

    run(config, clock, second)
    assert len(hook.requests) == 2  # nothing new: `talks` on story A was silenced
    rows = [json.loads(line) for line in cli(capsys, "alerts", "--json", *conf)[1].splitlines()]
    on_a = {row["rule"]: row["silenced_by"] for row in rows if row["story"] == story_a}
    assert on_a["ree"] is None and on_a["manturov"] == listed[1]["id"] and on_a["talks"] == listed[0]["id"]


def test_silence_cli_refuses_what_it_cannot_mean_and_lists_ended_ones_with_all(
    tmp_path: Path, server: FeedServer, hook: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = setup(tmp_path, server, hook, ["/a.xml"])
    conf = ["--config", str(path)]
    assert main(["silence", "add", "--for", "1h", "--reason", "x", *conf]) == 1
    assert "at least one of --rule, --story, --feed" in capsys.readouterr().err
    assert main(["silence", "add", "--rule", "ree", "--for", "soon", "--reason", "x", *conf]) == 1
    assert "--for 'soon'" in capsys.readouterr().err
    assert main(["silence", "add", "--rule", "ree", "--for", "1h", *conf]) == 1
    assert "--reason" in capsys.readouterr().err
    assert main(["silence", "expire", "sil_nope", *conf]) == 1
    capsys.readouterr()
    # A typo would silence nothing: unknown rules, feeds and stories are refused.
    for matcher, value in (("--rule", "rree"), ("--feed", "https://nowhere.example/"), ("--story", "st_x")):
        assert main(["silence", "add", matcher, value, "--for", "1h", "--reason", "x", *conf]) == 1
        assert f"{matcher} {value!r}: no" in capsys.readouterr().err.replace("not a configured", "no")
    feed = server.url("/a.xml")
    status, out = cli(
        capsys, "silence", "add", "--rule", "ree", "--feed", feed, "--for", "30m", "--reason", "r", *conf
    )
    assert status == 0 and f"rule=ree and feed={feed}" in out
    silence_id = out.split()[0]
    assert cli(capsys, "silence", "expire", silence_id, *conf)[0] == 0
    assert cli(capsys, "silence", "list", *conf)[1] == ""
    status, out = cli(capsys, "silence", "list", "--all", *conf)
    assert status == 0 and f"{silence_id}  ended until" in out and "  r\n" in out


def test_a_silence_matches_only_when_every_set_matcher_does() -> None:
    now = utcnow()
    silence = SilenceRow("sil_1", "ree", None, "https://a.example/feed", "x", now, now + timedelta(hours=1))
    assert silence.matches("ree", "any-story", "https://a.example/feed")
    assert not silence.matches("ree", "any-story", "https://b.example/feed")
    assert not silence.matches("manturov", "any-story", "https://a.example/feed")
    assert silence.active(now) and not silence.active(now + timedelta(hours=1))
