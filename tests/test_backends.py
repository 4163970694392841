"""The store, the ledger and the webhook's bookkeeping behave the same on SQLite and on a
real PostgreSQL (the `db` fixture runs each test on both; tests/backends.py)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest import dbtools, feedback
from digest.errors import DeliveryError, StoreError
from digest.ledger import Ledger, PlannedSegment
from digest.location import PostgresURL
from digest.render import Email
from digest.select import Window
from digest.store import (
    MIGRATIONS,
    Addressee,
    Change,
    Known,
    NewSubscriber,
    Store,
    open_store,
)
from digest.subscribers import unsubscribe

SECRET = "backend-secret-0123456789"
START = datetime(2026, 11, 23, 8, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=7))
EMAIL = Email("Subject 100%", "", "<p>html</p>", "text")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 8, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def readers(store: Store, *emails: str, status: str = "active") -> list[int]:
    store.insert([NewSubscriber(email, name=email.split("@")[0], categories=("Work",),
                                status=status) for email in emails], "cli")
    return [store.get(email).id for email in emails]  # type: ignore[union-attr]


def plan(store: Store, ids: list[int]) -> Ledger:
    ledger = Ledger(store)
    ledger.create("2026-W48", "weekly", WINDOW,
                  [PlannedSegment("work", ("Work",), ("a-story",), EMAIL, tuple(ids)),
                   PlannedSegment("none", ("Policy",), (), None, (ids[0],))])
    return ledger


def all_text(store: Store) -> str:
    """Every value of every live table, as text (to look for an address)."""
    return "\n".join(repr(row) for table in store.conn.tables()
                     for row in store.conn.execute(f"SELECT * FROM {table}"))


# ---------------------------------------------------------------- schema


def test_a_new_store_is_migrated_to_the_latest_version(db):
    with open_store(db) as store:
        assert store.version == len(MIGRATIONS)
        assert set(dbtools.row_counts(store)) == set(dbtools.COPY_ORDER)


def test_opening_twice_migrates_once(db):
    open_store(db).close()
    with open_store(db) as store:
        assert store.version == len(MIGRATIONS)


def test_a_store_from_a_newer_digest_is_refused(db):
    with open_store(db) as store:
        store.conn.set_schema_version(99)
    with pytest.raises(StoreError) as error:
        open_store(db)
    assert str(error.value) == (f"the database is at version 99, newer than this digest "
                                f"knows ({len(MIGRATIONS)}): upgrade digest")


# ---------------------------------------------------------------- subscribers and tokens


def test_subscribers_events_and_preferences(db):
    clock = Clock()
    with open_store(db, clock=clock) as store:
        ada, bob = readers(store, "Ada@Example.com", "bob@example.com")
        assert [s.email for s in store.subscribers()] == ["Ada@Example.com", "bob@example.com"]
        assert store.get("ada@example.COM").id == ada  # type: ignore[union-attr]
        before = store.by_id(bob)
        assert before is not None
        clock.now += timedelta(hours=1)
        after = before.__class__(**{**before.__dict__, "status": "unsubscribed",
                                    "cadence": "daily"})
        store.update([Change(before, after)], "cli")
        assert [s.email for s in store.subscribers(status="active")] == ["Ada@Example.com"]
        assert store.subscribers(status="unsubscribed", cadence="daily")[0].id == bob
        assert [(e.old, e.new, e.source) for e in store.events(after)] == [
            (None, "active", "cli"), ("active", "unsubscribed", "cli")]
        assert store.preference_history(after) == [("cadence", "weekly", "daily", "cli")]
        with pytest.raises(StoreError, match="cannot add subscribers"):
            readers(store, "ADA@example.com")


def test_tokens_find_their_reader_and_unsubscribe(db):
    with open_store(db) as store:
        ada, = readers(store, "ada@example.com")
        token = store.tokens(store.subscribers(), SECRET)[ada]
        assert store.tokens(store.subscribers(), SECRET)[ada] == token  # recorded once
        assert store.by_token(token).email == "ada@example.com"  # type: ignore[union-attr]
        assert store.by_token("x" * 43) is None
        subscriber, changed = unsubscribe(store, token)
        assert (subscriber.status, changed) == ("unsubscribed", True)


def test_a_read_ahead_takes_recorded_tokens_and_a_job_reads_their_readers_by_id(db):
    with open_store(db) as store:
        ada, bob, eve = readers(store, "ada@example.com", "bob@example.com", "eve@example.com")
        recorded = store.tokens([s for s in store.subscribers() if s.id != bob], SECRET)
        known = store.recorded_tokens([ada, bob, eve], SECRET)
        assert {id_: token for id_, (_, token) in known.items()} == {
            ada: recorded[ada], eve: recorded[eve]}  # bob's is not recorded: left out
        unsubscribe(store, recorded[eve])
        assert store.known_addressees(known) == {
            ada: Addressee("ada@example.com", "ada", recorded[ada])}
        assert store.known_addressees({ada: Known(b"another salt", "x")}) == {}


def test_remove_leaves_no_copy_in_the_live_tables(db):
    with open_store(db) as store:
        ada, bob = readers(store, "ada@example.com", "bob@example.com")
        store.tokens(store.subscribers(), SECRET)
        plan(store, [ada, bob])
        assert store.remove("ada@example.com")
        assert "ada" not in all_text(store).lower()
        assert Ledger(store).counts("2026-W48")["planned"] == 2  # the counts stay
        assert not store.remove("ada@example.com")


def test_unconfirmed_sign_ups_are_forgotten(db):
    clock = Clock()
    with open_store(db, clock=clock) as store:
        readers(store, "old@example.com", status="pending")
        clock.now += timedelta(days=10)
        readers(store, "new@example.com", status="pending")
        assert store.forget_unconfirmed(clock.now - timedelta(days=7)) == ["old@example.com"]
        assert [s.email for s in store.subscribers()] == ["new@example.com"]


# ---------------------------------------------------------------- the ledger


def test_the_ledger_plans_marks_and_finishes(db):
    with open_store(db) as store:
        ids = readers(store, *(f"r{i}@example.com" for i in range(3)))
        ledger = plan(store, ids)
        batch, = ledger.batches("2026-W48")
        assert (batch.status, batch.recipients) == ("pending", tuple(sorted(ids)))
        assert ledger.email("2026-W48", "work") == EMAIL
        ledger.mark(batch.id, "in-flight")
        assert ledger.counts("2026-W48") == {"planned": 3, "accepted": 0, "failed": 0,
                                             "unknown": 3, "pending": 0, "skipped": 1}
        assert not ledger.finish_if_complete("2026-W48")
        assert ledger.drop_recipients(batch.id, [ids[0]]) == 1
        ledger.mark(batch.id, "accepted", message_id="m1")
        assert ledger.finish_if_complete("2026-W48")
        assert ledger.issue("2026-W48").status == "done"  # type: ignore[union-attr]
        assert ledger.last_window_end("weekly", WINDOW.end) == WINDOW.end


def test_a_second_plan_of_one_issue_is_refused(db):
    with open_store(db) as store:
        ids = readers(store, "ada@example.com")
        plan(store, ids)
        with pytest.raises(sqlite3.IntegrityError):
            plan(store, ids)
        assert len(Ledger(store).batches("2026-W48")) == 1  # rolled back as one


# ---------------------------------------------------------------- the webhook's bookkeeping


def test_webhook_events_count_once_at_their_earliest_time(db):
    with open_store(db) as store:
        ada, bob = readers(store, "ada@example.com", "bob@example.com")
        plan(store, [ada, bob])
        events = [{"email": "ada@example.com", "event": "open", "issue": "2026-W48",
                   "sg_event_id": f"e{n}", "timestamp": 1_764_400_000 - n} for n in range(3)]
        events.append({"email": "bob@example.com", "event": "bounce", "issue": "2026-W48",
                       "sg_event_id": "b1", "timestamp": 1_764_400_000})
        applied = feedback.apply_events(store, events, group_id=None)
        again = feedback.apply_events(store, events, group_id=None)
        assert (applied.counted, applied.status_changes, again.duplicates) == (4, 1, 4)
        assert store.conn.execute("SELECT at FROM issue_activity WHERE kind = 'opened'"
                                  ).fetchall() == [("2025-11-29T07:06:38+00:00",)]
        stats, = feedback.issue_stats(store)
        assert (stats["opened"], stats["bounced"], stats["skipped"]) == (1, 1, 1)


# ---------------------------------------------------------------- shared counters, run lock


def test_hits_are_counted_per_key_within_each_window(db):
    clock = Clock()
    with open_store(db, clock=clock) as store, open_store(db, clock=clock) as other:
        limits = ((2, 600.0), (3, 86_400.0))
        assert [store.hit("a", limits), other.hit("a", limits), store.hit("a", limits)] == [
            True, True, False]
        assert store.hit("b", limits)
        clock.now += timedelta(minutes=11)
        assert other.hit("a", limits) and not store.hit("a", limits)  # 3 a day
        clock.now += timedelta(days=1)
        assert store.hit("a", limits)
        assert store.conn.execute("SELECT count(*) FROM rate_hits").fetchone()[0] == 1


def test_one_run_per_cadence_holds_the_lock(db):
    with open_store(db) as first, open_store(db) as second:
        with first.run_lock("weekly"):
            with pytest.raises(DeliveryError) as error, second.run_lock("weekly"):
                pass
            with second.run_lock("daily"):
                pass
        with second.run_lock("weekly"):
            pass
    assert str(error.value).startswith("another run is sending (pid ")


# ---------------------------------------------------------------- digest db copy


def test_copy_to_the_other_backend_keeps_everything_and_every_token(db, tmp_path, request):
    from backends import fresh_schema

    target = (fresh_schema(request.getfixturevalue("pg_server")) if isinstance(db, Path)
              else tmp_path / "copy.db")
    with open_store(db) as store:
        ids = readers(store, "ada@example.com", "bob@example.com", "cy@example.com")
        tokens = store.tokens(store.subscribers(), SECRET)
        plan(store, ids)
        feedback.apply_events(store, [{"email": "ada@example.com", "event": "delivered",
                                       "issue": "2026-W48", "sg_event_id": "d1"}],
                              group_id=None)
        store.hit("client\x00127.0.0.1", ((20, 600.0),))
        before = dbtools.row_counts(store)
    counts = dbtools.copy(db, target)
    assert counts == before and all(counts[t] for t in ("deliveries", "issue_activity"))
    with open_store(target) as copied:
        assert copied.by_token(tokens[ids[1]]).email == "bob@example.com"  # type: ignore
        assert Ledger(copied).counts("2026-W48") == {
            "planned": 3, "accepted": 0, "failed": 0, "unknown": 0, "pending": 3,
            "skipped": 1}
        readers(copied, "dee@example.com")  # new ids continue after the copied ones
        assert copied.get("dee@example.com").id == max(ids) + 1  # type: ignore
    with pytest.raises(StoreError, match="not empty"):
        dbtools.copy(db, target)


def test_status_shows_the_version_and_hides_the_password(db):
    assert dbtools.status(db).version == 0  # status alone migrates nothing
    assert dbtools.upgrade(db) == (0, len(MIGRATIONS))
    found = dbtools.status(db)
    assert found.version == len(MIGRATIONS)
    assert found.backend == ("postgresql" if isinstance(db, PostgresURL) else "sqlite")
    if isinstance(db, PostgresURL):
        password = db.dsn.split(":")[2].split("@")[0]
        assert password not in found.location and ":***@" in found.location


def test_a_serialization_failure_or_deadlock_runs_the_transaction_again(pg_url):
    attempts: list[int] = []

    def work() -> int:
        attempts.append(len(attempts))
        if len(attempts) <= 2:  # the server itself reports 40001, then 40P01
            code = "40001" if len(attempts) == 1 else "40P01"
            store.conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = '{code}';"
                               " END $$")
        store.conn.execute("INSERT INTO webhook_events VALUES ('e1', 'now')")
        return len(attempts)

    with open_store(pg_url) as store:
        assert store.retrying(work) == 3
        assert store.conn.execute("SELECT count(*) FROM webhook_events").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="busy"):
            store.retrying(lambda: store.conn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = '40001'; END $$"))


def test_writers_at_once_never_count_past_a_limit(db):
    """Four connections hitting one key at once: exactly the limit gets through."""
    from concurrent.futures import ThreadPoolExecutor

    open_store(db).close()

    def hammer(_: int) -> int:
        with open_store(db) as store:
            return sum(store.hit("client\x00192.0.2.1", ((30, 600.0),)) for _ in range(15))

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(hammer, range(4))) == 30


@pytest.mark.parametrize("version", [1, 4, 5])
def test_an_earlier_version_is_migrated_keeping_its_data(db, version):
    from digest.store import connect_checked, migrate

    conn = connect_checked(db)
    assert migrate(conn, MIGRATIONS[:version]) == version
    conn.execute("INSERT INTO subscribers (email, email_key, cadence, status, created_at, "
                 "token_salt) VALUES ('ada@example.com', 'ada@example.com', 'weekly', "
                 "'active', '2026-01-01T00:00:00+00:00', ?)", (b"\x00",))
    conn.close()
    with open_store(db) as store:
        assert store.version == len(MIGRATIONS)
        assert [s.email for s in store.subscribers()] == ["ada@example.com"]


def test_two_processes_opening_a_new_store_at_once_migrate_it_once(db):
    from concurrent.futures import ThreadPoolExecutor

    def version(_: int) -> int:
        with open_store(db) as store:
            return store.version

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(version, range(4))) == {len(MIGRATIONS)}
