"""The SQLite store: migrations, two processes, status history, tokens, forgetting."""

import base64
import hashlib
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.ledger import Ledger
from digest.store import (
    CACHE_KIB,
    MIGRATIONS,
    Change,
    NewSubscriber,
    Store,
    connect,
    derive_token,
    derive_tokens,
    enter_wal,
    migrate,
    open_store,
)

NOW = datetime(2026, 2, 23, 8, 0, tzinfo=UTC)
SECRET = "a-test-secret-of-enough-length"
TABLES = {"subscribers", "subscriber_events", "unsubscribe_tokens"}


@pytest.fixture
def store(tmp_path: Path):
    with open_store(tmp_path / "digest.db", clock=lambda: NOW) as opened:
        yield opened


def add(store: Store, email: str, **values) -> None:
    store.insert([NewSubscriber(email, **values)], "cli")


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                               "'table'")}
    finally:
        conn.close()


# Migrations


def test_an_empty_file_is_migrated_to_the_latest_version(tmp_path):
    (tmp_path / "digest.db").touch()
    with open_store(tmp_path / "digest.db") as store:
        assert store.version == len(MIGRATIONS)
    assert tables(tmp_path / "digest.db") >= TABLES


@pytest.mark.parametrize("version", range(len(MIGRATIONS)))
def test_every_earlier_version_is_migrated_keeping_its_data(tmp_path, version):
    conn = connect(tmp_path / "digest.db")
    assert migrate(conn, MIGRATIONS[:version]) == version
    if version >= 1:
        conn.execute("INSERT INTO subscribers (email, email_key, cadence, status, created_at, "
                     "token_salt) VALUES ('ada@example.com', 'ada@example.com', 'weekly', "
                     "'active', '2026-01-01T00:00:00+00:00', x'00')")
    conn.close()
    with open_store(tmp_path / "digest.db") as store:
        assert store.version == len(MIGRATIONS)
        assert [s.email for s in store.subscribers()] == (
            ["ada@example.com"] if version >= 1 else [])


def test_migrating_twice_changes_nothing(tmp_path):
    open_store(tmp_path / "digest.db").close()
    before = (tmp_path / "digest.db").read_bytes()
    with open_store(tmp_path / "digest.db") as store:
        assert migrate(store.conn) == len(MIGRATIONS)
    assert (tmp_path / "digest.db").read_bytes() == before


