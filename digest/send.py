"""Send an issue: plan it once (segments and batches, frozen in the ledger), then send
every batch not yet accepted, recording each before and after its request.

A crash or a rerun never sends anyone the same issue twice: accepted batches are never
resent, and a batch whose outcome is unknown (in flight when the run died, or a read
time-out) is reported and left alone unless the operator passes --resend-unknown.
Readers who stopped or were removed since the plan are taken out of a batch before it
is sent, and counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from digest import pipeline
from digest.config import Settings
from digest.content import Article
from digest.errors import DeliveryError
from digest.ledger import Batch, Ledger, PlannedSegment
from digest.locks import file_lock as run_lock  # noqa: F401 - see Store.run_lock
from digest.quality import Finding
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email, Renderer
from digest.select import Window
from digest.store import Store, Subscriber
from digest.transports import Message, Outcome, Recipient, Transport, list_unsubscribe_headers

WORKERS = 4  # requests in flight at once (sendgrid.concurrency)
SAMPLE_TOKEN = "x" * 43  # the shape of a reader's token, for checking links


@dataclass(frozen=True)
class Plan:
    segments: tuple[PlannedSegment, ...]
    findings: tuple[tuple[str, Finding], ...]  # (segment slug, finding)

    @property
    def recipients(self) -> int:
        return sum(len(s.recipients) for s in self.segments if s.email is not None)


@dataclass
class Summary:
    accepted: int = 0  # recipients accepted in this run
    already: int = 0  # recipients accepted by an earlier run
    failed: int = 0
    unknown: int = 0
    dropped: int = 0  # readers who stopped or were removed between the plan and their batch
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown)


def window_for(ledger: Ledger, cadence: str, now: datetime) -> Window:
    """From the end of the previous issue of `cadence` (else one period back) to `now`."""
    days = 1 if cadence == "daily" else 7
    start = ledger.last_window_end(cadence, now) or now - timedelta(days=days)
    return Window(start, now)


def plan_issue(articles: Sequence[Article], readers: Sequence[Subscriber], *, cadence: str,
               key: str, window: Window, settings: Settings, renderer: Renderer) -> Plan:
    """One render per segment, with the per-recipient unsubscribe URL left as a tag."""
    builds = pipeline.build_segments(
        readers, articles, cadence=cadence, key=key, window=window, settings=settings,
        renderer=renderer, unsubscribe_url=UNSUBSCRIBE_TAG, preferences_url=PREFERENCES_TAG,
        samples={UNSUBSCRIBE_TAG: settings.unsubscribe_url(SAMPLE_TOKEN),
                 PREFERENCES_TAG: settings.preferences_url(SAMPLE_TOKEN)},
        check=True)
    segments = [
        PlannedSegment(item.segment.slug, item.segment.categories,
                       tuple(a.slug for a in item.built.issue.articles) if item.built else (),
                       item.built.email if item.built else None,
                       tuple(r.id for r in item.segment.recipients))
        for item in builds
    ]
    findings = [(item.segment.slug, finding) for item in builds for finding in item.findings]
    return Plan(tuple(segments), tuple(findings))


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
        self.tokens: dict[int, str] = {}

    def run(self, key: str, *, resend_unknown: bool = False) -> Summary:
        summary = Summary()
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
                f"outcome unknown ({batch.reason or 'the run stopped while it was in flight'}); "
                "left alone: check SendGrid's activity, then rerun with --resend-unknown "
                "if it was not delivered")

    def send_all(self, key: str, todo: Sequence[Batch], summary: Summary) -> None:
        readers = {s.id: s for s in self.store.subscribers()}
        planned = {i for batch in todo for i in batch.recipients}
        self.tokens = self.store.tokens(
            [r for i, r in readers.items() if i in planned and r.status == "active"], self.secret)
        emails: dict[str, Email] = {}
        running: dict[Future[Outcome], Batch] = {}
        with ThreadPoolExecutor(self.workers) as pool:
            for batch in todo:
                while len(running) >= self.workers:
                    self.collect(running, summary)
                sendable = self.trim(batch, readers, summary)
                if sendable is None:
                    continue
                email = emails.setdefault(batch.segment, self.ledger.email(key, batch.segment))
                message = compose(self.settings, email,
                                  [readers[i] for i in sendable.recipients], self.tokens,
                                  key=key, segment=batch.segment)
                self.ledger.mark(batch.id, "in-flight")
                running[pool.submit(self.transport.send, message)] = sendable
            while running:
                self.collect(running, summary)

    def collect(self, running: dict[Future[Outcome], Batch], summary: Summary) -> None:
        """Wait for at least one request to finish and record what came back."""
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            batch = running.pop(future)
            try:
                outcome = future.result()
            except DeliveryError as exc:
                outcome = Outcome("failed", reason=str(exc))
            self.record(batch, outcome, summary)

    def record(self, batch: Batch, outcome: Outcome, summary: Summary) -> None:
        count = len(batch.recipients)
        label = f"batch {batch.segment}#{batch.number} ({count} recipients)"
        if outcome.status == "accepted":
            self.ledger.mark(batch.id, "accepted", message_id=outcome.message_id)
            summary.accepted += count
        elif outcome.status == "failed":
            self.ledger.mark(batch.id, "failed", reason=outcome.reason)
            summary.failed += count
            summary.reasons.append(f"{label}: failed: {outcome.reason}")
        else:
            self.ledger.mark(batch.id, "in-flight", reason=outcome.reason)
            summary.unknown += count
            summary.reasons.append(f"{label}: outcome unknown: {outcome.reason}")
        self.progress(count)

    def trim(self, batch: Batch, readers: dict[int, Subscriber],
             summary: Summary) -> Batch | None:
        """The batch without readers who stopped or were removed since the plan: they are
        taken out of the ledger and counted. None (the batch marked accepted) if nobody
        is left to send to."""
        active = tuple(i for i in batch.recipients
                       if i in readers and readers[i].status == "active")
        if batch.removed or len(active) < len(batch.recipients):
            summary.dropped += self.ledger.drop_recipients(
                batch.id, set(batch.recipients) - set(active))
        self.progress(batch.size - len(active))
        if not active:
            self.ledger.mark(batch.id, "accepted",
                             reason="every reader in it had stopped or was removed")
            return None
        return replace(batch, recipients=active, removed=0)


def required_sender(settings: Settings) -> tuple[str | None, str]:
    name, address = settings.sender
    if not address:
        raise DeliveryError("email.from is not set in the configuration (the sender address)")
    return name, address


def compose(settings: Settings, email: Email, readers: Sequence[Subscriber],
            tokens: dict[int, str], *, key: str, segment: str) -> Message:
    """One request: the segment's email with each reader's own unsubscribe link."""
    from_name, from_email = required_sender(settings)
    group = settings["sendgrid.asm_group_id"]
    recipients = []
    for reader in readers:
        url = settings.unsubscribe_url(tokens[reader.id])
        headers = {} if group else list_unsubscribe_headers(url, settings["unsubscribe.mailto"])
        links = {UNSUBSCRIBE_TAG: url,
                 PREFERENCES_TAG: settings.preferences_url(tokens[reader.id])}
        recipients.append(Recipient(reader.email, reader.name or None, links, headers))
    return Message(
        subject=email.subject, html=email.html, text=email.text, from_email=from_email,
        from_name=from_name, reply_to=settings["email.reply_to"] or None,
        recipients=tuple(recipients), categories=("digest", key),
        custom_args={"issue": key, "segment": segment}, asm_group_id=group)


def test_message(settings: Settings, built: pipeline.Built, key: str,
                 to: Sequence[str]) -> Message:
    """A [TEST] copy for `to`; the unsubscribe link is a harmless placeholder."""
    from_name, from_email = required_sender(settings)
    email = built.email
    return Message(
        subject=f"[TEST] {email.subject}", html=email.html, text=email.text,
        from_email=from_email, from_name=from_name,
        reply_to=settings["email.reply_to"] or None,
        recipients=tuple(Recipient(address) for address in to),
        categories=("digest-test", key), custom_args={"issue": key, "test": "yes"})
