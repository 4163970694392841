"""Send an issue: plan it once (segments and batches, frozen in the ledger), then send
every batch not yet accepted, recording each before and after its request.

A crash or a rerun never sends anyone the same issue twice: accepted batches are never
resent, and a batch whose outcome is unknown (in flight when the run died, or a read
time-out) is reported and left alone unless the operator passes --resend-unknown.
Readers who stopped or were removed since the plan are taken out of a batch before it
is sent, and counted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from digest import pipeline
from digest.config import Settings
from digest.content import Article
from digest.errors import DeliveryError
from digest.ledger import Batch, Ledger, PlannedSegment
from digest.quality import Finding
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email, Renderer
from digest.segments import Member
from digest.select import Window
from digest.spool import Spool
from digest.store import Addressee, Store
from digest.transports import Message, Outcome, Recipient, Transport, list_unsubscribe_headers

WORKERS = 4  # requests in flight at once (sendgrid.concurrency)
SAMPLE_TOKEN = "x" * 43  # the shape of a reader's token, for checking links
RELAY_POLL_S = 0.1  # how often a sending thread waiting for the ledger checks for a stop


@dataclass(frozen=True)
class Plan:
    segments: tuple[PlannedSegment, ...]
    findings: tuple[tuple[str, Finding], ...]  # (segment slug, finding)
    spool: Spool  # where the segments' emails wait to be frozen

    def close(self) -> None:
        """Let the emails go (the plan is frozen, or will not be)."""
        self.spool.close()

    @property
    def recipients(self) -> int:
        return sum(len(s.recipients) for s in self.segments if s.email is not None)


@dataclass
class Summary:
    key: str = ""
    accepted: int = 0  # recipients accepted in this run
    already: int = 0  # recipients accepted by an earlier run
    failed: int = 0
    unknown: int = 0
    dropped: int = 0  # readers who stopped or were removed between the plan and their batch
    skipped: int = 0  # planned readers in segments with nothing for them (never sent)
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown)


def window_for(ledger: Ledger, cadence: str, now: datetime) -> Window:
    """From the end of the previous issue of `cadence` (else one period back) to `now`."""
    days = 1 if cadence == "daily" else 7
    start = ledger.last_window_end(cadence, now) or now - timedelta(days=days)
    return Window(start, now)


def plan_issue(articles: Sequence[Article], subscribers: Sequence[Member], *, cadence: str,
               key: str, window: Window, settings: Settings, renderer: Renderer) -> Plan:
    """One render per segment, with the per-recipient unsubscribe URL left as a tag;
    each email goes to the plan's spool as it is rendered, so memory holds those being
    rendered, not every segment's."""
    builds = pipeline.each_segment(
        subscribers, articles, cadence=cadence, key=key, window=window, settings=settings,
        renderer=renderer, unsubscribe_url=UNSUBSCRIBE_TAG, preferences_url=PREFERENCES_TAG,
        samples={UNSUBSCRIBE_TAG: settings.unsubscribe_url(SAMPLE_TOKEN),
                 PREFERENCES_TAG: settings.preferences_url(SAMPLE_TOKEN)},
        check=True)
    segments, findings, spool = [], [], Spool()
    with spool.kept_unless_failed(), closing(builds):  # ends the render workers too
        for item in builds:
            segments.append(planned(item, spool))
            findings += [(item.segment.slug, finding) for finding in item.findings]
    return Plan(tuple(segments), tuple(findings), spool)


def planned(item: pipeline.SegmentBuild, spool: Spool) -> PlannedSegment:
    built = item.built
    return PlannedSegment(item.segment.slug, item.segment.categories,
                          tuple(a.slug for a in built.issue.articles) if built else (),
                          spool.put(built.email) if built else None,
                          tuple(r.id for r in item.segment.recipients))


def gate(findings: Sequence[tuple[str, Finding]], force: bool) -> None:
    """Refuse to send an email with an error-level quality problem, unless forced.
    `findings` are (segment, finding) pairs."""
    errors = sum(1 for _, finding in findings if finding.level == "error")
    if errors and not force:
        problems = "problem" if errors == 1 else "problems"
        raise DeliveryError(f"not sending: {errors} error-level quality {problems} (listed "
                            "above); fix the templates or content, or pass --force")