def test_later_migrations_append_in_order_and_run_once(tmp_path):
    later = (*MIGRATIONS, ("CREATE TABLE notes (key TEXT PRIMARY KEY)",),
             ("ALTER TABLE notes ADD COLUMN planned_at TEXT",))
    conn = connect(tmp_path / "digest.db")
    assert migrate(conn) == len(MIGRATIONS)
    assert migrate(conn, later) == len(later)
    assert migrate(conn, later) == len(later)
    assert [row[1] for row in conn.execute("PRAGMA table_info(notes)")] == ["key", "planned_at"]
    conn.close()


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    broken = (*MIGRATIONS, ("CREATE TABLE notes (key TEXT)", "NOT SQL AT ALL"))
    conn = connect(tmp_path / "digest.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert "notes" not in tables(tmp_path / "digest.db")
    conn.close()


def test_a_database_from_a_newer_digest_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "digest.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError) as error:
        open_store(tmp_path / "digest.db")
    assert str(error.value) == (
        f"the database is at version 99, newer than this digest knows ({len(MIGRATIONS)}): "
        "upgrade digest")


def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    (tmp_path / "digest.db").write_text("email,name\n" * 200)
    with pytest.raises(StoreError) as error:
        open_store(tmp_path / "digest.db")
    assert str(error.value) == (
        f"{tmp_path / 'digest.db'}: cannot open the database: file is not a database")


def test_a_path_with_a_nul_byte_is_refused(tmp_path):
    with pytest.raises(StoreError) as error:
        open_store(tmp_path / "a\0b.db")
    assert str(error.value) == (
        f"{tmp_path / 'a'}\0b.db: cannot open the database: embedded null byte")


# Migration 5: a removed reader's deliveries and activity stay, without them

V4_ISSUE = [
    "INSERT INTO subscribers (id, email, email_key, cadence, status, created_at, token_salt) "
    "VALUES (1, 'ada@example.com', 'ada@example.com', 'weekly', 'active', '2026-01-01', x'01'),"
    " (2, 'bob@example.com', 'bob@example.com', 'weekly', 'active', '2026-01-02', x'02')",
    "INSERT INTO issues VALUES ('2026-W48', 'weekly', '2026-11-22T00:00:00+00:00', "
    "'2026-11-29T00:00:00+00:00', 'done', '2026-11-29T08:00', '2026-11-29T08:01')",
    "INSERT INTO issue_segments VALUES ('2026-W48', 'all', '[]', '[\"a\"]', 2, 'S', '<p>', 't')",
    "INSERT INTO batches VALUES (1, '2026-W48', 'all', 1, 'accepted', 'msg1', NULL, "
    "'2026-11-29T08:01')",
    "INSERT INTO deliveries VALUES ('2026-W48', 1, 1), ('2026-W48', 2, 1)",
    "INSERT INTO issue_activity VALUES ('2026-W48', 'delivered', 1, '2026-11-29T09:00'), "
    "('2026-W48', 'delivered', 2, '2026-11-29T09:01'), "
    "('2026-W48', 'opened', 1, '2026-11-29T10:00')",
]


def version_4_with_a_sent_issue(path: Path, *more: str) -> None:
    """A database as digest 4 left it: ada and bob, an issue sent to both, what the
    webhook counted; then `more` statements, run with foreign keys off."""
    conn = connect(path)
    assert migrate(conn, MIGRATIONS[:4]) == 4
    for statement in V4_ISSUE:
        conn.execute(statement)
    conn.execute("PRAGMA foreign_keys = OFF")
    for statement in more:
        conn.execute(statement)
    conn.close()


def rows(store: Store, table: str) -> list[tuple]:
    return store.conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()


def test_migration_5_keeps_every_delivery_and_activity_row(tmp_path):
    version_4_with_a_sent_issue(tmp_path / "digest.db")
    with open_store(tmp_path / "digest.db") as store:
        assert store.version == len(MIGRATIONS)
        assert rows(store, "deliveries") == [("2026-W48", 1, 1), ("2026-W48", 2, 1)]
        assert rows(store, "issue_activity") == [
            ("2026-W48", "delivered", 1, "2026-11-29T09:00"),
            ("2026-W48", "delivered", 2, "2026-11-29T09:01"),
            ("2026-W48", "opened", 1, "2026-11-29T10:00")]
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert {(table, row[2], row[6]) for table in ("deliveries", "issue_activity")
                for row in store.conn.execute(f"PRAGMA foreign_key_list({table})")} == {
            ("deliveries", "subscribers", "SET NULL"), ("deliveries", "batches", "CASCADE"),
            ("issue_activity", "subscribers", "SET NULL"),
            ("issue_activity", "issues", "CASCADE")}
        assert sorted(row[0] for row in store.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
            "('deliveries', 'issue_activity') AND sql IS NOT NULL")) == [
            "deliveries_batch", "deliveries_subscriber", "issue_activity_subscriber"]


def test_removing_a_reader_keeps_their_deliveries_and_activity_without_them(tmp_path):
    version_4_with_a_sent_issue(tmp_path / "digest.db")
    with open_store(tmp_path / "digest.db") as store:
        assert store.remove("ada@example.com")
        # written again at the end: the removed reader's row no longer sits at its id
        assert rows(store, "deliveries") == [("2026-W48", 2, 1), ("2026-W48", None, 1)]
        assert rows(store, "issue_activity") == [
            ("2026-W48", "delivered", None, "2026-11-29T09:00"),
            ("2026-W48", "delivered", 2, "2026-11-29T09:01"),
            ("2026-W48", "opened", None, "2026-11-29T10:00")]
        assert Ledger(store).counts("2026-W48") == {
            "planned": 2, "accepted": 2, "failed": 0, "unknown": 0, "pending": 0,
            "skipped": 0}
        assert [(b.recipients, b.removed, b.size) for b in Ledger(store).batches(
            "2026-W48")] == [((2,), 1, 2)]


