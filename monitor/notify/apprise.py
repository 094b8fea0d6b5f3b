"""The apprise channel: Apprise URLs (``json://``, ``mailto://``, ``discord://`` ...) through the same outbox.

Apprise (an optional extra: ``pip install 'monitor[apprise]'``) is imported only when a config holds an
``apprise`` channel. Each URL is its own Apprise object and is sent on its own, in a worker thread, so a failure
names the URL that failed (in Apprise's privacy form: no password, no token).

What can be known, and how it is mapped (DeliveryError.retryable):
- A URL Apprise cannot parse or load, a scheme this channel does not support, ``verify=no``: configuration,
  refused when the config is loaded (ValueError naming the channel's key), never retried.
- The network policy refuses a URL's host (checked without DNS when the channel is built, with DNS before each
  send): not retryable. A name that does not resolve: retryable.
- Apprise reports failure: retryable. Apprise's result says only SUCCESS, FAILURE or TIMEOUT; the HTTP status or
  SMTP reply exists only in its log text, so a 4xx (will never work) cannot be told from a 5xx or a refused
  connection (may work later). Every failure therefore runs the whole retry schedule and ends in the dead letters,
  with Apprise's own words (its WARNING and ERROR lines of that call, masked) as the last error. Apprise's
  internal retries are switched off (``retry=0``): the outbox's schedule is the only one, and every attempt is
  counted by the store.
- Partial success: with several URLs, the URLs that accepted a delivery are remembered (in this process, per
  channel name and delivery id) and a retry sends only to the others. After a restart the memory is gone, and a
  retry goes to every URL again: at-least-once, as everywhere in the outbox.

Idempotency: HTTP schemes (json, xml, form) carry ``Idempotency-Key`` and ``X-Monitor-Delivery`` headers with
the delivery id, the same on every retry; ``mailto`` carries ``X-Monitor-Delivery``. Other services offer no
place for it.

What the network policy can and cannot enforce here: the host a URL names (json, xml, form; mailto's ``smtp=``
server, else its host) is judged before each send, and Apprise's redirect following is switched off. The name
is resolved again by Apprise's own HTTP or SMTP client (a DNS rebinding window, which the webhook channel closes
with its own transport and this one cannot), and the requests library honours proxy environment variables. The
hosted services (discord, tgram, pover) post to the vendor's fixed public endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import ipaddress
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from jinja2 import Template, TemplateError
from pydantic import Field, SecretStr, field_validator

from monitor.errors import ConfigError, DeliveryError, NetworkPolicyError
from monitor.logs import redact
from monitor.netpolicy import NetworkPolicy
from monitor.notify.limits import ChannelLimits, ChannelOptions
from monitor.notify.notice import notice_message_text, notice_subject
from monitor.notify.payload import shrunk_alerts
from monitor.notify.templates import (
    DEFAULT_SUBJECT,
    compile_template,
    render,
    render_subject,
    template_context,
)
from monitor.types import DeliveryRequest

if TYPE_CHECKING:
    from apprise import NotifyBase

__all__ = ["HOSTED_SCHEMES", "INSTALL_HINT", "SERVICE_SCHEMES", "AppriseChannel", "AppriseConfig", "Target"]

INSTALL_HINT = "the apprise channel type needs the apprise package: pip install 'monitor[apprise]'"
# Schemes whose URL names the server to reach: that host is what the network policy judges.
HOSTED_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"})
# Hosted services: Apprise posts to the vendor's fixed public endpoint (its plugin's notify_url).
SERVICE_SCHEMES = frozenset({"discord", "tgram", "pover"})
_HTTP_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
MAX_REASON_CHARS = 500
_SENT_MEMORY = 10_000  # (channel, delivery) entries of partly sent deliveries kept in memory


class AppriseConfig(ChannelOptions):
    """An Apprise channel (``type: apprise``). The URLs hold credentials: they are secrets."""

    type: Literal["apprise"] = "apprise"
    urls: tuple[SecretStr, ...] = Field(min_length=1, description="Apprise URLs, each sent on its own")
    format: Literal["text", "markdown", "html"] = Field(
        default="text", description="what the body is, so Apprise converts it for each service"
    )
    title: str = Field(default=DEFAULT_SUBJECT, description="Jinja2 template of the title")
    body_template: str | None = Field(
        default=None, description="Jinja2 template of the body (default: the bundled alert text or HTML)"
    )

    @field_validator("urls")
    @classmethod
    def _loadable(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for index, url in enumerate(value):
            try:
                parse_target(url.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"urls[{index}]: {exc}") from exc
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        compile_template(value, what="title template")
        return value

    @field_validator("body_template")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value is not None:
            compile_template(value, what="body_template")
        return value


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One Apprise URL, checked: `url` is the secret URL, `shown` the privacy form for messages, `host` and
    `port` what the network policy judges (None for a hosted service)."""

    url: str = dataclasses.field(repr=False)
    scheme: str
    shown: str
    host: str | None
    port: int

    @property
    def key(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]

    @property
    def policy_url(self) -> str | None:
        """A URL naming host and port in the form the network policy reads."""
        if self.host is None:
            return None
        host = self.host
        try:
            if isinstance(ipaddress.ip_address(host.strip("[]")), ipaddress.IPv6Address):
                host = f"[{host.strip('[]')}]"
        except ValueError:
            pass
        return f"http://{host}:{self.port}/"


