"""The run lock on PostgreSQL (see Store.run_lock; SQLite's file lock is runlock.py): a
session advisory lock on a key derived from the database, schema and cadence, held for
a whole send run and dropped by the server when the process dies (it notices the
socket close).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from digest.runlock import busy

if TYPE_CHECKING:
    from digest.sql import PostgresConnection


def holder_name() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def lock_key(database: str, schema: str, name: str) -> int:
    """A signed 64-bit advisory lock key for `name` in this database and schema."""
    digest = hashlib.sha256(f"{database}\x00{schema}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def advisory_lock(conn: PostgresConnection, name: str) -> Iterator[None]:
    """pg_try_advisory_lock, held by this connection's session until the run ends."""
    database, schema = conn.execute("SELECT current_database(), current_schema()").fetchone()
    key = lock_key(database, schema, name)
    conn.execute("SELECT set_config('application_name', ?, false)",
                 (f"digest {holder_name()}"[:63],))
    if not conn.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0]:
        raise busy(advisory_holder(conn, key))
    try:
        yield
    finally:
        if not conn.raw.closed and not conn.raw.broken:
            conn.execute("SELECT pg_advisory_unlock(?)", (key,))


def advisory_holder(conn: PostgresConnection, key: int) -> str:
    """Who holds the lock, as its application name says (`digest pid N on HOST`)."""
    unsigned = key & (2**64 - 1)
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(? AS oid) "
        "AND l.objid = CAST(? AS oid) AND l.objsubid = 1",
        (unsigned >> 32, unsigned & 0xFFFFFFFF)).fetchone()
    name = row[0] if row else ""
    return name.removeprefix("digest ") if name.startswith("digest ") else "another process"