def test_a_reader_is_still_planned_at_most_once_per_issue(tmp_path):
    version_4_with_a_sent_issue(tmp_path / "digest.db")
    with open_store(tmp_path / "digest.db") as store:
        assert store.remove("ada@example.com") and store.remove("bob@example.com")
        assert rows(store, "deliveries") == [("2026-W48", None, 1), ("2026-W48", None, 1)]
        add(store, "cy@example.com")
        cy = store.get("cy@example.com").id
        store.conn.execute("INSERT INTO deliveries VALUES ('2026-W48', ?, 1)", (cy,))
        with pytest.raises(sqlite3.IntegrityError) as error:
            store.conn.execute("INSERT INTO deliveries VALUES ('2026-W48', ?, 1)", (cy,))
    assert str(error.value) == (
        "UNIQUE constraint failed: deliveries.issue_key, deliveries.subscriber_id")


def test_migration_5_counts_a_row_whose_reader_is_already_gone_as_removed(tmp_path):
    version_4_with_a_sent_issue(
        tmp_path / "digest.db",  # as if someone deleted with foreign keys off
        "DELETE FROM subscribers WHERE id = 1",
        "INSERT INTO deliveries VALUES ('gone', 2, 99)")  # a batch that never existed
    with open_store(tmp_path / "digest.db") as store:
        assert rows(store, "deliveries") == [("2026-W48", None, 1), ("2026-W48", 2, 1)]
        assert [row[2] for row in rows(store, "issue_activity")] == [None, 2, None]
        assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []


# Two processes


def test_the_database_is_set_up_for_two_processes(store):
    pragma = {name: store.conn.execute(f"PRAGMA {name}").fetchone()[0]
              for name in ("journal_mode", "busy_timeout", "foreign_keys", "secure_delete")}
    assert pragma == {"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1,
                      "secure_delete": 1}


WRITER = """
import sys
from pathlib import Path
from digest.store import NewSubscriber, open_store
with open_store(Path(sys.argv[1])) as store:
    store.insert([NewSubscriber("bob@example.com")], "cli")
"""


def test_a_second_process_waits_for_the_writer_instead_of_failing(tmp_path, store):
    with store.transaction():
        add(store, "ada@example.com")
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "digest.db")],
                                  stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert writer.poll() is None  # waiting for the lock
    assert writer.wait(10) == 0, writer.stderr.read()
    writer.stderr.close()
    assert [s.email for s in store.subscribers()] == ["ada@example.com", "bob@example.com"]


def test_migrating_from_two_connections_at_once_is_safe(tmp_path):
    first, second = connect(tmp_path / "digest.db"), connect(tmp_path / "digest.db")
    assert migrate(first) == migrate(second) == len(MIGRATIONS)
    first.close()
    second.close()