_loading = threading.Lock()
_loaded = False


def _apprise() -> Any:
    """The apprise module, its plugins loaded. Loading them imports modules that warn about deprecations of
    their own (imghdr, through Apprise's PGP support): not ours to show, and an error under pytest's
    filterwarnings, so they are silenced for that one load, once per process (catch_warnings changes the
    process's filters: it must not run while sends are under way in other threads)."""
    global _loaded
    try:
        import apprise
    except ImportError as exc:
        raise ValueError(INSTALL_HINT) from exc
    if not _loaded:
        with _loading:
            if not _loaded:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    manager: Any = apprise.manager_plugins.NotificationManager  # untyped in apprise
                    manager().load_modules()  # the plugin registry is shared by every manager
                _loaded = True
    return apprise


class _Capture(logging.Handler):
    """Apprise's log lines of this thread only (apprise.LogCapture takes the whole logger, so two channels
    loading URLs at once would read each other's reasons)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and record.levelno >= logging.WARNING:
            self.lines.append(record.getMessage())


@contextmanager
def _captured() -> Iterator[_Capture]:
    logger = logging.getLogger("apprise")
    capture = _Capture()
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


def _reason(lines: list[str], url: str) -> str:
    """Apprise's words, on one line, with the URL and every configured secret masked."""
    text = " ".join(dict.fromkeys(" ".join(line.split()) for line in lines if line.strip()))
    text = redact(text.replace(url, "<url>"))
    return text[:MAX_REASON_CHARS] or "Apprise gave no reason"


def _load(url: str) -> NotifyBase:
    """The Apprise plugin for `url`; ValueError with Apprise's reason when it cannot be loaded."""
    apprise = _apprise()
    asset = apprise.AppriseAsset(storage_mode="memory")
    with _captured() as capture:
        try:
            plugin = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=False)
        except Exception as exc:  # a plugin's constructor refused a value (TypeError, ValueError ...)
            if not any(str(exc).strip() in line for line in capture.lines):  # Apprise logged it already
                capture.lines.append(f"{type(exc).__name__}: {exc}")
            plugin = None
    if plugin is None:
        raise ValueError(f"Apprise cannot load this URL: {_reason(capture.lines, url)}")
    return plugin  # type: ignore[no-any-return]


