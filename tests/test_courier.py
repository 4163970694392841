"""The courier: a spawned process sends a run's requests (sendgrid.separate_process),
reading the readers through its own connection; the run's ledger thread records each
attempt first. What happens when it or its run dies."""

import multiprocessing
import signal
import threading
import time
from dataclasses import replace

import pytest
from processes import children, cmdline, running
from send_support import (
    API_KEY,
    NOW,
    SECRET,
    add_readers,
    ledger_counts,
    set_send_environment,
    write_site,
)
from sendgrid_server import SendGridServer
from test_kills import run_process, wait_until
from test_unknowns import SUNDAY

from digest import courier, runs
from digest.config import load_settings
from digest.desk import Broke, Job
from digest.errors import DeliveryError, StoreError
from digest.ledger import Batch, Ledger
from digest.store import Change, NewSubscriber, derive_token, open_store, token_hash


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def couriers() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "digest-courier"]


def settled(root) -> dict[str, int]:
    """The ledger once no batch is left to send: accepted, or unknown (in flight when the
    courier or the run died; SendGrid may have accepted them)."""
    counts = ledger_counts(root)
    assert (counts["pending"], counts["failed"]) == (0, 0)
    return counts


def test_a_run_sends_through_its_courier_and_leaves_no_process(tmp_path, env, monkeypatch):
    started = []

    class Counted(courier.Courier):
        def __init__(self, errand, recorded=None) -> None:
            started.append(errand)
            super().__init__(errand, recorded)

    monkeypatch.setattr(courier, "Courier", Counted)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        emails = add_readers(tmp_path, 12)
        summary = runs.send_cadence(settings, "weekly", SUNDAY)
    assert summary is not None and summary.accepted == 12
    assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
    count = courier.count_for(4)  # sendgrid.concurrency's default, shared among them
    assert [(e.cadence, e.store, e.records) for e in started] == \
        [("weekly", tmp_path / "digest.db", n == 0) for n in range(count)]
    assert sum(e.workers for e in started) == 4
    assert couriers() == []
    assert SECRET not in repr(started[0]) and API_KEY not in repr(started[0])
    with open_store(tmp_path / "digest.db") as store:  # each link's token was recorded
        assert len(store.known_hashes([s.id for s in store.subscribers()])) == 12


def test_two_couriers_share_the_jobs_and_each_reader_gets_one_email(tmp_path, env,
                                                                   monkeypatch):
    jobs: dict[int, int] = {}

    class Counted(courier.Courier):
        def submit(self, job) -> None:
            jobs[id(self)] = jobs.get(id(self), 0) + 1
            super().submit(job)

    monkeypatch.setattr(courier, "Courier", Counted)
    monkeypatch.setattr(courier, "count_for", lambda workers: 2)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        emails = add_readers(tmp_path, 12)  # 6 segments, one batch each
        summary = runs.send_cadence(settings, "weekly", SUNDAY)
    assert summary is not None and summary.accepted == 12
    assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
    assert len(jobs) == 2 and sum(jobs.values()) == 6
    assert couriers() == []


class Idle:
    """A courier's run side, without its process: what it was given."""

    def __init__(self, capacity: int) -> None:
        self.out, self.capacity, self.jobs, self.sent = 0, capacity, [], []
        self.workers = capacity // courier.QUEUED_PER_WORKER

    def submit(self, job) -> None:
        self.jobs.append((job.batch.segment, job.batch.number))

    def send(self, message) -> None:
        self.sent.append(message)


def idle_couriers(*capacities: int) -> courier.Couriers:
    desk = object.__new__(courier.Couriers)
    desk.couriers, desk.of_batch, desk.ahead = [Idle(c) for c in capacities], {}, {}
    return desk


def job(segment: str, number: int = 1) -> Job:
    return Job("k", Batch(number, segment, number, "pending", None, None, ()), None, None)


def test_jobs_go_to_the_courier_with_the_fewest_out_for_its_share():
    desk = idle_couriers(4, 2)  # concurrency 3: shares 2 and 1
    for number in range(6):
        desk.submit(job("all", number))
    assert [len(c.jobs) for c in desk.couriers] == [4, 2]