class Sender:
    """Sends the batches of one planned issue through a transport."""

    def __init__(self, store: Store, transport: Transport, settings: Settings, secret: str,
                 *, workers: int = WORKERS,
                 progress: Callable[[int], None] = lambda recipients: None) -> None:
        self.store, self.ledger = store, Ledger(store)
        self.transport, self.settings, self.secret = transport, settings, secret
        self.workers, self.progress = workers, progress

    def run(self, key: str, *, resend_unknown: bool = False) -> Summary:
        summary = Summary(key)
        batches = self.ledger.batches(key)
        todo = [b for b in batches if b.status in ("pending", "failed")
                or (b.unknown and resend_unknown)]
        for batch in batches:
            self.count_untouched(batch, summary, resend_unknown)
        self.send_all(key, todo, summary)
        self.ledger.finish_if_complete(key)
        return summary

    def count_untouched(self, batch: Batch, summary: Summary, resend_unknown: bool) -> None:
        if batch.status == "accepted":
            summary.already += batch.size
        elif batch.unknown and not resend_unknown:
            summary.unknown += batch.size
            summary.reasons.append(
                f"batch {batch.segment}#{batch.number} ({batch.size} recipients): "
                f"outcome unknown ({batch.why}); "
                "left alone: check SendGrid's activity, then rerun with --resend-unknown "
                "if it was not delivered")

    def send_all(self, key: str, todo: Sequence[Batch], summary: Summary) -> None:
        planned = {i for batch in todo for i in batch.recipients}
        addressees = self.store.addressees(planned, self.secret)
        del planned
        emails: dict[str, Email] = {}
        desk = Desk()
        with ThreadPoolExecutor(self.workers) as pool, desk.closing():
            for batch in todo:
                while len(desk.running) >= self.workers:
                    self.collect(desk, summary)
                sendable = self.trim(batch, addressees, summary)
                if sendable is None:
                    continue
                email = emails.setdefault(batch.segment, self.ledger.email(key, batch.segment))
                message = compose(self.settings, email,
                                  [addressees[i] for i in sendable.recipients],
                                  key=key, segment=batch.segment, batch=batch.number)
                desk.submit(pool, self.transport, message, sendable)
            while desk.running:
                self.collect(desk, summary)

    def collect(self, desk: Desk, summary: Summary) -> None:
        """Handle the workers' next news (here, in the thread that owns the store):
        record an attempt or a wait before the worker goes on, or record an outcome."""
        news = desk.news.get()
        if isinstance(news, Attempting):
            news.accepted = not self.ledger.attempting(news.batch.id, news.number)
        elif isinstance(news, Waiting):
            news.accepted = not self.ledger.mark(
                news.batch.id, "pending",
                reason=f"waiting {news.seconds:.1f} s to retry: {news.reason}")
        else:
            self.record(desk.running.pop(news), outcome_of(news), summary)
            return
        news.recorded.set()

    def record(self, batch: Batch, outcome: Outcome, summary: Summary) -> None:
        """The outcome in the ledger and the summary. A batch SendGrid's events marked
        accepted meanwhile stays accepted, whatever the answer to its request said."""
        count = len(batch.recipients)
        label = f"batch {batch.segment}#{batch.number} ({count} recipients)"
        if outcome.status == "accepted":
            self.ledger.mark(batch.id, "accepted", message_id=outcome.message_id)
            summary.accepted += count
        elif not self.ledger.mark(batch.id, "failed" if outcome.status == "failed"
                                  else "in-flight", reason=outcome.reason):
            summary.accepted += count
        elif outcome.status == "failed":
            summary.failed += count
            summary.reasons.append(f"{label}: failed: {outcome.reason}")
        else:
            summary.unknown += count
            summary.reasons.append(f"{label}: outcome unknown: {outcome.reason}")
        self.progress(count)

    def trim(self, batch: Batch, addressees: Mapping[int, Addressee],
             summary: Summary) -> Batch | None:
        """The batch without readers who stopped or were removed since the plan: they are
        taken out of the ledger and counted. None (the batch marked accepted) if nobody
        is left to send to."""
        active = tuple(i for i in batch.recipients if i in addressees)
        if batch.removed or len(active) < len(batch.recipients):
            summary.dropped += self.ledger.drop_recipients(
                batch.id, set(batch.recipients) - set(active))
        self.progress(batch.size - len(active))
        if not active:
            self.ledger.mark(batch.id, "accepted",
                             reason="every reader in it had stopped or was removed")
            return None
        return replace(batch, recipients=active, removed=0)


