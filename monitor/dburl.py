"""What `database:` in monitor.yaml names: an SQLite file, or a PostgreSQL database by its libpq URL.

    database: ./state/monitor.db                                   an SQLite file (created if missing)
    database: postgresql://monitor:${PGPASSWORD}@db.example.org/monitor?sslmode=verify-full

A value that starts with a URL scheme (`letters://`) is a URL: `postgresql://` and `postgres://` (the two
spellings libpq accepts) select PostgreSQL; every other scheme is refused, `sqlite://` and `file://` included:
an SQLite database is written as its path, the one spelling whose meaning is not in doubt (SQLAlchemy's
`sqlite:///x` and `sqlite:////x` differ by one slash between a relative and an absolute file). A libpq
key=value string (`host=... dbname=...`) is refused with a hint rather than taken for a file name.

The URL is kept as written (with its `${VAR}` values) for connecting, and shown masked: the password of the
user info and of a `password=` parameter as `***` (`${VAR}` values are masked by monitor.redact, where the
config loader registers them). Pure: parsing the URL is libpq's own (psycopg.conninfo), no connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["POSTGRES_SCHEMES", "Database", "PostgresURL", "conninfo_params", "parse_database"]

POSTGRES_SCHEMES = ("postgresql", "postgres")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_KEYWORDS = re.compile(r"^\s*(host|hostaddr|port|dbname|user|password|service|sslmode)\s*=", re.IGNORECASE)
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*):[^/@?#]*@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")


@dataclass(frozen=True, slots=True)
class PostgresURL:
    """A PostgreSQL database, by the libpq URL it is reached at. `str()` is the masked form."""

    url: str = field(repr=False)

    @property
    def shown(self) -> str:
        """The URL with its passwords masked, for logs, `monitor check` and error messages."""
        from monitor.redact import redact

        masked = _USERINFO_PASSWORD.sub(r"\1:***@", self.url)
        return redact(_PASSWORD_PARAM.sub(r"\1***", masked))

    @property
    def dbname(self) -> str:
        """The database's name, as libpq resolves it (the URL's path, else the user name)."""
        params = conninfo_params(self.url)
        return str(params.get("dbname") or params.get("user") or "")

    def with_dbname(self, name: str) -> PostgresURL:
        """The same server and credentials, another database (tests, `monitor migrate`)."""
        from urllib.parse import quote, urlsplit, urlunsplit

        parts = urlsplit(self.url)
        return PostgresURL(urlunsplit(parts._replace(path="/" + quote(name, safe=""))))

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:
        return f"PostgresURL({self.shown!r})"


Database = Path | PostgresURL


def conninfo_params(url: str) -> dict[str, Any]:
    """libpq's reading of a connection string; raises ValueError with libpq's reason (masked)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = dict(conninfo_to_dict(url))
    except psycopg.ProgrammingError as exc:
        from monitor.logs import redact

        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # libpq quotes the whole URI in some messages; it may hold a password.
        reason = re.sub(r'"[^"]*://[^"]*"', "the URL", reason)
        raise ValueError(f"not a valid PostgreSQL URL: {redact(reason)}") from None
    for port in str(params.get("port") or "").split(","):
        if port and not port.strip().isdigit():
            raise ValueError("not a valid PostgreSQL URL: the port must be a number")
    return params


def parse_database(value: object) -> Database:
    """`database:` as written → a Path (SQLite) or a PostgresURL. Raises ValueError (the config loader turns
    it into an error naming the file and line). The message never quotes the value: it may hold a secret."""
    if isinstance(value, (Path, PostgresURL)):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a file path (SQLite) or a postgresql:// URL")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty: a file path (SQLite) or a postgresql:// URL")
    scheme = _SCHEME.match(text)
    if scheme is not None:
        name = scheme.group(1).lower()
        if name in POSTGRES_SCHEMES:
            conninfo_params(text)
            return PostgresURL(text)
        if name in ("sqlite", "sqlite3", "file"):
            raise ValueError(
                f"{name}:// URLs are not used: write the SQLite file's path itself (database: ./state/monitor.db)"
            )
        raise ValueError(
            f"unsupported database scheme {name}://: database takes a file path (SQLite) or a "
            "postgresql:// URL (PostgreSQL)"
        )
    if _KEYWORDS.match(text):
        raise ValueError(
            "a libpq key=value string is not accepted here: write the PostgreSQL database as a URL, "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME?sslmode=..."
        )
    return Path(text)
