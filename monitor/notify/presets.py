"""Webhook bodies in the shapes chat and push services document, built from alert payloads. Pure.

- ``slack``: Slack incoming webhook, ``{"text": mrkdwn}`` (https://api.slack.com/messaging/webhooks);
  ``&``, ``<``, ``>`` escaped as Slack requires, links as ``<url|title>``.
- ``mattermost``: Mattermost incoming webhook, ``{"text": markdown}``.
- ``discord``: Discord webhook, ``{"content", "embeds": [...], "allowed_mentions": {"parse": []}}``; one embed
  per alert (at most 10, Discord's limit) with the service's field limits; mentions are disabled so a feed
  title holding ``@everyone`` pings nobody.
- ``teams``: Microsoft Teams (Workflows / incoming webhook) message with an Adaptive Card attachment.
- ``ntfy``: ntfy JSON publishing: the body ``{"topic", "title", "message", "click", "tags"}`` is POSTed to the
  server's root, the topic being the last path segment of the configured URL (https://ntfy.sh/my-topic).
- ``generic`` (no preset): the versioned notification (see payload.notification_payload), or a digest envelope.

A story notification names every rule that fired on the story in its rule line ("Rare earths, Putin · Source"),
says how widely the story was reported ("also reported by 3 more outlets, in 2 languages"), and an update is
headed "Update:" (incoming webhooks of chat services cannot reply in a thread; the generic payload carries
`thread` and `in_reply_to` for receivers that can).

A custom body is a Jinja2 template in the channel config (``body_template``), rendered in the sandbox with the
template context of templates.py; ``tojson`` gives JSON-safe strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from monitor.notify.payload import digest_payload, notification_payload, story_line
from monitor.notify.templates import oneline

__all__ = ["PRESETS", "Preset", "ntfy_target", "preset_body"]

Preset = Literal["generic", "slack", "discord", "teams", "mattermost", "ntfy"]
Alert = Mapping[str, Any]

DISCORD_MAX_EMBEDS = 10
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _link(alert: Alert) -> str | None:
    item = alert["item"]
    link = item.get("link") or item.get("url")
    return str(link) if link else None


def _title(alert: Alert) -> str:
    return oneline(alert["item"].get("title")) or "(untitled)"


def _source(alert: Alert) -> str:
    return oneline(alert["item"]["feed"].get("title")) or str(alert["item"]["feed"].get("url", ""))


def _rule(alert: Alert) -> str:
    return oneline(alert["rule"].get("title")) or str(alert["rule"]["id"])


def _rules(alerts: Sequence[Alert]) -> str:
    """Every rule of one notification, once each, in the order they fired."""
    return ", ".join(dict.fromkeys(_rule(a) for a in alerts))


def _heading(alerts: Sequence[Alert], digest: bool, update: bool = False) -> str:
    if digest:
        return f"{len(alerts)} alerts"
    return f"{'Update: ' if update else ''}{_rules(alerts)}: {_title(alerts[0])}"


# -- Slack ------------------------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_alert(alert: Alert, group: Sequence[Alert] = (), update: bool = False) -> str:
    group = group or (alert,)
    title = _slack_escape(_title(alert))
    link = _link(alert)
    # Slack splits a link at "|" and ends it at ">": keep both out of the URL and the title.
    head = f"*<{quote(link, safe=_URL_SAFE)}|{title.replace('|', '¦')}>*" if link else f"*{title}*"
    if update:
        head = "Update: " + head
    lines = [head, f"{_slack_escape(_rules(group))} · {_slack_escape(_source(alert))}"]
    summary = alert["item"].get("summary")
    if summary:
        lines.append(_slack_escape(oneline(summary)))
    also = story_line(group)
    if also:
        lines.append(_slack_escape(also))
    return "\n".join(lines)


def slack(alerts: Sequence[Alert], digest: bool, update: bool = False) -> dict[str, Any]:
    if not digest:
        return {"text": _cut(_slack_alert(alerts[0], alerts, update), 39_000), "unfurl_links": False}
    parts = [_slack_alert(a) for a in alerts]
    parts.insert(0, f"*{len(alerts)} alerts*")
    return {"text": _cut("\n\n".join(parts), 39_000), "unfurl_links": False}


# -- Mattermost -------------------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_[]()#<>|~" else ch for ch in text)


def _mattermost_alert(alert: Alert, group: Sequence[Alert] = (), update: bool = False) -> str:
    group = group or (alert,)
    title = _md_escape(_title(alert))
    link = _link(alert)
    head = (
        f"**[{title}]({link.replace('(', '%28').replace(')', '%29').replace(' ', '%20')})**"
        if link
        else f"**{title}**"
    )
    if update:
        head = "Update: " + head
    lines = [head, f"{_md_escape(_rules(group))} · {_md_escape(_source(alert))}"]
    summary = alert["item"].get("summary")
    if summary:
        lines.append("> " + _md_escape(oneline(summary)))
    also = story_line(group)
    if also:
        lines.append(_md_escape(also))
    return "\n".join(lines)


def mattermost(alerts: Sequence[Alert], digest: bool, update: bool = False) -> dict[str, Any]:
    if not digest:
        return {"text": _cut(_mattermost_alert(alerts[0], alerts, update), 16_000)}
    parts = [_mattermost_alert(a) for a in alerts]
    parts.insert(0, f"#### {len(alerts)} alerts")
    return {"text": _cut("\n\n".join(parts), 16_000)}


# -- Discord ----------------------------------------------------------------------------------------------


def _discord_embed(alert: Alert, group: Sequence[Alert] = (), update: bool = False) -> dict[str, Any]:
    group = group or (alert,)
    summary = oneline(alert["item"].get("summary"))
    explanations = [f"{_rule(a)}: {oneline(a.get('explanation'))}" for a in group] if len(group) > 1 else []
    parts = [summary, *explanations] if explanations else [summary, oneline(alert.get("explanation"))]
    description = "\n\n".join(p for p in (*parts, story_line(group)) if p)
    embed: dict[str, Any] = {
        "title": _cut(("Update: " if update else "") + _title(alert), 256),
        "description": _cut(description, 1_000),
        "footer": {"text": _cut(f"{_rules(group)} · {_source(alert)}", 2_048)},
    }
    link = _link(alert)
    if link:
        embed["url"] = link
    published = alert["item"].get("published")
    if published:
        embed["timestamp"] = published
    return embed


def discord(alerts: Sequence[Alert], digest: bool, update: bool = False) -> dict[str, Any]:
    if not digest:
        embed = _discord_embed(alerts[0], alerts, update)
        return {"content": "", "embeds": [embed], "allowed_mentions": {"parse": []}}
    shown = alerts[:DISCORD_MAX_EMBEDS]
    content = ""
    if digest:
        content = f"{len(alerts)} alerts" + (f" (showing {len(shown)})" if len(shown) < len(alerts) else "")
    return {
        "content": content,
        "embeds": [_discord_embed(a) for a in shown],
        "allowed_mentions": {"parse": []},
    }


# -- Microsoft Teams --------------------------------------------------------------------------------------


def _teams_blocks(alert: Alert, group: Sequence[Alert] = (), update: bool = False) -> list[dict[str, Any]]:
    group = group or (alert,)
    title = ("Update: " if update else "") + _title(alert)
    blocks: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "TextBlock", "text": f"{_rules(group)} · {_source(alert)}", "isSubtle": True, "wrap": True},
    ]
    summary = oneline(alert["item"].get("summary"))
    if summary:
        blocks.append({"type": "TextBlock", "text": summary, "wrap": True})
    also = story_line(group)
    if also:
        blocks.append({"type": "TextBlock", "text": also, "isSubtle": True, "wrap": True})
    link = _link(alert)
    if link:
        blocks.append(
            {
                "type": "ActionSet",
                "actions": [{"type": "Action.OpenUrl", "title": "Open article", "url": link}],
            }
        )
    return blocks


def teams(alerts: Sequence[Alert], digest: bool, update: bool = False) -> dict[str, Any]:
    body: list[dict[str, Any]] = []
    if digest:
        body.append(
            {"type": "TextBlock", "text": f"{len(alerts)} alerts", "weight": "Bolder", "size": "Large"}
        )
        for alert in alerts:
            body.append({"type": "Container", "separator": True, "items": _teams_blocks(alert)})
    else:
        body.append(
            {"type": "Container", "separator": True, "items": _teams_blocks(alerts[0], alerts, update)}
        )
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }


# -- ntfy -------------------------------------------------------------------------------------------------


def ntfy_target(url: str) -> tuple[str, str]:
    """(root URL to POST to, topic) for an ntfy topic URL. Raises ValueError when the URL names no topic."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    base, _, topic = path.rpartition("/")
    if not topic:
        raise ValueError(
            f"an ntfy URL names its topic as the last path segment (https://ntfy.sh/TOPIC), got {url!r}"
        )
    return urlunsplit((parts.scheme, parts.netloc, base + "/", "", "")), topic


