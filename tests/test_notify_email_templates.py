"""E-mail body templates of the operator's own (issue 14 item 5): files next to a real monitor.yaml, loaded by
the real config loader, sent through EmailChannel to a real aiosmtpd server on 127.0.0.1 and parsed back."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.alerts import make_payload, make_request
from support.receivers import SMTPReceiver

from monitor.cli import main
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.notify import EmailChannel, EmailConfig
from monitor.notify.templates import _environment, filters, sample_context, template_context
from monitor.types import DeliveryRequest

DOC = Path(__file__).resolve().parent.parent / "docs" / "design" / "notify.md"

TEXT = """\
{{ rules | join(", ") }}: {{ alert.item.title }}
{% for a in notification.alerts %}
- {{ a.rule.id }}: {{ a.explanation }}
{% endfor %}
{{ also or "only one outlet" }}
id={{ notification.id }} type={{ notification.type }}
"""
HTML = """\
{% from "_alert.html" import story_html %}
<html><body>
<h1 class="custom">{{ alert.item.title }}</h1>
<p class="summary">{{ alert.item.summary | sanitize }}</p>
<a href="{{ alert.item.link | safe_url }}">{{ alert.item.feed.title }}</a>
{{ story_html(notification, also) }}
</body></html>
"""
DIGEST_TEXT = """\
DIGEST {{ count }} alerts on {{ stories | length }} stories
{% for s in stories %}
* {{ s.notification.item.title }} [{{ s.notification.rules | map(attribute="id") | join(",") }}]
{% endfor %}
"""
DIGEST_HTML = """\
<html><body><h1>Digest of {{ count }}</h1><ol>
{% for s in stories %}<li>{{ s.notification.item.title }}</li>{% endfor %}
</ol></body></html>
"""


@pytest.fixture
def smtp() -> Iterator[SMTPReceiver]:
    with SMTPReceiver() as server:
        yield server


def write_setup(
    folder: Path, server: SMTPReceiver | None = None, templates: dict[str, str] | None = None, **extra: str
) -> Path:
    """monitor.yaml with one email channel `mail` whose `templates:` name files under mail/ (relative)."""
    (folder / "mail").mkdir(parents=True, exist_ok=True)
    lines = [
        "channels:",
        "  mail:",
        "    type: email",
        f"    host: {server.host if server else '127.0.0.1'}",
        f"    port: {server.port if server else 25}",
        "    sender: monitor@example.org",
        "    to: [desk@example.org]",
        "    timeout: 10",
    ]
    lines += [f"    {key}: {value}" for key, value in extra.items()]
    if templates:
        lines.append("    templates:")
        for key, source in templates.items():
            name = f"{key}.{'html' if 'html' in key else 'txt'}"
            (folder / "mail" / name).write_text(source, encoding="utf-8")
            lines.append(f"      {key}: mail/{name}")
    config = folder / "monitor.yaml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def channel_from(config: Path) -> EmailChannel:
    mail = load_config(config).channels["mail"]
    assert isinstance(mail, EmailConfig)
    return EmailChannel("mail", mail)


def send(channel: EmailChannel, request: DeliveryRequest) -> None:
    async def run() -> None:
        try:
            await channel.send(request)
        finally:
            await channel.aclose()

    asyncio.run(run())


def story_request(delivery_id: str = "msg_1", **changes: Any) -> DeliveryRequest:
    return dataclasses.replace(make_request(delivery_id, channel="mail", **changes), kind="story")


def parts(message: Any) -> tuple[str, str]:
    """The text and HTML parts, with the wire's CRLF line ends read back as LF."""
    return (
        message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n"),
        message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n"),
    )


