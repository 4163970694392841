"""The sending desk: where a run's sending workers report to the thread that writes the
ledger.

The run hands the desk one `Job` per batch: its email and the readers it goes to now.
A worker composes the request and sends it. Before each attempt, and before each wait
to retry, it tells the desk (`Attempting`, `Waiting`) and waits for the answer: the
ledger records it first, so the ledger says in flight exactly while a request may be
reaching the API. When the request is over, it tells the outcome (`Done`).

The workers are threads of this process (`ThreadDesk`) or threads of a second process
(`courier.Couriers`). Both take the same jobs and hand back the same news, which is
plain data. The thread that writes the ledger handles it (`send.Sender.collect`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from string import Formatter
from typing import Protocol

from digest.config import Settings
from digest.emails import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email
from digest.errors import DeliveryError
from digest.ledger import Batch
from digest.store import Addressee
from digest.transports import Links, Message, Outcome, Readers, Transport

WORKERS = 4  # requests in flight at once (sendgrid.concurrency)
RELAY_POLL_S = 0.1  # how often a worker waiting for the ledger checks for a stop
NOBODY_LEFT = "every reader in it had stopped or was removed"


@dataclass(frozen=True)
class Job:
    """One batch's request: the segment's email and the readers it goes to now (their
    addresses and tokens; None when the desk has its own `Book` of them)."""

    key: str
    batch: Batch
    email: Email
    addressees: tuple[Addressee, ...] | None


class Book(Protocol):
    """Where a desk's workers find the readers of a job given without them."""

    def find(self, ids: Sequence[int]) -> tuple[tuple[Addressee, ...], tuple[int, ...]]:
        """The active readers among `ids`, and the ids of those no longer active."""


@dataclass(frozen=True)
class Attempting:
    """Before attempt `number` at batch `batch`'s request (a batch id)."""

    batch: int
    number: int


@dataclass(frozen=True)
class Waiting:
    """Before a wait of `seconds` to retry batch `batch`'s request."""

    batch: int
    reason: str
    seconds: float


@dataclass(frozen=True)
class Done:
    """Batch `batch`'s request is over; the readers `dropped` were not in it (they had
    stopped or were removed since the run last looked)."""

    batch: int
    outcome: Outcome
    dropped: tuple[int, ...] = ()


@dataclass(frozen=True)
class Broke:
    """Sending batch `batch` raised what no outcome stands for (a bug, or a courier that
    cannot read its store): the run stops."""

    batch: int
    error: BaseException


News = Attempting | Waiting | Done | Broke
Tell = Callable[[News], None]


class Desk(Protocol):
    """What the run's ledger thread uses: submit jobs, take the workers' news, and
    answer each Attempting or Waiting with whether the batch is accepted already."""

    capacity: int  # jobs given out at once (in flight, or ready to start)
    addresses: bool  # its workers find each job's readers themselves (jobs come without)

    def submit(self, job: Job) -> None: ...

    def next(self) -> News: ...

    def answer(self, news: Attempting | Waiting, accepted: bool) -> None: ...

    def closing(self) -> AbstractContextManager[None]: ...


class Stopped(Exception):
    """The run stopped (its ledger could not be written): no request is started."""


class AlreadyAccepted(DeliveryError):
    """SendGrid's events marked the batch accepted (the webhook, while an earlier request
    of it was out or it waited to retry): no further request is started."""


@dataclass
class Reply:
    """The answer one worker waits for: whether the batch was accepted already."""

    given: threading.Event = field(default_factory=threading.Event)
    accepted: bool = False


