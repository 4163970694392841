"""Fixtures for running a test against both backends: SQLite and a real PostgreSQL.

`db` is parametrised over both and gives a fresh, empty store location (a file, or a
URL whose search_path is a new schema of the session's cluster). The cluster is the
one $PG_TEST_URL names, else a throwaway one started here (tests/pg_cluster.py) and
stopped at the end. Without PostgreSQL the postgresql cases skip, except under CI=true,
where they fail.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from digest.location import Location, PostgresURL

BACKENDS = ("sqlite", "postgresql")
_schemas = itertools.count(1)
_created: list[str] = []


def drop_schemas(server: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        for name in _created:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    _created.clear()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server the tests may create schemas in."""
    if os.environ.get("PG_TEST_URL"):  # a server of the caller's: leave it as it was
        yield os.environ["PG_TEST_URL"]
        drop_schemas(os.environ["PG_TEST_URL"])
        return
    from pg_cluster import Cluster

    try:
        cluster = Cluster().start()
    except Exception as exc:  # not installed, or initdb failed: say why
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL unavailable: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


def fresh_schema(server: str) -> PostgresURL:
    """A new empty schema on the server, as a URL that uses it."""
    import psycopg

    name = f"digest_test_{os.getpid()}_{next(_schemas)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    _created.append(name)
    separator = "&" if "?" in server else "?"
    return PostgresURL(f"{server}{separator}options={quote(f'-csearch_path={name}')}")


@pytest.fixture
def pg_url(pg_server: str) -> PostgresURL:
    """A fresh, empty PostgreSQL store."""
    return fresh_schema(pg_server)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh, empty store on each backend in turn."""
    if request.param == "sqlite":
        return tmp_path / "digest.db"
    return fresh_schema(request.getfixturevalue("pg_server"))
