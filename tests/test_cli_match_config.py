"""`monitor match --config FILE`: a source that is one of the config's feeds is read as that feed (tags, language,
title), so scoped rules fire in the dry run as in the daemon; without sources, every configured feed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.daemonproc import FeedBuilder
from tests.support.feedserver import FeedServer

RULES = """\
rules:
  - id: bakery-wire
    title: Bakeries on the wire
    any: [bakery]
    tags: [wire]
  - id: bakery-german
    title: Bakeries, German items
    any: [bakery]
    languages: [de]
"""


def _rules(records: list[dict[str, object]]) -> dict[str, list[str]]:
    return {str(r["source"]).rsplit("/", 1)[1]: list(r["rules"]) for r in records}  # type: ignore[call-overload]


def test_match_with_config_applies_each_feeds_tags_and_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wire, other = FeedBuilder(title="Wire"), FeedBuilder(title="Other")
    wire.add("w-1", "Bakery chain opens its hundredth shop", "The wire reports on bread.")
    other.add("o-1", "Bakery wins a prize", "Bread and rolls.")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    with FeedServer() as server:
        server.set("/wire.xml", wire.rss())
        server.set("/other.xml", other.rss())
        config = tmp_path / "monitor.yaml"
        config.write_text(
            'rules: ./rules.yaml\nallow_private_networks: ["127.0.0.1/32"]\nfeeds:\n'
            f"  - url: {server.url('/wire.xml')}\n    tags: [wire]\n    title: The Wire\n"
            f"  - url: {server.url('/other.xml')}\n    language: de\n",
            encoding="utf-8",
        )
        urls = [server.url("/wire.xml"), server.url("/other.xml")]

        # Without the config: no tags, the declared language (en): neither scoped rule fires.
        rules = str(tmp_path / "rules.yaml")
        assert main(["match", "--json", "--allow-private-networks", "--rules", rules, *urls]) == 0
        assert _rules([json.loads(line) for line in capsys.readouterr().out.splitlines()]) == {
            "wire.xml": [],
            "other.xml": [],
        }

        # With it, the same sources as the daemon reads them; and with no sources, every configured feed.
        for sources in (urls, []):
            assert main(["match", "--json", "--config", str(config), *sources]) == 0
            records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
            assert _rules(records) == {"wire.xml": ["bakery-wire"], "other.xml": ["bakery-german"]}
            assert {r["language"] for r in records} == {"en", "de"}


def test_match_needs_a_source_or_a_config_with_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["match"]) == 1
    assert "match needs a SOURCE" in capsys.readouterr().err
    config = tmp_path / "monitor.yaml"
    config.write_text("feeds: []\n", encoding="utf-8")
    assert main(["match", "--config", str(config)]) == 1
    assert "match needs a SOURCE" in capsys.readouterr().err
