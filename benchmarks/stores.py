"""`--db` for the benchmarks: a new SQLite file in the run's temporary folder (the
default), or with `--db postgresql://…` a new schema in that database, dropped after."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from digest.location import Location, PostgresURL


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="URL",
                        help="postgresql://… to measure PostgreSQL (a throwaway schema is "
                        "created there and dropped); default: a new SQLite file")


@contextmanager
def fresh_store(url: str | None, folder: Path) -> Iterator[Location]:
    if not url:
        yield folder / "digest.db"
        return
    import psycopg

    schema = f"bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in url else "?"
        yield PostgresURL(f"{url}{separator}options={quote(f'-csearch_path={schema}')}")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def backend(location: Location) -> str:
    return "postgresql" if isinstance(location, PostgresURL) else "sqlite"


def dsn(location: Location) -> str:
    return location.dsn if isinstance(location, PostgresURL) else str(location)