def outcome_of(future: Future[Outcome]) -> Outcome:
    try:
        return future.result()
    except AlreadyAccepted:
        return Outcome("accepted", reason="SendGrid's events show it accepted the batch")
    except DeliveryError as exc:
        return Outcome("failed", reason=str(exc))


@dataclass
class Attempting:
    batch: Batch
    number: int
    recorded: threading.Event = field(default_factory=threading.Event)
    accepted: bool = False  # the ledger had it accepted already: no request may start


@dataclass
class Waiting:
    batch: Batch
    reason: str
    seconds: float
    recorded: threading.Event = field(default_factory=threading.Event)
    accepted: bool = False  # accepted while it waited: it is not sent again


class Stopped(Exception):
    """The run stopped (its ledger could not be written): no request is started."""


class AlreadyAccepted(DeliveryError):
    """SendGrid's events marked the batch accepted (the webhook, while an earlier request
    of it was out or it waited to retry): no further request is started."""


class Desk:
    """Where the sending threads report to the thread that writes the ledger: each
    attempt and each wait to retry is recorded before the thread goes on, so the ledger
    says in flight exactly while a request may be reaching the API."""

    def __init__(self) -> None:
        self.news: queue.Queue[Attempting | Waiting | Future[Outcome]] = queue.Queue()
        self.running: dict[Future[Outcome], Batch] = {}
        self.stopped = threading.Event()

    def submit(self, pool: ThreadPoolExecutor, transport: Transport, message: Message,
               batch: Batch) -> None:
        future = pool.submit(transport.send, message, Relay(self, batch))
        self.running[future] = batch
        future.add_done_callback(self.news.put)

    @contextmanager
    def closing(self) -> Iterator[None]:
        """On any error in the ledger's thread, no worker starts another request."""
        try:
            yield
        except BaseException:
            self.stopped.set()
            raise

    def told(self, news: Attempting | Waiting) -> None:
        """From a sending thread: report and wait until it is recorded."""
        self.news.put(news)
        while not news.recorded.wait(RELAY_POLL_S):
            if self.stopped.is_set():
                raise Stopped()
        if news.accepted:
            raise AlreadyAccepted(f"batch {news.batch.segment}#{news.batch.number} is "
                                  "accepted already")


@dataclass(frozen=True)
class Relay:
    """The `Attempts` a sending thread hands its transport, for one batch."""

    desk: Desk
    batch: Batch

    def attempting(self, number: int) -> None:
        self.desk.told(Attempting(self.batch, number))

    def waiting(self, reason: str, seconds: float) -> None:
        self.desk.told(Waiting(self.batch, reason, seconds))


def required_sender(settings: Settings) -> tuple[str | None, str]:
    name, address = settings.sender
    if not address:
        raise DeliveryError("email.from is not set in the configuration (the sender address)")
    return name, address


def compose(settings: Settings, email: Email, addressees: Sequence[Addressee], *,
            key: str, segment: str, batch: int) -> Message:
    """One request: the segment's email with each reader's own unsubscribe link."""
    from_name, from_email = required_sender(settings)
    group = settings.optional_integer("sendgrid.asm_group_id")
    mailto = settings.text("unsubscribe.mailto")
    recipients = []
    for addressee in addressees:
        url = settings.unsubscribe_url(addressee.token)
        headers = {} if group else list_unsubscribe_headers(url, mailto)
        links = {UNSUBSCRIBE_TAG: url,
                 PREFERENCES_TAG: settings.preferences_url(addressee.token)}
        recipients.append(Recipient(addressee.email, addressee.name or None, links, headers))
    return Message(
        subject=email.subject, html=email.html, text=email.text, from_email=from_email,
        from_name=from_name, reply_to=settings.text("email.reply_to") or None,
        recipients=tuple(recipients), categories=("digest", key),
        custom_args={"issue": key, "segment": segment, "batch": str(batch)},
        asm_group_id=group)


def test_message(settings: Settings, built: pipeline.Built, key: str,
                 to: Sequence[str]) -> Message:
    """A [TEST] copy for `to`; the unsubscribe link is a harmless placeholder."""
    from_name, from_email = required_sender(settings)
    email = built.email
    return Message(
        subject=f"[TEST] {email.subject}", html=email.html, text=email.text,
        from_email=from_email, from_name=from_name,
        reply_to=settings.text("email.reply_to") or None,
        recipients=tuple(Recipient(address) for address in to),
        categories=("digest-test", key), custom_args={"issue": key, "test": "yes"})
