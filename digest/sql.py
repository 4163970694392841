"""One SQL layer over sqlite3 and psycopg 3: every query is written once, in SQLite's
style, and this module is the one place that knows how PostgreSQL differs.

Conventions for SQL anywhere in digest (store.py, ledger.py, feedback.py, ...):

- Parameters are `?` (or `?1`, `?2` to reuse one); never `%s` or `$1`. A literal `%`
  is fine.
- Run statements through `store.conn.execute` / `executemany`; read rows as tuples;
  `cursor.rowcount` and `cursor.lastrowid` work on both (lastrowid: tables whose key
  is `id INTEGER PRIMARY KEY`).
- Writes go in `store.transaction()` (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN plus
  one transaction-level advisory lock, so writers take turns exactly as on SQLite).
- Portable SQL only: `INSERT OR IGNORE` and two-argument `min(a, b)` / `max(a, b)` are
  translated; `ON CONFLICT (...) DO UPDATE SET ... excluded.x` works on both (qualify
  the target's columns there: `min(t.at, excluded.at)`). A parameter PostgreSQL cannot
  type alone needs a cast: `CAST(? AS TEXT) IS NULL`. `sum()` of integers comes back
  as an int on both. No `PRAGMA`, no `rowid`, no `LIKE` for matching addresses (case
  rules differ), no `GLOB`, no `strftime`/`datetime()`, no `INSERT OR REPLACE`, no
  SELECT of a column that is neither grouped nor aggregated: times are ISO 8601 text
  compared as text. Order by what is unique where order matters (NULLs sort first on
  SQLite, last on PostgreSQL).
- Inside a transaction, an error loses the whole transaction on PostgreSQL: let it roll
  back (never catch it and go on writing in the same transaction). The error of a
  transaction's first statement may be raised by the next statement or at COMMIT (it
  travels with BEGIN); outside transactions every statement raises its own.
- Schema (migrations in store.py): `INTEGER` (becomes BIGINT), `INTEGER PRIMARY KEY`
  (an identity column), `TEXT` (byte order, like SQLite), `BLOB` (BYTEA), `REAL`.
  `WITHOUT ROWID` is dropped on PostgreSQL.
- Errors: catch the sqlite3 exception classes. PostgreSQL errors are raised as
  subclasses of them (IntegrityError, OperationalError, DatabaseError), and a lost
  connection as `ConnectionLost`, a StoreError (the CLI's `Error: …`, exit 1).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

from digest.errors import StoreError
from digest.location import PostgresURL

WRITER_LOCK = 0x6469676573740001  # pg_advisory_xact_lock key of the writers' turn
RETRYABLE = frozenset({"40001", "40P01"})  # serialization failure, deadlock
CONNECT_TIMEOUT_S = 10
ATTEMPTS = 5  # of a statement or transaction PostgreSQL refused as RETRYABLE


class IntegrityError(sqlite3.IntegrityError):
    """A constraint refused a row on PostgreSQL."""


class OperationalError(sqlite3.OperationalError):
    """PostgreSQL could not run a statement (a lock time-out, a serialization failure)."""

    sqlstate: str | None = None


class DatabaseError(sqlite3.DatabaseError):
    """Any other PostgreSQL error."""


class ConnectionLost(StoreError):
    """The connection to PostgreSQL broke: what was in flight is unknown."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    backend: str
    label: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor: ...
    @property
    def in_transaction(self) -> bool: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...
    def schema_version(self) -> int: ...
    def set_schema_version(self, number: int) -> None: ...
    def translate_ddl(self, statement: str) -> str: ...
    def tables(self) -> list[str]: ...
    def columns(self, table: str) -> list[str]: ...
    def after_copy(self, table: str, columns: Sequence[str]) -> None: ...
    def page_cache(self, kib: int) -> AbstractContextManager[None]: ...


# ---------------------------------------------------------------- SQLite


class SqliteConnection:
    """sqlite3 as it was: autocommit mode, explicit BEGIN IMMEDIATE."""

    backend = "sqlite"

    def __init__(self, raw: sqlite3.Connection, label: str) -> None:
        self.raw, self.label = raw, label

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.raw.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self.raw.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    def begin(self) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def schema_version(self) -> int:
        return int(self.raw.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, number: int) -> None:
        self.raw.execute(f"PRAGMA user_version = {int(number)}")

    def translate_ddl(self, statement: str) -> str:
        return statement

    def tables(self) -> list[str]:
        return [row[0] for row in self.raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self.raw.execute(f"PRAGMA table_info({table})")]

    def after_copy(self, table: str, columns: Sequence[str]) -> None:
        return None

    @contextmanager
    def page_cache(self, kib: int) -> Iterator[None]:
        """A larger page cache for one big write, given back after it."""
        before = self.raw.execute("PRAGMA cache_size").fetchone()[0]
        self.raw.execute(f"PRAGMA cache_size = -{int(kib)}")
        try:
            yield
        finally:
            self.raw.execute(f"PRAGMA cache_size = {int(before)}")


