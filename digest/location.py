"""Where the store lives: a SQLite file, or a PostgreSQL server named by a URL.

`--db`, `DIGEST_DB` and `store.path` all take either. A `postgresql://` (or
`postgres://`) URL selects PostgreSQL; anything else with a `scheme://` is refused;
everything else is a file path, relative to the configuration's folder.

A `PostgresURL` never shows its password: `str()` and `repr()` give
`postgresql://user:***@host:port/db`; only `dsn` (handed to the driver) has it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

SCHEMES = ("postgresql", "postgres")
SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class LocationError(ValueError):
    """A database location that is neither a path nor a PostgreSQL URL."""


@dataclass(frozen=True)
class PostgresURL:
    dsn: str = field(repr=False)

    def __str__(self) -> str:
        return redact(self.dsn)

    def __repr__(self) -> str:
        return f"PostgresURL({redact(self.dsn)!r})"

    @property
    def where(self) -> str:
        """host:port/db, as errors name the server (no user, no password)."""
        parts = urlsplit(self.dsn)
        host = parts.hostname or "localhost"
        try:
            port = parts.port or 5432
        except ValueError:
            port = 5432
        return f"{host}:{port}/{unquote(parts.path.lstrip('/')) or 'postgres'}"


Location = Path | PostgresURL


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ***; the query is dropped when it
    carries one too (password=...)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = "***" if "password" in parts.query.lower() else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def is_url(value: str) -> bool:
    return SCHEME.match(value) is not None


def parse_location(value: str, root: Path) -> Location:
    """A PostgresURL for a PostgreSQL URL, else the path (relative to `root`)."""
    match = SCHEME.match(value)
    if match is None:
        return root / value
    if match.group(1).lower() not in SCHEMES:
        raise LocationError(
            f"{redact(value)}: unsupported database URL scheme {match.group(1)!r}: use a "
            "file path (SQLite) or postgresql://user:password@host:port/db")
    return PostgresURL(value)
