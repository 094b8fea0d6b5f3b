"""Text that cannot be written as UTF-8 never leaves the parser.

A lone surrogate (U+D800-U+DFFF) is no character: Python keeps it in a str, but encoding that str as UTF-8 (for
the store, a webhook body, a mail) raises. JSON escapes ("\\ud800") and XML character references ("&#xD800;")
produce them from plain ASCII bytes, so a single such entry used to cost the whole feed (feedparser's SAX
parser fails on the reference) or fail later when stored. Both are replaced with U+FFFD, as a decoder does with
undecodable bytes.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import Any, TypeVar

__all__ = ["REPLACEMENT", "replace_surrogate_references", "scrub_surrogates", "scrub_text"]

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_CHAR_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,16})|([0-9]{1,20}));")
T = TypeVar("T")


def scrub_text(text: str) -> str:
    return _SURROGATE.sub(REPLACEMENT, text)


def scrub_surrogates(value: T) -> T:
    """`value` (a frozen dataclass, a tuple, a str) with every lone surrogate in its text replaced."""
    return _scrub(value)  # type: ignore[no-any-return]


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value) if _SURROGATE.search(value) else value
    if isinstance(value, tuple):
        return tuple(_scrub(item) for item in value)
    if hasattr(value, "__dataclass_fields__"):
        changes = {}
        for field in fields(value):
            old = getattr(value, field.name)
            new = _scrub(old)
            if new is not old:
                changes[field.name] = new
        return replace(value, **changes) if changes else value
    return value


def replace_surrogate_references(data: bytes) -> tuple[bytes, int]:
    """XML bytes with every character reference to a surrogate or to no code point at all (above U+10FFFF)
    replaced by "&#xFFFD;", and how many were replaced."""
    count = 0

    def fix(match: re.Match[bytes]) -> bytes:
        nonlocal count
        hex_digits, decimal = match.group(1), match.group(2)
        code = int(hex_digits, 16) if hex_digits else int(decimal)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            count += 1
            return b"&#xFFFD;"
        return match.group(0)

    if b"&#" not in data:
        return data, 0
    return _CHAR_REFERENCE.sub(fix, data), count
