"""Rendering alerts for people: Jinja2 templates in a sandbox.

Every template (the bundled ones in ``templates/`` and the subject or body templates an operator writes in the
config) runs in a ``SandboxedEnvironment``: a template can read the alert payload but cannot reach Python
internals. Templates whose name ends in ``.html`` are autoescaped, so feed text becomes text in HTML mail;
feed text is data and is never evaluated, so a summary holding ``{{ 7*7 }}`` is shown as written.

Summaries may still carry markup that a feed double-escaped; the ``sanitize`` filter runs them through nh3 with
a small allowlist (text formatting and links, links forced to rel="noopener noreferrer nofollow"), which is what
the HTML templates use for them. The ``oneline`` filter folds all whitespace, line breaks included, to single
spaces: the form every header and subject takes.

Template context: ``alert`` (the first alert payload), ``alerts`` (all of them), ``digest`` (bool), ``count``,
``rules`` (the titles of the rules that fired, once each), ``update`` (bool: a later rule on a story already
notified), ``notification`` (the notification payload a generic webhook receives, None in a digest),
``also`` (how widely the story was reported: "also reported by 3 more outlets, in 2 languages", or ""), and in a
digest ``stories`` (one entry per story: its ``notification`` and ``also``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import nh3
from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from monitor.notify.payload import notification_payload, story_line

__all__ = [
    "DEFAULT_SUBJECT",
    "TemplateError",
    "compile_template",
    "oneline",
    "render",
    "render_subject",
    "safe_url",
    "sample_context",
    "sanitize_html",
    "template_context",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_SUBJECT = (
    "{% if digest %}[monitor] {{ count }} alerts: {{ alerts | map(attribute='rule.title') | unique | join(', ') }}"
    "{% else %}[monitor] {% if update %}Update: {% endif %}{{ rules | join(', ') }}: {{ alert.item.title }}"
    " ({{ alert.item.feed.title }}){% endif %}"
)
MAX_SUBJECT_CHARS = 200

_ALLOWED_TAGS = {"a", "b", "strong", "i", "em", "u", "p", "br", "ul", "ol", "li", "blockquote", "code", "pre"}
# Line and paragraph separators and every other kind of whitespace, so no header ever breaks.
_WHITESPACE = re.compile(r"\s+", re.UNICODE)


def oneline(value: object) -> str:
    """The text with every run of whitespace (CR, LF, tabs, U+2028, ...) folded to one space, stripped."""
    text = "" if value is None else str(value)
    text = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in text)
    return _WHITESPACE.sub(" ", text).strip()


def sanitize_html(value: object) -> Markup:
    """Feed text or markup made safe for an HTML mail: allowlisted tags only, safe links only."""
    text = "" if value is None else str(value)
    return Markup(
        nh3.clean(
            text,
            tags=_ALLOWED_TAGS,
            attributes={"a": {"href", "title"}},
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    )


def safe_url(value: object) -> str:
    """The URL when it is http(s) or mailto, else "" (a feed's javascript: link never becomes a live href)."""
    text = oneline(value)
    return text if re.match(r"(?i)^(https?://|mailto:)", text) else ""


def _new_environment(autoescape: bool | None) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=(
            select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False)
            if autoescape is None
            else autoescape
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["oneline"] = oneline
    env.filters["sanitize"] = sanitize_html
    env.filters["safe_url"] = safe_url
    return env


@cache
def _environment(autoescape: bool | None = None) -> SandboxedEnvironment:
    return _new_environment(autoescape)


def template_context(
    alerts: Sequence[Mapping[str, Any]],
    *,
    digest: bool,
    kind: str = "alert",
    delivery_id: str = "",
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    if not alerts:
        raise ValueError("a delivery needs at least one alert to render")
    rules = list(dict.fromkeys(str(a["rule"].get("title") or a["rule"]["id"]) for a in alerts))
    return {
        "alert": alerts[0],
        "alerts": list(alerts),
        "digest": digest,
        "count": len(alerts),
        "rules": rules,
        "update": kind == "update",
        "notification": (
            None
            if digest
            else notification_payload(delivery_id or "msg_sample", alerts, kind=kind, in_reply_to=in_reply_to)
        ),
        "also": "" if digest else story_line(alerts),
        # A digest lists stories, not alerts: the alerts of one story (in the order they came) as one entry
        # naming every rule, like a notification (issue 8).
        "stories": [
            {
                "notification": notification_payload(
                    f"{delivery_id or 'msg_sample'}#{n}", group, kind="story"
                ),
                "also": story_line(group),
            }
            for n, group in enumerate(_by_story(alerts), start=1)
        ]
        if digest
        else [],
    }


def _by_story(alerts: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    groups: dict[object, list[Mapping[str, Any]]] = {}
    for index, alert in enumerate(alerts):
        story = alert.get("story")
        key = story.get("id") if isinstance(story, dict) and story.get("id") else ("alert", index)
        groups.setdefault(key, []).append(alert)
    return list(groups.values())


def render(
    name: str,
    alerts: Sequence[Mapping[str, Any]],
    *,
    digest: bool,
    kind: str = "alert",
    delivery_id: str = "",
    in_reply_to: str | None = None,
) -> str:
    """Render a bundled template (alert.txt, alert.html, digest.txt, digest.html) for these alerts."""
    context = template_context(
        alerts, digest=digest, kind=kind, delivery_id=delivery_id, in_reply_to=in_reply_to
    )
    return _environment().get_template(name).render(context)


def compile_template(source: str, *, what: str) -> Template:
    """Compile an operator's template (sandboxed, not autoescaped) and check it renders on a sample alert.

    Raises ValueError naming `what` and Jinja's reason, so config validation can point at the key."""
    try:
        template = _environment(False).from_string(source)
        for digest in (False, True):
            template.render(sample_context(digest=digest))
    except TemplateError as exc:
        raise ValueError(f"invalid {what}: {exc}") from exc
    return template


def render_subject(
    template: Template, alerts: Sequence[Mapping[str, Any]], *, digest: bool, kind: str = "alert"
) -> str:
    """The rendered subject, on one line and at most MAX_SUBJECT_CHARS characters."""
    subject = oneline(template.render(template_context(alerts, digest=digest, kind=kind)))
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def sample_context(*, digest: bool) -> dict[str, Any]:
    """A context with every payload field filled, to check templates when the config is loaded."""
    alert = {
        "version": 2,
        "type": "alert",
        "id": "alr_sample",
        "created_at": "2025-01-01T00:00:00.000000Z",
        "rule": {"id": "sample-rule", "title": "Sample rule"},
        "item": {
            "key": "https://example.org/item",
            "title": "Sample title",
            "link": "https://example.org/item",
            "url": "https://example.org/item",
            "feed": {"url": "https://example.org/feed.xml", "title": "Example feed"},
            "published": "2025-01-01T00:00:00.000000Z",
            "language": "en",
            "categories": ["news"],
            "summary": "Sample summary.",
        },
        "hits": [{"term": "sample", "field": "title", "text": "Sample", "start": 0, "end": 6}],
        "explanation": "matched 'sample' in title",
        "score": None,
        "story": {
            "id": "sto_sample",
            "item_count": 2,
            "sources": ["Example feed"],
            "languages": ["en"],
            "items": [],
        },
    }
    return template_context([alert, alert] if digest else [alert], digest=digest, kind="story")