def held_exclusively(path: Path) -> sqlite3.Connection:
    """A connection holding the new database's only lock, as a second opener's mode
    switch finds it."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_switching_to_wal_waits_for_a_connection_switching_at_the_same_moment(tmp_path):
    holder = held_exclusively(tmp_path / "digest.db")
    opener = sqlite3.connect(tmp_path / "digest.db", timeout=0, isolation_level=None)
    threading.Timer(0.2, holder.rollback).start()
    enter_wal(opener, wait=5)
    assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    opener.close()
    holder.close()


def test_switching_to_wal_gives_up_after_the_wait(tmp_path):
    holder = held_exclusively(tmp_path / "digest.db")
    opener = sqlite3.connect(tmp_path / "digest.db", timeout=0, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        enter_wal(opener, wait=0.2)
    assert 0.2 <= time.monotonic() - started < 2
    opener.close()
    holder.close()


def test_four_connections_opening_new_databases_at_once_all_open_them(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def version(path: Path) -> int:
        with open_store(path) as store:
            return store.version

    for attempt in range(100):  # before the retry, one four-way open in 35 failed
        path = tmp_path / f"digest-{attempt}.db"
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(version, [path] * 4)) == {len(MIGRATIONS)}


# Subscribers and their history


def test_a_subscriber_is_stored_with_every_field(store):
    add(store, "Ada@example.com", name="Ada", categories=("General AI", "Tools"),
        cadence="daily", created=datetime(2025, 6, 3, 18, 57, 8, tzinfo=UTC))
    subscriber = store.get("ada@EXAMPLE.com")
    assert (subscriber.email, subscriber.name, subscriber.categories, subscriber.cadence,
            subscriber.status, subscriber.created) == (
        "Ada@example.com", "Ada", ("General AI", "Tools"), "daily", "active",
        datetime(2025, 6, 3, 18, 57, 8, tzinfo=UTC))


def test_addresses_are_unique_whatever_their_case(store):
    add(store, "ada@example.com")
    with pytest.raises(StoreError) as error:
        add(store, "ADA@example.com")
    assert str(error.value) == (
        "cannot add subscribers: UNIQUE constraint failed: subscribers.email_key")


def test_adding_records_the_first_status_as_an_event(store):
    add(store, "ada@example.com", status="pending")
    events = store.events(store.get("ada@example.com"))
    assert [(e.at, e.old, e.new, e.source) for e in events] == [(NOW, None, "pending", "cli")]


def test_every_status_change_is_an_event_and_other_edits_are_not(store):
    add(store, "ada@example.com")
    ada = store.get("ada@example.com")
    renamed = Change(ada, replace(ada, name="Ada L."))
    store.update([renamed], "cli")
    store.update([Change(renamed.after, replace(renamed.after, status="bounced"))],
                 "webhook")
    events = store.events(ada)
    assert [(e.old, e.new, e.source) for e in events] == [
        (None, "active", "cli"), ("active", "bounced", "webhook")]


@pytest.mark.parametrize("stopped", ["unsubscribed", "bounced", "complained"])
@pytest.mark.parametrize("source", ["cli", "import", "webhook", "sync"])
def test_only_the_reader_moves_a_stopped_address_back_to_active(store, stopped, source):
    add(store, "ada@example.com", status=stopped)
    ada = store.get("ada@example.com")
    with pytest.raises(StoreError) as error:
        store.update([Change(ada, replace(ada, status="active"))], source)
    assert str(error.value) == (f"ada@example.com is {stopped}: only the reader can "
                                "resubscribe, by signing up and confirming again")
    store.update([Change(ada, replace(ada, status="active"))], "web")
    assert store.get("ada@example.com").status == "active"


def test_an_update_made_from_a_stale_read_is_refused(store):
    add(store, "ada@example.com")
    stale = store.get("ada@example.com")
    store.update([Change(stale, replace(stale, status="unsubscribed"))], "web")
    with pytest.raises(StoreError) as error:
        store.update([Change(stale, replace(stale, name="Ada"))], "cli")
    assert str(error.value) == ("subscribers changed while this ran; nothing was written: "
                                "run it again")
    assert store.get("ada@example.com").name == ""


# Unsubscribe tokens


def test_ten_thousand_tokens_are_distinct_128_bits_and_never_look_like_options(store):
    store.insert([NewSubscriber(f"reader{i}@example.com") for i in range(10_000)], "import")
    tokens = store.tokens(store.subscribers(), SECRET)
    assert len(set(tokens.values())) == len(tokens) == 10_000
    sizes = {len(base64.urlsafe_b64decode(token + "=")) for token in tokens.values()}
    assert sizes == {32}
    assert [token for token in tokens.values() if token.startswith("-")] == []


def test_a_token_finds_its_subscriber_and_nothing_else_does(store):
    add(store, "ada@example.com")
    add(store, "bob@example.com")
    tokens = store.tokens(store.subscribers(), SECRET)
    ada = store.get("ada@example.com")
    assert store.by_token(tokens[ada.id]) == ada
    other = "B" if tokens[ada.id].endswith("A") else "A"  # a token one character off
    assert store.by_token(tokens[ada.id][:-1] + other) is None
    assert store.by_token("") is None


def test_the_database_holds_no_working_token(tmp_path, store):
    add(store, "ada@example.com")
    token = store.tokens(store.subscribers(), SECRET)[store.get("ada@example.com").id]
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert token.encode() not in (tmp_path / "digest.db").read_bytes()


def test_tokens_are_the_same_at_every_send(store):
    add(store, "ada@example.com")
    assert store.tokens(store.subscribers(), SECRET) == store.tokens(store.subscribers(), SECRET)


def test_links_sent_before_the_secret_changed_still_work(store):
    add(store, "ada@example.com")
    ada = store.get("ada@example.com")
    old = store.tokens([ada], SECRET)[ada.id]
    new = store.tokens([ada], "a-brand-new-secret-after-rotation")[ada.id]
    assert old != new
    assert store.by_token(old) == store.by_token(new) == ada


KNOWN_TOKENS = {  # derive_token(SECRET, salt), as every link sent so far was made
    bytes(16): "L3jkLoy8B09-2XtrIDNkBXrnHSDKySrZWhfZ0nHvTtU",
    bytes(range(16)): "Wo0zE5mzsCMHilZG4zMCRX1mQTn9oBrGx7lhiZsRA_Q",
    b"\xff" * 16: "M9Cgqb6rjKLXYazAGTFm8Pd0eFjEJInL30BXHY25zyE",
    (39).to_bytes(16, "big"): "_A_DSym5DjF1OjwkmDaqBsrMS3OZwQsZCph279rOiUI",  # "-A_D…" in base64
}


def test_tokens_are_those_every_earlier_link_holds():
    assert {salt: derive_token(SECRET, salt) for salt in KNOWN_TOKENS} == KNOWN_TOKENS
    assert derive_token("ünïcode secret of enough length", bytes(range(16))) == \
        "6lw0nfMMZTRGlBq6MZ22ZSDnw-IFHxR7KkpxnyWUT08"


def test_tokens_derived_together_are_those_derived_one_by_one():
    assert derive_tokens(SECRET, list(KNOWN_TOKENS)) == list(KNOWN_TOKENS.values())
    salts = [secrets.token_bytes(16) for _ in range(500)] + [b""]
    for secret in ("s" * 32, "k" * 64, "l" * 65, "ü" * 40, "x" * 300):  # keys of 64+ bytes
        assert derive_tokens(secret, salts) == [derive_token(secret, salt) for salt in salts]
    assert derive_tokens(SECRET, []) == []


def test_a_sends_readers_get_the_tokens_every_earlier_link_holds(store):
    store.insert([NewSubscriber(f"r{n}@example.com", name=f"R {n}") for n in range(4)],
                 "import")
    ids = sorted(s.id for s in store.subscribers())
    for id_, salt in zip(ids, KNOWN_TOKENS, strict=True):
        store.conn.execute("UPDATE subscribers SET token_salt = ? WHERE id = ?", (salt, id_))
    found = store.addressees(None, SECRET)
    assert [found[id_].token for id_ in ids] == list(KNOWN_TOKENS.values())
    assert [store.by_token(token).id for token in KNOWN_TOKENS.values()] == ids


def test_a_jobs_readers_by_id_are_those_of_a_whole_read_and_their_new_tokens_recorded(store):
    store.insert([NewSubscriber(f"r{n}@example.com", name=f"R {n}") for n in range(4)]
                 + [NewSubscriber("gone@example.com", status="unsubscribed")], "import")
    ids = {s.id for s in store.subscribers()}
    old = store.addressees(None, "an-older-secret-of-enough-length")
    rotated = store.addressees(ids | {999}, SECRET)  # by id: one query with their hashes
    assert rotated == store.addressees(None, SECRET) and len(rotated) == 4
    for id_, reader in rotated.items():  # the old links and the new ones work
        assert store.by_token(reader.token).id == store.by_token(old[id_].token).id == id_


def test_a_token_not_yet_handed_out_finds_nobody(store):
    add(store, "ada@example.com")
    salt = store.conn.execute("SELECT token_salt FROM subscribers").fetchone()[0]
    assert store.by_token(derive_token(SECRET, salt)) is None


def test_tokens_need_a_long_enough_secret(store):
    with pytest.raises(StoreError) as error:
        store.tokens(store.subscribers(), "short")
    assert str(error.value) == "DIGEST_SECRET_KEY (or web.secret_key) must be at least 16 " \
                               "characters"


# Forgetting an address


def test_remove_leaves_nothing_of_the_address_in_the_files(tmp_path, store):
    store.insert([NewSubscriber(f"reader{i}@example.com", name=f"Reader {i}")
                  for i in range(300)], "import")
    add(store, "forget.me@example.com", name="Zebulon Quixote", categories=("Xylophones",))
    forget = store.get("forget.me@example.com")
    store.update([Change(forget, replace(forget, status="unsubscribed"))], "web")
    store.tokens(store.subscribers(), SECRET)
    salt = store.conn.execute("SELECT token_salt FROM subscribers WHERE id = ?",
                              (forget.id,)).fetchone()[0]

    assert store.remove("FORGET.ME@example.com")

    traces = [b"forget.me", b"Zebulon", b"Xylophones", salt]
    for path in tmp_path.glob("digest.db*"):
        data = path.read_bytes()
        assert [trace for trace in traces if trace in data] == [], path.name
    assert store.conn.execute("SELECT count(*) FROM subscriber_events WHERE subscriber_id = ?",
                              (forget.id,)).fetchone()[0] == 0
    assert store.get("reader7@example.com").name == "Reader 7"


def test_removing_an_unknown_address_says_so(store):
    assert not store.remove("nobody@example.com")


def test_changes_of_choices_are_kept_beside_status_events(store):
    add(store, "ada@example.com", categories=("Work",))
    ada = store.get("ada@example.com")
    store.update([Change(ada, replace(ada, categories=("Tools", "Work"), cadence="daily"))],
                 "web")
    assert store.preference_history(ada) == [
        ("categories", '["Work"]', '["Tools", "Work"]', "web"),
        ("cadence", "weekly", "daily", "web"),
    ]
    assert [(e.old, e.new) for e in store.events(ada)] == [(None, "active")]  # no status change
    store.remove("ada@example.com")
    assert store.conn.execute("SELECT count(*) FROM preference_changes").fetchone() == (0,)


def test_recording_many_tokens_gives_the_larger_page_cache_back(tmp_path, monkeypatch):
    monkeypatch.setattr("digest.store.BIG_WRITE_FROM", 10)  # 50 readers count as many
    with open_store(tmp_path / "digest.db") as store:
        store.insert([NewSubscriber(f"r{i}@example.com") for i in range(50)], "cli")
        found = store.addressees({s.id for s in store.subscribers()}, SECRET)
        assert store.conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
        assert {store.by_token(a.token).id for a in found.values()} == set(found)


def test_a_token_of_a_reader_removed_meanwhile_is_left_out_not_an_error(tmp_path):
    """The courier derives every reader's token, then records them while other processes
    write: a reader removed in between has no row left for the foreign key."""
    with open_store(tmp_path / "digest.db") as store:
        store.insert([NewSubscriber("stays@example.com"), NewSubscriber("goes@example.com")],
                     "cli")
        found = store.addressees(None, SECRET)  # tokens derived and recorded
        stays, goes = store.get("stays@example.com"), store.get("goes@example.com")
        store.conn.execute("DELETE FROM unsubscribe_tokens")
        store.remove("goes@example.com")
        store.record_tokens({i: a.token for i, a in found.items()})
        assert store.by_token(found[stays.id].token).id == stays.id
        assert store.known_hashes([stays.id, goes.id]) == {
            hashlib.sha256(found[stays.id].token.encode()).digest()}
