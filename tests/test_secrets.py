"""Secrets in the configuration: a warning for a config file that holds one and is readable by others, and a
${VAR} inside a feed or webhook URL masked in logs, CLI output and alert payloads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from tests.support.feedserver import FeedServer
from tests.test_e2e import FEED_A, rss

TOKEN = "tok-3f9a7c1e5d"


def write(tmp_path: Path, text: str, mode: int) -> Path:
    (tmp_path / "rules.yaml").write_text("rules:\n  - id: rare\n    any: [rare earth]\n", encoding="utf-8")
    path = tmp_path / "monitor.yaml"
    path.write_text("rules: rules.yaml\n" + text, encoding="utf-8")
    path.chmod(mode)
    return path


HOOK_WITH_LITERAL_SECRET = "channels:\n  hook:\n    type: webhook\n    url: https://hooks.example.org/x\n    secret: literal-secret-1\n"


def test_a_config_holding_a_secret_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, HOOK_WITH_LITERAL_SECRET, 0o644)
    with caplog.at_level(logging.WARNING):
        load_config(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{path}:6" in w and "channels.hook.secret" in w and "0644" in w for w in warnings), warnings
    assert all("literal-secret-1" not in w for w in warnings)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (HOOK_WITH_LITERAL_SECRET, 0o600),
        (
            "channels:\n  hook:\n    type: webhook\n    url: https://h.example.org/x\n    secret: ${HOOK_SECRET_X}\n",
            0o644,
        ),
    ],
    ids=["private-file", "secret-from-environment"],
)
def test_no_warning_when_the_file_is_private_or_the_secret_comes_from_the_environment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, text: str, mode: int
) -> None:
    monkeypatch.setenv("HOOK_SECRET_X", "from-env")
    path = write(tmp_path, text, mode)
    with caplog.at_level(logging.WARNING):
        load_config(path)
    assert not [r for r in caplog.records if "readable" in r.getMessage()]


def test_a_variable_in_a_feed_url_is_masked_in_logs_cli_and_payloads(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FEED_TOKEN", TOKEN)
    with FeedServer() as server:
        server.set("/a.xml", rss("Feed A", FEED_A))
        server.set("/missing.xml", b"gone", status=404)
        config = write(
            tmp_path,
            "database: ./state/m.db\n"
            'allow_private_networks: ["127.0.0.1/32"]\n'
            "feeds:\n"
            f"  - url: {server.url('/a.xml')}?token=${{FEED_TOKEN}}\n"
            f"  - url: {server.url('/missing.xml')}?token=${{FEED_TOKEN}}\n",
            0o600,
        )
        with caplog.at_level(logging.INFO):
            assert main(["once", "--config", str(config)]) == 0
        assert server.count(f"/a.xml?token={TOKEN}") == 1  # the real URL is fetched
        out = capsys.readouterr().out
        assert "token=${FEED_TOKEN}" in out and TOKEN not in out
        assert TOKEN not in caplog.text and "${FEED_TOKEN}" in caplog.text  # the 404 was logged, masked
        assert main(["feeds", "--config", str(config)]) == 0
        listing = capsys.readouterr().out
        assert "token=${FEED_TOKEN}" in listing and TOKEN not in listing
        assert main(["alerts", "--json", "--config", str(config)]) == 0
        alerts = capsys.readouterr().out
        assert alerts.strip() and TOKEN not in alerts
        from monitor.store import SQLiteStore

        with SQLiteStore(tmp_path / "state" / "m.db") as store:
            payloads = [a["payload"] for a in store.list_alerts(limit=10)]
        assert payloads and all(TOKEN not in json.dumps(p) for p in payloads)
        assert all("${FEED_TOKEN}" in p["item"]["feed"]["url"] for p in payloads)
