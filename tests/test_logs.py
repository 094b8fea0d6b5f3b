"""Logs: text or JSON lines, no timestamp of our own when stderr is the journal, every feed/delivery line names
it, and no secret in any line — checked on a real daemon whose deliveries and feeds fail (so it logs about
both), with secrets in the webhook channel, the email channel and a feed URL's user info."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import logs
from tests.support.daemonproc import DaemonProcess, FeedBuilder, write_config
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver, wait_until

WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
HEADER_TOKEN = "Bearer tok-9f8e7d6c5b4a39281706"
SMTP_PASSWORD = "smtp-pass-5d1c4b3a2f"
FEED_PASSWORD = "feed-pass-a1b2c3d4"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logs.set_secrets(())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_redact_replaces_secrets_and_url_passwords() -> None:
    logs.set_secrets(["abc", "longer-secret-1", "longer-secret-1-and-more"])
    try:
        text = logs.redact(
            "key longer-secret-1-and-more, key longer-secret-1, short abc, "
            "url https://user:pw%40x@feeds.example/f and http://plain.example/x"
        )
    finally:
        logs.set_secrets(())
    assert text == (
        "key ***, key ***, short abc, url https://user:***@feeds.example/f and http://plain.example/x"
    )  # "abc" is shorter than MIN_SECRET_CHARS: redacting it would eat ordinary words


def test_json_lines_carry_level_logger_and_the_feed(tmp_path: Path, restore_logging: None) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("w", encoding="utf-8") as stream:
        logs.configure(logging.INFO, "json", stream=stream)
        logging.getLogger("monitor.pipeline").warning(
            "feed %s failed", "https://a.example/f", extra={"feed": "https://a.example/f"}
        )
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("monitor.service").exception("unexpected")
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "monitor.pipeline"
    assert first["message"] == "feed https://a.example/f failed" and first["feed"] == "https://a.example/f"
    assert first["time"].endswith("+00:00")
    assert "RuntimeError: boom" in second["exception"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_under_journald_no_timestamp_is_written(
    tmp_path: Path, restore_logging: None, monkeypatch: pytest.MonkeyPatch, log_format: logs.LogFormat
) -> None:
    path = tmp_path / "journal"
    with path.open("w", encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        logs.configure(logging.INFO, log_format, stream=stream)
        logging.getLogger("monitor").info("hello")
        # a stream that is not the journal's (the variable was merely inherited) keeps its timestamps
        other_path = tmp_path / "other"
        with other_path.open("w", encoding="utf-8") as other:
            logs.configure(logging.INFO, log_format, stream=other)
            logging.getLogger("monitor").info("hello")
    journal_line = path.read_text(encoding="utf-8").strip()
    other_line = other_path.read_text(encoding="utf-8").strip()
    if log_format == "text":
        assert journal_line == "INFO monitor: hello"
        assert other_line.endswith("INFO monitor: hello") and other_line[:4].isdigit()
    else:
        assert json.loads(journal_line) == {"level": "INFO", "logger": "monitor", "message": "hello"}
        assert "time" in json.loads(other_line)


@pytest.mark.slow
def test_a_failing_daemon_logs_json_naming_feeds_and_deliveries_and_no_secret(tmp_path: Path) -> None:
    feed = FeedBuilder()
    feed.add_headlines("n", range(2))
    with FeedServer() as server, WebhookReceiver(default_status=500) as hook:
        server.set("/wire.xml", feed.rss())
        private = server.url("/private.xml").replace("http://", f"http://reader:{FEED_PASSWORD}@")
        config = write_config(tmp_path, feed_urls=[server.url("/wire.xml"), private], hook_url=hook.url)
        config.write_text(
            config.read_text(encoding="utf-8")
            + f"    secret: {WEBHOOK_SECRET}\n"
            + f'    headers: {{Authorization: "{HEADER_TOKEN}"}}\n'
            + "  mail:\n    type: email\n    host: 127.0.0.1\n    port: 1\n    timeout: 2\n"
            + f"    username: monitor\n    password: {SMTP_PASSWORD}\n"
            + "    sender: m@example.org\n    to: [a@example.org]\n"
            + "log_format: json\n",
            encoding="utf-8",
        )
        config.chmod(
            0o600
        )  # it holds literal secrets: a readable file would be warned about (in text, at load)
        with DaemonProcess(config) as daemon:
            wait_until(lambda: len(hook.requests) >= 2, what="failing webhook deliveries")
            wait_until(lambda: "delivery" in daemon.log() and "'mail'" in daemon.log(), what="mail failures")
            wait_until(lambda: "private.xml failed" in daemon.log(), what="the private feed's failure")
            assert daemon.terminate() == 0
        log = daemon.log()
    for secret in (WEBHOOK_SECRET, HEADER_TOKEN, "tok-9f8e7d6c5b4a39281706", SMTP_PASSWORD, FEED_PASSWORD):
        assert secret not in log
    lines = [json.loads(line) for line in log.splitlines()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    feed_lines = [line for line in lines if line["message"].startswith("feed ")]
    assert feed_lines and all("feed" in line for line in feed_lines)
    assert any(line["feed"] == private.replace(FEED_PASSWORD, "***") for line in feed_lines)
    delivery_lines = [line for line in lines if line["message"].startswith("delivery ")]
    assert delivery_lines
    assert all("'hook'" in line["message"] or "'mail'" in line["message"] for line in delivery_lines)
