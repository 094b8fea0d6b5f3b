"""The email channel: one MIME message (text + HTML) per delivery, sent over SMTP.

Messages are built with ``EmailMessage`` and ``email.policy.default``: non-ASCII headers become RFC 2047
encoded words, bodies get a correct charset and transfer encoding. Feed text reaches headers only through
`header_text`, which folds every line break to a space and defuses encoded-word openers (``=?``), because the
email package *decodes* encoded words in a header value it is given: a title holding ``=?UTF-8?Q?=0A?=Bcc: x``
would otherwise come out as a second header line.

The Message-ID is derived from the delivery id, so a retried or re-sent delivery carries the same Message-ID
and mail clients can recognise the duplicate.

Sending uses smtplib in a worker thread (asyncio.to_thread), one connection per message: implicit TLS
(``ssl: true``), STARTTLS (``starttls: true``), or plain SMTP, with optional AUTH. TLS always verifies the
server's certificate and host name, against the system's CA store or, with ``ca_file``, against that file alone
(an internal relay with a private CA); there is deliberately no switch that turns verification off.

How answers are classified: 250 accepted; SMTP 4xx, connection errors, timeouts and a TLS handshake broken off
retryable; SMTP 5xx, a refused login, a certificate that does not verify and a server that does not offer
STARTTLS when ``starttls`` is set are not retryable: those are configuration (or an attack) and will not fix
themselves within the retry schedule, so the delivery goes to the dead letters at once, where an operator sees
it, instead of being retried for hours. With ``starttls`` set, nothing (no AUTH, no message) is sent unless the
TLS handshake succeeded: smtplib raises before sending anything else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
import re
import smtplib
import ssl as ssl_module
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Literal

from jinja2 import Template, TemplateError
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.errors import DeliveryError
from monitor.notify.limits import ChannelLimits, ChannelOptions
from monitor.notify.notice import notice_message_text, notice_subject
from monitor.notify.payload import shrunk_alerts
from monitor.notify.templates import DEFAULT_SUBJECT, compile_template, oneline, render, render_subject
from monitor.types import DeliveryRequest

__all__ = ["EmailChannel", "EmailConfig", "build_message", "header_text", "tls_context"]

log = logging.getLogger("monitor.notify")


def header_text(value: object) -> str:
    """Text safe to put in a header: one line, and no sequence a mail reader would decode as an encoded word.

    A zero-width space goes between '=' and '?', so the text reads the same but never opens an encoded word."""
    return oneline(value).replace("=?", "=\u200b?")


def _check_address(value: str, what: str) -> str:
    value = value.strip()
    if any(ch in value for ch in "\r\n"):
        raise ValueError(f"{what} holds a line break")
    _name, address = parseaddr(value)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"{what} is not an email address: {value!r}")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailConfig(ChannelOptions):
    """An email channel (``type: email``)."""

    type: Literal["email"] = "email"
    host: str
    port: int | None = Field(
        default=None, ge=1, le=65535, description="465 with ssl, 587 with starttls, else 25"
    )
    starttls: bool = False
    ssl: bool = Field(default=False, description="implicit TLS (SMTPS, usually port 465)")
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the CA (or the certificate itself) to trust for the SMTP server instead of "
        "the system store; the host name is still verified",
    )
    username: str | None = None
    password: SecretStr | None = None
    sender: str
    to: tuple[str, ...] = Field(min_length=1)
    subject: str = Field(default=DEFAULT_SUBJECT, description="Jinja2 template of the subject line")
    concurrency: int = Field(default=2, ge=1, le=64, description="SMTP connections at once")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() for ch in value) or "/" in value:
            raise ValueError(f"host must be a host name or address, got {value!r}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        # Absolute only: a relative path would silently depend on the daemon's working directory.
        if not value.is_absolute():
            raise ValueError(f"ca_file must be an absolute path, got {str(value)!r}")
        if not value.is_file():
            raise ValueError(f"ca_file {str(value)!r} does not exist or is not a file")
        try:
            tls_context(value)
        except (ssl_module.SSLError, OSError) as exc:
            raise ValueError(f"ca_file {str(value)!r} holds no usable PEM certificate: {exc}") from exc
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_address(value, "sender")

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_address(address, "recipient") for address in value)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        compile_template(value, what="subject template")
        return value

    @model_validator(mode="after")
    def _transport(self) -> EmailConfig:
        if self.ssl and self.starttls:
            raise ValueError("set either ssl (implicit TLS) or starttls, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.username is not None and not (self.ssl or self.starttls) and not _is_loopback(self.host):
            raise ValueError("refusing to send a password over unencrypted SMTP: set starttls or ssl")
        if self.ca_file is not None and not (self.ssl or self.starttls):
            raise ValueError("ca_file is only used with TLS: set starttls or ssl as well")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.ssl else 587 if self.starttls else 25

    def sender_domain(self) -> str:
        return parseaddr(self.sender)[1].rpartition("@")[2] or "monitor"


def tls_context(ca_file: Path | None) -> ssl_module.SSLContext:
    """The client TLS context: certificate and host name verified, against `ca_file` alone when given."""
    if ca_file is None:
        return ssl_module.create_default_context()
    return ssl_module.create_default_context(cafile=str(ca_file))


def message_id(delivery_id: str, domain: str) -> str:
    """A Message-ID that is the same for every attempt of one delivery."""
    local = (
        delivery_id
        if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", delivery_id)
        else hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    )
    domain = domain if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain) else "monitor"
    return f"<{local}@{domain}>"


def build_message(
    request: DeliveryRequest, config: EmailConfig, *, subject_template: Template, now: datetime
) -> EmailMessage:
    """The message for one delivery: subject and both bodies name rule, title, source and link. Pure."""
    if request.notice is not None:
        return notice_message(request, config, now=now)
    alerts = request.alerts
    message = EmailMessage(policy=default_policy)
    message["Subject"] = header_text(
        render_subject(subject_template, alerts, digest=request.digest, kind=request.kind)
    )
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime((request.created_at or now).astimezone(UTC))
    message["Message-ID"] = message_id(request.id, config.sender_domain())
    _thread_headers(message, request, config)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the sender
    rules = sorted({str(alert["rule"]["id"]) for alert in alerts})
    message["X-Monitor-Rule"] = header_text(", ".join(rules))
    message["X-Monitor-Delivery"] = header_text(request.id)
    template = "digest" if request.digest else "alert"
    for name, subtype in (("txt", None), ("html", "html")):
        body = render(
            f"{template}.{name}",
            alerts,
            digest=request.digest,
            kind=request.kind,
            delivery_id=request.id,
            in_reply_to=request.in_reply_to,
        )
        if subtype is None:
            message.set_content(body)
        else:
            message.add_alternative(body, subtype=subtype)
    return message


def _thread_headers(message: EmailMessage, request: DeliveryRequest, config: EmailConfig) -> None:
    """An update or an escalation replies to the story's first notification on this channel (RFC 5322
    In-Reply-To and References), whose Message-ID derives from its delivery id as every Message-ID does: mail
    clients show them in one thread."""
    if request.in_reply_to:
        first = message_id(request.in_reply_to, config.sender_domain())
        message["In-Reply-To"] = first
        message["References"] = first


def notice_message(request: DeliveryRequest, config: EmailConfig, *, now: datetime) -> EmailMessage:
    """A notice (feed health) as a plain-text message, with the same Message-ID scheme as alerts."""
    assert request.notice is not None
    message = EmailMessage(policy=default_policy)
    message["Subject"] = header_text(notice_subject(request.notice))
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime((request.created_at or now).astimezone(UTC))
    message["Message-ID"] = message_id(request.id, config.sender_domain())
    _thread_headers(message, request, config)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Monitor-Notice"] = header_text(str(request.notice.get("type", "notice")))
    message["X-Monitor-Delivery"] = header_text(request.id)
    message.set_content(notice_message_text(request.notice))
    return message


def _classify_smtp(channel: str, exc: Exception) -> DeliveryError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {msg.decode('utf-8', 'replace')}" for rcpt, (code, msg) in exc.recipients.items()
        )
        return DeliveryError(
            channel,
            f"all recipients refused: {detail}",
            retryable=any(400 <= c < 500 for c in codes),
            status=max(codes, default=None),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        code = exc.smtp_code
        what = (
            "authentication refused (check username and password)"
            if isinstance(exc, smtplib.SMTPAuthenticationError)
            else "SMTP error"
        )
        return DeliveryError(
            channel, f"{what}: {code} {oneline(text)}", retryable=400 <= code < 500, status=code
        )
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        hint = (
            "connect by a name the certificate lists"
            if "mismatch" in reason.lower()
            else "for a private CA set ca_file"
        )
        return DeliveryError(
            channel, f"TLS certificate of the SMTP server not accepted ({reason}); {hint}", retryable=False
        )
    if isinstance(exc, ssl_module.SSLError):
        # Not a certificate verdict: a reset handshake can pass, so retry (a plain port with ssl: true shows
        # here too, and ends in the dead letters after the retry schedule).
        return DeliveryError(channel, f"TLS handshake with the SMTP server failed: {exc}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(
            channel, f"server does not support what the config asks, nothing sent: {exc}", retryable=False
        )
    if isinstance(exc, TimeoutError):
        return DeliveryError(channel, f"timed out: {exc}")
    return DeliveryError(channel, f"{type(exc).__name__}: {exc}")


class EmailChannel:
    """Sends deliveries as email through one SMTP server."""

    def __init__(self, name: str, config: EmailConfig) -> None:
        self.name = name
        self.config = config
        self.limits: ChannelLimits = config.limits()
        self._subject = compile_template(config.subject, what="subject template")
        self._tls = tls_context(config.ca_file)

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, host={self.config.host!r})"

    def message(self, request: DeliveryRequest, now: datetime | None = None) -> EmailMessage:
        """The message, with the alerts cut (see payload.cap_payload) until it is at most max_body_bytes."""
        limit = self.config.max_body_bytes
        try:
            message = build_message(
                request, self.config, subject_template=self._subject, now=now or datetime.now(UTC)
            )
            for tightness in (2, 4, 8, 16, 32):  # two bodies (text and HTML) share the budget
                if len(message.as_bytes()) <= limit:
                    return message
                cut = dataclasses.replace(request, alerts=shrunk_alerts(request.alerts, limit, tightness))
                message = build_message(
                    cut, self.config, subject_template=self._subject, now=now or datetime.now(UTC)
                )
            if len(message.as_bytes()) <= limit:
                return message
            raise DeliveryError(
                self.name,
                f"the message is {len(message.as_bytes())} bytes with every alert cut, over max_body_bytes ({limit})",
                retryable=False,
            )
        except (TemplateError, KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(self.name, f"cannot build the message: {exc!r}", retryable=False) from exc

    async def send(self, request: DeliveryRequest) -> None:
        """Send the message; return when the server accepted it (250). Raises DeliveryError otherwise."""
        message = self.message(request)
        try:
            refused = await asyncio.to_thread(self._send_blocking, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _classify_smtp(self.name, exc) from exc
        if refused:
            # Accepted for the others: sending again would duplicate it for them, so report instead of retrying.
            log.error(
                "channel %r: delivery %s refused for some recipients: %s", self.name, request.id, refused
            )

    def _send_blocking(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        config = self.config
        port = config.effective_port
        smtp: smtplib.SMTP
        if config.ssl:
            smtp = smtplib.SMTP_SSL(config.host, port, timeout=config.timeout, context=self._tls)
        else:
            smtp = smtplib.SMTP(config.host, port, timeout=config.timeout)
        with smtp:
            if config.starttls:
                smtp.starttls(context=self._tls)
            if config.username is not None and config.password is not None:
                smtp.login(config.username, config.password.get_secret_value())
            refused: dict[str, tuple[int, bytes]] = smtp.send_message(
                message, from_addr=parseaddr(config.sender)[1], to_addrs=[parseaddr(a)[1] for a in config.to]
            )
            return refused

    async def aclose(self) -> None:
        """Nothing to close: each send opens and closes its own connection."""