def test_each_courier_reads_ahead_the_readers_of_the_batches_it_will_be_given(monkeypatch):
    monkeypatch.setattr(courier, "READ_AHEAD", 5)
    desk = idle_couriers(2, 2)
    desk.read_ahead([("a", 1, (1, 2)), ("a", 2, (3,)), ("b", 1, (4, 5)), ("c", 1, (6,)),
                     ("d", 1, (7, 8, 9)), ("e", 1, (10,))])  # d: more than either can take
    first, second = desk.couriers  # each batch to the one with the fewest for its share
    assert first.sent == [courier.ReadAhead((1, 2, 6))]
    assert second.sent == [courier.ReadAhead((3, 4, 5))]
    for segment in "edcba":  # whatever the order, each goes where its readers were read
        desk.submit(job(segment))
    desk.submit(job("a", 2))
    assert first.jobs == [("e", 1), ("c", 1), ("a", 1)]  # e and d: the fewest out
    assert second.jobs == [("d", 1), ("b", 1), ("a", 2)]
    assert desk.ahead == {}


def test_a_batch_read_ahead_waits_for_its_courier_unless_another_has_a_thread_idle():
    desk = idle_couriers(2, 2)  # one sending thread each, two jobs out at most
    desk.read_ahead([("a", 1, (1,)), ("b", 1, (2,)), ("c", 1, (3,)), ("d", 1, (4,))])
    first, second = desk.couriers
    for name in ("w", "x", "y"):  # the first has its share out; the second one job
        desk.submit(job(name))
    assert (len(first.jobs), len(second.jobs)) == (2, 1)
    desk.submit(job("c"))  # read ahead by the first, full, and the second busy: waits
    second.out = 0  # the second's thread is idle
    desk.submit(job("a"))  # read ahead by the first, full: to the idle second
    assert first.jobs[-1] == ("c", 1) and second.jobs[-1] == ("a", 1)


def test_the_batches_read_ahead_are_the_first_sent_in_the_order_sent(tmp_path, env,
                                                                     monkeypatch):
    told = []
    read_ahead = courier.Couriers.read_ahead

    def recorded(self, batches) -> None:
        told.extend(batches)
        read_ahead(self, iter(told))

    monkeypatch.setattr(courier.Couriers, "read_ahead", recorded)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        add_readers(tmp_path, 12)  # 6 segments, one batch each
        assert runs.send_cadence(settings, "weekly", SUNDAY).accepted == 12
    with open_store(tmp_path / "digest.db") as store:
        sent = Ledger(store).batches("2026-W48")
    assert [(segment, number, sorted(ids)) for segment, number, ids in told] == [
        (b.segment, b.number, sorted(b.recipients)) for b in sent]


def test_with_separate_process_off_the_run_sends_from_its_own_threads(tmp_path, env,
                                                                     monkeypatch):
    monkeypatch.setattr(courier, "Courier", None)  # would fail if it were used
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, "separate_process = false\n")
        emails = add_readers(tmp_path, 3)
        summary = runs.send_cadence(load_settings(config), "weekly", SUNDAY)
    assert summary is not None and summary.accepted == 3
    assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


@pytest.mark.parametrize(("count", "killed", "unknown_at_least"), [
    (None, "every courier", 2),  # as many as the machine gives
    (2, "one of two", 1),  # the held request's batch at least
])
def test_a_courier_that_dies_stops_the_run_and_the_rerun_sends_the_rest_once(
        tmp_path, env, monkeypatch, count, killed, unknown_at_least):
    if count:
        monkeypatch.setattr(courier, "count_for", lambda workers: count)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        emails = add_readers(tmp_path, 12)  # 6 segments, one batch each
        server.hold_after(1)

        def kill() -> None:
            server.wait_held(1, timeout=30)
            for process in couriers()[:1 if killed == "one of two" else None]:
                process.kill()

        killer = threading.Thread(target=kill)
        killer.start()
        with pytest.raises(DeliveryError) as stopped:
            runs.send_cadence(settings, "weekly", SUNDAY)
        killer.join()
        assert str(stopped.value) == courier.GONE
        assert couriers() == []  # the others are gone too
        assert ledger_counts(tmp_path)["unknown"] >= unknown_at_least
        server.release()  # the held requests are accepted, although nobody hears it
        rerun = runs.send_cadence(settings, "weekly", SUNDAY)
    counts = settled(tmp_path)
    assert rerun is not None and rerun.unknown == counts["unknown"]
    sent = server.accepted_count_by_address()
    assert set(sent.values()) == {1} and set(sent) <= set(emails)  # nobody twice
    assert len(sent) >= counts["accepted"] == 12 - counts["unknown"]


