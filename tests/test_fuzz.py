"""Fuzz targets (hypothesis) for the feed parser, the rule loader and the config loader.

Each target states the one property hostile input must not break: `parse_feed` returns a feed whose text is
valid UTF-8 or raises ParseError, and nothing else; the loaders return a result or raise ConfigError (RuleError
for rules), and nothing else (no RecursionError, OverflowError, UnicodeError, yaml or pydantic exception).

The test command runs each for a bounded number of inputs (MONITOR_FUZZ_EXAMPLES, default 150). Run longer by
hand with `scripts/fuzz` (e.g. `scripts/fuzz 20000`), which prints the inputs tried per target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import load_config
from monitor.errors import ConfigError, ParseError, RuleError
from monitor.parse import parse_feed
from monitor.rules import load_rules
from monitor.types import ParsedFeed

EXAMPLES = int(os.environ.get("MONITOR_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # no .hypothesis folder in the work tree; a failure prints its reproducing input
)
TRIED: Counter[str] = Counter()

# Text with everything hostile in its alphabet: lone surrogates (category Cs), controls, non-characters,
# markup and JSON punctuation.
ANY_CHAR = st.characters(codec=None, categories=None)
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(ANY_CHAR, st.sampled_from(list("<>&;#\"'{}[]:,\\\n\x00\ud800\udfff\ufffe"))),
    max_size=40,
)
HUGE_NUMBER = st.integers(min_value=4290, max_value=6000).map(lambda n: "9" * n)
JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), HOSTILE_TEXT, HUGE_NUMBER
)


def _json_value(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(ITEM_KEYS) | HOSTILE_TEXT, inner, max_size=5),
        ),
        max_leaves=12,
    )


ITEM_KEYS = [
    "id", "url", "external_url", "title", "summary", "content_html", "content_text", "date_published",
    "date_modified", "tags", "authors", "author", "name", "language", "items", "version", "home_page_url",
]  # fmt: skip


class _Huge(str):
    """A marker: serialised as the bare digits, i.e. a JSON number too long for Python's int()."""


def _dump_json(value: Any) -> str:
    """json.dumps, except that HUGE_NUMBER strings become bare numbers and surrogates stay \\u escapes."""
    if isinstance(value, str) and value.isdigit() and len(value) >= 4290:
        return value
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dump_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump_json(v) for v in value) + "]"
    return json.dumps(value)


@st.composite
def json_feeds(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(_json_value(JSON_LEAF), max_size=4))
    document: dict[str, Any] = {
        "version": draw(st.sampled_from(["https://jsonfeed.org/version/1.1", "x", None])),
        "title": draw(JSON_LEAF),
        "items": items if draw(st.booleans()) else draw(_json_value(JSON_LEAF)),
    }
    text = _dump_json(document)
    raw = draw(st.booleans())
    # Raw: write surrogates as bytes (invalid UTF-8) instead of escapes.
    return text.encode("utf-8", "surrogatepass") if raw else text.encode("ascii", "backslashreplace")


XML_FRAGMENT = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from(
        [
            "&#xD800;", "&#55296;", "&#x110000;", "&#0;", "&amp;", "&bogus;", "<![CDATA[x]]>", "<!--", "-->",
            "<object>", "<image><title>img</title></image>", "<b>", "</item>", "<item>", "]]>",
            '<link rel="enclosure" href="http://e/x.mp3"/>', "<title>", "</title>", "<summary type='html'>",
        ]
    ),
)  # fmt: skip


@st.composite
def xml_feeds(draw: st.DrawFn) -> bytes:
    def text() -> str:
        return "".join(draw(st.lists(XML_FRAGMENT, max_size=6)))

    kind = draw(st.sampled_from(["rss", "atom", "rdf"]))
    encoding = draw(st.sampled_from(["utf-8", "windows-1252", "iso-8859-1", "utf-16", "koi8-r", "bogus"]))
    entries = draw(st.integers(0, 3))
    if kind == "atom":
        body = "".join(
            f"<entry><title>{text()}</title><id>{text()}</id><link href='{text()}'/><content type='html'>"
            f"{text()}</content><updated>{text()}</updated></entry>"
            for _ in range(entries)
        )
        doc = f'<?xml version="1.0" encoding="{encoding}"?><feed xmlns="http://www.w3.org/2005/Atom"><title>{text()}</title>{body}</feed>'
    else:
        body = "".join(
            f"<item><title>{text()}</title><guid>{text()}</guid><link>{text()}</link>"
            f"<description>{text()}</description><pubDate>{text()}</pubDate></item>"
            for _ in range(entries)
        )
        root = (
            "rss version='2.0'"
            if kind == "rss"
            else "rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' xmlns='http://purl.org/rss/1.0/'"
        )
        close = "rss" if kind == "rss" else "rdf:RDF"
        doc = f'<?xml version="1.0" encoding="{encoding}"?><{root}><channel><title>{text()}</title>{body}</channel></{close}>'
    try:
        return doc.encode(encoding if encoding != "bogus" else "utf-8", "surrogatepass")
    except (UnicodeEncodeError, LookupError):
        return doc.encode("utf-8", "surrogatepass")


