"""The email channel: one MIME message (text + HTML) per delivery, sent over SMTP.

Messages are built with ``EmailMessage`` and ``email.policy.default``: non-ASCII headers become RFC 2047
encoded words, bodies get a correct charset and transfer encoding. Feed text reaches headers only through
`header_text`, which folds every line break to a space and defuses encoded-word openers (``=?``), because the
email package *decodes* encoded words in a header value it is given: a title holding ``=?UTF-8?Q?=0A?=Bcc: x``
would otherwise come out as a second header line.

Body templates: the packaged ones (``templates/alert.*``, ``digest.*``) unless the channel names its own
(``templates: {text, html, digest_text, digest_html}``, files relative to the config file's folder), which are
read and test-rendered when the config loads (see monitor.notify.templates.compile_body_template). When one of
the operator's templates (or the subject) fails at send time all the same, the message is built again from the
packaged templates and sent, with a warning naming the channel: a message that looks different is better than
an alert that reaches no one (docs/design/notify.md, "Email body templates").

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
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any, Literal

from jinja2 import Template, TemplateError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.errors import DeliveryError
from monitor.notify.limits import ChannelLimits, ChannelOptions
from monitor.notify.notice import notice_message_text, notice_subject
from monitor.notify.payload import shrunk_alerts
from monitor.notify.templates import (
    CONFIG_DIR,
    DEFAULT_SUBJECT,
    MAX_TEMPLATE_BYTES,
    compile_body_template,
    compile_template,
    oneline,
    render,
    render_body,
    render_subject,
    template_line,
)
from monitor.types import DeliveryRequest

__all__ = ["EmailChannel", "EmailConfig", "EmailTemplates", "build_message", "header_text", "tls_context"]

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


# Which template renders which part: (key in `templates:`, packaged file, HTML?, digest?).
BODY_TEMPLATES: tuple[tuple[str, str, bool, bool], ...] = (
    ("text", "alert.txt", False, False),
    ("html", "alert.html", True, False),
    ("digest_text", "digest.txt", False, True),
    ("digest_html", "digest.html", True, True),
)


class EmailTemplates(BaseModel):
    """The operator's own body templates of an email channel; each one left out is the packaged one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: Path | None = Field(
        default=None, description="Jinja2 template file of the text/plain part of a notification or update"
    )
    html: Path | None = Field(
        default=None, description="Jinja2 template file of the text/html part (autoescaped)"
    )
    digest_text: Path | None = Field(default=None, description="text/plain part of a digest")
    digest_html: Path | None = Field(default=None, description="text/html part of a digest (autoescaped)")
    # key -> (resolved path, source), filled by EmailConfig's validation (which knows the config file's folder
    # and the channel's grouping): the channel compiles what was checked, not whatever the file holds by the time
    # it starts.
    _files: dict[str, tuple[Path, str]] = PrivateAttr(default_factory=dict)


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
    templates: EmailTemplates = Field(
        default=EmailTemplates(),
        description="body templates of your own: {text, html, digest_text, digest_html}, files relative to the "
        "config file's folder; the packaged template for each one left out",
    )
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

    @field_validator("templates")
    @classmethod
    def _body_templates(cls, value: EmailTemplates, info: ValidationInfo) -> EmailTemplates:
        """Read, compile and test-render each of the operator's templates (group_by, a field of ChannelOptions,
        is validated before this one). Every template's problem is reported, not only the first."""
        base = (info.context or {}).get(CONFIG_DIR)
        kinds = _kinds(info.data.get("group_by", ("story",)))
        problems: list[str] = []
        for key, _packaged, html, digest in BODY_TEMPLATES:
            path = getattr(value, key)
            if path is None:
                continue
            try:
                path = _template_path(path, base, key)
                source = _read_template(path, key)
                compile_body_template(source, filename=str(path), html=html, digest=digest, kinds=kinds)
            except ValueError as exc:
                problems.append(str(exc) if str(exc).startswith("templates.") else f"templates.{key}: {exc}")
                continue
            value._files[key] = (path, source)
        if problems:
            raise ValueError("; ".join(problems))
        return value

    def body_templates(self) -> dict[str, tuple[Path, str]]:
        """The operator's body templates as read and checked at load: key -> (file, source)."""
        return dict(self.templates._files)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 465 if self.ssl else 587 if self.starttls else 25

    def sender_domain(self) -> str:
        return parseaddr(self.sender)[1].rpartition("@")[2] or "monitor"


def _kinds(group_by: tuple[str, ...]) -> tuple[str, ...]:
    """The kinds of delivery (besides digests) a channel with this grouping sends: what its templates are
    test-rendered on."""
    return ("alert",) if "rule" in group_by else ("story", "update")


def _template_path(path: Path, base: object, key: str) -> Path:
    path = path.expanduser()
    if path.is_absolute():
        return path
    if base is None:
        # Built without a config file (in code): nothing to be relative to, and the working directory would
        # make the channel depend on where the daemon was started.
        raise ValueError(
            f"templates.{key}: {str(path)!r} is relative, and there is no config file it is relative to"
        )
    return Path(str(base)) / path


