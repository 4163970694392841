"""Send an issue: plan it once (segments and batches, frozen in the ledger), then send
every batch not yet accepted, recording each before and after its request.

A crash or a rerun never sends anyone the same issue twice: accepted batches are never
resent, and a batch whose outcome is unknown (in flight when the run died, or a read
time-out) is reported and left alone unless the operator passes --resend-unknown.
Readers who stopped or were removed since the plan are taken out of a batch before it
is sent, and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from digest import pipeline
from digest.config import Settings
from digest.content import Article
from digest.desk import (
    NOBODY_LEFT,
    WORKERS,
    Attempting,
    Broke,
    Desk,
    Job,
    ThreadDesk,
    Waiting,
    required_sender,
)
from digest.errors import DeliveryError
from digest.ledger import Batch, Ledger, PlannedSegment
from digest.quality import Finding
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email, Renderer
from digest.segments import Member
from digest.select import Window
from digest.spool import Spool
from digest.store import Store
from digest.transports import Message, Outcome, Recipient, Transport

SAMPLE_TOKEN = "x" * 43  # the shape of a reader's token, for checking links


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
    """Sends the batches of one planned issue through a transport: its workers are the
    `desk`'s (threads of this process unless another desk is given)."""

    def __init__(self, store: Store, transport: Transport, settings: Settings, secret: str,
                 *, workers: int = WORKERS, desk: Desk | None = None,
                 progress: Callable[[int], None] = lambda recipients: None) -> None:
        self.store, self.ledger = store, Ledger(store)
        self.transport, self.settings, self.secret = transport, settings, secret
        self.workers, self.desk, self.progress = workers, desk, progress

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
        desk = self.desk or ThreadDesk(self.settings, self.transport, self.workers)
        if desk.addresses:  # the courier read the readers and their tokens itself
            active: Collection[int] = self.store.active_ids()
            addressees = None
        else:
            planned = {i for batch in todo for i in batch.recipients}
            active = addressees = self.store.addressees(planned, self.secret)
            del planned
        running: dict[int, Batch] = {}
        emails = Emails(self.ledger, key)
        with desk.closing():
            for batch in todo:
                while len(running) >= desk.capacity:
                    self.collect(desk, running, summary)
                sendable = self.trim(batch, active, summary)
                if sendable is None:
                    continue
                running[batch.id] = sendable
                readers = None if addressees is None else tuple(
                    addressees[i] for i in sendable.recipients)  # else the desk finds them
                desk.submit(Job(key, sendable, emails.of(batch.segment), readers))
            while running:
                self.collect(desk, running, summary)

    def collect(self, desk: Desk, running: dict[int, Batch], summary: Summary) -> None:
        """Handle the workers' next news (here, in the thread that owns the store):
        record an attempt or a wait before the worker goes on, or record an outcome."""
        news = desk.next()
        if isinstance(news, Attempting):
            desk.answer(news, not self.ledger.attempting(news.batch, news.number))
        elif isinstance(news, Waiting):
            desk.answer(news, not self.ledger.mark(
                news.batch, "pending",
                reason=f"waiting {news.seconds:.1f} s to retry: {news.reason}"))
        elif isinstance(news, Broke):
            raise news.error
        else:
            self.record(self.without(running.pop(news.batch), news.dropped, summary),
                        news.outcome, summary)

    def without(self, batch: Batch, dropped: Collection[int], summary: Summary) -> Batch:
        """The batch without the readers its worker found had stopped or were removed
        (taken out of the ledger and counted)."""
        if not dropped:
            return batch
        gone = set(dropped)
        summary.dropped += self.ledger.drop_recipients(batch.id, gone)
        self.progress(len(gone))
        return replace(batch, recipients=tuple(i for i in batch.recipients if i not in gone))

    def record(self, batch: Batch, outcome: Outcome, summary: Summary) -> None:
        """The outcome in the ledger and the summary. A batch SendGrid's events marked
        accepted meanwhile stays accepted, whatever the answer to its request said."""
        count = len(batch.recipients)
        label = f"batch {batch.segment}#{batch.number} ({count} recipients)"
        if outcome.status == "accepted":
            self.ledger.mark(batch.id, "accepted", message_id=outcome.message_id,
                             reason=outcome.reason)
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

    def trim(self, batch: Batch, active: Collection[int], summary: Summary) -> Batch | None:
        """The batch without readers who stopped or were removed since the plan: they are
        taken out of the ledger and counted. None (the batch marked accepted) if nobody
        is left to send to."""
        sendable = tuple(i for i in batch.recipients if i in active)
        if batch.removed or len(sendable) < len(batch.recipients):
            summary.dropped += self.ledger.drop_recipients(
                batch.id, set(batch.recipients) - set(sendable))
        self.progress(batch.size - len(sendable))
        if not sendable:
            self.ledger.mark(batch.id, "accepted", reason=NOBODY_LEFT)
            return None
        return replace(batch, recipients=sendable, removed=0)


class Emails:
    """The frozen email of the segment being sent (batches come segment by segment):
    one email read per segment, and only one held."""

    def __init__(self, ledger: Ledger, key: str) -> None:
        self.ledger, self.key = ledger, key
        self.segment: str | None = None
        self.email: Email | None = None

    def of(self, segment: str) -> Email:
        if self.email is None or segment != self.segment:
            self.segment, self.email = segment, self.ledger.email(self.key, segment)
        return self.email


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
