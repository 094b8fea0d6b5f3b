"""The raw body before any format is chosen: gzip by mistake, stray whitespace, and which reader to use."""

from __future__ import annotations

import zlib
from typing import Literal

from monitor.errors import ParseError

__all__ = ["MAX_DECOMPRESSED_BYTES", "gunzip_if_compressed", "sniff_format", "strip_leading_whitespace"]

# A gzip body is inflated up to this many bytes. The fetch layer caps compressed bodies; this caps what a
# small "zip bomb" could expand to (gzip reaches ratios around 1000:1).
MAX_DECOMPRESSED_BYTES = 32 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_XML_WHITESPACE = b" \t\r\n"


def gunzip_if_compressed(data: bytes, *, source: str, warnings: list[str]) -> bytes:
    """Inflate a body that still carries gzip compression (a raw .gz file, or a server that compressed twice).

    The fetch layer undoes Content-Encoding; a body that *still* starts with the gzip magic was compressed
    once more, or is a .gz file. Inflating it is safe with the size cap, and friendlier than refusing.
    """
    if not data.startswith(_GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(data, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise ParseError(source, f"body starts like gzip but cannot be decompressed: {exc}") from exc
    if len(inflated) > MAX_DECOMPRESSED_BYTES:
        raise ParseError(
            source, f"gzip-compressed body expands beyond {MAX_DECOMPRESSED_BYTES // (1024 * 1024)} MiB"
        )
    if not inflater.eof:
        if not inflated:
            raise ParseError(source, "body starts like gzip but the compressed stream is truncated")
        warnings.append(
            f"body was gzip-compressed and the stream is truncated; read the {len(inflated)} bytes it gave"
        )
    else:
        warnings.append(
            f"body was gzip-compressed ({len(data)} bytes); decompressed to {len(inflated)} bytes"
        )
    return inflated


def strip_leading_whitespace(data: bytes, *, warnings: list[str]) -> bytes:
    """Drop whitespace before the first markup character, keeping a UTF-8 byte order mark in front.

    An XML declaration must be the very first thing in a document; a newline before it makes strict XML
    parsers give up (feedparser then falls back to its lenient parser, which is slower and less exact).
    """
    bom = _UTF8_BOM if data.startswith(_UTF8_BOM) else b""
    rest = data[len(bom) :]
    stripped = rest.lstrip(_XML_WHITESPACE)
    if len(stripped) == len(rest):
        return data
    if stripped.startswith(b"<?xml"):
        warnings.append(f"removed {len(rest) - len(stripped)} bytes of whitespace before the XML declaration")
    return bom + stripped


def sniff_format(data: bytes, content_type: str | None) -> Literal["json", "xml"]:
    """Which reader to use. The content decides; the Content-Type only breaks a tie.

    Servers often label feeds wrongly (JSON Feeds as text/plain, RSS as application/json), so a body
    starting with "{" is JSON and one starting with "<" is XML whatever the header says.
    """
    head = data[len(_UTF8_BOM) :] if data.startswith(_UTF8_BOM) else data
    head = head.lstrip(_XML_WHITESPACE)
    if head.startswith((b"{", b"[")):
        return "json"
    if head.startswith(b"<"):
        return "xml"
    if content_type and "json" in content_type.lower():
        return "json"
    return "xml"