def _read_template(path: Path, key: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TEMPLATE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"templates.{key}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TEMPLATE_BYTES:
        raise ValueError(f"templates.{key}: {path} is larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"templates.{key}: {path}:{line}: not UTF-8 text") from None


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


class CustomTemplateFailed(Exception):
    """An operator's template (subject or body) failed on this delivery; the message is built again from the
    packaged ones (`subject`: the subject template was the one that failed)."""

    def __init__(self, message: str, *, subject: bool = False) -> None:
        super().__init__(message)
        self.subject = subject


def build_message(
    request: DeliveryRequest,
    config: EmailConfig,
    *,
    subject_template: Template,
    now: datetime,
    bodies: Mapping[str, Template] | None = None,
    custom_subject: bool = False,
) -> EmailMessage:
    """The message for one delivery: subject and both bodies name rule, title, source and link. Pure.

    `bodies` are the operator's templates by key (text, html, digest_text, digest_html), the packaged ones
    used for the rest. A failure in one of the operator's templates (or in the subject, when `custom_subject`)
    raises CustomTemplateFailed."""
    if request.notice is not None:
        return notice_message(request, config, now=now)
    alerts = request.alerts
    bodies = bodies or {}
    message = EmailMessage(policy=default_policy)
    try:
        subject = render_subject(subject_template, alerts, digest=request.digest, kind=request.kind)
    except Exception as exc:
        if custom_subject:
            raise CustomTemplateFailed(
                f"the subject template failed: {type(exc).__name__}: {exc}", subject=True
            ) from exc
        raise
    message["Subject"] = header_text(subject)
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    message["Date"] = format_datetime((request.created_at or now).astimezone(UTC))
    message["Message-ID"] = message_id(request.id, config.sender_domain())
    _thread_headers(message, request, config)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the sender
    rules = sorted({str(alert["rule"]["id"]) for alert in alerts})
    message["X-Monitor-Rule"] = header_text(", ".join(rules))
    message["X-Monitor-Delivery"] = header_text(request.id)
    for key, packaged, html, digest in BODY_TEMPLATES:
        if digest != request.digest:
            continue
        body = _render_body(request, key, packaged, bodies.get(key))
        if not html:
            message.set_content(body)
        else:
            message.add_alternative(body, subtype="html")
    return message


def _render_body(request: DeliveryRequest, key: str, packaged: str, custom: Template | None) -> str:
    options: dict[str, Any] = {
        "digest": request.digest,
        "kind": request.kind,
        "delivery_id": request.id,
        "in_reply_to": request.in_reply_to,
    }
    if custom is None:
        return render(packaged, request.alerts, **options)
    try:
        return render_body(custom, request.alerts, **options)
    except Exception as exc:  # whatever the operator's template does, the alert must go out
        where = custom.filename or key
        line = template_line(exc, where)
        raise CustomTemplateFailed(
            f"templates.{key} ({where}{f':{line}' if line else ''}) failed: {type(exc).__name__}: {exc}"
        ) from exc


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
        self._default_subject = compile_template(DEFAULT_SUBJECT, what="subject template")
        self._custom_subject = config.subject != DEFAULT_SUBJECT
        kinds = _kinds(config.group_by)
        self._bodies: dict[str, Template] = {
            key: compile_body_template(source, filename=str(path), html=html, digest=digest, kinds=kinds)
            for key, _packaged, html, digest in BODY_TEMPLATES
            if key in config.body_templates()
            for path, source in [config.body_templates()[key]]
        }
        self._tls = tls_context(config.ca_file)

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, host={self.config.host!r})"

    def message(self, request: DeliveryRequest, now: datetime | None = None) -> EmailMessage:
        """The message, with the alerts cut (see payload.cap_payload) until it is at most max_body_bytes.

        When the operator's subject or body templates fail on this delivery (or cannot be made to fit), the
        message is built from the packaged templates instead, with a warning naming the channel."""
        when = now or datetime.now(UTC)
        try:
            try:
                return self._fitted(
                    request,
                    when,
                    self._subject,
                    self._bodies,
                    custom=bool(self._bodies) or self._custom_subject,
                )
            except CustomTemplateFailed as failure:
                self._warn_fallback(request, failure)
                if self._bodies and self._custom_subject and not failure.subject:
                    # The bodies failed: keep the operator's subject, with the packaged bodies.
                    try:
                        return self._fitted(request, when, self._subject, {}, custom=True)
                    except CustomTemplateFailed as again:
                        self._warn_fallback(request, again)
                return self._fitted(request, when, self._default_subject, {}, custom=False)
        except (TemplateError, KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(self.name, f"cannot build the message: {exc!r}", retryable=False) from exc

    def _warn_fallback(self, request: DeliveryRequest, failure: CustomTemplateFailed) -> None:
        log.warning(
            "channel %r: %s; delivery %s is sent with the packaged templates instead",
            self.name,
            failure,
            request.id,
        )

    def _fitted(
        self,
        request: DeliveryRequest,
        now: datetime,
        subject: Template,
        bodies: Mapping[str, Template],
        *,
        custom: bool,
    ) -> EmailMessage:
        limit = self.config.max_body_bytes

        def build(what: DeliveryRequest) -> EmailMessage:
            return build_message(
                what,
                self.config,
                subject_template=subject,
                now=now,
                bodies=bodies,
                custom_subject=subject is self._subject and self._custom_subject,
            )

        message = build(request)
        for tightness in (2, 4, 8, 16, 32):  # two bodies (text and HTML) share the budget
            if len(message.as_bytes()) <= limit:
                return message
            message = build(
                dataclasses.replace(request, alerts=shrunk_alerts(request.alerts, limit, tightness))
            )
        size = len(message.as_bytes())
        if size <= limit:
            return message
        if custom:
            raise CustomTemplateFailed(
                f"the message from its own templates is {size} bytes with every alert cut, over max_body_bytes "
                f"({limit})"
            )
        raise DeliveryError(
            self.name,
            f"the message is {size} bytes with every alert cut, over max_body_bytes ({limit})",
            retryable=False,
        )

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
