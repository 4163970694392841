"""The send ledger: issues, their frozen plan, batches and who is in each batch.

Every batch is written before each attempt at its request (`in-flight`, with the
attempt's number and time) and after it (`accepted` with SendGrid's message id, or
`failed` with the reason). While it waits to retry after a refused or failed attempt
it is `pending` again (with `attempts` > 0: retrying), since nothing of it reached the
API; a run killed then sends it next time. A batch left `in-flight` by a crash or a
read time-out is *unknown*: it may have been delivered, so it is only sent again when
the operator says so (`digest issues mark`, `--resend-unknown`) or SendGrid's event
webhook says it was accepted (`resolve`, with the evidence recorded).

Writes that record a batch's state are retried for up to WRITE_RETRY_S while another
process holds the database, so a batch SendGrid accepted is recorded as accepted.

Each subscriber is in at most one batch per issue (a unique key of `deliveries`), so a
plan can never address anyone twice.

When a reader is removed (`digest subscribers remove`) their deliveries stay with no
subscriber (NULL), so an issue's counts stay true. A batch counts them as `removed`;
if it is sent again they are taken out first, and nobody is sent to in their place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.emails import Email
from digest.errors import DatabaseLocked, DigestError
from digest.select import Window
from digest.spool import SpooledEmail
from digest.store import Store, timestamp

BATCH_SIZE = 1000  # SendGrid's limit of personalizations (and recipients) per request
ID_BITS = 32  # a frozen reader is one int: subscriber id << ID_BITS | batch id
BATCH_MASK = (1 << ID_BITS) - 1
WRITE_RETRY_S = 30.0  # how long a batch's state is retried against a locked database
WRITE_RETRY_PAUSE_S = 0.2


@dataclass(frozen=True)
class PlannedSegment:
    slug: str
    categories: tuple[str, ...]
    articles: tuple[str, ...]  # slugs, in the order sent
    email: Email | SpooledEmail | None  # None: nothing for these categories this time
    recipients: tuple[int, ...]  # subscriber ids

    @property
    def batches(self) -> int:
        """How many requests the segment takes (none when it is skipped)."""
        return -(-len(self.recipients) // BATCH_SIZE) if self.email else 0


def batches_of(segment: PlannedSegment) -> Iterator[tuple[int, tuple[int, ...]]]:
    """The batches a segment is frozen as: (number, from 1; its readers); none when it is
    skipped."""
    if segment.email is None:
        return
    for number, start in enumerate(range(0, len(segment.recipients), BATCH_SIZE), 1):
        yield number, segment.recipients[start:start + BATCH_SIZE]


def planned_batches(segments: Sequence[PlannedSegment]
                    ) -> Iterator[tuple[str, int, tuple[int, ...]]]:
    """Every batch the segments are frozen as (segment, number, readers), in the order
    `Ledger.batches` gives them back, which is the order they are sent in."""
    for segment in sorted(segments, key=lambda segment: segment.slug):
        for number, readers in batches_of(segment):
            yield segment.slug, number, readers


@dataclass(frozen=True)
class IssueRow:
    key: str
    cadence: str
    window: Window
    status: str
    created_at: str
    finished_at: str | None


@dataclass(frozen=True)
class Batch:
    id: int
    segment: str
    number: int
    status: str
    message_id: str | None
    reason: str | None
    recipients: tuple[int, ...]  # subscriber ids
    removed: int = 0  # readers removed from the store since the plan (no id left)
    attempts: int = 0  # requests started for it, over every run
    sent_at: str | None = None  # when its latest attempt started
    evidence: str | None = None  # what resolved an unknown outcome

    @property
    def unknown(self) -> bool:
        return self.status == "in-flight"

    @property
    def why(self) -> str:
        """What resolved it, else its last reason; for an unknown one without a reason,
        that a run stopped while it was in flight."""
        if self.evidence or self.reason:
            return self.evidence or self.reason or ""
        return "the run stopped while it was in flight" if self.unknown else ""

    @property
    def label(self) -> str:
        """How commands name it: `segment#number`."""
        return f"{self.segment}#{self.number}"

    @property
    def state(self) -> str:
        """pending, retrying (pending after an attempt), unknown, accepted or failed."""
        if self.status == "pending":
            return "retrying" if self.attempts else "pending"
        return "unknown" if self.unknown else self.status

    @property
    def size(self) -> int:
        return len(self.recipients) + self.removed


class Ledger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def issue(self, key: str) -> IssueRow | None:
        row = self.conn.execute(
            "SELECT key, cadence, window_start, window_end, status, created_at, finished_at "
            "FROM issues WHERE key = ?", (key,)).fetchone()
        return issue_row(row) if row else None

    def require(self, key: str) -> IssueRow:
        """The issue `key`; a DigestError naming it when the ledger has no such issue."""
        issue = self.issue(key)
        if issue is None:
            raise DigestError(f"no issue {key} in the ledger (see: digest issues)")
        return issue

    def summary(self, issue: IssueRow) -> dict[str, Any]:
        """An issue and its counts, as `digest issues --json` prints it."""
        return {"key": issue.key, "cadence": issue.cadence, "status": issue.status,
                "window_start": issue.window.start.isoformat(),
                "window_end": issue.window.end.isoformat(), "created_at": issue.created_at,
                "finished_at": issue.finished_at, **self.counts(issue.key)}

    def issues(self) -> list[IssueRow]:
        rows = self.conn.execute(
            "SELECT key, cadence, window_start, window_end, status, created_at, finished_at "
            "FROM issues ORDER BY window_end, key")
        return [issue_row(row) for row in rows]

    def last_window_end(self, cadence: str, before: datetime) -> datetime | None:
        """Where the previous issue of `cadence` stopped, so the next one starts there."""
        ends = [issue.window.end for issue in self.issues()
                if issue.cadence == cadence and issue.window.end <= before]
        return max(ends, default=None)

    def create(self, key: str, cadence: str, window: Window,
               segments: Sequence[PlannedSegment]) -> None:
        """Freeze the plan: the issue, each segment's email, and the batches, at once.
        Deliveries go in by subscriber id, not batch by batch: in that order each index
        and foreign key check walks its pages once (2.4 times as fast for a million)."""
        now = timestamp(self.store.now())
        with self.store.transaction():
            self.conn.execute(
                "INSERT INTO issues (key, cadence, window_start, window_end, status, "
                "created_at) VALUES (?, ?, ?, ?, 'sending', ?)",
                (key, cadence, window.start.isoformat(), window.end.isoformat(), now))
            members = [placed for segment in segments
                       for placed in self.add_segment(key, segment, now)]
            members.sort()
            self.conn.executemany(
                "INSERT INTO deliveries (issue_key, subscriber_id, batch_id) VALUES (?, ?, ?)",
                ((key, placed >> ID_BITS, placed & BATCH_MASK) for placed in members))

    def add_segment(self, key: str, segment: PlannedSegment, now: str) -> list[int]:
        """Insert the segment and its batches; its readers, each as one int that sorts by
        subscriber id (id << ID_BITS | batch id: a million take 40 MB, not 100)."""
        email = segment.email
        self.conn.execute(
            "INSERT INTO issue_segments (issue_key, slug, categories, articles, recipients, "
            "subject, html, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, segment.slug, json.dumps(segment.categories), json.dumps(segment.articles),
             len(segment.recipients), email and email.subject, email and email.html,
             email and email.text))
        placed = []
        for number, readers in batches_of(segment):
            batch_id = self.conn.execute(
                "INSERT INTO batches (issue_key, segment, number, status, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?)", (key, segment.slug, number, now)).lastrowid
            if batch_id is None or not 0 < batch_id <= BATCH_MASK:
                raise ValueError(f"batch id {batch_id} is not a {ID_BITS}-bit id")
            placed += [id_ << ID_BITS | batch_id for id_ in readers]
        return placed

    def batches(self, key: str) -> list[Batch]:
        """The issue's batches by segment, then number: in the slugs' code point order on
        either backend (PostgreSQL's collation may order them otherwise), the order a
        send's couriers read ahead in."""
        members, removed = self.members(key)
        rows = sorted(self.conn.execute(
            "SELECT id, segment, number, status, message_id, reason, attempts, sent_at, "
            "evidence FROM batches WHERE issue_key = ?", (key,)), key=lambda row: row[1:3])
        return [Batch(id_, segment, number, status, message_id, reason,
                      recipients=tuple(members.get(id_, ())), removed=removed.get(id_, 0),
                      attempts=attempts, sent_at=sent_at, evidence=evidence)
                for id_, segment, number, status, message_id, reason, attempts, sent_at,
                evidence in rows]

    def batch(self, key: str, label: str) -> Batch:
        """The batch `segment#number` of issue `key`; a DigestError naming the choices."""
        batches = self.batches(self.require(key).key)
        for batch in batches:
            if batch.label == label:
                return batch
        names = ", ".join(b.label for b in batches) or "none"
        raise DigestError(f"issue {key} has no batch {label} (its batches: {names})")

    def members(self, key: str) -> tuple[dict[int, list[int]], dict[int, int]]:
        """Each batch's subscriber ids, and how many of its readers were removed since."""
        members: dict[int, list[int]] = {}
        removed: dict[int, int] = {}
        for batch_id, subscriber_id in self.conn.execute(
                "SELECT batch_id, subscriber_id FROM deliveries WHERE issue_key = ? "
                "ORDER BY subscriber_id", (key,)):
            if subscriber_id is None:
                removed[batch_id] = removed.get(batch_id, 0) + 1
            else:
                members.setdefault(batch_id, []).append(subscriber_id)
        return members, removed

    def segments(self, key: str) -> list[tuple[str, tuple[str, ...], int, Email | None]]:
        """(slug, categories, recipients, email) of each segment of the plan."""
        rows = self.conn.execute(
            "SELECT slug, categories, recipients, subject, html, text FROM issue_segments "
            "WHERE issue_key = ? ORDER BY slug", (key,))
        return [(slug, tuple(json.loads(cats)), count,
                 Email(subject, "", html, text) if html is not None else None)
                for slug, cats, count, subject, html, text in rows]

    def email(self, key: str, segment: str) -> Email:
        subject, html, text = self.conn.execute(
            "SELECT subject, html, text FROM issue_segments WHERE issue_key = ? AND slug = ?",
            (key, segment)).fetchone()
        return Email(subject, "", html, text)

    def archived(self, key: str) -> Email | None:
        """The whole issue as frozen for the web archive, if it has been."""
        row = self.conn.execute(
            "SELECT subject, preheader, html, text FROM issue_archive WHERE issue_key = ?",
            (key,)).fetchone()
        return Email(*row) if row else None

    def archive(self, key: str, email: Email) -> None:
        """Freeze the whole issue for the web archive (a second call changes nothing)."""
        with self.store.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO issue_archive (issue_key, subject, preheader, html, "
                "text) VALUES (?, ?, ?, ?, ?)",
                (key, email.subject, email.preheader, email.html, email.text))

    def mark(self, batch_id: int, status: str, *, message_id: str | None = None,
             reason: str | None = None) -> bool:
        """Record a batch's state now (each call is its own committed transaction). An
        accepted batch stays accepted (SendGrid's events may say so while its request is
        still out): False then, and nothing changed."""
        return self.write(
            "UPDATE batches SET status = ?, message_id = ?, reason = ?, updated_at = ? "
            "WHERE id = ? AND (CAST(? AS TEXT) = 'accepted' OR status != 'accepted')",
            (status, message_id, reason, timestamp(self.store.now()), batch_id, status)) > 0

    def attempting(self, batch_id: int, number: int) -> bool:
        """Before attempt `number` at the batch's request: in flight from now on. False
        (nothing changed, and no request may start) if it is accepted already."""
        now = timestamp(self.store.now())
        return self.write("UPDATE batches SET status = 'in-flight', attempts = attempts + 1, "
                          "sent_at = ?, reason = NULL, updated_at = ? "
                          "WHERE id = ? AND status != 'accepted'", (now, now, batch_id)) > 0

    def resolve(self, batch_id: int, *, delivered: bool, evidence: str) -> None:
        """Record what became of a batch whose outcome was unknown: delivered counts as
        accepted; not delivered makes it pending, so the next run sends it."""
        status = "accepted" if delivered else "pending"
        self.write("UPDATE batches SET status = ?, evidence = ?, updated_at = ? WHERE id = ?",
                   (status, evidence, timestamp(self.store.now()), batch_id))

    def batch_id(self, key: str, segment: str, number: int) -> int | None:
        row = self.conn.execute(
            "SELECT id FROM batches WHERE issue_key = ? AND segment = ? AND number = ?",
            (key, segment, number)).fetchone()
        return int(row[0]) if row else None

    def batch_of_subscriber(self, key: str, subscriber_id: int) -> int | None:
        """The batch a reader is in for issue `key` (each reader is in at most one)."""
        row = self.conn.execute(
            "SELECT batch_id FROM deliveries WHERE issue_key = ? AND subscriber_id = ?",
            (key, subscriber_id)).fetchone()
        return int(row[0]) if row else None

    def accept_on_evidence(self, batch_id: int, evidence: str) -> bool:
        """SendGrid's own word that it accepted the batch's request: accepted, with the
        evidence, if a request of it was ever started and it is not accepted already.
        Whether it changed."""
        with self.store.transaction():
            changed: int = self.conn.execute(
                "UPDATE batches SET status = 'accepted', evidence = ?, updated_at = ? "
                "WHERE id = ? AND status != 'accepted' "
                "AND (status != 'pending' OR attempts > 0)",
                (evidence, timestamp(self.store.now()), batch_id)).rowcount
        return changed > 0

    def issue_of_batch(self, batch_id: int) -> str:
        return str(self.conn.execute("SELECT issue_key FROM batches WHERE id = ?",
                                     (batch_id,)).fetchone()[0])

    def write(self, sql: str, params: Sequence[object]) -> int:
        """One committed write, tried again for up to WRITE_RETRY_S while the database is
        locked by another process (each try waits the busy time-out first); the number of
        rows it changed."""
        deadline = time.monotonic() + WRITE_RETRY_S
        while True:
            try:
                with self.store.transaction():
                    changed: int = self.conn.execute(sql, params).rowcount
                return changed
            except DatabaseLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(WRITE_RETRY_PAUSE_S)

    def drop_recipients(self, batch_id: int, stopped: Iterable[int]) -> int:
        """Take out of a batch about to be sent the readers removed since the plan (no id
        left) and those who stopped (`stopped`); returns how many it took out."""
        with self.store.transaction():
            removed = self.conn.execute(
                "DELETE FROM deliveries WHERE batch_id = ? AND subscriber_id IS NULL",
                (batch_id,)).rowcount
            gone = self.conn.executemany(
                "DELETE FROM deliveries WHERE batch_id = ? AND subscriber_id = ?",
                [(batch_id, id_) for id_ in stopped]).rowcount
        return removed + gone

    def finish_if_complete(self, key: str) -> bool:
        left: int = self.conn.execute(
            "SELECT count(*) FROM batches WHERE issue_key = ? AND status != 'accepted'",
            (key,)).fetchone()[0]
        if left == 0:
            with self.store.transaction():
                self.conn.execute(
                    "UPDATE issues SET status = 'done', finished_at = ? WHERE key = ? "
                    "AND status != 'done'", (timestamp(self.store.now()), key))
        return left == 0

    def counts(self, key: str) -> dict[str, int]:
        """Recipients by batch status, plus `skipped` (segments with nothing to send).
        Readers removed since count where their batch does: the history stays true."""
        counts = dict(self.conn.execute(
            "SELECT b.status, count(*) FROM deliveries d JOIN batches b ON b.id = d.batch_id "
            "WHERE d.issue_key = ? GROUP BY b.status", (key,)).fetchall())
        skipped = self.conn.execute(
            "SELECT coalesce(sum(recipients), 0) FROM issue_segments "
            "WHERE issue_key = ? AND html IS NULL", (key,)).fetchone()[0]
        return {"planned": sum(counts.values()), "accepted": counts.get("accepted", 0),
                "failed": counts.get("failed", 0), "unknown": counts.get("in-flight", 0),
                "pending": counts.get("pending", 0), "skipped": skipped}


def issue_row(row: Sequence[str]) -> IssueRow:
    key, cadence, start, end, status, created, finished = row
    window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
    return IssueRow(key, cadence, window, status, created, finished)