class Replies:
    """The answers the workers wait for, one at a time per batch."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: dict[int, Reply] = {}
        self.stopped = threading.Event()

    def expect(self, batch: int) -> Reply:
        with self.lock:
            reply = self.waiting[batch] = Reply()
        return reply

    def answer(self, batch: int, accepted: bool) -> None:
        with self.lock:
            reply = self.waiting.pop(batch)
        reply.accepted = accepted
        reply.given.set()

    def stop(self) -> None:
        self.stopped.set()


@dataclass(frozen=True)
class Relay:
    """The `Attempts` a worker hands its transport, for one batch: each is told and
    answered before the worker goes on."""

    tell: Tell
    replies: Replies
    batch: Batch

    def attempting(self, number: int) -> None:
        self.told(Attempting(self.batch.id, number))

    def waiting(self, reason: str, seconds: float) -> None:
        self.told(Waiting(self.batch.id, reason, seconds))

    def told(self, news: Attempting | Waiting) -> None:
        reply = self.replies.expect(self.batch.id)
        self.tell(news)
        while not reply.given.wait(RELAY_POLL_S):
            if self.replies.stopped.is_set():
                raise Stopped()
        if reply.accepted:
            raise AlreadyAccepted(f"batch {self.batch.segment}#{self.batch.number} is "
                                  "accepted already")


def work(settings: Settings, transport: Transport, job: Job, tell: Tell,
         replies: Replies, book: Book | None = None) -> None:
    """A worker's whole part in one job: compose, send (with retries), tell the outcome.
    After a stop it tells nothing: the run is over."""
    batch = job.batch
    dropped: tuple[int, ...] = ()
    try:
        addressees, dropped = readers_of(job, book)
        if not addressees:
            tell(Done(batch.id, Outcome("accepted", reason=NOBODY_LEFT), dropped))
            return
        message = compose(settings, job.email, addressees, key=job.key,
                          segment=batch.segment, batch=batch.number)
        outcome = transport.send(message, Relay(tell, replies, batch))
    except Stopped:
        return
    except AlreadyAccepted:
        outcome = Outcome("accepted", reason="SendGrid's events show it accepted the batch")
    except DeliveryError as exc:
        outcome = Outcome("failed", reason=str(exc))
    except Exception as exc:  # a bug: the ledger thread raises it
        tell(Broke(batch.id, exc))
        return
    tell(Done(batch.id, outcome, dropped))


def readers_of(job: Job, book: Book | None) -> tuple[tuple[Addressee, ...], tuple[int, ...]]:
    """The job's readers, and the ids of those its desk's book found no longer active."""
    if job.addressees is not None:
        return job.addressees, ()
    if book is None:
        raise ValueError("a job without its readers, and no book to find them")
    return book.find(job.batch.recipients)


class ThreadDesk:
    """Workers that are threads of this process."""

    addresses = False  # each job comes with its readers

    def __init__(self, settings: Settings, transport: Transport, workers: int = WORKERS
                 ) -> None:
        self.settings, self.transport, self.capacity = settings, transport, workers
        self.news: queue.Queue[News] = queue.Queue()
        self.replies = Replies()
        self.pool = ThreadPoolExecutor(workers)

    def submit(self, job: Job) -> None:
        self.pool.submit(work, self.settings, self.transport, job, self.news.put,
                         self.replies)

    def next(self) -> News:
        return self.news.get()

    def answer(self, news: Attempting | Waiting, accepted: bool) -> None:
        self.replies.answer(news.batch, accepted)

    @contextmanager
    def closing(self) -> Iterator[None]:
        """On any error in the ledger's thread no worker starts another request; the
        requests already out end before this does."""
        try:
            yield
        except BaseException:
            self.replies.stop()
            raise
        finally:
            self.pool.shutdown(wait=True)


def required_sender(settings: Settings) -> tuple[str | None, str]:
    name, address = settings.sender
    if not address:
        raise DeliveryError("email.from is not set in the configuration (the sender address)")
    return name, address


def compose(settings: Settings, email: Email, addressees: Sequence[Addressee], *,
            key: str, segment: str, batch: int) -> Message:
    """One request: the segment's email with each reader's own unsubscribe link (their
    `Recipient`s made by the transport from `links`, in one pass)."""
    from_name, from_email = required_sender(settings)
    group = settings.optional_integer("sendgrid.asm_group_id")
    links = Links(UNSUBSCRIBE_TAG, unsubscribe_url(settings),
                  PREFERENCES_TAG, joined(settings.preferences_url),
                  mailto=settings.text("unsubscribe.mailto"), headers=not group)
    return Message(
        subject=email.subject, html=email.html, text=email.text, from_email=from_email,
        from_name=from_name, reply_to=settings.text("email.reply_to") or None,
        recipients=Readers(addressees, links), categories=("digest", key),
        custom_args={"issue": key, "segment": segment, "batch": str(batch)},
        asm_group_id=group)


SPLIT = "\x00"  # a token stand-in no URL holds


def unsubscribe_url(settings: Settings) -> Callable[[str], str]:
    """`settings.unsubscribe_url`, faster when each `{token}` in `unsubscribe.url` is
    plain (no conversion or format spec; no field's spec holds a field)."""
    fields = [(name, spec, conversion) for _, name, spec, conversion
              in Formatter().parse(settings.unsubscribe_pattern) if name is not None]
    tokens = sum(name == "token" for name, _, _ in fields)
    if any("{" in (spec or "") for _, spec, _ in fields) or any(
            spec or conversion for name, spec, conversion in fields if name == "token"):
        return settings.unsubscribe_url
    return joined(settings.unsubscribe_url, tokens)


def joined(url: Callable[[str], str], tokens: int = 1) -> Callable[[str], str]:
    """`url` for a token that it holds `tokens` times as given: the rest made once and
    the token joined in (`url` itself should the rest hold the stand-in)."""
    parts = tuple(url(SPLIT).split(SPLIT))
    if len(parts) != tokens + 1:
        return url
    return lambda token: token.join(parts)