# ---------------------------------------------------------------- PostgreSQL: dialect


@functools.lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """SQLite-style SQL as PostgreSQL takes it: `?` and `?N` become its own `$N`
    placeholders (psycopg's RawCursor passes them through unparsed)."""
    sql = INSERT_OR_IGNORE.sub("INSERT INTO", sql) + (
        " ON CONFLICT DO NOTHING" if INSERT_OR_IGNORE.search(sql) else "")
    sql = TWO_ARG.sub(lambda m: f"{LEAST[m.group(1).lower()]}({m.group(2)},{m.group(3)})", sql)
    out: list[str] = []
    last = 0  # a bare ? is the one after the highest so far, as in SQLite
    i, quote = 0, ""
    while i < len(sql):
        char = sql[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "?":
            digits = re.match(r"\d+", sql[i + 1:])
            number = int(digits.group()) if digits else last + 1
            last = max(last, number)
            out.append(f"${number}")
            i += 1 + (len(digits.group()) if digits else 0)
            continue
        out.append(char)
        i += 1
    return "".join(out)


INSERT_OR_IGNORE = re.compile(r"\bINSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
TWO_ARG = re.compile(r"\b(min|max)\(([^(),]+),([^(),]+)\)", re.IGNORECASE)
LEAST = {"min": "least", "max": "greatest"}
DDL = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")"),
)


MULTI_ROW = 1000  # rows per INSERT (PostgreSQL takes at most 65,535 parameters)
VALUES = re.compile(r"^(\s*INSERT\s+INTO\s.*?\bVALUES\s*)(\((?:\s*\$\d+\s*,)*\s*\$\d+\s*\))(.*)$",
                    re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=128)
def multi_row(text: str) -> Any:
    """For `INSERT ... VALUES ($1, ...)` without DO UPDATE (a row may not be updated
    twice by one statement), a function giving the statement for n rows; else None."""
    match = VALUES.match(text)
    if match is None or re.search(r"\bDO\s+UPDATE\b", match.group(3), re.IGNORECASE):
        return None
    head, row, tail = match.groups()
    numbers = [int(n) for n in re.findall(r"\$(\d+)", row)]
    if numbers != list(range(1, len(numbers) + 1)) or "$" in head + tail or "{" in row:
        return None
    width = len(numbers)
    template = re.sub(r"\$(\d+)", lambda m: f"${{{int(m.group(1)) - 1}}}", row)

    def rows(n: int) -> str:
        marks = (template.format(*range(i * width + 1, (i + 1) * width + 1)) for i in range(n))
        return head + ",".join(marks) + tail

    return functools.lru_cache(maxsize=8)(rows)


ONE_ROW = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\s*\([^)]*\)\s*VALUES\s*\([^()]*\)\s*$",
                     re.IGNORECASE)


@functools.lru_cache(maxsize=256)
def returns_id(text: str, identity_tables: frozenset[str]) -> bool:
    """Whether a one-row INSERT into a table keyed by `id` should return it (so that
    `lastrowid` costs no second round trip)."""
    match = ONE_ROW.match(text)
    return match is not None and match.group(1).lower() in identity_tables


def translate_ddl(statement: str) -> str:
    if not statement.lstrip().upper().startswith(("CREATE TABLE", "ALTER TABLE")):
        return statement
    for pattern, replacement in DDL:
        statement = pattern.sub(replacement, statement)
    return statement


# ---------------------------------------------------------------- PostgreSQL: connection


