"""What the status listener serves to people and programs, besides /healthz and /metrics.

views.py      the JSON documents of /api/feeds, /api/alerts, /api/stories (read from the store, pure otherwise)
page.py       GET /: one HTML page, no JavaScript, every feed text escaped, matched spans in <mark>
atom.py       GET /alerts.atom: recent alerts as an Atom feed for any feed reader
openapi.json  the OpenAPI 3.0 document of the JSON API (served at /api/openapi.json; checked by schemathesis)
"""

from monitor.web.atom import ATOM_TYPE, alerts_atom
from monitor.web.page import render_page
from monitor.web.views import alerts_view, feeds_view, openapi_document, stories_view

__all__ = [
    "ATOM_TYPE",
    "alerts_atom",
    "alerts_view",
    "feeds_view",
    "openapi_document",
    "render_page",
    "stories_view",
]