def test_a_killed_run_takes_its_courier_with_it_and_the_rerun_is_not_blocked(tmp_path):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 12)
        server.hold_after(1)
        first = run_process(config, server.url, "weekly", "--now", NOW)
        try:
            server.wait_held(1, timeout=30)
            helpers = [c for c in children(first.pid) if b"spawn_main" in cmdline(c)]
            assert helpers  # the courier
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        wait_until(lambda: not any(running(c) for c in helpers),
                   "the courier outlived its run", timeout=10)
        server.release()
        rerun = run_process(config, server.url, "weekly", "--now", NOW)
        out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 1, out + err  # the batches in flight at the kill: unknown
    counts = settled(tmp_path)
    assert counts["unknown"] >= 2
    sent = server.accepted_count_by_address()
    assert set(sent.values()) == {1} and set(sent) <= set(emails)
    assert len(sent) >= counts["accepted"] == 12 - counts["unknown"]


def test_the_book_records_the_missing_tokens_ahead_then_reads_each_jobs_readers(tmp_path):
    path = tmp_path / "digest.db"
    with open_store(path) as store:
        store.insert([NewSubscriber("first@example.com"),
                      NewSubscriber("daily@example.com", cadence="daily")], "cli")
        first, daily = store.get("first@example.com"), store.get("daily@example.com")
    book = courier.Book(path, SECRET, "weekly")
    assert book.read.wait(30) and book.error is None
    with open_store(path) as store:
        assert len(store.known_hashes([first.id])) == 1  # recorded before any job
        assert store.known_hashes([daily.id]) == set()  # not this run's reader
        store.insert([NewSubscriber("later@example.com")], "cli")
        later = store.get("later@example.com")
    (found,), dropped = book.find([later.id])
    assert found.email == "later@example.com" and dropped == ()
    with open_store(path) as store:
        assert store.known_hashes([later.id]) == {token_hash(found.token)}
    assert courier.Book(path, SECRET, records=False).find([first.id])[0][0].token == \
        book.find([first.id])[0][0].token


def test_recording_missing_tokens_skips_readers_who_have_one(tmp_path):
    path = tmp_path / "digest.db"
    with open_store(path) as store:
        store.insert([NewSubscriber(f"r{n}@example.com") for n in range(5)], "cli")
        assert store.record_missing_tokens(SECRET, "weekly") == 5
        assert store.record_missing_tokens(SECRET, "weekly") == 0
        store.insert([NewSubscriber("new@example.com")], "cli")
        assert store.record_missing_tokens(SECRET) == 1
        ids = [s.id for s in store.subscribers()]
        tokens = store.addressees(set(ids), SECRET)
        assert store.known_hashes(ids) == {token_hash(a.token) for a in tokens.values()}


def test_the_book_tells_who_is_no_longer_active(tmp_path):
    path = tmp_path / "digest.db"
    with open_store(path) as store:
        store.insert([NewSubscriber("stays@example.com"),
                      NewSubscriber("goes@example.com", status="unsubscribed")], "cli")
        stays, goes = store.get("stays@example.com"), store.get("goes@example.com")
    book = courier.Book(path, SECRET)
    found, dropped = book.find([goes.id, stays.id])
    assert [a.email for a in found] == ["stays@example.com"] and dropped == (goes.id,)


def readers(path, count: int) -> list:
    with open_store(path) as store:
        store.insert([NewSubscriber(f"r{n}@example.com") for n in range(count)], "cli")
        return store.subscribers()


def read_ahead(book: courier.Book, ids: list[int], count: int) -> dict[int, str]:
    book.read_ahead(ids)
    wait_until(lambda: len(book.ahead) == count, "the read-ahead")
    return dict(book.ahead)


def test_a_job_read_ahead_reads_its_readers_as_they_are_now_with_their_tokens(tmp_path):
    path = tmp_path / "digest.db"
    stays, renamed, leaves = readers(path, 3)
    with open_store(path) as store:
        store.record_missing_tokens(SECRET)
        store.insert([NewSubscriber("fresh@example.com")], "cli")  # no token recorded
        fresh = store.get("fresh@example.com")
    book = courier.Book(path, SECRET, records=False)
    ahead = read_ahead(book, [stays.id, renamed.id, leaves.id, fresh.id], 3)
    with open_store(path) as store:  # only recorded tokens are read ahead; nothing written
        salts = store.salts([stays.id, renamed.id, leaves.id])
        assert ahead == {id_: (salt, derive_token(SECRET, salt)) for id_, salt in salts.items()}
        assert store.known_hashes([fresh.id]) == set()
        store.update([Change(renamed, replace(renamed, name="Renamed")),
                      Change(leaves, replace(leaves, status="unsubscribed"))], "cli")
    found, dropped = book.find([stays.id, renamed.id, leaves.id, fresh.id])
    assert [(a.email, a.name) for a in found] == [
        (stays.email, stays.name), (renamed.email, "Renamed"), (fresh.email, fresh.name)]
    assert [a.token for a in found[:2]] == [ahead[stays.id].token, ahead[renamed.id].token]
    assert dropped == (leaves.id,) and book.ahead == {}
    with open_store(path) as store:  # the job recorded the fresh reader's token
        assert store.known_hashes([fresh.id]) == {token_hash(found[2].token)}


