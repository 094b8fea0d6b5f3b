"""The email channel against a real aiosmtpd server on 127.0.0.1; messages parsed back with the email package."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr, ValidationError
from support.alerts import make_payload, make_request
from support.receivers import AuthAttempt, SMTPReceiver
from support.tls import SelfSigned, self_signed

from monitor.errors import DeliveryError
from monitor.notify import EmailChannel, EmailConfig


@pytest.fixture
def smtp() -> Iterator[SMTPReceiver]:
    with SMTPReceiver() as server:
        yield server


def config_for(server: SMTPReceiver, **changes: Any) -> EmailConfig:
    fields: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "sender": "Monitor <monitor@example.org>",
        "to": ["analyst@example.org"],
        "timeout": 10,
    }
    fields.update(changes)
    return EmailConfig(**fields)


def send(config: EmailConfig, request: Any = None) -> None:
    async def run() -> None:
        channel = EmailChannel("mail", config)
        try:
            await channel.send(request or make_request(channel="mail"))
        finally:
            await channel.aclose()

    asyncio.run(run())


def parts(message: Any) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def test_message_is_multipart_and_names_rule_title_source_and_link(smtp: SMTPReceiver) -> None:
    send(config_for(smtp), make_request("msg_42", channel="mail"))
    (mail,) = smtp.mails
    assert mail.mail_from == "monitor@example.org" and mail.rcpt_tos == ("analyst@example.org",)
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[monitor] Rare earths: Rare earth exports fall (Example News)"
    assert message["Message-ID"] == "<msg_42@example.org>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Monitor-Rule"] == "rare-earths"
    text, html = parts(message)
    for body in (text, html):
        assert "Rare earths" in body and "Rare earth exports fall" in body and "Example News" in body
        assert "https://news.example.org/2025/rare-earths" in body
    assert '<a href="https://news.example.org/2025/rare-earths">' in html


def test_message_id_is_stable_across_retries(smtp: SMTPReceiver) -> None:
    config = config_for(smtp)
    send(config, make_request("msg_same", channel="mail", attempt=1))
    send(config, make_request("msg_same", channel="mail", attempt=3))
    first, second = smtp.messages
    assert first["Message-ID"] == second["Message-ID"] == "<msg_same@example.org>"


def test_header_injection_from_a_feed_title_is_impossible(smtp: SMTPReceiver) -> None:
    title = "Breaking\r\nBcc: evil@example.net\r\n =?UTF-8?Q?=0A?=Bcc: x@y\nX-Injected: 1"
    send(config_for(smtp), make_request(channel="mail", alerts=(make_payload(title=title),)))
    (mail,) = smtp.mails
    assert mail.rcpt_tos == ("analyst@example.org",)
    message = mail.message
    assert message["Bcc"] is None and message["X-Injected"] is None
    subject = message["Subject"]
    assert "\n" not in subject and "\r" not in subject
    assert "Bcc: evil@example.net" in subject  # shown as text, on the one line
    assert "Bcc: x@y" in subject
    header_block = mail.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    header_names = [
        line.split(":", 1)[0].lower() for line in header_block.splitlines() if line[:1] not in " \t"
    ]
    assert "bcc" not in header_names and "x-injected" not in header_names


def test_non_ascii_subject_is_encoded_and_decodes_back(smtp: SMTPReceiver) -> None:
    title = "Путин и Трамп: Größe 稀土 «peace»"
    send(
        config_for(smtp),
        make_request(channel="mail", alerts=(make_payload(title=title, feed_title="Новости"),)),
    )
    (mail,) = smtp.mails
    raw_subject = next(line for line in mail.data.split(b"\r\n") if line.startswith(b"Subject:"))
    assert raw_subject.isascii() and b"=?utf-8?" in raw_subject.lower()
    assert mail.message["Subject"] == f"[monitor] Rare earths: {title} (Новости)"
    text, _html = parts(mail.message)
    assert title in text


def test_template_syntax_in_feed_text_is_rendered_literally(smtp: SMTPReceiver) -> None:
    payload = make_payload(summary="Costs {{ 7*7 }} and {% if true %}x{% endif %}", title="{{ 7*7 }}")
    send(config_for(smtp), make_request(channel="mail", alerts=(payload,)))
    message = smtp.messages[0]
    assert "{{ 7*7 }}" in message["Subject"] and "49" not in message["Subject"]
    text, html = parts(message)
    for body in (text, html):
        assert "Costs {{ 7*7 }} and {% if true %}x{% endif %}" in body
        assert "49" not in body


def test_feed_html_is_sanitized_in_the_html_part(smtp: SMTPReceiver) -> None:
    payload = make_payload(
        summary='<b>bold</b><script>steal()</script><a href="javascript:x()" onclick="y()">l</a>'
    )
    send(config_for(smtp), make_request(channel="mail", alerts=(payload,)))
    _text, html = parts(smtp.messages[0])
    assert "<b>bold</b>" in html
    assert "<script" not in html and "steal()" not in html
    assert "javascript:" not in html and "onclick" not in html


def test_digest_is_one_message_listing_every_alert(smtp: SMTPReceiver) -> None:
    second = make_payload("alr_2", title="Second story", rule_id="other", key="k2")
    second["story"]["id"] = "sto_2"
    same_story = make_payload("alr_3", title="First story", rule_id="third")
    same_story["rule"]["title"] = "Third rule"
    alerts = (make_payload("alr_1", title="First story"), second, same_story)
    send(config_for(smtp), make_request("msg_d", channel="mail", alerts=alerts, digest=True))
    (message,) = smtp.messages
    assert message["Subject"].startswith("[monitor] 3 alerts")
    assert message["X-Monitor-Rule"] == "other, rare-earths, third"
    text, html = parts(message)
    for body in (text, html):
        assert "First story" in body and "Second story" in body
    # One entry per story, naming every rule that fired on it (issue 8).
    assert text.startswith("3 alerts on 2 stories") and "=== 2/2 ===" in text and "=== 3/" not in text
    assert "Rules:   Rare earths (rare-earths), Third rule (third)" in text


def test_custom_subject_template(smtp: SMTPReceiver) -> None:
    send(config_for(smtp, subject="ALERT {{ alert.rule.id }} - {{ alert.item.title }}"))
    assert smtp.messages[0]["Subject"] == "ALERT rare-earths - Rare earth exports fall"


def test_smtp_4xx_is_retryable_and_5xx_is_not() -> None:
    with SMTPReceiver(["451 4.3.0 mailbox busy, try later", "550 5.7.1 rejected by policy"]) as server:
        config = config_for(server)
        with pytest.raises(DeliveryError) as first:
            send(config)
        with pytest.raises(DeliveryError) as second:
            send(config)
        send(config)
        assert len(server.messages) == 1
    assert first.value.retryable and first.value.status == 451 and "mailbox busy" in str(first.value)
    assert not second.value.retryable and second.value.status == 550


def test_connection_refused_is_retryable() -> None:
    with SMTPReceiver() as server:
        config = config_for(server)
    with pytest.raises(DeliveryError) as caught:
        send(config)
    assert caught.value.retryable


def test_login_with_credentials_and_refused_login() -> None:
    with SMTPReceiver(credentials=("user", "s3cret")) as server:
        send(config_for(server, username="user", password="s3cret"))
        assert len(server.messages) == 1
        with pytest.raises(DeliveryError, match="authentication refused") as caught:
            send(config_for(server, username="user", password="wrong"))
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ssl": True, "starttls": True}, "not both"),
        ({"username": "u"}, "go together"),
        ({"host": "smtp.example.org", "username": "u", "password": "p"}, "unencrypted"),
        ({"sender": "not an address"}, "sender"),
        ({"to": []}, "to"),
        ({"to": ["a@example.org\r\nBcc: b@example.org"]}, "line break"),
        ({"subject": "{{ alert.nope }}"}, "subject template"),
        ({"port": 0}, "port"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_config_errors_name_the_problem(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"host": "127.0.0.1", "sender": "m@example.org", "to": ["a@example.org"]}
    fields.update(changes)
    with pytest.raises(ValidationError, match=message):
        EmailConfig(**fields)


def test_default_ports_and_secret_kept_out_of_reprs() -> None:
    base: dict[str, Any] = {"host": "smtp.example.org", "sender": "m@example.org", "to": ["a@example.org"]}
    assert EmailConfig(**base, ssl=True).effective_port == 465
    assert EmailConfig(**base, starttls=True).effective_port == 587
    assert EmailConfig(**base).effective_port == 25
    config = EmailConfig(**base, starttls=True, username="u", password=SecretStr("hunter2"))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())


# -- TLS: STARTTLS and implicit TLS against aiosmtpd with a throw-away certificate ---------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """Valid for localhost and 127.0.0.1."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def name_only_cert(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """Valid for localhost only, so a client that verifies names refuses it for 127.0.0.1."""
    return self_signed(tmp_path_factory.mktemp("tls-name"), dns=("localhost",), ips=())


Mode = Literal["starttls", "ssl"]
CREDENTIALS = ("user", "s3cret")


def tls_receiver(cert: SelfSigned, mode: Mode) -> SMTPReceiver:
    return SMTPReceiver(tls=cert.server_context(), mode=mode, credentials=CREDENTIALS)


def tls_config(server: SMTPReceiver, mode: Mode, **changes: Any) -> EmailConfig:
    fields: dict[str, Any] = {mode: True, "username": CREDENTIALS[0], "password": CREDENTIALS[1]}
    fields.update(changes)
    return config_for(server, **fields)


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_with_auth_delivers_and_the_server_saw_tls_before_auth(cert: SelfSigned, mode: Mode) -> None:
    with tls_receiver(cert, mode) as server:
        send(tls_config(server, mode, ca_file=cert.cert))
        (mail,) = server.mails
        attempts = server.auth_attempts
    assert mail.tls is not None and mail.tls[1].startswith("TLSv1.")
    assert mail.authenticated
    assert attempts == [AuthAttempt("user", accepted=True, tls=True)]
    assert mail.message["Subject"].startswith("[monitor] Rare earths")


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_untrusted_certificate_is_not_retryable_and_nothing_is_sent(cert: SelfSigned, mode: Mode) -> None:
    with tls_receiver(cert, mode) as server:
        with pytest.raises(DeliveryError) as caught:
            send(tls_config(server, mode))  # no ca_file: the system store does not know this certificate
        assert server.mails == [] and server.auth_attempts == []
    message = str(caught.value)
    assert not caught.value.retryable
    assert "certificate" in message and "not accepted" in message and "ca_file" in message


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_ca_file_keeps_host_name_verification(name_only_cert: SelfSigned, mode: Mode) -> None:
    with tls_receiver(name_only_cert, mode) as server:
        with pytest.raises(DeliveryError, match="certificate") as caught:
            send(tls_config(server, mode, ca_file=name_only_cert.cert))  # host 127.0.0.1, cert: localhost
        assert not caught.value.retryable
        assert "mismatch" in str(caught.value) and "127.0.0.1" in str(caught.value)
        assert server.mails == [] and server.auth_attempts == []
        send(tls_config(server, mode, ca_file=name_only_cert.cert, host="localhost"))
        assert len(server.mails) == 1


def test_starttls_not_offered_is_an_error_and_nothing_goes_out_in_plain(cert: SelfSigned) -> None:
    # A plain server that would even take the password without TLS: the client must not give it.
    with SMTPReceiver(credentials=CREDENTIALS) as server:
        with pytest.raises(DeliveryError, match="STARTTLS") as caught:
            send(tls_config(server, "starttls", ca_file=cert.cert))
        assert server.mails == [] and server.auth_attempts == []
    assert not caught.value.retryable and "nothing sent" in str(caught.value)


def test_wrong_password_over_tls_is_not_retryable_and_names_authentication(cert: SelfSigned) -> None:
    with tls_receiver(cert, "starttls") as server:
        with pytest.raises(DeliveryError, match="authentication refused") as caught:
            send(tls_config(server, "starttls", ca_file=cert.cert, password="wrong"))
        assert server.mails == []
        assert server.auth_attempts == [AuthAttempt("user", accepted=False, tls=True)]
    assert not caught.value.retryable and caught.value.status == 535


def test_implicit_tls_against_a_plain_server_fails_naming_tls(cert: SelfSigned) -> None:
    with SMTPReceiver() as server:
        with pytest.raises(DeliveryError, match="TLS handshake") as caught:
            send(config_for(server, ssl=True, ca_file=cert.cert))
        assert server.mails == []
    assert caught.value.retryable  # not a certificate verdict: see _classify_smtp


def test_ca_file_errors_name_the_problem(tmp_path: Path, cert: SelfSigned) -> None:
    base: dict[str, Any] = {"host": "smtp.example.org", "sender": "m@example.org", "to": ["a@example.org"]}
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n", "utf-8")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"starttls": True, "ca_file": tmp_path / "missing.pem"}, "does not exist"),
        ({"starttls": True, "ca_file": tmp_path}, "not a file"),
        ({"starttls": True, "ca_file": "relative/ca.pem"}, "absolute path"),
        ({"starttls": True, "ca_file": not_pem}, "no usable PEM certificate"),
        ({"ca_file": cert.cert}, "only used with TLS"),
    ]
    for changes, message in cases:
        with pytest.raises(ValidationError, match=message):
            EmailConfig(**base, **changes)
    as_text: dict[str, Any] = {"ssl": True, "ca_file": str(cert.cert)}  # as YAML gives it
    assert EmailConfig(**base, **as_text).ca_file == cert.cert
