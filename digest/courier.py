"""The courier: a second process that sends a run's requests, so that composing each
request, encoding its JSON and the HTTP work run on another core than the run's
planning and its ledger (`sendgrid.separate_process`).

The couriers (one per core, up to two: `Couriers`) are a `desk.Desk`: they take the
run's jobs over pipes and hand back the same news as the desk's threads, each attempt
and each wait answered only once the run's ledger recorded it (desk.py). They are
started when the run gets ready to send; while the run loads and plans, the first
records the tokens its readers lack (a first issue's). The run's jobs name the readers
by id only: each courier reads a job's readers and their tokens as it comes, through
its own connections to the store (`Book`), and holds no list of every reader; while
the run freezes its plan, each reads ahead the tokens of the first readers it will be
given (at most READ_AHEAD), and those batches go to it unless it is busy while the
other has a thread idle.

It is spawned, not forked: a fresh interpreter that inherits no database connection,
lock file or thread of the run (SQLite forbids using a database in a child forked with
a connection to it open). It never outlives the run and never sends on its own: on
Linux the kernel kills it as soon as the run dies (`PR_SET_PDEATHSIG`), elsewhere it
watches for the run to be gone (workers.py); and once the pipe closes (the run ended,
failed or died) it starts no further request. It ignores Ctrl-C, which the run handles.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Protocol

from digest.config import Settings
from digest.desk import (
    RELAY_POLL_S,
    Attempting,
    Broke,
    Done,
    Job,
    News,
    Replies,
    Stopped,
    Tell,
    Waiting,
    work,
)
from digest.errors import DeliveryError, DigestError
from digest.location import Location
from digest.store import Addressee, Cadence, Known, Store, chunks, open_store
from digest.transports import Transport
from digest.workers import die_with, watch_parent


class EventLike(Protocol):
    """A threading.Event, or a multiprocessing one shared by the couriers."""

    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


QUEUED_PER_WORKER = 2  # jobs given out per sending thread: the next is ready at once
READ_AHEAD = 50_000  # readers whose tokens a courier reads ahead at most (about 15 MB)
LOW_PRIORITY = 19  # the read-ahead's niceness
AHEAD_CHUNK = 1000  # readers read ahead at a time (one query)
MAX_COURIERS = 2  # on two cores, two couriers send while the run records (measured)
CLOSE_GRACE_S = 5  # past sendgrid.timeout, how long a closing run waits for it
GONE = ("the process sending the requests (the courier) stopped: the batches it had "
        "started are in flight, and the next run reports them as unknown")


def wanted(settings: Settings, transport: Transport, store: Location) -> bool:
    """Whether this run's requests go through a courier: asked for, for a transport that
    can be copied into one (SendGrid's), and a store another process can open."""
    return settings.flag("sendgrid.separate_process") and getattr(
        transport, "separable", False) and str(store) != ":memory:"


@contextmanager
def started(errand: Errand) -> Iterator[Couriers]:
    couriers = Couriers(errand, count_for(errand.workers))
    try:
        yield couriers
    finally:
        couriers.close()


def count_for(workers: int) -> int:
    """How many couriers send a run's `workers` requests at once: one per core this
    process may use, up to MAX_COURIERS, each with its share of the requests in flight."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
    return max(1, min(cores, MAX_COURIERS, workers))


class Courier:
    """The run's side of one courier."""

    def __init__(self, errand: Errand, recorded: EventLike | None = None) -> None:
        self.out = 0  # jobs given to it and not done
        self.workers = errand.workers  # its sending threads
        self.capacity = errand.workers * QUEUED_PER_WORKER
        self.wait_s = errand.settings.integer("sendgrid.timeout") + CLOSE_GRACE_S
        context = multiprocessing.get_context("spawn")
        self.conn, theirs = context.Pipe()
        self.process = context.Process(target=serve, name="digest-courier", daemon=True,
                                       args=(theirs, os.getpid(), errand, recorded))
        with ctrl_c_ignored():  # from its start: the run handles Ctrl-C
            self.process.start()
        theirs.close()
        OPEN.add(self)

    def submit(self, job: Job) -> None:
        self.send(job)

    def next(self) -> News:
        try:
            news: News = self.conn.recv()
        except (EOFError, OSError):
            raise DeliveryError(GONE) from None
        return news

    def answer(self, news: Attempting | Waiting, accepted: bool) -> None:
        self.send((news.batch, accepted))

    def send(self, message: Job | ReadAhead | tuple[int, bool]) -> None:
        try:
            self.conn.send(message)
        except OSError:
            raise DeliveryError(GONE) from None

    def close(self) -> None:
        """Close the pipe and wait for the requests out to end; kill the courier if that
        takes too long, or if this wait is interrupted (a second Ctrl-C)."""
        if not self.conn.closed:
            self.conn.close()
        try:
            self.process.join(self.wait_s)
        finally:
            if self.process.is_alive():
                self.process.kill()
                self.process.join()


class Couriers:
    """The run's couriers, as one `desk.Desk`: each job goes to the one that read its
    readers ahead, else to the one with the fewest jobs out; each piece of news is taken
    from whichever tells first, and each answer goes back to the courier that asked."""

    addresses = True  # jobs come without their readers: each courier's Book finds them

    def __init__(self, errand: Errand, count: int) -> None:
        shares = [errand.workers // count + (n < errand.workers % count) for n in range(count)]
        # The first courier sets it once it recorded the tokens; held here, as a spawned
        # courier opens it after its start
        self.recorded = recorded = multiprocessing.get_context("spawn").Event()
        self.couriers: list[Courier] = []
        try:
            for n, share in enumerate(shares):
                self.couriers.append(
                    Courier(replace(errand, workers=share, records=n == 0), recorded))
        except BaseException:
            self.close()
            raise
        self.capacity = sum(courier.capacity for courier in self.couriers)
        self.of_batch: dict[int, Courier] = {}
        self.ahead: dict[tuple[str, int], Courier] = {}  # batch (segment, number) read ahead

    def read_ahead(self, batches: Iterable[tuple[str, int, Sequence[int]]]) -> None:
        """Have each courier read ahead the readers of the first batches it will be given
        (`batches`: segment, number and readers, in the order they will be sent), shared
        by the couriers' shares, up to READ_AHEAD readers each: the run calls this before
        it freezes its plan, which keeps one core of two busy. A courier already gone
        reads nothing: the send says so when it gives it a job."""
        ids: dict[Courier, list[int]] = {courier: [] for courier in self.couriers}
        for segment, number, readers in batches:
            courier = min(self.couriers, key=lambda courier: len(ids[courier]) / courier.capacity)
            if len(ids[courier]) + len(readers) > READ_AHEAD:
                break
            ids[courier] += readers
            self.ahead[segment, number] = courier
        for courier, read in ids.items():
            with contextlib.suppress(DeliveryError):
                if read:
                    courier.send(ReadAhead(tuple(read)))

    def submit(self, job: Job) -> None:
        """To `courier_for(job)`."""
        courier = self.courier_for(job)
        courier.out += 1
        self.of_batch[job.batch.id] = courier
        courier.submit(job)

    def courier_for(self, job: Job) -> Courier:
        """The courier that read the job's readers ahead, unless it has its share of jobs
        out while another has a sending thread idle (so a courier stalled, say by a
        Retry-After, leaves no other's thread idle; the jobs it holds wait with it); else
        the one with the fewest jobs out for its share."""
        ahead = self.ahead.pop((job.batch.segment, job.batch.number), None)
        fewest = min(self.couriers, key=lambda courier: courier.out / courier.capacity)
        if ahead is None or (ahead.out >= ahead.capacity and fewest.out < fewest.workers):
            return fewest
        return ahead

    def next(self) -> News:
        ready = multiprocessing.connection.wait([c.conn for c in self.couriers])
        courier = next(c for c in self.couriers if c.conn in ready)
        news = courier.next()
        if isinstance(news, Done | Broke):
            courier.out -= 1
        return news

    def answer(self, news: Attempting | Waiting, accepted: bool) -> None:
        self.of_batch[news.batch].answer(news, accepted)

    @contextmanager
    def closing(self) -> Iterator[None]:
        """The couriers end with the sending: when every job is done, or at once on an
        error (no further request starts; those out end first)."""
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        """Close every pipe first (none starts another request), then wait for each."""
        for courier in self.couriers:
            if not courier.conn.closed:
                courier.conn.close()
        for courier in self.couriers:
            courier.close()


OPEN: weakref.WeakSet[Courier] = weakref.WeakSet()


def drop_inherited_pipes() -> None:
    """In a forked child (a render or load worker): close its copies of the couriers'
    pipes, so that only the run's own copy keeps a courier's pipe open."""
    for courier in list(OPEN):
        if not courier.conn.closed:
            courier.conn.close()
    OPEN.clear()


os.register_at_fork(after_in_child=drop_inherited_pipes)


@contextmanager
def ctrl_c_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile, in the main thread (a process started now inherits
    that), and handled as before afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


# In the courier's process


@dataclass(frozen=True)
class Errand:
    """What the courier is started with (pickled: the API key and secret go over the
    pipe to the new process, never to a file, its command line or a repr)."""

    settings: Settings = field(repr=False)
    transport: Transport = field(repr=False)
    secret: str = field(repr=False)
    workers: int
    store: Location  # the run's own store (not necessarily settings.store_path)
    cadence: Cadence | None  # whose readers the run sends to (None: every cadence)
    records: bool = True  # records the tokens its readers lack, while the run plans


@dataclass(frozen=True)
class ReadAhead:
    """The readers of the first batches the run will give this courier: their tokens are
    read ahead of their jobs, as far as the read-ahead gets before each job comes."""

    ids: tuple[int, ...]


def serve(conn: Connection, parent: int, errand: Errand,
          recorded: EventLike | None = None) -> None:
    """Read the readers, and send each job the run hands over, until the pipe closes;
    then leave at once, even while the readers are still being read (a write to the
    store in progress is rolled back, as after any crash)."""
    die_with(parent)  # at once on Linux (the kernel), elsewhere within WATCH_PARENT_S
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    replies = Replies()
    book = Book(errand.store, errand.secret, errand.cadence, replies.stopped,
                records=errand.records, read=recorded)
    tell = teller(conn, replies)
    try:  # the pool waits for its workers after `stopping`, which ends their waits
        with ThreadPoolExecutor(errand.workers) as pool, stopping(replies):
            for message in received(conn):
                if isinstance(message, Job):
                    pool.submit(work, errand.settings, errand.transport, message, tell,
                                replies, book)
                elif isinstance(message, ReadAhead):
                    book.read_ahead(message.ids)
                else:
                    replies.answer(*message)
    finally:
        os._exit(0)


@contextmanager
def stopping(replies: Replies) -> Iterator[None]:
    """When the pipe closes, or this process's loop fails: no further request starts,
    and no worker waits for an answer any more."""
    try:
        yield
    finally:
        replies.stop()


def teller(conn: Connection, replies: Replies) -> Tell:
    """How the sending threads tell the run their news (one at a time on the pipe)."""
    lock = threading.Lock()

    def tell(news: News) -> None:
        with lock:
            try:
                conn.send(portable(news))
            except OSError:  # the run is gone: start nothing more
                replies.stop()
    return tell


class Book:
    """How a courier finds each job's readers: their addresses and tokens, read by id as
    the job comes, through a connection of each sending thread's own (under 1 ms for a
    job of 90 readers). With `records`, it first records the tokens that the run's
    readers lack (a first issue's), through a connection of its own while the run plans:
    jobs wait for that, so that their look-ups find the tokens recorded, not write them.

    Told to read ahead (`read_ahead`: while the run freezes its plan), it derives in the
    background the tokens of the first jobs' readers, keeping those recorded (it writes
    nothing, so holds no lock); a job then reads only those readers' address, name and
    status, as they are then, and the others' with their hashes as before."""

    def __init__(self, store: Location, secret: str, cadence: Cadence | None = None,
                 stopped: threading.Event | None = None, *, records: bool = True,
                 read: EventLike | None = None) -> None:
        self.store, self.secret, self.cadence = store, secret, cadence
        self.stopped = stopped or threading.Event()  # the run ended: no job goes on
        self.error: Exception | None = None
        self.local = threading.local()
        # Set once the tokens are recorded: shared by the run's couriers (the first records)
        self.read: EventLike = read if read is not None else threading.Event()
        self.ahead: dict[int, Known] = {}  # tokens read ahead (recorded), by reader id
        self.ahead_lock = threading.Lock()
        if records:
            threading.Thread(target=self.record, daemon=True).start()
        elif read is None:
            self.read.set()

    def record(self) -> None:
        try:
            with open_store(self.store, upgrade=False) as store:
                store.record_missing_tokens(self.secret, self.cadence)
        except Exception as exc:  # told with the first job that needs it
            self.error = exc
        finally:
            self.read.set()

    def read_ahead(self, ids: Sequence[int]) -> threading.Thread:
        """Read these readers' tokens in the background, once the tokens are recorded."""
        thread = threading.Thread(target=self.read_tokens, args=(ids,), daemon=True)
        thread.start()
        return thread

    def read_tokens(self, ids: Sequence[int]) -> None:
        """AHEAD_CHUNK readers at a time, through a connection of its own, on a thread of
        low priority. A failure only loses the head start: each job reads what is not
        here, and meets a lasting error itself."""
        try:
            self.wait_recorded()
            yield_the_core()
            with open_store(self.store, upgrade=False) as store:
                for chunk in chunks(ids, AHEAD_CHUNK):
                    if self.stopped.is_set():
                        return
                    known = store.recorded_tokens(chunk, self.secret)
                    with self.ahead_lock:
                        self.ahead.update(known)
        except Exception:  # any: see the docstring (the jobs do the same work themselves)
            pass

    def wait_recorded(self) -> None:
        """Until the tokens are recorded (Stopped if the run ended meanwhile); the error
        that stopped the recording, if one did."""
        while not self.read.wait(RELAY_POLL_S):
            if self.stopped.is_set():
                raise Stopped()
        if self.error is not None:
            raise self.error

    def find(self, ids: Sequence[int]) -> tuple[tuple[Addressee, ...], tuple[int, ...]]:
        """The active readers among `ids`, and the ids of those no longer active."""
        self.wait_recorded()
        store = self.own_store()
        try:
            found = self.addressees(store, ids)
        except Exception:  # a connection lost stays lost: the next job opens another
            self.local.store = None
            store.close()
            raise
        return (tuple(found[i] for i in ids if i in found),
                tuple(i for i in ids if i not in found))

    def addressees(self, store: Store, ids: Sequence[int]) -> dict[int, Addressee]:
        """Readers read ahead by id alone, with their tokens (one whose id is now a new
        reader's is not found: the reader planned is gone); the others with the hashes
        recorded for them, any missing written."""
        with self.ahead_lock:
            known = {id_: token for id_ in ids if (token := self.ahead.pop(id_, None))}
        found = store.known_addressees(known) if known else {}
        if rest := {id_ for id_ in ids if id_ not in known}:
            found.update(store.addressees(rest, self.secret))
        return found

    def own_store(self) -> Store:
        """This thread's connection (SQLite's stay in their thread), opened at its first
        job and closed with the process."""
        store: Store | None = getattr(self.local, "store", None)
        if store is None:
            store = self.local.store = open_store(self.store, upgrade=False)
        return store


def yield_the_core() -> None:
    """Lower this thread's priority, on Linux, where each thread has its own: the run's
    freeze and the sending threads come first on the cores it shares with them."""
    if sys.platform.startswith("linux"):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY)


def received(conn: Connection) -> Iterator[Job | ReadAhead | tuple[int, bool]]:
    while True:
        try:
            yield conn.recv()
        except (EOFError, OSError):
            return


def portable(news: News) -> News:
    """An error as one the run can raise, on one line (not every exception pickles):
    digest's own as its message, anything else with its type."""
    if not isinstance(news, Broke):
        return news
    if isinstance(news.error, DigestError):
        return Broke(news.batch, DeliveryError(str(news.error)))
    error = news.error
    return Broke(news.batch, DeliveryError(
        f"the courier failed: {type(error).__name__}: {error}".rstrip(": ")))
