"""Rendering alerts for people: Jinja2 templates in a sandbox.

Every template (the bundled ones in ``templates/`` and the subject or body templates an operator writes in the
config) runs in an ``ImmutableSandboxedEnvironment``: a template can read the alert payload but cannot reach
Python internals, nor change the payload (``alert.item.update(...)``, ``alerts.append(...)``), which the other
part of the message, a retry cut to size and the fallback to the packaged templates render again. Templates
whose name ends in ``.html`` are autoescaped, so feed text becomes text in HTML mail; feed text is data and is
never evaluated, so a summary holding ``{{ 7*7 }}`` is shown as written.

Summaries may still carry markup that a feed double-escaped; the ``sanitize`` filter runs them through nh3 with
a small allowlist (text formatting and links, links forced to rel="noopener noreferrer nofollow"), which is what
the HTML templates use for them. The ``oneline`` filter folds all whitespace, line breaks included, to single
spaces: the form every header and subject takes.

Operator body templates for e-mail (``templates:`` on an email channel, see `compile_body_template`) run in the
same environment: an ``.html`` one autoescaped, a text one not, both with ``StrictUndefined``, and both may
import the bundled macros (``{% from "_alert.html" import story_html %}``); no other file can be included.
They are test-rendered when the config loads, so a syntax error or a misspelt variable is reported then, with
the template's file and line.

Template context (documented for operators in docs/design/notify.md, "Email body templates", and checked
against this function by tests/test_notify_email_templates.py): ``alert`` (the first alert payload), ``alerts`` (all of them), ``digest`` (bool), ``count``,
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
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from monitor.notify.payload import notification_payload, story_line

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_SUBJECT",
    "MAX_TEMPLATE_BYTES",
    "TemplateError",
    "compile_body_template",
    "compile_template",
    "filters",
    "oneline",
    "render",
    "render_body",
    "render_subject",
    "safe_url",
    "sample_context",
    "sanitize_html",
    "template_context",
    "template_line",
]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
# The key of pydantic's validation context that holds the config file's folder (monitor.config sets it), against
# which relative template paths are taken.
CONFIG_DIR = "config_dir"
DEFAULT_SUBJECT = (
    "{% if digest %}[monitor] {{ count }} alerts: {{ alerts | map(attribute='rule.title') | unique | join(', ') }}"
    "{% else %}[monitor] {% if update %}Update: {% endif %}{{ rules | join(', ') }}: {{ alert.item.title }}"
    " ({{ alert.item.feed.title }}){% endif %}"
)
MAX_SUBJECT_CHARS = 200
MAX_TEMPLATE_BYTES = 256 * 1024  # an operator's body template; the bundled ones are under 4 KiB

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


def _new_environment(autoescape: bool | None) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
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
def _environment(autoescape: bool | None = None) -> ImmutableSandboxedEnvironment:
    return _new_environment(autoescape)


def filters() -> list[str]:
    """The filters of our own that every template can use (besides Jinja's built-in ones)."""
    return ["oneline", "sanitize", "safe_url"]


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


def compile_body_template(
    source: str, *, filename: str, html: bool, digest: bool, kinds: Sequence[str] = ("story", "update")
) -> Template:
    """Compile an operator's e-mail body template and test-render it on a sample payload of each delivery kind
    it will meet (`kinds`; digests are their own kind), so that an unknown variable or a failing expression is
    found when the config loads, not at 3 a.m. when the first alert comes.

    `html` selects the autoescaped environment (feed text is escaped), else no escaping (text/plain). Raises
    ValueError "FILE:LINE: reason" (the line of the template, where Jinja knows it)."""
    env = _environment(html)
    try:
        template = env.template_class.from_code(
            env, env.compile(source, filename=filename), env.make_globals(None), None
        )
    except TemplateSyntaxError as exc:
        raise ValueError(f"{filename}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except TemplateError as exc:  # an import of a file that is not there, ...
        raise ValueError(f"{filename}: {exc}") from exc
    for kind in ("digest",) if digest else kinds:
        try:
            template.render(sample_context(digest=digest, kind=kind))
        except Exception as exc:  # any failure of an operator's template is a config error
            line = template_line(exc, filename)
            where = f"{filename}:{line}" if line else filename
            what = f"a {kind} notification" if not digest else "a digest"
            raise ValueError(f"{where}: fails on {what}: {type(exc).__name__}: {exc}") from exc
    return template


def template_line(exc: BaseException, filename: str) -> int | None:
    """The line of template `filename` where `exc` was raised: Jinja rewrites tracebacks so that a template's
    frames carry its file name and line."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_body(
    template: Template,
    alerts: Sequence[Mapping[str, Any]],
    *,
    digest: bool,
    kind: str = "alert",
    delivery_id: str = "",
    in_reply_to: str | None = None,
) -> str:
    """Render an operator's body template with the same context as the bundled templates."""
    return template.render(
        template_context(alerts, digest=digest, kind=kind, delivery_id=delivery_id, in_reply_to=in_reply_to)
    )


def sample_context(*, digest: bool, kind: str = "story") -> dict[str, Any]:
    """A context with every payload field filled, to check templates when the config is loaded: one alert of
    `kind` (story, update or alert, see DeliveryRequest.kind), or a digest of two alerts on two stories."""
    alert: dict[str, Any] = {
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
    if digest:
        second = {
            **alert,
            "id": "alr_sample2",
            "rule": {"id": "other-rule", "title": "Other rule"},
            "story": {**alert["story"], "id": "sto_other"},
        }
        return template_context([alert, second], digest=True, kind="digest")
    return template_context([alert], digest=False, kind=kind)
