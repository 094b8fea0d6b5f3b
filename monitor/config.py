"""monitor.yaml: pydantic models, ${VAR} interpolation, and loading with file:line errors.

The configuration is immutable once loaded; a reload (SIGHUP) builds a new one and swaps it whole, or keeps the
old one when the new file is invalid. Relative paths are taken from the config file's own folder, so a unit file
can point at /etc/monitor/monitor.yaml and the config can say `database: ./state/monitor.db`.

Secrets come from the environment: `${VAR}` is replaced by the variable's value, `${VAR:-default}` falls back,
and `$${` writes a literal `${`. A missing variable is an error that names it and where it is used. Secret
fields (passwords, webhook secrets) are pydantic SecretStr, so they never appear in logs or reprs.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor import logs
from monitor.dburl import Database, PostgresURL, conninfo_params, parse_database
from monitor.errors import ConfigError
from monitor.health import HealthPolicy
from monitor.netpolicy import NetworkPolicy
from monitor.notify.apprise import AppriseConfig, parse_target
from monitor.notify.email import EmailConfig
from monitor.notify.retry import STANDARD_WEBHOOKS_SCHEDULE, RetryPolicy
from monitor.notify.templates import CONFIG_DIR
from monitor.notify.webhook import WebhookConfig
from monitor.redact import register_secret
from monitor.timeutil import parse_duration
from monitor.yamlsource import LocatedYaml, load_yaml_file, validation_error

__all__ = [
    "DEFAULT_RULES",
    "ChannelConfig",
    "FeedConfig",
    "MonitorConfig",
    "config_from_yaml",
    "interpolate_env",
    "load_config",
    "refused_urls",
]

# The bundled rule set: rules/ at the top of a source checkout (recognized by the pyproject.toml beside it), else
# the copy a wheel ships inside the package as monitor/default_rules (see pyproject.toml, package-dir).
log = logging.getLogger("monitor.config")

_CHECKOUT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = (
    _CHECKOUT / "rules"
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "rules").is_dir()
    else Path(__file__).resolve().parent / "default_rules"
)

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _interval(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return parse_duration(value)  # type: ignore[arg-type]


# A duration, or "auto": the interval follows the feed's posting rate (monitor.adaptive).
Interval = Annotated[timedelta | Literal["auto"], BeforeValidator(_interval)]
# A file path (SQLite) or a postgresql:// URL; every other scheme is refused (monitor.dburl).
DatabaseSetting = Annotated[Database, PlainValidator(parse_database)]
ChannelConfig = Annotated[EmailConfig | WebhookConfig | AppriseConfig, Field(discriminator="type")]


def _workers(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return value


# Worker processes for the CPU work of polls (monitor.workers): "auto" sizes them to the CPUs this process may
# use, 0 keeps the work in the daemon's own process, N starts N.
Workers = Annotated[Literal["auto"] | Annotated[int, Field(ge=0, le=256)], BeforeValidator(_workers)]


def _default_workers() -> object:
    # MONITOR_WORKERS is the default when monitor.yaml does not say (as gunicorn's WEB_CONCURRENCY): one
    # `MONITOR_WORKERS=0 monitor once` profiles everything in one process; the test suite runs in-process.
    return _workers(os.environ.get("MONITOR_WORKERS", "auto"))


class _Model(BaseModel):
    # hide_input_in_errors: a rejected value may be a secret that came from the environment.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class FeedConfig(_Model):
    url: str
    interval: Interval | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    language: str | None = Field(default=None, description="overrides the language the feed declares")
    honour_skip_hours: bool | None = Field(
        default=None,
        description="honour this feed's <skipHours>/<skipDays> (default: fetch.honour_skip_hours)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"(?i)^https?://[^/\s]+", value):
            raise ValueError(f"feed url must be an http(s) URL, got {value!r}")
        return value

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: timedelta | str | None) -> timedelta | str | None:
        if isinstance(value, timedelta) and value < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s")
        return value


class FetchOptions(_Model):
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    total_timeout: float = Field(default=60.0, gt=0)
    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    concurrency: int = Field(default=8, ge=1, description="feeds fetched at the same time")
    max_cache_hint: Duration = Field(
        default=timedelta(hours=2),
        description="the most that Cache-Control/Expires, RSS <ttl> or sy:updatePeriod may delay a feed's next"
        " poll beyond its interval (0s ignores them)",
    )
    honour_skip_hours: bool = Field(
        default=False,
        description="honour the feeds' <skipHours> and <skipDays> (per feed: honour_skip_hours)",
    )
    per_host_concurrency: int = Field(
        default=2, ge=0, description="fetches to one host at the same time (0: no limit)"
    )
    per_host_gap: Duration = Field(
        default=timedelta(milliseconds=200),
        description="the least time between the starts of two fetches to one host",
    )
    transport: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description="the HTTP client of feed fetches: aiohttp (about a tenth of httpx's CPU per request) or httpx",
    )


class DeliveryOptions(_Model):
    poll: Duration = Field(default=timedelta(seconds=5), description="how often the outbox is checked")
    batch: int = Field(default=100, ge=1)
    retry_schedule: tuple[Duration, ...] = Field(
        default=STANDARD_WEBHOOKS_SCHEDULE,
        min_length=1,
        description="delays between attempts of a failing delivery (Standard Webhooks schedule by default)",
    )
    max_age: Duration = Field(
        default=timedelta(days=4), description="a delivery still failing after this long is dead-lettered"
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(schedule=self.retry_schedule, max_age=self.max_age)


class RetentionOptions(_Model):
    items: Duration = timedelta(days=30)
    identity_keys: Duration = timedelta(days=400)

    @model_validator(mode="after")
    def _keys_outlive_items(self) -> RetentionOptions:
        if self.identity_keys < self.items:
            raise ValueError(
                "retention.identity_keys must be at least retention.items (old items would re-alert)"
            )
        return self


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 and "localhost" are loopback; every other host (0.0.0.0, a LAN address) is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9464" → ("127.0.0.1", 9464); "[::1]:9464" → ("::1", 9464)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class StatusOptions(_Model):
    listen: str | None = Field(
        default=None, description="HOST:PORT for the status page, API, /healthz and /metrics; off when unset"
    )
    token: SecretStr | None = Field(
        default=None,
        description="required of every request (Authorization: Bearer, or ?token=) when listen is not loopback",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("status.token must be at least 16 characters")
        return value

    @model_validator(mode="after")
    def _wider_than_loopback_needs_a_token(self) -> StatusOptions:
        address = self.address()
        if address is not None and not is_loopback_host(address[0]) and self.token is None:
            raise ValueError(
                f"status.listen {self.listen!r} is reachable beyond this machine: set status.token "
                "(or listen on 127.0.0.1)"
            )
        return self

    def address(self) -> tuple[str, int] | None:
        return parse_listen(self.listen) if self.listen else None


def _silent_for(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    return parse_duration(value)


class HealthOptions(_Model):
    """Feed health notices (monitor.health): to which channels, and when a feed counts as failing or silent."""

    notify: tuple[str, ...] = Field(default=(), description="channels that get feed health notices")
    failing_for: Duration = Field(
        default=timedelta(hours=1), description="a feed failing this long is notified (0s: at once)"
    )
    silent_for: Annotated[timedelta | Literal["auto"] | None, BeforeValidator(_silent_for)] = Field(
        default=None, description="a feed without new items this long is notified; auto: from its usual gaps"
    )
    park_after: Duration | None = Field(
        default=timedelta(days=7), description="a feed failing this long is parked (no longer polled)"
    )
    max_per_hour: int = Field(
        default=20, ge=1, description="notices queued per hour at most, over all feeds (a network outage)"
    )

    def policy(self) -> HealthPolicy:
        return HealthPolicy(
            notify=self.notify,
            failing_for=self.failing_for,
            silent_for=self.silent_for,
            park_after=self.park_after,
        )


class AdaptiveOptions(_Model):
    """Bounds and evidence of `interval: auto` (monitor.adaptive)."""

    min: Duration = Field(default=timedelta(minutes=2), description="the shortest adaptive interval")
    max: Duration = Field(default=timedelta(hours=2), description="the longest adaptive interval")
    window: Duration = Field(default=timedelta(days=14), description="how far back the posting rate is read")

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveOptions:
        if self.min < timedelta(seconds=1):
            raise ValueError("adaptive.min must be at least 1s")
        if self.max < self.min:
            raise ValueError("adaptive.max must not be shorter than adaptive.min")
        if self.window < timedelta(hours=1):
            raise ValueError("adaptive.window must be at least 1h")
        return self


class StoryOptions(_Model):
    window: Duration = timedelta(hours=72)


class ClusterOptions(_Model):
    """Several daemons on one PostgreSQL database (on SQLite the same machinery runs with one node)."""

    node: str | None = Field(
        default=None, description="a name for this daemon in `monitor nodes` (default: the host name)"
    )
    lease: Duration = Field(
        default=timedelta(minutes=3),
        description="how long a claimed feed is reserved for the node fetching it; above fetch.total_timeout",
    )
    delivery_lease: Duration = Field(
        default=timedelta(minutes=5), description="how long a claimed delivery is reserved for its sender"
    )
    heartbeat: Duration = Field(
        default=timedelta(seconds=10), description="how often a node says it is alive"
    )
    dead_after: Duration = Field(
        default=timedelta(minutes=1),
        description="a node silent this long is dead: its leases and claims are released to the others",
    )

    @field_validator("node")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        if value == "":
            return None  # `node: ${MONITOR_NODE:-}` without the variable: the host name
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
            raise ValueError("a node name holds 1-64 letters, digits, '_', '.', ':', '-'")
        return value

    @field_validator("lease", "delivery_lease", "heartbeat", "dead_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _dead_after_spans_heartbeats(self) -> ClusterOptions:
        if self.dead_after < 2 * self.heartbeat:
            raise ValueError(
                "cluster.dead_after must be at least two heartbeats (one late heartbeat is not a death)"
            )
        return self


class WebSubOptions(_Model):
    """WebSub push (monitor.websub): off unless `callback_url` is set."""

    callback_url: str | None = Field(
        default=None,
        description="the public base URL hubs call (each subscription gets its own path under it); off when unset",
    )
    listen: str = Field(default="127.0.0.1:9465", description="HOST:PORT the callback listener binds")
    lease: Duration = Field(
        default=timedelta(days=7), description="the lease asked of hubs (hub.lease_seconds)"
    )
    safety_interval: Duration = Field(
        default=timedelta(hours=1),
        description="how often a feed with a verified subscription is still polled, as a safety net",
    )

    @field_validator("callback_url")
    @classmethod
    def _http_callback(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"websub.callback_url must be an http(s) URL, got {value!r}")
        return value.rstrip("/") if value is not None else None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _bounds(self) -> WebSubOptions:
        if self.lease < timedelta(minutes=1):
            raise ValueError("websub.lease must be at least 1m")
        if self.safety_interval < timedelta(minutes=1):
            raise ValueError("websub.safety_interval must be at least 1m")
        return self

    @property
    def enabled(self) -> bool:
        return self.callback_url is not None

    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class MonitorConfig(_Model):
    source: str = Field(default="<defaults>", exclude=True, description="the file this was loaded from")
    database: DatabaseSetting = Path("./state/monitor.db")
    database_busy_timeout: Duration = Field(
        default=timedelta(seconds=30),
        description="SQLite: how long a write waits for another process's write lock before it fails (the"
        " poll is then tried again later, nothing is lost)",
    )
    rules: Path = DEFAULT_RULES
    allow_private_networks: bool | list[str] = False
    interval: Interval = Field(
        default=timedelta(minutes=10), description='default feed interval, or "auto" (see adaptive)'
    )
    adaptive: AdaptiveOptions = AdaptiveOptions()
    feeds: tuple[FeedConfig, ...] = ()
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    fetch: FetchOptions = FetchOptions()
    delivery: DeliveryOptions = DeliveryOptions()
    retention: RetentionOptions = RetentionOptions()
    stories: StoryOptions = StoryOptions()
    cluster: ClusterOptions = ClusterOptions()
    status: StatusOptions = StatusOptions()
    health: HealthOptions = HealthOptions()
    websub: WebSubOptions = WebSubOptions()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="text lines, or one JSON object per line"
    )
    drain_timeout: Duration = Field(
        default=timedelta(seconds=20),
        description="on SIGTERM, how long polls and deliveries in flight may take to finish",
    )
    workers: Workers = Field(
        default_factory=_default_workers,
        validate_default=True,
        description='processes for parsing, analysis, matching and story features: "auto" (the usable CPUs'
        " less one), 0 (in the daemon's process) or a number",
    )

    @field_validator("allow_private_networks")
    @classmethod
    def _networks(cls, value: bool | list[str]) -> bool | list[str]:
        if isinstance(value, list):
            import ipaddress

            for network in value:
                try:
                    ipaddress.ip_network(network, strict=False)
                except ValueError as exc:
                    raise ValueError(f"not an IP network: {network!r}") from exc
        return value

    @field_validator("feeds")
    @classmethod
    def _unique_feeds(cls, feeds: tuple[FeedConfig, ...]) -> tuple[FeedConfig, ...]:
        seen: set[str] = set()
        for feed in feeds:
            if feed.url in seen:
                raise ValueError(f"feed {feed.url} is listed twice")
            seen.add(feed.url)
        return feeds

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, channels: dict[str, Any]) -> dict[str, Any]:
        for name in channels:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"channel name {name!r} may only hold letters, digits, '_', '.', '-'")
        return channels

    def feed_interval(self, feed: FeedConfig) -> timedelta:
        """The feed's nominal interval: what backoff, health and `monitor feeds` reckon with. For an adaptive
        feed that is adaptive.min, the fastest it may be polled; its actual next poll is `adaptive`'s."""
        interval = feed.interval or self.interval
        return self.adaptive.min if interval == "auto" else interval

    def is_adaptive(self, feed: FeedConfig) -> bool:
        return (feed.interval or self.interval) == "auto"

    def secret_values(self) -> list[str]:
        """Every configured value that must never appear in a log line: channel passwords and secrets, extra
        header values (they carry tokens), the status page token."""
        values: list[str] = []
        for channel in self.channels.values():
            for name in ("password", "secret"):
                secret = getattr(channel, name, None)
                if secret is not None:
                    values.append(secret.get_secret_value())
            values.extend(getattr(channel, "headers", {}).values())
            if isinstance(channel, AppriseConfig):
                # An Apprise URL carries its credentials (user info, tokens in the path): the whole URL and
                # its password are masked wherever they would be logged.
                for url in channel.urls:
                    values.append(url.get_secret_value())
                    password = urlsplit(url.get_secret_value()).password
                    if password:
                        values.append(password)
        if self.status.token is not None:
            values.append(self.status.token.get_secret_value())
        if isinstance(self.database, PostgresURL):
            password = conninfo_params(self.database.url).get("password")
            if password:
                values.append(str(password))
        return values


