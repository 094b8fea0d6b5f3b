"""`monitor rules replay` over a real database filled by `monitor once` from feeds on 127.0.0.1: the same rules
find exactly the alerts the pipeline raised, grouped by story; a new tag-scoped rule fires where its scope says;
and the database file is byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.daemonproc import HEADLINES, QUIET, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver
from tests.support.terminal import on_a_terminal
from tests.test_cli import run_monitor

NEW_RULES = """\
rules:
  - id: bakery-wire
    title: Bakeries, on the wire only
    any: [bakery]
    tags: [wire]
  - id: bakery
    title: Bakeries anywhere
    any: [bakery]
"""


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A config and the database `monitor once` left: a local feed with three stories and a bakery item, a
    wire (tagged `wire`) with a copy of the first story under another guid and a bakery item of its own."""
    directory = tmp_path_factory.mktemp("replay")
    local, wire = FeedBuilder(title="Local"), FeedBuilder(title="Wire")
    local.add_headlines("l", range(3))
    local.add("l-bakery", *QUIET)
    wire.add("w-copy", *HEADLINES[0])
    wire.add("w-bakery", "Bakery chain opens its hundredth shop", "The wire reports on bread.")
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set("/local.xml", local.rss())
        server.set("/wire.xml", wire.rss())
        config = write_config(
            directory, feed_urls=[server.url("/local.xml"), server.url("/wire.xml")], hook_url=hook.url
        )
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace(
                f"  - url: {server.url('/wire.xml')}\n",
                f"  - url: {server.url('/wire.xml')}\n    tags: [wire]\n",
            ),
            encoding="utf-8",
        )
        assert main(["once", "--config", str(config), "--deadline", "60"]) == 0
    (directory / "new-rules.yaml").write_text(NEW_RULES, encoding="utf-8")
    yield config


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_the_same_rules_find_exactly_the_alerts_the_pipeline_raised_by_story(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["alerts", "--json", "--limit", "1000", "--config", str(state)]) == 0
    alerts = _json_lines(capsys.readouterr().out)
    raised = {(a["rule"], a["story"]): a["id"] for a in alerts}
    assert raised

    assert main(["rules", "replay", "--json", "--config", str(state)]) == 0
    stories = _json_lines(capsys.readouterr().out)
    replayed = {
        (rule, story["story"]): found["alerted"]
        for story in stories
        for rule, found in story["rules"].items()  # type: ignore[attr-defined]
    }
    assert replayed == raised  # the same (rule, story) pairs, each known by its alert's id

    # The wire's copy of the first headline is in the local item's story, under each rule that fired.
    copy = [s for s in stories if s["title"] == HEADLINES[0][0]]
    assert len(copy) == 1
    for found in copy[0]["rules"].values():  # type: ignore[attr-defined]
        assert sorted(item["feed"].rsplit("/", 1)[1] for item in found["items"]) == ["local.xml", "wire.xml"]


def test_a_new_tag_scoped_rule_fires_only_where_its_scope_says(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    rules = str(state.parent / "new-rules.yaml")
    assert main(["rules", "replay", "--rules", rules, "--json", "--config", str(state)]) == 0
    stories = _json_lines(capsys.readouterr().out)
    by_rule: dict[str, list[str]] = {}
    for story in stories:
        for rule, found in story["rules"].items():  # type: ignore[attr-defined]
            by_rule.setdefault(rule, []).extend(item["title"] for item in found["items"])
            assert found["alerted"] is None  # nothing ever alerted on these rules
    assert by_rule["bakery-wire"] == ["Bakery chain opens its hundredth shop"]
    assert sorted(by_rule["bakery"]) == sorted(["Bakery chain opens its hundredth shop", QUIET[0]])

    assert main(["rules", "replay", "--rules", rules, "--rule", "bakery-wire", "--config", str(state)]) == 0
    text = capsys.readouterr().out
    assert "bakery-wire: 1 item (no alert for this story yet)" in text
    assert "  bakery: " not in text
    assert text.rstrip().endswith("nothing was sent or written")
    assert "1 stories, 1 alerts (1 for stories not alerted before)" in text

    assert main(["rules", "replay", "--rules", rules, "--since", "0s", "--config", str(state)]) == 0
    assert capsys.readouterr().out.startswith("0 stories, 0 alerts")
    assert main(["rules", "replay", "--rules", rules, "--rule", "nope", "--config", str(state)]) == 1
    assert "no rule 'nope'" in capsys.readouterr().err


def _digest(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def test_a_replay_leaves_the_database_byte_identical(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = state.parent / "state"
    before = _digest(database)
    assert "monitor.db" in before
    rules = str(state.parent / "new-rules.yaml")
    assert main(["rules", "replay", "--config", str(state)]) == 0
    assert main(["rules", "replay", "--rules", rules, "--json", "--config", str(state)]) == 0
    assert "bakery" in capsys.readouterr().out
    assert _digest(database) == before


def test_progress_shows_on_a_terminal_only_and_never_with_json(state: Path, repo_dir: Path) -> None:
    status, screen = on_a_terminal(["rules", "replay", "--config", str(state)], repo_dir)
    assert status == 0, screen
    assert re.search(r"\rreplaying stored items: (\d+)/\1", screen), screen
    assert screen.rstrip().endswith("nothing was sent or written")

    status, screen = on_a_terminal(["rules", "replay", "--json", "--config", str(state)], repo_dir)
    assert status == 0 and "replaying" not in screen
    assert all(json.loads(line) for line in screen.replace("\r\n", "\n").splitlines())

    piped = run_monitor("rules", "replay", "--config", str(state), cwd=repo_dir)
    assert (
        piped.returncode == 0 and "replaying" not in piped.stderr + piped.stdout and "\r" not in piped.stdout
    )
