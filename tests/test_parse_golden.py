"""Golden feeds: every file in tests/data/feeds/ parses to exactly the output in `<file>.expected.json`.

An expected file holds either {"feed": ParsedFeed as JSON} or {"error": the ParseError message}, and
optionally "call": extra keyword arguments for parse_feed (content_type, base_url). The inputs are written
for these tests (RSS 0.91/1.0/2.0, Atom 1.0, JSON Feed 1.0/1.1, RSS-in-JSON, encodings, malformed bodies).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed

FEEDS = Path(__file__).parent / "data" / "feeds"
INPUTS = sorted(p for p in FEEDS.iterdir() if not p.name.endswith(".expected.json"))


def _as_json(value: Any) -> Any:
    """ParsedFeed → the JSON shape of the expected files (datetimes as ISO 8601, tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(value), default=_iso))


def _iso(value: object) -> str:
    assert isinstance(value, datetime), value
    return value.isoformat()


def test_every_input_has_an_expected_file() -> None:
    assert len(INPUTS) >= 15
    missing = [p.name for p in INPUTS if not (FEEDS / f"{p.name}.expected.json").is_file()]
    assert missing == []


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path-allowed", "feedparser-only"])
@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_golden_feed(path: Path, fast_path: bool) -> None:
    """Through both paths: the lxml fast path (for the documents its gate takes) and feedparser alone."""
    expected = json.loads((FEEDS / f"{path.name}.expected.json").read_text(encoding="utf-8"))
    call = expected.get("call", {}) | {"fast_path": fast_path}
    if "error" in expected:
        with pytest.raises(ParseError) as caught:
            parse_feed(path.read_bytes(), source=path.name, **call)
        assert caught.value.message == expected["error"]
        assert caught.value.source == path.name
        assert str(caught.value).startswith(f"{path.name}: ")
    else:
        parsed = parse_feed(path.read_bytes(), source=path.name, **call)
        assert _as_json(parsed) == expected["feed"]
