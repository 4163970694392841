"""`digest db`: what a store holds (status), migrating it (upgrade), and copying a
whole store to another backend (copy) into an empty target, checked row by row count.

A copy keeps every id, salt and token hash, so every unsubscribe link ever sent keeps
working; the frozen plans, batches and deliveries of the ledger, the webhook counts and
the shared rate limits go along.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from digest.errors import StoreError
from digest.location import Location
from digest.store import MIGRATIONS, Store, open_store

# Parents before children, so foreign keys hold at every row; tables a later migration
# adds and this list does not name are copied after these, by name.
COPY_ORDER = ("subscribers", "subscriber_events", "unsubscribe_tokens", "preference_changes",
              "issues", "issue_segments", "batches", "deliveries", "webhook_events",
              "issue_activity", "soft_bounces", "issue_archive", "confirmation_emails",
              "rate_hits")
CHUNK = 5000


@dataclass(frozen=True)
class Status:
    backend: str
    location: str  # the password hidden
    version: int
    rows: dict[str, int]


def status(location: Location) -> Status:
    """What the store holds, without migrating it."""
    with open_store(location, upgrade=False) as store:
        return Status(store.backend, str(location), store.version, row_counts(store))


def upgrade(location: Location) -> tuple[int, int]:
    """(version before, version after) the migrations this digest knows."""
    with open_store(location, upgrade=False) as store:
        before = store.version
    with open_store(location) as store:
        return before, store.version


def row_counts(store: Store) -> dict[str, int]:
    return {table: int(store.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ordered(store.conn.tables())}


def ordered(tables: list[str]) -> list[str]:
    known = [table for table in COPY_ORDER if table in tables]
    return known + sorted(set(tables) - set(COPY_ORDER))


def copy(source: Location, target: Location,
         progress: Callable[[str, int], None] = lambda table, rows: None) -> dict[str, int]:
    """Copy every row of `source` into the empty store at `target` (both migrated to
    this digest's schema first) in one transaction; returns the row count per table."""
    if str(source) == str(target):
        raise StoreError(f"{target}: the source and the target are the same store")
    with open_store(source) as old, open_store(target) as new:
        if busy := {t: n for t, n in row_counts(new).items() if n}:
            raise StoreError(f"{target}: not empty ({describe(busy)}): copy only into a "
                             "new database")
        counts = row_counts(old)
        with new.transaction():
            for table in counts:
                copy_table(old, new, table)
                progress(table, counts[table])
        if (copied := row_counts(new)) != counts:
            raise StoreError(f"{target}: the copy's row counts differ: expected "
                             f"{describe(counts)}, found {describe(copied)}")
    return counts


def copy_table(old: Store, new: Store, table: str) -> None:
    columns = old.conn.columns(table)
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    rows = old.conn.execute(f"SELECT {names} FROM {table} ORDER BY 1")
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"
    chunk: list[tuple[object, ...]] = []
    for row in rows:
        chunk.append(tuple(row))
        if len(chunk) >= CHUNK:
            new.conn.executemany(insert, chunk)
            chunk = []
    if chunk:
        new.conn.executemany(insert, chunk)
    new.conn.after_copy(table, columns)


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in counts.items())


def latest() -> int:
    return len(MIGRATIONS)
