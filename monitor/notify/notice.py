"""Notices: notifications that are not alerts (feed health, monitor.health), in the shapes channels send.

A notice is one JSON payload (`type: "feed_health"`, see monitor.health.HealthNotice.payload) queued in the
outbox like an alert delivery, so it has the same at-least-once guarantee, retries, rate limits and ids. This
module is the whole interface between notices and channels: a webhook sends `notice_webhook_body`, an email
`notice_message_text`. Pure.

- generic webhook (and a `body_template` channel, whose template is written for alerts): the payload itself;
- slack / mattermost: `{"text"}`; discord: `{"content", "allowed_mentions": {"parse": []}}`; teams: a message
  with an Adaptive Card holding the text; ntfy: `{"title", "message", "tags"}` (the topic is added by the channel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.notify.templates import oneline

__all__ = ["notice_message_text", "notice_subject", "notice_webhook_body"]

Notice = Mapping[str, Any]

_HEADINGS = {
    "failing": "Feed failing",
    "recovered": "Feed recovered",
    "silent": "Feed silent",
    "guid_churn": "Feed churning GUIDs",
    "parked": "Feed parked",
}


def _escalation_subject(notice: Notice) -> str:
    story = notice.get("story") or {}
    severity = str(notice.get("severity", "")).upper()
    return (
        f"[monitor] Escalation ({severity}): {oneline(story.get('title'))} "
        f"({notice.get('outlets')} outlets within {notice['threshold']['within']})"
    )


def _escalation_text(notice: Notice) -> str:
    story = notice.get("story") or {}
    lines = [
        oneline(notice["detail"]),
        "",
        f"Severity:  {notice.get('severity')}",
        f"Rule:      {oneline(notice['rule'].get('title'))} ({notice['rule']['id']})",
        f"Story:     {story.get('id')} ({story.get('item_count')} items)",
        f"Outlets:   {', '.join(oneline(o) for o in story.get('outlets') or [])}",
    ]
    if story.get("languages"):
        lines.append(f"Languages: {', '.join(story['languages'])}")
    lines += ["", f"`monitor stories show {story.get('id')}` lists every item."]
    return "\n".join(lines) + "\n"


def notice_subject(notice: Notice) -> str:
    if notice.get("type") == "escalation":
        return _escalation_subject(notice)
    feed = notice["feed"]
    name = oneline(feed.get("title")) or str(feed["url"])
    return f"[monitor] {_HEADINGS.get(str(notice['condition']), 'Feed health')}: {name}"


def notice_message_text(notice: Notice) -> str:
    if notice.get("type") == "escalation":
        return _escalation_text(notice)
    lines = [
        oneline(notice["detail"]),
        "",
        f"Feed:      {notice['feed']['url']}",
        f"Condition: {notice['condition']}"
        + (f" (recovered from {notice['recovered_from']})" if notice.get("recovered_from") else ""),
    ]
    if notice.get("since"):
        lines.append(f"Since:     {notice['since']}")
    if notice.get("last_error"):
        lines.append(f"Last error: {oneline(notice['last_error'])}")
    lines += ["", "`monitor feeds` shows every feed's state."]
    return "\n".join(lines) + "\n"


def notice_webhook_body(preset: str, notice: Notice) -> dict[str, Any]:
    if preset == "generic":
        return dict(notice)
    subject = notice_subject(notice).removeprefix("[monitor] ")
    detail = oneline(notice["detail"])
    if preset in ("slack", "mattermost"):
        escaped = detail.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return {"text": f"*{subject}*\n{escaped if preset == 'slack' else detail}"}
    if preset == "discord":
        return {"content": f"**{subject}**\n{detail}"[:2000], "allowed_mentions": {"parse": []}}
    if preset == "teams":
        card = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": subject, "weight": "Bolder", "wrap": True},
                {"type": "TextBlock", "text": detail, "wrap": True},
            ],
        }
        return {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        }
    if preset == "ntfy":
        if notice.get("type") == "escalation":
            # ntfy's priorities: 4 high, 5 max (a critical escalation may break through do-not-disturb).
            priority = {"critical": 5, "high": 4}.get(str(notice.get("severity")), 3)
            return {"title": subject, "message": detail, "tags": ["rotating_light"], "priority": priority}
        return {
            "title": subject,
            "message": detail,
            "tags": ["warning" if notice.get("condition") != "recovered" else "white_check_mark"],
        }
    return dict(notice)
