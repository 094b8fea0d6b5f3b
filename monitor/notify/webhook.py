"""The webhook channel: one JSON POST per delivery, with the Standard Webhooks headers.

Headers: ``webhook-id`` (the delivery id, the same on every retry: receivers deduplicate on it),
``webhook-timestamp`` (seconds since the epoch, at this attempt) and, when the channel has a secret,
``webhook-signature`` (see signing.py). The URL is checked against the network policy before every send, and
redirects are not followed: a webhook that moved is a configuration change, not something to chase.

How answers are classified (DeliveryError.retryable):
- 2xx: accepted.
- 410 Gone: EndpointGoneError, the endpoint is disabled.
- 408, 429, 5xx, timeouts, connection and DNS errors: retryable; a Retry-After header is passed on.
- any other 3xx or 4xx: not retryable (the request itself is wrong, sending it again cannot help).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from jinja2 import Template
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor import __version__
from monitor.errors import DeliveryError, EndpointGoneError, NetworkPolicyError
from monitor.netpolicy import NetworkPolicy
from monitor.notify.limits import ChannelLimits, ChannelOptions
from monitor.notify.notice import notice_webhook_body
from monitor.notify.payload import shrunk_alerts
from monitor.notify.presets import Preset, ntfy_target, preset_body
from monitor.notify.signing import secret_key, sign
from monitor.notify.templates import TemplateError, compile_template, template_context
from monitor.timeutil import parse_retry_after
from monitor.types import DeliveryRequest

if TYPE_CHECKING:
    # httpx (and monitor.policed_http on it) is imported where a webhook is configured or sent, not by every
    # process that reads a configuration: about 0.1 s of CPU at each start of `monitor once` otherwise.
    import httpx

__all__ = ["WebhookChannel", "WebhookConfig"]

USER_AGENT = f"monitor/{__version__} (news monitor; webhook delivery)"
ERROR_BODY_CHARS = 300
_RESERVED_HEADERS = {
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}


class WebhookConfig(ChannelOptions):
    """A webhook channel (``type: webhook``)."""

    type: Literal["webhook"] = "webhook"
    url: str
    secret: SecretStr | None = Field(
        default=None, description="signs each delivery; whsec_<base64> or any text"
    )
    preset: Preset = Field(
        default="generic", description="body shape: generic, slack, discord, teams, mattermost, ntfy"
    )
    body_template: str | None = Field(default=None, description="Jinja2 template of a custom body")
    content_type: str = Field(
        default="application/json", description="Content-Type of a body_template's body"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        import httpx  # see the imports

        value = value.strip()
        parts = httpx.URL(value)
        if parts.scheme not in ("http", "https") or not parts.host:
            raise ValueError(f"webhook url must be an http(s) URL with a host, got {value!r}")
        return value

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret_key(value.get_secret_value())
        return value

    @field_validator("body_template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        if value is not None:
            compile_template(value, what="body_template")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not name or any(ch in name for ch in " :\r\n\t") or not name.isascii():
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by monitor and cannot be configured")
            if "\r" in header or "\n" in header:
                raise ValueError(f"header {name!r} holds a line break")
        return value

    @model_validator(mode="after")
    def _one_body_kind(self) -> WebhookConfig:
        if self.body_template is not None and self.preset != "generic":
            raise ValueError("set either preset or body_template, not both")
        if self.preset == "ntfy":
            ntfy_target(self.url)
        return self


def _snippet(data: bytes) -> str:
    text = " ".join(data.decode("utf-8", "replace").split())
    return text[:ERROR_BODY_CHARS]


class WebhookChannel:
    """Sends deliveries to one webhook URL. Owns an httpx client: call `aclose` when done."""

    def __init__(
        self,
        name: str,
        config: WebhookConfig,
        *,
        policy: NetworkPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.config = config
        self.limits: ChannelLimits = config.limits()
        self._policy = policy
        self._clock = clock
        self._key = secret_key(config.secret.get_secret_value()) if config.secret is not None else None
        self._template: Template | None = (
            compile_template(config.body_template, what="body_template") if config.body_template else None
        )
        if config.preset == "ntfy":
            self._post_url, self._ntfy_topic = ntfy_target(config.url)
        else:
            self._post_url, self._ntfy_topic = config.url, ""
        import httpx  # see the imports

        from monitor.policed_http import policed_transport

        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(config.timeout),
            # The policy check resolves the host itself; an environment proxy would bypass it.
            trust_env=False,
            headers={"user-agent": USER_AGENT},
            # Connect only to addresses the policy allows, resolved once: closes DNS rebinding between the
            # check below and the connection.
            transport=policed_transport(policy),
        )

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, preset={self.config.preset!r})"

    def body(self, request: DeliveryRequest) -> tuple[bytes, str]:
        """The request body and its content type for this delivery. Raises DeliveryError (not retryable) when a
        custom template fails or yields invalid JSON."""
        if request.notice is not None:
            # A notice (feed health) has a shape of its own; a body_template is written for alerts.
            preset = "generic" if self._template is not None else self.config.preset
            data = notice_webhook_body(preset, request.notice)
            if preset == "generic" and request.kind == "escalation":
                # The story's thread on this channel: the escalation replies to its first notification.
                data["thread"] = request.thread
                data["in_reply_to"] = request.in_reply_to
            if self._ntfy_topic:
                data["topic"] = self._ntfy_topic
            return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
                "utf-8"
            ), "application/json"
        if self._template is not None:
            try:
                text = self._template.render(
                    template_context(
                        request.alerts,
                        digest=request.digest,
                        kind=request.kind,
                        delivery_id=request.id,
                        in_reply_to=request.in_reply_to,
                    )
                )
            except (TemplateError, ValueError) as exc:
                raise DeliveryError(self.name, f"body_template failed: {exc}", retryable=False) from exc
            if "json" in self.config.content_type:
                try:
                    json.loads(text)
                except ValueError as exc:
                    raise DeliveryError(
                        self.name, f"body_template did not produce valid JSON: {exc}", retryable=False
                    ) from exc
            return text.encode("utf-8"), self.config.content_type
        try:
            data = preset_body(
                self.config.preset,
                request.alerts,
                digest=request.digest,
                delivery_id=request.id,
                kind=request.kind,
                in_reply_to=request.in_reply_to,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeliveryError(
                self.name, f"cannot build the {self.config.preset} body: {exc!r}", retryable=False
            ) from exc
        if self._ntfy_topic:
            data["topic"] = self._ntfy_topic
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), "application/json"

    def headers(self, request: DeliveryRequest, body: bytes, content_type: str) -> dict[str, str]:
        timestamp = int(self._clock())
        headers = dict(self.config.headers)
        headers.update(
            {"content-type": content_type, "webhook-id": request.id, "webhook-timestamp": str(timestamp)}
        )
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, request.id, timestamp, body)
        return headers

    def fitted_body(self, request: DeliveryRequest) -> tuple[bytes, str]:
        """`body`, with the alerts cut (see payload.cap_payload) until it is at most max_body_bytes."""
        limit = self.config.max_body_bytes
        body, content_type = self.body(request)
        for tightness in (1, 2, 4, 8, 16):
            if len(body) <= limit:
                return body, content_type
            alerts = shrunk_alerts(request.alerts, limit, tightness)
            body, content_type = self.body(dataclasses.replace(request, alerts=alerts))
        if len(body) <= limit:
            return body, content_type
        raise DeliveryError(
            self.name,
            f"the body is {len(body)} bytes with every alert cut, over max_body_bytes ({limit})",
            retryable=False,
        )

    async def send(self, request: DeliveryRequest) -> None:
        """POST the delivery; return when the receiver accepted it (2xx). Raises DeliveryError otherwise."""
        import httpx  # see the imports

        from monitor.policed_http import AddressRefused, describe_connect_error, find_cause

        body, content_type = self.fitted_body(request)
        try:
            await self._policy.check_url(self._post_url)
        except NetworkPolicyError as exc:
            raise DeliveryError(self.name, exc.message, retryable=False) from exc
        except OSError as exc:
            raise DeliveryError(self.name, str(exc), retryable=True) from exc
        headers = self.headers(request, body, content_type)
        try:
            async with self._client.stream("POST", self._post_url, content=body, headers=headers) as response:
                snippet = b""
                if not response.is_success:
                    async for chunk in response.aiter_bytes():
                        snippet += chunk
                        if len(snippet) >= ERROR_BODY_CHARS:
                            break
        except httpx.ConnectError as exc:
            refused = find_cause(exc, AddressRefused)
            if refused is not None:
                raise DeliveryError(
                    self.name, f"refused by the network policy: {refused}", retryable=False
                ) from exc
            raise DeliveryError(self.name, f"cannot connect: {describe_connect_error(exc)}") from exc
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                self.name, f"timed out after {self.config.timeout:g}s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(self.name, f"request failed: {type(exc).__name__}: {exc}") from exc
        self._classify(response, snippet)

    def _classify(self, response: httpx.Response, snippet: bytes) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"HTTP {status}" + (f": {_snippet(snippet)}" if snippet.strip() else "")
        if status == 410:
            raise EndpointGoneError(self.name, f"{detail} (the receiver says this endpoint is gone)")
        retry_after = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        if status in (408, 429) or status >= 500:
            raise DeliveryError(self.name, detail, retryable=True, retry_after=retry_after, status=status)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            detail += f" (redirects are not followed; update the channel url{' to ' + location if location else ''})"
        raise DeliveryError(self.name, detail, retryable=False, status=status)

    async def aclose(self) -> None:
        await self._client.aclose()