class PostgresCursor:
    """psycopg's cursor with sqlite3's `lastrowid`. The first statement of a transaction
    may still be on its way (see PostgresConnection.send_begin): reading anything of it
    waits for it first."""

    def __init__(self, cursor: Any, conn: PostgresConnection, returning: bool = False,
                 rowcount: int | None = None) -> None:
        self.cursor, self.conn, self.returning = cursor, conn, returning
        self._rowcount = rowcount
        self._returned: int | None = None

    @property
    def rowcount(self) -> int:
        if self._rowcount is None:
            self.conn.flush()
            self._rowcount = int(self.cursor.rowcount)
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        if self.returning and self._returned is None:
            self.conn.flush()
            with self.conn.errors():
                self._returned = int(self.cursor.fetchone()[0])
        if self._returned is not None:
            return self._returned
        row = self.conn.execute("SELECT lastval()").fetchone()
        return int(row[0]) if row else None

    def fetchone(self) -> Any:
        self.conn.flush()
        if not self.cursor.description or self.returning:
            return None
        with self.conn.errors():
            return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        self.conn.flush()
        if not self.cursor.description or self.returning:
            return []
        with self.conn.errors():
            return list(self.cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PostgresConnection:
    """A psycopg connection in autocommit mode with explicit BEGIN/COMMIT, as sqlite3."""

    backend = "postgresql"

    def __init__(self, raw: Any, url: PostgresURL) -> None:
        self.raw, self.url, self.label = raw, url, str(url)
        self.begin_pending = False  # BEGIN goes out with the transaction's first statement
        self.pipeline: Any = None  # ... which may still be in flight (see send_begin)
        self.identity_tables: frozenset[str] = frozenset()  # keyed by `id INTEGER PRIMARY KEY`

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PostgresCursor:
        """One statement; outside a transaction it is retried on a serialization
        failure or a deadlock (inside one, Store.retrying runs the whole again)."""
        text = translate(sql)
        returning = returns_id(text, self.identity_tables)
        text = f"{text} RETURNING id" if returning else text
        self.flush()
        for attempt in range(ATTEMPTS):
            try:
                with self.errors():
                    cursor = self.raw.cursor()
                    if self.begin_pending:
                        self.send_begin(cursor, text, params)
                    else:
                        cursor.execute(text, params or None)
                    return PostgresCursor(cursor, self, returning)
            except OperationalError as exc:
                if self.in_transaction or not retryable(exc, attempt):
                    raise
                time.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PostgresCursor:
        """Many rows; a plain INSERT ... VALUES goes as multi-row INSERTs of up to
        MULTI_ROW rows (one statement each instead of one per row)."""
        text = translate(sql)
        params = list(rows)
        multi = multi_row(text)
        if self.begin_pending:
            self.send_begin()
        self.flush()
        with self.errors():
            cursor = self.raw.cursor()
            if multi is None or not params:
                cursor.executemany(text, params)
                return PostgresCursor(cursor, self)
            total = 0
            for start in range(0, len(params), MULTI_ROW):
                chunk = params[start:start + MULTI_ROW]
                cursor.execute(multi(len(chunk)), [value for row in chunk for value in row])
                total += max(cursor.rowcount, 0)
        return PostgresCursor(cursor, self, rowcount=total)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return (self.begin_pending or self.pipeline is not None
                or self.raw.info.transaction_status != TransactionStatus.IDLE)

    def begin(self) -> None:
        """Sent with the first statement (see send_begin): one round trip fewer."""
        self.begin_pending = True

    def send_begin(self, cursor: Any = None, text: str = "", params: Sequence[Any] = ()) -> None:
        """BEGIN at READ COMMITTED (whatever the server's default), the writers' turn (a
        transaction-level advisory lock) and the transaction's first statement go out
        together in a pipeline that stays open: a one-statement transaction (a batch's
        state) then costs one round trip with its COMMIT. Reading the statement's result,
        the next statement and COMMIT wait for it (`flush`); its error is raised there."""
        self.begin_pending = False
        self.pipeline = self.raw.pipeline()
        self.pipeline.__enter__()
        self.raw.cursor().execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        self.raw.cursor().execute(f"SELECT pg_advisory_xact_lock({signed(WRITER_LOCK)})")
        if cursor is not None:
            cursor.execute(text, params or None)

    def flush(self) -> None:
        """Wait for what the open pipeline carries; raise its first error."""
        if self.pipeline is None:
            return
        pipeline, self.pipeline = self.pipeline, None
        with self.errors():
            pipeline.__exit__(None, None, None)

    def commit(self) -> None:
        if self.begin_pending:  # nothing was written
            self.begin_pending = False
            return
        try:
            with self.errors():  # a pipelined statement's error may surface only here
                if self.pipeline is not None:
                    self.raw.cursor().execute("COMMIT")
                    self.flush()
                else:
                    self.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        self.begin_pending = False
        if self.pipeline is not None:
            pipeline, self.pipeline = self.pipeline, None
            with contextlib.suppress(Exception):  # the error was raised already
                pipeline.__exit__(None, None, None)
        if not self.raw.closed and not self.raw.broken and self.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def schema_version(self) -> int:
        """0 before the first migration. An MVCC read of the catalog, not to_regclass:
        after waiting for the writers' lock, a migration another process just committed
        must be seen (to_regclass may use the catalog as of BEGIN)."""
        if self.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
                        "current_schema() AND tablename = 'digest_schema'").fetchone()[0] == 0:
            return 0
        row = self.execute("SELECT max(version) FROM digest_schema").fetchone()
        return int(row[0] or 0)

    def set_schema_version(self, number: int) -> None:
        self.execute("CREATE TABLE IF NOT EXISTS digest_schema (version INTEGER NOT NULL)")
        self.execute("DELETE FROM digest_schema")
        self.execute("INSERT INTO digest_schema (version) VALUES (?)", (number,))

    def translate_ddl(self, statement: str) -> str:
        return translate_ddl(statement)

    def tables(self) -> list[str]:
        return [row[0] for row in self.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename != 'digest_schema' ORDER BY tablename")]

    def columns(self, table: str) -> list[str]:
        return [row[0] for row in self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]

    def after_copy(self, table: str, columns: Sequence[str]) -> None:
        """Rows copied with their ids: the identity continues after the largest."""
        if "id" in columns:
            self.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) "
                         f"FROM {table} HAVING max(id) IS NOT NULL")

    def page_cache(self, kib: int) -> AbstractContextManager[None]:
        """The server manages its own buffers."""
        return nullcontext()

    def errors(self) -> AbstractContextManager[None]:
        return translated_errors(self)