_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(doc: LocatedYaml, environ: dict[str, str] | None = None) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of the document; `$${` stays a literal `${`."""
    env = dict(os.environ) if environ is None else environ

    def substitute(match: re.Match[str], path: tuple[str | int, ...]) -> str:
        result = _substitute(match, env, doc, path)
        in_url = bool(path) and (path[-1] == "url" or (len(path) > 1 and path[-2] == "urls"))
        if (in_url or path == ("database",)) and match.group(1):
            # A variable inside a feed, webhook or Apprise URL, or the database URL, is a secret (a token, a password):
            # masked wherever it is shown.
            register_secret(result, match.group(0))
        return result

    def walk(value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return _VAR.sub(lambda m: substitute(m, path), value)
        return value

    return walk(doc.data, ())


def _substitute(
    match: re.Match[str], env: dict[str, str], doc: LocatedYaml, path: tuple[str | int, ...]
) -> str:
    if match.group(0) == "$${":
        return "${"
    name, default = match.group(1), match.group(2)
    if name in env:
        return env[name]
    if default is not None:
        return default
    pos = doc.locate(path)
    raise ConfigError(
        f"environment variable {name} is not set (use ${{{name}:-default}} for a default)",
        file=pos.file,
        line=pos.line,
        column=pos.column,
        field=".".join(str(p) for p in path),
    )


def load_config(path: Path, environ: dict[str, str] | None = None) -> MonitorConfig:
    """Load, interpolate and validate monitor.yaml. Raises ConfigError with file:line:column and field."""
    return config_from_yaml(load_yaml_file(path), path, environ)


def config_from_yaml(doc: LocatedYaml, path: Path, environ: dict[str, str] | None = None) -> MonitorConfig:
    """Validate a parsed monitor.yaml as if it were the file at `path` (errors name that file; relative paths are
    taken from its folder). `monitor feeds add` validates an edited text this way before it writes the file."""
    data = interpolate_env(doc, environ)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            "the top level must be a mapping of keys (database, rules, feeds, channels, ...)",
            file=str(path),
            line=1,
            column=1,
        )
    try:
        # The config file's folder, for relative paths inside channel configs (e-mail body templates).
        config = MonitorConfig.model_validate(
            {**data, "source": str(path)}, context={CONFIG_DIR: path.resolve().parent}
        )
    except ValidationError as exc:
        raise validation_error(exc, doc) from exc
    _warn_if_secrets_are_readable(path, doc)
    logs.set_secrets(config.secret_values())  # before anything can log a line that holds one
    for index, name in enumerate(config.health.notify):
        if name not in config.channels:
            pos = doc.locate(("health", "notify", index))
            known = ", ".join(sorted(config.channels)) or "none configured"
            raise ConfigError(
                f"unknown channel {name!r} (channels: {known})",
                file=pos.file,
                line=pos.line,
                column=pos.column,
                field=f"health.notify.{index}",
            )
    if config.cluster.lease.total_seconds() <= config.fetch.total_timeout:
        # A lease shorter than a fetch may take would let another node fetch the same feed while the first
        # still does (fencing keeps the data right, but the feed is fetched twice).
        where = ("cluster", "lease") if "lease" in (data.get("cluster") or {}) else ("fetch", "total_timeout")
        pos = doc.locate(where)
        raise ConfigError(
            f"cluster.lease ({config.cluster.lease.total_seconds():g}s) must be longer than fetch.total_timeout "
            f"({config.fetch.total_timeout:g}s): a node's lease on a feed must outlast its fetch",
            file=pos.file,
            line=pos.line,
            column=pos.column,
            field=".".join(where),
        )
    base = path.resolve().parent
    return config.model_copy(
        update={
            "database": config.database
            if isinstance(config.database, PostgresURL)
            else _resolve(base, config.database),
            "rules": _resolve(base, config.rules) if "rules" in data else config.rules,
        }
    )


_SECRET_KEYS = frozenset({"password", "secret"})


def _warn_if_secrets_are_readable(path: Path, doc: LocatedYaml) -> None:
    """Log a warning, with file:line, for each secret written literally in a config file that its group or
    other users can read. A secret taken from the environment (${VAR}) is not in the file."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return
    if not mode & 0o077:
        return
    channels = doc.data.get("channels") if isinstance(doc.data, dict) else None
    if not isinstance(channels, dict):
        return
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            continue
        for key in sorted(_SECRET_KEYS & channel.keys()):
            value = channel[key]
            if isinstance(value, str) and value and "${" not in value:
                pos = doc.locate(("channels", name, key))
                log.warning(
                    "%s:%d: channels.%s.%s: the file holds a secret and is readable by %s (mode %04o); "
                    "chmod 600 it, or take the secret from the environment with ${VAR}",
                    pos.file,
                    pos.line,
                    name,
                    key,
                    "group and others"
                    if mode & 0o070 and mode & 0o007
                    else "group"
                    if mode & 0o070
                    else "others",
                    mode,
                )