def parse_target(url: str) -> Target:
    """Check one Apprise URL with Apprise's own parser and find the host the network policy judges.

    Raises ValueError (apprise missing, unparsable URL, unsupported scheme, verify=no)."""
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    supported = sorted(HOSTED_SCHEMES | SERVICE_SCHEMES)
    if scheme not in HOSTED_SCHEMES | SERVICE_SCHEMES:
        raise ValueError(
            f"scheme {scheme + '://' if scheme else '(none)'} is not supported by the apprise channel "
            f"(supported: {', '.join(supported)})"
        )
    plugin: Any = _load(url)
    shown = redact(str(plugin.url(privacy=True)))
    if getattr(plugin, "verify_certificate", True) is False:
        raise ValueError(f"{shown}: verify=no is refused: TLS certificates are always verified")
    if scheme in SERVICE_SCHEMES:
        return Target(url, scheme, shown, None, 443)
    host = str(getattr(plugin, "smtp_host", "") or getattr(plugin, "host", "") or "")
    if not host:
        raise ValueError(f"{shown}: the URL names no host")
    if scheme.startswith("mailto") and _plain_smtp_with_password(plugin, host):
        raise ValueError(
            f"{shown}: refusing to send a password over unencrypted SMTP: use mailtos:// (STARTTLS) or mode=ssl"
        )
    port = getattr(plugin, "port", None)
    if port and not 0 < int(port) < 65536:
        raise ValueError(f"{shown}: port {port} is out of range")
    if not port:
        secure = bool(getattr(plugin, "secure", False))
        port = (465 if secure else 25) if scheme.startswith("mailto") else (443 if secure else 80)
    return Target(url, scheme, shown, host, int(port))


def _plain_smtp_with_password(plugin: Any, host: str) -> bool:
    """Whether Apprise would log in over plain SMTP to another machine (its mailto:// without a known
    provider is plain; the email channel refuses the same)."""
    if not getattr(plugin, "password", None) or str(getattr(plugin, "secure_mode", "")) != "insecure":
        return False
    name = host.strip("[]").lower()
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name != "localhost"


# Which URLs accepted which delivery, while another URL of the channel still fails (see the module docstring).
# Used from the event loop only.
_sent: OrderedDict[tuple[str, str], set[str]] = OrderedDict()


def _remember(channel: str, delivery_id: str, key: str) -> None:
    _sent.setdefault((channel, delivery_id), set()).add(key)
    _sent.move_to_end((channel, delivery_id))
    while len(_sent) > _SENT_MEMORY:
        _sent.popitem(last=False)


@dataclasses.dataclass(frozen=True, slots=True)
class _Outcome:
    target: Target
    error: DeliveryError | None


