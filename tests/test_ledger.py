"""Freezing a plan: each batch holds the readers the plan gave it, whatever order the
deliveries are written in."""

import random
from datetime import datetime

from digest.ledger import BATCH_SIZE, Ledger, PlannedSegment
from digest.render import Email
from digest.select import Window
from digest.store import NewSubscriber, open_store

WINDOW = Window(datetime.fromisoformat("2026-11-22T08:00+01:00"),
                datetime.fromisoformat("2026-11-29T08:00+01:00"))
EMAIL = Email("Subject", "", "<p>html</p>", "text")


def test_each_batch_holds_the_plan_s_slice_of_readers_in_the_order_given(tmp_path):
    with open_store(tmp_path / "digest.db") as store:
        store.insert([NewSubscriber(f"r{i}@example.com") for i in range(2 * BATCH_SIZE + 700)],
                     "cli")
        ids = [s.id for s in store.subscribers()]
        random.Random(3).shuffle(ids)
        work, tools, skipped = ids[:2 * BATCH_SIZE + 500], ids[2 * BATCH_SIZE + 500:-100], \
            ids[-100:]
        ledger = Ledger(store)
        ledger.create("2026-W48", "weekly", WINDOW, [
            PlannedSegment("work", ("Work",), ("a",), EMAIL, tuple(work)),
            PlannedSegment("tools", ("Tools",), ("b",), EMAIL, tuple(tools)),
            PlannedSegment("policy", ("Policy",), (), None, tuple(skipped)),
        ])
        batches = {b.label: b.recipients for b in ledger.batches("2026-W48")}
        counts = ledger.counts("2026-W48")
    assert batches == {
        "work#1": tuple(sorted(work[:BATCH_SIZE])),
        "work#2": tuple(sorted(work[BATCH_SIZE:2 * BATCH_SIZE])),
        "work#3": tuple(sorted(work[2 * BATCH_SIZE:])),
        "tools#1": tuple(sorted(tools)),
    }
    assert (counts["planned"], counts["pending"], counts["skipped"]) == (2600, 2600, 100)


def test_a_removed_reader_s_deliveries_move_to_the_end_and_keep_the_counts(tmp_path):
    with open_store(tmp_path / "digest.db") as store:
        store.insert([NewSubscriber(f"r{i}@example.com") for i in range(30)], "cli")
        ids = [s.id for s in store.subscribers()]
        ledger = Ledger(store)
        ledger.create("2026-W48", "weekly", WINDOW,
                      [PlannedSegment("all", (), ("a",), EMAIL, tuple(ids))])
        removed = store.get("r12@example.com").id
        assert store.remove("r12@example.com")
        rows = store.conn.execute(
            "SELECT subscriber_id FROM deliveries ORDER BY rowid").fetchall()
        counts = ledger.counts("2026-W48")
    assert [id_ for id_, in rows] == [i for i in sorted(ids) if i != removed] + [None]
    assert counts["planned"] == 30