def refused_urls(config: MonitorConfig) -> list[ConfigError]:
    """The feed, webhook and Apprise URLs the network policy would refuse (judged without DNS, see
    NetworkPolicy.refusal_without_dns), each as an error located in the config file. The URL is quoted as
    written in the file, so a ${VAR} in it stays masked."""
    policy = NetworkPolicy.from_setting(config.allow_private_networks)
    targets: list[tuple[tuple[str | int, ...], str]] = [
        (("feeds", index, "url"), feed.url) for index, feed in enumerate(config.feeds)
    ]
    targets += [
        (("channels", name, "url"), channel.url)
        for name, channel in config.channels.items()
        if isinstance(channel, WebhookConfig)
    ]
    for name, channel in config.channels.items():
        if isinstance(channel, AppriseConfig):
            for index, secret in enumerate(channel.urls):
                target = parse_target(secret.get_secret_value()).policy_url  # None: a vendor's fixed endpoint
                if target is not None:
                    targets.append((("channels", name, "urls", index), target))
    if config.websub.callback_url is not None:
        targets.append((("websub", "callback_url"), config.websub.callback_url))
    doc: LocatedYaml | None = None
    problems: list[ConfigError] = []
    for path, url in targets:
        reason = policy.refusal_without_dns(url)
        if reason is None:
            continue
        if doc is None:
            doc = load_yaml_file(Path(config.source))
        pos = doc.locate(path)
        problems.append(
            ConfigError(
                f"refused by the network policy: {reason}",
                file=pos.file,
                line=pos.line,
                column=pos.column,
                field=".".join(str(p) for p in path),
            )
        )
    return problems


def _resolve(base: Path, value: Path) -> Path:
    value = value.expanduser()
    return value if value.is_absolute() else (base / value)