class AppriseChannel:
    """Sends deliveries to each of its Apprise URLs, one Apprise object per URL, in worker threads."""

    def __init__(self, name: str, config: AppriseConfig, *, policy: NetworkPolicy) -> None:
        self.name = name
        self.config = config
        self.limits: ChannelLimits = config.limits()
        self._policy = policy
        self._targets = [parse_target(url.get_secret_value()) for url in config.urls]
        for index, target in enumerate(self._targets):
            refusal = policy.refusal_without_dns(target.policy_url) if target.policy_url else None
            if refusal is not None:
                raise ConfigError(
                    f"urls[{index}] {target.shown}: refused by the network policy: {refusal}",
                    field=f"channels.{name}",
                )
        self._title = compile_template(config.title, what="title template")
        self._body: Template | None = (
            compile_template(config.body_template, what="body_template") if config.body_template else None
        )

    def __repr__(self) -> str:
        return f"AppriseChannel({self.name!r}, urls={len(self._targets)})"

    def message(self, request: DeliveryRequest) -> tuple[str, str]:
        """(title, body) of the delivery, the alerts cut until the body is at most max_body_bytes. Raises
        DeliveryError (not retryable) when a template fails."""
        limit = self.config.max_body_bytes
        try:
            title, body = self._render(request)
            for tightness in (1, 2, 4, 8, 16):
                if len(body.encode()) <= limit:
                    return title, body
                title, body = self._render(
                    dataclasses.replace(request, alerts=shrunk_alerts(request.alerts, limit, tightness))
                )
        except (TemplateError, KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(self.name, f"cannot build the message: {exc!r}", retryable=False) from exc
        if len(body.encode()) <= limit:
            return title, body
        raise DeliveryError(
            self.name,
            f"the body is {len(body.encode())} bytes with every alert cut, over max_body_bytes ({limit})",
            retryable=False,
        )

    def _render(self, request: DeliveryRequest) -> tuple[str, str]:
        if request.notice is not None:
            return notice_subject(request.notice), notice_message_text(request.notice)
        alerts, digest = request.alerts, request.digest
        title = render_subject(self._title, alerts, digest=digest, kind=request.kind)
        if self._body is not None:
            context = template_context(
                alerts,
                digest=digest,
                kind=request.kind,
                delivery_id=request.id,
                in_reply_to=request.in_reply_to,
            )
            return title, self._body.render(context)
        name = f"{'digest' if digest else 'alert'}.{'html' if self.config.format == 'html' else 'txt'}"
        body = render(
            name,
            alerts,
            digest=digest,
            kind=request.kind,
            delivery_id=request.id,
            in_reply_to=request.in_reply_to,
        )
        return title, body

    async def send(self, request: DeliveryRequest) -> None:
        """Send to every URL that has not accepted this delivery yet; raise DeliveryError naming each URL that
        failed (retryable when any of them may succeed later)."""
        title, body = self.message(request)
        done = _sent.get((self.name, request.id), set())
        pending = [target for target in self._targets if target.key not in done]
        outcomes = await asyncio.gather(*(self._send_one(target, request, title, body) for target in pending))
        failures = [outcome for outcome in outcomes if outcome.error is not None]
        for outcome in outcomes:
            if outcome.error is None:
                _remember(self.name, request.id, outcome.target.key)
        if not failures:
            _sent.pop((self.name, request.id), None)
            return
        accepted = len(self._targets) - len(failures)
        detail = "; ".join(f"{f.target.shown}: {f.error.message}" for f in failures if f.error is not None)
        if len(self._targets) > 1:
            detail = f"{len(failures)} of {len(self._targets)} URLs failed ({accepted} accepted, not re-sent): {detail}"
        raise DeliveryError(
            self.name, detail, retryable=any(f.error is not None and f.error.retryable for f in failures)
        )

    async def _send_one(self, target: Target, request: DeliveryRequest, title: str, body: str) -> _Outcome:
        if target.policy_url is not None:
            try:
                await self._policy.check_url(target.policy_url)
            except NetworkPolicyError as exc:
                return _Outcome(target, DeliveryError(self.name, exc.message, retryable=False))
            except OSError as exc:
                return _Outcome(target, DeliveryError(self.name, str(exc), retryable=True))
        try:
            error = await asyncio.to_thread(self._notify, target, request.id, title, body)
        except Exception as exc:  # Apprise or a plugin raised instead of reporting: a retry may help
            reason = _reason([f"{type(exc).__name__}: {exc}"], target.url)
            return _Outcome(target, DeliveryError(self.name, f"Apprise raised: {reason}"))
        return _Outcome(target, error)

    def _notify(self, target: Target, delivery_id: str, title: str, body: str) -> DeliveryError | None:
        """One URL, in a worker thread: None when Apprise reports success, else the DeliveryError."""
        apprise = _apprise()
        plugin: Any = _load(target.url)
        plugin.retry = 0  # the outbox retries, on its schedule, and counts every attempt
        plugin.redirects = False  # a redirect could lead where the network policy was not asked
        plugin.socket_connect_timeout = plugin.socket_read_timeout = self.config.timeout
        headers = getattr(plugin, "headers", None)
        if isinstance(headers, dict):
            headers["X-Monitor-Delivery"] = delivery_id
            if target.scheme in _HTTP_SCHEMES:
                headers["Idempotency-Key"] = delivery_id
        notifier = apprise.Apprise(asset=plugin.asset)
        notifier.add(plugin)
        result = notifier.notify(
            body=body,
            title=title,
            body_format=self.config.format,
            timeout=2 * self.config.timeout,
            log_level=logging.WARNING,
        )
        status = getattr(result.status, "name", str(result.status))
        if status == "SUCCESS":
            return None
        lines = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
        reason = _reason(lines, target.url)
        if status == "TIMEOUT":
            return DeliveryError(self.name, f"Apprise timed out: {reason}")
        if status == "FAILURE":
            # The cause is only in Apprise's log text: a 4xx cannot be told from a 5xx or a refused connection.
            return DeliveryError(self.name, f"Apprise reported failure (cause not classifiable): {reason}")
        return DeliveryError(self.name, f"Apprise did not send ({status}): {reason}", retryable=False)

    async def aclose(self) -> None:
        """Nothing held between sends: every send loads its plugin afresh."""