def test_the_book_reads_ahead_only_once_the_tokens_are_recorded(tmp_path):
    path = tmp_path / "digest.db"
    ids = [s.id for s in readers(path, 3)]
    with open_store(path) as store:
        store.record_missing_tokens(SECRET)
    recorded = threading.Event()
    book = courier.Book(path, SECRET, records=False, read=recorded)
    book.read_ahead(ids)
    time.sleep(0.3)
    assert book.ahead == {}
    recorded.set()
    assert sorted(read_ahead(book, ids, 3)) == ids


def test_a_reader_read_ahead_whose_id_is_now_a_new_readers_is_not_sent(tmp_path):
    path = tmp_path / "digest.db"
    _, last = readers(path, 2)
    with open_store(path) as store:
        store.record_missing_tokens(SECRET)
    book = courier.Book(path, SECRET, records=False)
    read_ahead(book, [last.id], 1)
    with open_store(path) as store:  # SQLite gives the next reader the highest id again
        store.remove(last.email)
        store.insert([NewSubscriber("newcomer@example.com")], "cli")
        assert store.get("newcomer@example.com").id == last.id
    assert book.find([last.id]) == ((), (last.id,))  # the reader planned is gone
    assert book.ahead == {}


def test_a_read_ahead_that_fails_leaves_each_job_to_read_its_readers(tmp_path):
    missing = tmp_path / "missing" / "digest.db"
    book = courier.Book(missing, SECRET, records=False)
    reading = book.read_ahead([1, 2])
    reading.join(10)
    assert not reading.is_alive() and book.ahead == {}
    with pytest.raises(StoreError, match="cannot open the database"):
        book.find([1])


def test_a_book_that_cannot_read_the_store_says_why_with_the_first_job(tmp_path):
    missing = tmp_path / "missing" / "digest.db"
    book = courier.Book(missing, SECRET)
    with pytest.raises(StoreError) as error:
        book.find([1])
    assert str(error.value) == f"{missing}: cannot open the database: unable to open database file"
    told = courier.portable(Broke(7, book.error))
    assert isinstance(told.error, DeliveryError) and str(told.error) == str(error.value)
    bug = courier.portable(Broke(7, KeyError("x")))
    assert str(bug.error) == "the courier failed: KeyError: 'x'"


def test_the_run_stops_at_a_failed_attempt_record_and_no_further_request_starts(
        tmp_path, env, monkeypatch):
    """The ledger cannot record the second attempt (a full disk, say): that batch's
    request never starts, and every batch but the first stays pending for the next run."""
    from digest.errors import DiskFull
    from digest.ledger import Ledger

    attempting, calls = Ledger.attempting, []

    def full_on_the_second(self, batch_id, number):
        calls.append(batch_id)
        if len(calls) == 2:
            raise DiskFull("the disk is full")
        return attempting(self, batch_id, number)

    monkeypatch.setattr(Ledger, "attempting", full_on_the_second)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        add_readers(tmp_path, 12)
        with pytest.raises(DiskFull):
            runs.send_cadence(settings, "weekly", SUNDAY)
        assert len(server.statuses) == 1  # the first batch's request only
    counts = ledger_counts(tmp_path)
    assert counts["pending"] == 10 and counts["accepted"] + counts["unknown"] == 2
    assert couriers() == []


def test_a_run_given_its_store_sends_to_that_store_s_readers(tmp_path, env):
    """`open_run(store=…)`: the courier reads the run's own store, not store.path."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        emails = add_readers(elsewhere, 4)
        with open_store(elsewhere / "digest.db") as store, \
                runs.open_run(settings, "weekly", store=store) as run:
            summary = run.send("2026-W48", None, "weekly", now=SUNDAY)
    assert summary is not None and summary.accepted == 4
    assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