FEED_BYTES = st.one_of(json_feeds(), xml_feeds(), st.binary(max_size=300))


def _assert_clean(feed: ParsedFeed) -> None:
    texts = [feed.title, feed.link, feed.language, *feed.warnings]
    for entry in feed.entries:
        texts += [
            entry.guid,
            entry.link,
            entry.title,
            entry.summary,
            entry.content,
            entry.author,
            entry.language,
        ]
        texts += list(entry.categories)
    for text in texts:
        if text is not None:
            text.encode("utf-8")  # no lone surrogate survives


@FUZZ
@given(data=FEED_BYTES, content_type=st.sampled_from([None, "application/json", "text/xml; charset=utf-8"]))
def test_parse_feed_raises_only_parse_error(data: bytes, content_type: str | None) -> None:
    TRIED["parse_feed"] += 1
    try:
        feed = parse_feed(data, source="fuzz", content_type=content_type)
    except ParseError:
        return
    _assert_clean(feed)


# -- loaders ---------------------------------------------------------------------------------------------

YAML_SCALAR = st.one_of(
    HOSTILE_TEXT.map(json.dumps),  # a quoted string (JSON is YAML)
    st.sampled_from(
        [
            ".inf", "-.nan", "99999999999d", "''", "~", "10m", "yes", "0x10", "1e400", "!!binary aGk=",
            "!!timestamp 2001-12-14", "!!python/object:os.system x", "&a x", "*a", "*undefined", "[", "{",
            "!custom x", "<<: *a", "9" * 5000, "${HOME}", "${UNSET_FUZZ_VAR}", "$${x}",
        ]
    ),
)  # fmt: skip
CONFIG_KEYS = [
    "feeds", "url", "interval", "channels", "type", "webhook", "email", "allow_private_networks", "delivery",
    "retry_schedule", "max_age", "rules", "database", "fetch", "max_bytes", "secret", "to", "host", "port",
]  # fmt: skip
RULE_KEYS = [
    "rules", "id", "any", "all", "none", "match", "vocabularies", "actors", "names", "weights", "threshold",
    "realert", "group_wait", "fields", "min_count", "notify", "languages",
]  # fmt: skip


def _yaml_tree(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        YAML_SCALAR,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(keys), inner, max_size=4)
        ),
        max_leaves=16,
    )


def _render(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        return "".join(
            f"{pad}{k}:\n{_render(v, indent + 1)}"
            if isinstance(v, dict | list) and v
            else f"{pad}{k}: {_inline(v)}\n"
            for k, v in value.items()
        )
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        return "".join(
            f"{pad}- {_inline(v)}\n"
            if not isinstance(v, dict | list) or not v
            else f"{pad}-\n{_render(v, indent + 1)}"
            for v in value
        )
    return pad + _inline(value) + "\n"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return str(value)


@st.composite
def yaml_documents(draw: st.DrawFn, keys: list[str]) -> str:
    text = _render(draw(_yaml_tree(keys)))
    hostile = draw(
        st.sampled_from(
            [
                "",
                "a: &a [1, 2]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n",
                "x: " + "[" * 2000 + "]" * 2000 + "\n",
                "x: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
                "\ud800: x\n",
                "\t- tab\n",
            ]
        )
    )
    return text + hostile


def _write(directory: str, text: str) -> Path:
    path = Path(directory) / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


@FUZZ
@given(text=yaml_documents(CONFIG_KEYS))
def test_load_config_raises_only_config_error(text: str) -> None:
    TRIED["load_config"] += 1
    with tempfile.TemporaryDirectory() as directory:
        path = _write(directory, text)
        with contextlib.suppress(ConfigError):
            load_config(path, environ={"HOME": "/home/x"})


@FUZZ
@given(text=yaml_documents(RULE_KEYS))
def test_load_rules_raises_only_rule_error(text: str) -> None:
    TRIED["load_rules"] += 1
    with tempfile.TemporaryDirectory() as directory:
        path = _write(directory, text)
        with contextlib.suppress(RuleError):
            load_rules(path)


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried() -> Any:
    yield
    if TRIED:
        print("\nfuzz inputs tried: " + ", ".join(f"{name} {count}" for name, count in sorted(TRIED.items())))
