"""Logging: text or JSON lines on stderr, no timestamp of our own under journald, and no secret in any line.

- `log_format: text` (default) writes `TIME LEVEL logger: message`; `json` writes one object per line with
  `time`, `level`, `logger`, `message`, and `feed`, `channel`, `delivery` when the line is about one (the code
  passes them as `extra`), plus `exception` with the traceback.
- Under systemd, stderr is connected to the journal, which stamps every line itself: then the `time` is left out
  of both formats. The journal is recognised as systemd documents it: `$JOURNAL_STREAM` names the device and
  inode of the journal stream, and they match our stderr (a child that merely inherited the variable while its
  stderr goes elsewhere still gets timestamps).
- Every line passes through `redact` as a whole string (message, arguments and traceback together): each
  configured secret (channel passwords, webhook secrets, header values, the status token) becomes `***`, and
  so does the password in a URL's user info (`https://user:***@host/`). The secrets are registered by
  `set_secrets` from the loaded configuration, before the daemon logs anything about feeds or channels.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from monitor.redact import MIN_SECRET_CHARS
from monitor.redact import redact as redact_url_secrets

__all__ = ["JsonFormatter", "TextFormatter", "configure", "journal_owns_stderr", "redact", "set_secrets"]

LogFormat = Literal["text", "json"]

HANDLER_NAME = "monitor"
NOISY_LOGGERS = ("httpx", "httpcore", "apscheduler", "mail.log")
CONTEXT_FIELDS = ("feed", "channel", "delivery")

_secrets: tuple[str, ...] = ()
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]+@")


def set_secrets(values: Iterable[str]) -> None:
    """Register the values no log line may hold (replaces the previous set; a reload registers the new one)."""
    global _secrets
    unique = {value for value in values if len(value) >= MIN_SECRET_CHARS}
    # Longest first: a secret that contains another must be replaced whole.
    _secrets = tuple(sorted(unique, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with secret values as `***`, `${VAR}` values inside URLs as `${VAR}` (monitor.redact), and URL
    passwords masked."""
    text = redact_url_secrets(text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1:***@", text)


def journal_owns_stderr(stream: TextIO | None = None, environ: dict[str, str] | None = None) -> bool:
    """True when stderr is the systemd journal's stream (`$JOURNAL_STREAM` is "device:inode" of it)."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep or not device.isdigit() or not inode.isdigit():
        return False
    try:
        info = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return info.st_dev == int(device) and info.st_ino == int(inode)


class TextFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool) -> None:
        fmt = (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if timestamps
            else "%(levelname)s %(name)s: %(message)s"
        )
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def __init__(self, *, timestamps: bool) -> None:
        super().__init__()
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {}
        if self.timestamps:
            line["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line["level"] = record.levelname
        line["logger"] = record.name
        line["message"] = record.getMessage()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # Redacted after serialising: a secret is replaced wherever it ended up, escaped or not.
        return redact(json.dumps(line, ensure_ascii=False))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time of each line (as logging's last-resort handler does), so
    a handler made while stderr was temporarily replaced never writes to a closed stream later."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure(
    level: int | str = logging.INFO, log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """(Re)configure logging: one handler of ours on the root logger, in the given format, on `stream` (default:
    the current stderr). A handler someone else installed (a test runner's) is left alone."""
    handler: logging.StreamHandler[TextIO] = (
        _StderrHandler() if stream is None else logging.StreamHandler(stream)
    )
    timestamps = not journal_owns_stderr(stream)
    handler.setFormatter(
        JsonFormatter(timestamps=timestamps) if log_format == "json" else TextFormatter(timestamps=timestamps)
    )
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
