"""Secrets that travel inside URLs, masked wherever monitor shows them.

A `${VAR}` written inside a feed or webhook URL ("https://example.org/feed?token=${FEED_TOKEN}") is a secret
like a password: the interpolated value is needed to fetch, but logs, CLI output and alert payloads show the
URL as written, with `${FEED_TOKEN}` in place of the value. The config loader registers each such value here;
`redact` replaces every registered value in a text. Values shorter than MIN_SECRET_CHARS are not registered:
masking "1" or "on" everywhere would garble every line and protect nothing.

The registry is per process (logging is too): a reload registers the new values beside the old ones.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, TextIO

__all__ = ["MIN_SECRET_CHARS", "RedactingFilter", "RedactingWriter", "redact", "register_secret"]

MIN_SECRET_CHARS = 4

_secrets: dict[str, str] = {}  # value -> placeholder
_lock = threading.Lock()


def register_secret(value: str, placeholder: str) -> None:
    if len(value) < MIN_SECRET_CHARS:
        return
    with _lock:
        _secrets[value] = placeholder


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by its placeholder (longest values first)."""
    if not _secrets:
        return text
    with _lock:
        items = sorted(_secrets.items(), key=lambda item: -len(item[0]))
    for value, placeholder in items:
        if value in text:
            text = text.replace(value, placeholder)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that masks registered secrets in the formatted message (and its arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            message = record.getMessage()
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


class RedactingWriter:
    """A text stream that masks registered secrets in everything written to it (the CLI's stdout)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        return self._inner.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