def test_custom_text_and_html_templates_are_what_arrives(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(tmp_path, smtp, {"text": TEXT, "html": HTML})
    payloads = (make_payload("alr_1"), make_payload("alr_2", rule_id="metals"))
    send(channel_from(config), story_request("msg_7", alerts=payloads))
    (mail,) = smtp.mails
    assert mail.rcpt_tos == ("desk@example.org",)
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[monitor] Rare earths: Rare earth exports fall (Example News)"  # packaged
    text, html = parts(message)
    assert text.startswith("Rare earths: Rare earth exports fall\n")
    assert "- rare-earths: matched 'rare earth' (" in text and "- metals: matched" in text
    assert "id=msg_7 type=notification" in text and "only one outlet" in text
    assert '<h1 class="custom">Rare earth exports fall</h1>' in html
    assert '<a href="https://news.example.org/2025/rare-earths">Example News</a>' in html
    assert 'class="notification"' in html  # the packaged macro, imported by the custom template
    assert "Sent by monitor" not in text + html  # nothing of the packaged bodies


def test_only_the_parts_named_are_replaced(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(tmp_path, smtp, {"html": HTML})
    send(channel_from(config), story_request())
    text, html = parts(smtp.messages[0])
    assert "Sent by monitor." in text and "Rule" in text  # the packaged text part
    assert '<h1 class="custom">' in html


def test_digest_templates_render_stories(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(
        tmp_path, smtp, {"text": TEXT, "digest_text": DIGEST_TEXT, "digest_html": DIGEST_HTML}, digest="1h"
    )
    alerts = (
        make_payload("alr_1"),
        make_payload("alr_2", rule_id="metals"),  # the same story (sto_1) as alr_1
        {**make_payload("alr_3", title="Copper price jumps", key="k3"), "story": None},
    )
    send(channel_from(config), make_request("dig_1", channel="mail", alerts=alerts, digest=True))
    text, html = parts(smtp.messages[0])
    assert text.startswith("DIGEST 3 alerts on 2 stories\n")
    assert "* Rare earth exports fall [rare-earths,metals]" in text
    assert "* Copper price jumps [rare-earths]" in text
    assert html.startswith("<html><body><h1>Digest of 3</h1>")
    assert "<li>Rare earth exports fall</li><li>Copper price jumps</li>" in html


def test_html_is_autoescaped_text_is_not_and_feed_text_never_runs(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(tmp_path, smtp, {"text": TEXT, "html": HTML})
    payload = make_payload(
        title='<script>alert(1)</script> {{ 7*7 }} {% if true %}x{% endif %} "q"',
        summary="<b>bold</b><img src=x onerror=alert(2)> {{ config }} a < b",
        link="javascript:alert(3)",
        feed_title="{{ self.__init__.__globals__ }}",
    )
    send(channel_from(config), story_request(alerts=(payload,)))
    text, html = parts(smtp.messages[0])
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{ 7*7 }} {% if true %}x{% endif %} &#34;q&#34;" in html and "49" not in html
    assert "<b>bold</b>" in html and "<img" not in html and "onerror" not in html  # sanitize
    assert "{{ config }} a &lt; b" in html
    assert "javascript:" not in html and 'href=""' in html  # safe_url
    assert "{{ self.__init__.__globals__ }}" in html
    # text/plain is not escaped: the title arrives as written, and still literally.
    assert '<script>alert(1)</script> {{ 7*7 }} {% if true %}x{% endif %} "q"' in text
    assert "49" not in text


def test_a_syntax_error_names_channel_key_file_and_line(tmp_path: Path) -> None:
    config = write_setup(tmp_path, templates={"text": TEXT, "html": "<p>\n\n{{ alert.item.title }\n</p>\n"})
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    error = caught.value
    assert error.file == str(config) and error.line == 10 and error.field == "channels.mail.templates"
    assert (
        f"templates.html: {tmp_path / 'mail' / 'html.html'}:3: template syntax error: unexpected '}}'"
        in str(error)
    )


def test_an_undefined_variable_is_caught_at_load_with_its_line(tmp_path: Path) -> None:
    config = write_setup(
        tmp_path,
        templates={
            "text": "ok {{ alert.item.title }}\n{{ alert.item.titel }}\n",
            "digest_html": "<p>{{ count }}</p>\n<p>{{ stories[0].notification.alerts[0].rule.name }}</p>\n",
        },
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert (
        f"templates.text: {tmp_path / 'mail' / 'text.txt'}:2: fails on a story notification: UndefinedError: "
        "'dict object' has no attribute 'titel'"
    ) in message
    assert f"templates.digest_html: {tmp_path / 'mail' / 'digest_html.html'}:2: fails on a digest" in message
    assert "'name'" in message


def test_templates_are_checked_for_the_channels_grouping(tmp_path: Path) -> None:
    """notification.alerts exists in a story notification, not in a one-alert message (group_by [rule, story])."""
    body = "{% for a in notification.alerts %}{{ a.rule.id }}{% endfor %}\n"
    assert load_config(write_setup(tmp_path / "a", templates={"text": body}))
    with pytest.raises(ConfigError, match=r"text\.txt:1: fails on a alert notification: UndefinedError"):
        load_config(write_setup(tmp_path / "b", templates={"text": body}, group_by="[rule, story]"))
    guarded = "{% if notification.alerts is defined %}x{% else %}{{ notification.rule.id }}{% endif %}\n"
    assert load_config(write_setup(tmp_path / "c", templates={"text": guarded}, group_by="[rule, story]"))


def test_sandbox_and_file_access_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("password: hunter2\n", encoding="utf-8")
    for n, body in enumerate(
        [
            "{{ alert.__class__.__mro__ }}",
            '{% include "../secret.txt" %}',
            '{% include "monitor.yaml" %}',
            '{% include "/etc/passwd" %}',
        ]
    ):
        config = write_setup(tmp_path / str(n), templates={"text": body})
        with pytest.raises(ConfigError, match=r"templates\.text: .*text\.txt:1: fails on a story") as caught:
            load_config(config)
        assert "hunter2" not in str(caught.value)


def test_missing_unreadable_or_relative_without_a_file(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    config.write_text(config.read_text() + "    templates:\n      html: mail/nowhere.html\n")
    with pytest.raises(ConfigError, match=r"templates\.html: cannot read .*mail/nowhere\.html: No such file"):
        load_config(config)
    (tmp_path / "mail" / "latin1.html").write_bytes(b"<p>\nGr\xf6\xdfe</p>\n")
    config.write_text(config.read_text().replace("nowhere.html", "latin1.html"))
    with pytest.raises(ConfigError, match=r"latin1\.html:2: not UTF-8 text"):
        load_config(config)
    with pytest.raises(ValueError, match="is relative, and there is no config file"):
        EmailConfig(
            host="127.0.0.1", sender="m@example.org", to=("d@example.org",), templates={"text": "alert.txt"}
        )
    absolute = tmp_path / "mail" / "abs.txt"
    absolute.write_text("{{ alert.item.title }}\n", encoding="utf-8")
    made = EmailConfig(
        host="127.0.0.1", sender="m@example.org", to=("d@example.org",), templates={"text": absolute}
    )
    assert made.body_templates() == {"text": (absolute, "{{ alert.item.title }}\n")}


def test_monitor_check_reports_template_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_setup(tmp_path, templates={"text": "{{ alert.item.titel }}\n", "html": "{% if %}\n"})
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "channels.mail.templates" in err
    assert "text.txt:1: fails on a story notification" in err and "html.html:1: template syntax error" in err
    config = write_setup(tmp_path, templates={"text": TEXT, "html": HTML})
    assert main(["check", "--config", str(config)]) == 0
    assert "OK" in capsys.readouterr().out


def test_what_was_checked_at_load_is_what_is_sent(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(tmp_path, smtp, {"text": "checked {{ alert.item.title }}\n"})
    mail = load_config(config).channels["mail"]
    (tmp_path / "mail" / "text.txt").write_text("{{ broken\n", encoding="utf-8")  # edited after the load
    assert isinstance(mail, EmailConfig)
    send(EmailChannel("mail", mail), story_request())
    assert parts(smtp.messages[0])[0] == "checked Rare earth exports fall\n"
    with pytest.raises(ConfigError, match="template syntax error"):  # the next reload refuses the edit
        load_config(config)


def test_a_failure_at_send_time_falls_back_to_the_packaged_templates(
    tmp_path: Path, smtp: SMTPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A branch the sample payload does not take fails on a real alert: the alert still goes out."""
    text = (
        '{% if alert.item.language == "ru" %}{{ alert.item.titel }}{% endif %}custom {{ alert.item.title }}\n'
    )
    subject = "\"{% if alert.item.language == 'ru' %}{{ 1 // 0 }}{% endif %}[desk] {{ alert.item.title }}\""
    config = write_setup(tmp_path, smtp, {"text": text, "html": HTML}, subject=subject)
    channel = channel_from(config)
    send(channel, story_request("msg_en"))
    with caplog.at_level(logging.WARNING, logger="monitor.notify"):
        send(channel, story_request("msg_ru", alerts=(make_payload(language="ru", title="Редкие земли"),)))
    english, russian = smtp.messages
    assert english["Subject"] == "[desk] Rare earth exports fall"
    assert parts(english)[0] == "custom Rare earth exports fall\n"
    assert russian["Subject"] == "[monitor] Rare earths: Редкие земли (Example News)"  # packaged subject
    text_part, html_part = parts(russian)
    assert "Title:   Редкие земли" in text_part and "Sent by monitor." in text_part
    assert "Sent by monitor." in html_part and 'class="custom"' not in html_part  # all packaged
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "channel 'mail': the subject template failed: ZeroDivisionError" in w and "msg_ru" in w
        for w in warnings
    ), warnings


def test_a_failing_body_keeps_a_working_custom_subject(
    tmp_path: Path, smtp: SMTPReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    text = 'custom\n{% if alert.item.language == "ru" %}\n{{ alert.item.titel }}\n{% endif %}\n'
    config = write_setup(tmp_path, smtp, {"text": text}, subject='"[desk] {{ alert.item.title }}"')
    with caplog.at_level(logging.WARNING, logger="monitor.notify"):
        send(channel_from(config), story_request("msg_ru", alerts=(make_payload(language="ru"),)))
    message = smtp.messages[0]
    assert message["Subject"] == "[desk] Rare earth exports fall"
    assert "Sent by monitor." in parts(message)[0]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"channel 'mail': templates.text ({tmp_path / 'mail' / 'text.txt'}:3) failed: UndefinedError"
        in warning
    )
    assert "delivery msg_ru is sent with the packaged templates instead" in warning


def test_a_template_too_large_for_max_body_bytes_falls_back(tmp_path: Path, smtp: SMTPReceiver) -> None:
    config = write_setup(
        tmp_path, smtp, {"text": "{% for n in range(20000) %}padding {% endfor %}\n"}, max_body_bytes="8192"
    )
    send(channel_from(config), story_request())
    (mail,) = smtp.mails
    assert len(mail.data) <= 8192 + 1024 and "Sent by monitor." in parts(mail.message)[0]


# The documented variables (docs/design/notify.md, "Email body templates" / "Variables") against the context.


def documented_variables() -> list[tuple[str, str]]:
    section = DOC.read_text(encoding="utf-8").split("## Email body templates", 1)[1].split("\n## ", 1)[0]
    table = section.split("### Variables", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (both|message|digest) \|", table, re.MULTILINE)
    assert len(rows) > 30
    return rows


def contexts() -> dict[str, list[dict[str, Any]]]:
    """Contexts built from real payloads (support.alerts) and the load-time samples, per kind of message."""
    first, second = make_payload("alr_1"), make_payload("alr_2", rule_id="metals", key="k2", feed_title="B")
    messages = [
        template_context([first, second], digest=False, kind="story", delivery_id="msg_1"),
        template_context([second], digest=False, kind="update", delivery_id="msg_2", in_reply_to="msg_1"),
        sample_context(digest=False, kind="story"),
        sample_context(digest=False, kind="update"),
    ]
    digests = [
        template_context([first, second], digest=True, delivery_id="dig_1"),
        sample_context(digest=True),
    ]
    return {"message": messages, "digest": digests, "both": messages + digests}


def is_defined(expression: str, context: dict[str, Any]) -> bool:
    expression = expression.replace("[]", "[0]")
    rendered = _environment(False).from_string("{{ (" + expression + ") is defined }}").render(context)
    return rendered == "True"


@pytest.mark.parametrize(("name", "where"), documented_variables())
def test_every_documented_variable_is_in_the_context(name: str, where: str) -> None:
    for context in contexts()[where]:
        assert is_defined(name, context), f"{name} ({where}) is not in {sorted(context)}"


def test_every_variable_of_the_context_and_every_filter_is_documented() -> None:
    names = {name for name, _where in documented_variables()}
    for context in contexts()["both"]:
        assert set(context) <= names, set(context) - names
    assert set(template_context([make_payload()], digest=False)) <= names
    section = DOC.read_text(encoding="utf-8").split("## Email body templates", 1)[1]
    for name in filters():
        assert f"`{name}`" in section and name in _environment(True).filters
    # A name that is not in the context is not "defined" (the check above can fail).
    assert not is_defined("alert.item.titel", contexts()["message"][0])
    assert not is_defined(
        "notification.alerts", template_context([make_payload()], digest=False, kind="alert")
    )


def test_a_template_cannot_change_the_payload(tmp_path: Path) -> None:
    """The sandbox is immutable: the text part cannot rewrite what the HTML part (or the fallback) renders."""
    config = write_setup(
        tmp_path, templates={"text": '{% set _ = alert.item.update({"title": "forged"}) %}x\n'}
    )
    with pytest.raises(ConfigError, match=r"text\.txt:1: fails on a story notification: SecurityError"):
        load_config(config)
