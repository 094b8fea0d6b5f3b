"""The status page, the Atom feed and the JSON API, served by the daemon's StatusServer on 127.0.0.1 over a
database the real pipeline filled (tests/support/statussite.py), read with a real HTTP client."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser
import jsonschema
import pytest
import schemathesis
from hypothesis import settings

from monitor.web import openapi_document
from monitor.web.page import highlight
from tests.support.statussite import HOSTILE_LINK, StatusSite, fill_database

TOKEN = "status-token-for-tests-0123"


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("site") / "m.db"
    return path, fill_database(path)


@pytest.fixture(scope="module")
def site(database: tuple[Path, list[str]]) -> Iterator[StatusSite]:
    with StatusSite(database[0]) as running:
        yield running


def schema_of(name: str) -> dict[str, object]:
    document = openapi_document()
    return {"$ref": f"#/components/schemas/{name}", "components": document["components"]}


def test_the_page_shows_feed_health_alerts_and_stories_without_javascript(
    site: StatusSite, database: tuple[Path, list[str]]
) -> None:
    status, headers, body = site.get("/")
    page = body.decode("utf-8")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in headers["Content-Security-Policy"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")  # no script can run
    assert "<script" not in page.lower()
    wire, hostile, broken = database[1]
    rows = re.findall(r'<tr class="feed" data-state="(\w+)">\s*<td>(.*?)</td>', page, re.S)
    states = {re.sub(r"<[^>]+>", " ", cell).split()[-1]: state for state, cell in rows}
    assert states == {wire: "ok", hostile: "ok", broken: "failing"}
    assert "HTTP 404 Not Found" in page
    # feed text is escaped, and a javascript: link is not a link
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "Wire &lt;Desk&gt; &amp; Co" in page
    assert HOSTILE_LINK not in page.replace("&#34;", '"')
    # matched spans are marked
    assert "<mark>Putin</mark>" in page
    assert re.search(r"<mark>[Rr]are earth", page)
    # stories with their outlets and languages
    assert '<tr class="story">' in page and '<span class="tag">en</span>' in page


def test_highlight_escapes_around_and_inside_marks() -> None:
    hits = [
        {"field": "title", "start": 0, "end": 5, "text": "Putin"},
        {"field": "title", "start": 99, "end": 104, "text": "<b>x"},
    ]
    assert (
        str(highlight("Putin <b>x</b>", hits, "title"))
        == "<mark>Putin</mark> <mark>&lt;b&gt;x</mark>&lt;/b&gt;"
    )
    assert str(highlight("Putin", hits, "summary")) == "Putin"


def test_the_atom_feed_lists_recent_alerts_linking_to_their_items(site: StatusSite) -> None:
    status, headers, body = site.get("/alerts.atom")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    ET.fromstring(body)  # well-formed
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "monitor: recent alerts"
    assert len(parsed.entries) >= 5
    links = {entry.get("link") for entry in parsed.entries}
    assert "http://127.0.0.1/n-0" in links
    assert all(entry.id.startswith("urn:monitor:alert:alr_") for entry in parsed.entries)
    assert all("Matched:" in entry.summary for entry in parsed.entries)
    hostile = [e for e in parsed.entries if "script" in e.title]
    assert hostile and all(not e.get("link", "").startswith("javascript:") for e in hostile)


@pytest.mark.parametrize(
    ("path", "schema"), [("/api/feeds", "Feed"), ("/api/alerts", "Alert"), ("/api/stories", "Story")]
)
def test_the_api_answers_what_its_openapi_document_says(site: StatusSite, path: str, schema: str) -> None:
    status, headers, body = site.get(path)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    documents = json.loads(body)
    assert documents
    for document in documents:
        jsonschema.validate(document, schema_of(schema))


def test_limits_are_checked(site: StatusSite) -> None:
    assert len(json.loads(site.get("/api/alerts?limit=2")[2])) == 2
    status, _, body = site.get("/api/alerts?limit=0")
    assert status == 400 and "limit must be a whole number from 1 to 500" in json.loads(body)["error"]
    assert site.get("/api/stories?limit=x")[0] == 400


def test_a_token_guards_the_page_the_feed_and_the_api(database: tuple[Path, list[str]]) -> None:
    with StatusSite(database[0], token=TOKEN) as guarded:
        for path in ("/", "/alerts.atom", "/api/alerts", "/metrics"):
            assert guarded.get(path)[0] == 401
            assert guarded.get(path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert (
            guarded.get(f"/alerts.atom?token={TOKEN}")[0] == 200
        )  # for feed readers that cannot send headers
        assert guarded.get("/healthz")[0] == 200


api_schema = schemathesis.openapi.from_dict(openapi_document())


@api_schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True)
def test_every_api_operation_conforms_to_its_openapi_document(
    case: schemathesis.Case, site: StatusSite
) -> None:
    """schemathesis generates requests from the document (valid and invalid limits) and checks status codes,
    content types and bodies against it."""
    case.call_and_validate(base_url=site.base_url)