def ntfy(alerts: Sequence[Alert], digest: bool, update: bool = False) -> dict[str, Any]:
    if digest:
        message = "\n".join(f"• {_title(a)} ({_source(a)})" for a in alerts)
    else:
        alert = alerts[0]
        parts = (_source(alert), oneline(alert["item"].get("summary")), story_line(alerts))
        message = "\n".join(p for p in parts if p)
    body: dict[str, Any] = {
        "title": _cut(_heading(alerts, digest, update), 250),
        "message": _cut(message, 4_000),
        "tags": sorted({str(a["rule"]["id"]) for a in alerts})[:5],
    }
    link = None if digest else _link(alerts[0])
    if link:
        body["click"] = link
    return body


def generic(
    alerts: Sequence[Alert],
    digest: bool,
    delivery_id: str,
    kind: str = "alert",
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    if digest:
        return digest_payload(delivery_id, alerts)
    return notification_payload(delivery_id, alerts, kind=kind, in_reply_to=in_reply_to)


PRESETS: dict[str, Callable[[Sequence[Alert], bool, bool], dict[str, Any]]] = {
    "slack": slack,
    "discord": discord,
    "teams": teams,
    "mattermost": mattermost,
    "ntfy": ntfy,
}


def preset_body(
    preset: Preset,
    alerts: Sequence[Alert],
    *,
    digest: bool,
    delivery_id: str,
    kind: str = "alert",
    in_reply_to: str | None = None,
) -> dict[str, Any]:
    """The JSON body a preset sends for these alerts: a digest (`digest`), one story notification naming every
    rule (`kind` story or update, see DeliveryRequest.kind), or one alert (`kind` alert)."""
    if not alerts:
        raise ValueError(f"delivery {delivery_id!r} holds no alerts")
    if preset == "generic":
        return generic(alerts, digest, delivery_id, kind, in_reply_to)
    return PRESETS[preset](alerts, digest, kind == "update")
