"""One rooted exception tree for everything monitor raises on purpose.

    MonitorError
    ├── ConfigError (ValueError)        monitor.yaml or a rule file is invalid; carries file:line:column
    │   └── RuleError                   a rule file is invalid
    ├── FetchError                      a feed could not be fetched; says whether a retry may help
    │   ├── NetworkPolicyError          the URL resolves to an address the configuration does not allow
    │   └── ResponseTooLargeError       the body exceeded the configured cap
    ├── ParseError (ValueError)         bytes that are no feed we can read
    ├── StoreError                      the database refused an operation
    └── DeliveryError                   a channel did not accept a delivery; says whether to retry
        └── EndpointGoneError           the receiver answered 410: disable the endpoint

Subclasses also inherit the builtin a caller would naturally catch (ValueError for bad input), and every
message names the thing that failed (file, URL, channel) and the cause.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = [
    "ConfigError",
    "DeliveryError",
    "EndpointGoneError",
    "FetchError",
    "MonitorError",
    "NetworkPolicyError",
    "ParseError",
    "ResponseTooLargeError",
    "RuleError",
    "StoreError",
    "find_cause",
]


class MonitorError(Exception):
    """Root of every error monitor raises deliberately."""


class ConfigError(MonitorError, ValueError):
    """Invalid configuration. `file`, `line` and `column` (1-based) locate it when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class RuleError(ConfigError):
    """A rule file is invalid (unknown vocabulary, bad expression, unknown field, ...)."""


class FetchError(MonitorError):
    """A feed could not be fetched. `retryable` is False when retrying cannot help soon (4xx, policy);
    `retry_after` is the server's Retry-After hint in seconds, when it gave one."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after  # the server's own hint (Retry-After), in seconds
        super().__init__(f"{url}: {message}")


class NetworkPolicyError(FetchError):
    """The URL's host resolves to a private, loopback or link-local address and that is not allowed."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(url, message, retryable=False)


class ResponseTooLargeError(FetchError):
    """The response body grew past the configured maximum."""


class ParseError(MonitorError, ValueError):
    """The bytes are not a feed monitor can read. `source` names where they came from."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


class StoreError(MonitorError):
    """The store refused an operation (schema too new, database locked for too long, ...)."""


class DeliveryError(MonitorError):
    """A channel did not accept a delivery.

    `retryable` follows the receiver's answer (5xx, timeouts, SMTP 4xx: yes; 4xx, SMTP 5xx: no);
    `retry_after` is the receiver's own hint in seconds, when it gave one.
    """

    def __init__(
        self,
        channel: str,
        message: str,
        *,
        retryable: bool = True,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        self.channel = channel
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        super().__init__(f"channel {channel!r}: {message}")


class EndpointGoneError(DeliveryError):
    """The receiver answered 410 Gone: the endpoint is disabled until an operator re-enables it."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(channel, message, retryable=False, status=410)


E = TypeVar("E", bound=BaseException)


def find_cause(exc: BaseException, kind: type[E]) -> E | None:
    """The first exception of type `kind` in `exc`'s chain of causes and contexts (`exc` itself included)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