@contextmanager
def translated_errors(conn: PostgresConnection) -> Iterator[None]:
    """psycopg's errors as sqlite3's classes (so callers catch one family), a lost
    connection as ConnectionLost."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        if conn.raw.broken or isinstance(exc, psycopg.errors.AdminShutdown):
            raise ConnectionLost(
                f"lost the connection to PostgreSQL at {conn.url.where}: {first_line(exc)} "
                "(a batch in flight is left unknown: run it again to finish)") from None
        raise as_sqlite_error(exc) from None


def as_sqlite_error(exc: Any) -> sqlite3.Error:
    import psycopg

    if isinstance(exc, psycopg.IntegrityError):
        return IntegrityError(first_line(exc))
    if isinstance(exc, psycopg.OperationalError):
        error = OperationalError(first_line(exc))
        error.sqlstate = exc.sqlstate
        return error
    return DatabaseError(first_line(exc))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def signed(key: int) -> int:
    """A 64-bit key as PostgreSQL's bigint takes it."""
    key &= (1 << 64) - 1
    return key - (1 << 64) if key >= 1 << 63 else key


def connect_postgres(url: PostgresURL) -> PostgresConnection:
    """Connect, or raise StoreError naming the server (never the password)."""
    try:
        import psycopg
        from psycopg.types.numeric import NumericLoader
    except ImportError:
        raise StoreError(
            f"{url}: PostgreSQL needs the driver: pip install 'digest[postgres]'") from None

    class WholeNumbers(NumericLoader):  # sum() of integers is numeric: give back an int
        def load(self, data: Any) -> Any:
            value = super().load(data)
            return int(value) if value == value.to_integral_value() else float(value)

    try:
        raw = psycopg.connect(url.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                              application_name="digest", cursor_factory=psycopg.RawCursor)
    except psycopg.Error as exc:
        reason = first_line(exc).replace(url.dsn, str(url))
        raise StoreError(f"cannot connect to PostgreSQL at {url.where}: {reason}") from None
    raw.adapters.register_loader("numeric", WholeNumbers)
    conn = PostgresConnection(raw, url)
    OPEN.add(conn)
    return conn


# A forked child (the render and content workers) must not keep the parent's session
# alive: if the parent is killed, its run lock goes with its socket only when no child
# still holds a copy. Each child points its copies at /dev/null at once, so nothing it
# does (or its exit) can write to the parent's session either.
OPEN: weakref.WeakSet[PostgresConnection] = weakref.WeakSet()


def drop_inherited_sockets() -> None:
    for conn in list(OPEN):
        if conn.raw.closed:
            continue
        socket_fd = conn.raw.fileno()
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, socket_fd)
        os.close(null)
    OPEN.clear()


os.register_at_fork(after_in_child=drop_inherited_sockets)


def backoff(attempt: int) -> float:
    return 0.05 * 2.0 ** attempt


def retryable(exc: BaseException, attempt: int, attempts: int = ATTEMPTS) -> bool:
    return (isinstance(exc, OperationalError) and exc.sqlstate in RETRYABLE
            and attempt < attempts - 1)
