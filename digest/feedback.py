"""What SendGrid reports back, kept in the store: its event webhook's events, and the
per-issue counts `digest stats` shows. All the SQL for them lives here.

`apply_events` takes one batch as SendGrid posts it (the web hook has checked the
signature) and, in one write transaction:

- skips every event whose `sg_event_id` was seen before: SendGrid may post an event
  twice, and a replayed batch changes nothing;
- moves readers' statuses as `effect_of` says (source `webhook`);
- counts, per issue (the `issue` custom arg every digest carries), the readers it was
  delivered to, who opened, clicked, bounced, complained or unsubscribed;
- records soft bounces (`blocked`), leaving the status alone.
- marks accepted, with the event as evidence, a batch whose outcome was unknown when
  SendGrid reports `processed`, `delivered`, `deferred`, `bounce` or `dropped` for it
  (found by its `segment` and `batch` custom args, else by the reader's place in the
  issue): SendGrid's own word that the request reached it (`resolve_batches`).

Only what the counts need is kept, never the event itself: the event id (no address)
for KEEP_EVENT_IDS, and for known readers the issue, the kind and the time, tied to the
subscriber row. `subscribers remove` unties them (the subscriber becomes NULL): the
issue's counts stay and nothing names the reader. Soft bounces go with the reader.
Events for addresses the store does not know change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from digest.ledger import IssueRow, Ledger
from digest.sql import Connection
from digest.store import (
    COLUMNS,
    STOPPED,
    Change,
    Status,
    Store,
    Subscriber,
    email_key,
    rows_in,
    timestamp,
    to_subscriber,
)

# Events that say SendGrid accepted the request the message was in
ACCEPTED_EVENTS = frozenset({"processed", "delivered", "deferred", "bounce", "dropped"})
KINDS = ("delivered", "bounced", "complained", "unsubscribed", "opened", "clicked")
LEDGER_KEYS = ("planned", "accepted", "failed", "unknown", "pending", "skipped")
STATS_KEYS = ("key", "cadence", "status", *LEDGER_KEYS, *KINDS)
COUNTED = {"delivered": "delivered", "open": "opened", "click": "clicked"}
# SendGrid's reasons for dropping a message to an address on one of its lists
DROPPED: dict[str, Status] = {"invalid": "bounced", "bounced address": "bounced",
           "spam reporting address": "complained", "unsubscribed address": "unsubscribed"}
KEEP_EVENT_IDS = timedelta(days=7)  # SendGrid retries a batch for up to 24 hours
MAX_EVENT_ID = 255  # SendGrid's are at most 100 characters


@dataclass(frozen=True)
class Effect:
    """What one event does: the reader's new status, what it counts as for its issue."""

    status: Status | None = None
    kind: str | None = None
    soft_bounce: bool = False


NOTHING = Effect()


@dataclass
class Applied:
    """What a batch did; the web hook answers with it (no address in it)."""

    received: int = 0
    malformed: int = 0  # not an object with sg_event_id, event and email
    duplicates: int = 0  # seen before, or twice in the batch
    unknown_addresses: int = 0
    status_changes: int = 0
    counted: int = 0
    soft_bounces: int = 0
    batches_resolved: int = 0  # unknown batches SendGrid's events show it accepted

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# ---------------------------------------------------------------- the mapping (pure)


def effect_of(event: Mapping[str, Any], group_id: int | None) -> Effect:
    """The effect of one SendGrid event on its reader; `group_id` is the digest's
    unsubscribe group (sendgrid.asm_group_id)."""
    name = event.get("event")
    if name == "bounce":
        if event.get("type") == "blocked":
            return Effect(soft_bounce=True)
        return Effect("bounced", "bounced")
    if name == "dropped":
        reason = str(event.get("reason", "")).strip().lower()
        status = DROPPED.get(reason)
        return Effect(status, "bounced" if reason == "invalid" else None) if status else NOTHING
    if name == "spamreport":
        return Effect("complained", "complained")
    if name == "unsubscribe" or (name == "group_unsubscribe"
                                 and group_matches(event, group_id, unknown=True)):
        return Effect("unsubscribed", "unsubscribed")
    if name == "group_resubscribe" and group_matches(event, group_id, unknown=False):
        return Effect("active")
    return Effect(kind=COUNTED.get(str(name)))


def group_matches(event: Mapping[str, Any], group_id: int | None, *, unknown: bool) -> bool:
    """Whether a group event is about the digest's group; `unknown` when either side does
    not say (an unsubscribe is then honoured, a resubscribe is not)."""
    theirs = event.get("asm_group_id")
    if group_id is None or theirs is None:
        return unknown
    return str(theirs) == str(group_id)


def next_status(current: Status, wanted: Status) -> Status | None:
    """The status a reader moves to, or None to leave it. A stopping event stops an
    active or pending reader (a stopped one keeps the first reason); a resubscribe
    only undoes an unsubscribe."""
    if wanted == "active":
        return "active" if current == "unsubscribed" else None
    return wanted if current not in STOPPED else None


def transitions(effects: Iterable[tuple[Mapping[str, Any], Effect]],
                subscribers: Mapping[str, Subscriber]) -> list[Change]:
    """The status changes, in event order, each from the status the previous one left."""
    current = dict(subscribers)
    changes = []
    for event, effect in effects:
        key = email_key(event["email"])
        subscriber = current.get(key)
        if subscriber is None or effect.status is None:
            continue
        target = next_status(subscriber.status, effect.status)
        if target is None:
            continue
        after = replace(subscriber, status=target)
        changes.append(Change(subscriber, after, event=str(event["event"])))
        current[key] = after
    return changes


def well_formed(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    event_id = event.get("sg_event_id")
    return (isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID
            and isinstance(event.get("event"), str) and isinstance(event.get("email"), str))


def event_time(event: Mapping[str, Any], default: datetime) -> datetime:
    moment = event.get("timestamp")
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        try:
            return datetime.fromtimestamp(moment, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return default


def issue_of(event: Mapping[str, Any]) -> str | None:
    """The digest issue an event is about (custom args arrive as top-level fields);
    None for a [TEST] copy or mail that is not a digest."""
    issue = event.get("issue")
    return issue if isinstance(issue, str) and event.get("test") != "yes" else None


# ---------------------------------------------------------------- applying a batch


def apply_events(store: Store, events: Sequence[Any], *, group_id: int | None) -> Applied:
    """Apply one webhook batch in one transaction (see the module docstring)."""
    applied = Applied(received=len(events))
    valid = [event for event in events if well_formed(event)]
    applied.malformed = len(events) - len(valid)
    now = store.now()
    with store.transaction():
        forget_old_ids(store.conn, now)
        fresh = first_seen(store.conn, valid, now)
        applied.duplicates = len(valid) - len(fresh)
        subscribers = subscribers_by_key(store.conn, {email_key(e["email"]) for e in fresh})
        ordered = sorted(fresh, key=lambda event: event_time(event, now))
        known = [(e, effect_of(e, group_id)) for e in ordered
                 if email_key(e["email"]) in subscribers]
        applied.unknown_addresses = len(ordered) - len(known)
        changes = transitions(known, subscribers)
        store.update(changes, "webhook")
        applied.status_changes = len(changes)
        issues = known_issues(store.conn, {issue_of(e) for e, _ in known} - {None})
        applied.counted = count_activity(store.conn, known, subscribers, issues, now)
        applied.soft_bounces = record_soft_bounces(store.conn, known, subscribers, issues, now)
        applied.batches_resolved = resolve_batches(Ledger(store), fresh, subscribers, now)
    return applied


# ---------------------------------------------------------------- unknown batches


def resolve_batches(ledger: Ledger, events: Sequence[dict[str, Any]],
                    subscribers: Mapping[str, Subscriber], now: datetime) -> int:
    """Batches SendGrid's events show it accepted (it processed, delivered, deferred,
    bounced or dropped mail of theirs) are marked accepted with the evidence, whether
    the event comes before or after the next run; returns how many changed."""
    evidence: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.get("event") in ACCEPTED_EVENTS and (
                batch_id := batch_of(ledger, event, subscribers)) is not None:
            evidence.setdefault(batch_id, event)
    changed = [batch_id for batch_id, event in evidence.items()
               if ledger.accept_on_evidence(batch_id, evidence_text(event, now))]
    for key in {ledger.issue_of_batch(batch_id) for batch_id in changed}:
        ledger.finish_if_complete(key)
    return len(changed)


def batch_of(ledger: Ledger, event: Mapping[str, Any],
             subscribers: Mapping[str, Subscriber]) -> int | None:
    """The batch an event is about: by its `segment` and `batch` custom args (exact),
    else (mail sent before digest added `batch`) by the reader's place in the issue."""
    issue = issue_of(event)
    if issue is None:
        return None
    segment, number = event.get("segment"), event.get("batch")
    if isinstance(segment, str) and isinstance(number, str) and number.isdigit():
        return ledger.batch_id(issue, segment, int(number))
    subscriber = subscribers.get(email_key(event["email"]))
    return ledger.batch_of_subscriber(issue, subscriber.id) if subscriber else None


def evidence_text(event: Mapping[str, Any], now: datetime) -> str:
    return (f"SendGrid's event webhook reported {str(event['event'])!r} for a reader of it "
            f"at {timestamp(event_time(event, now))}")


def forget_old_ids(conn: Connection, now: datetime) -> None:
    conn.execute("DELETE FROM webhook_events WHERE received_at < ?",
                 (timestamp(now - KEEP_EVENT_IDS),))


def first_seen(conn: Connection, events: Sequence[dict[str, Any]],
               now: datetime) -> list[dict[str, Any]]:
    """The events whose id was never seen (the first of any repeated in the batch);
    their ids are recorded."""
    ids = list(dict.fromkeys(e["sg_event_id"] for e in events))
    seen: set[str] = {row[0] for row in rows_in(
        conn, "SELECT sg_event_id FROM webhook_events WHERE sg_event_id IN", ids)}
    fresh = []
    for event in events:
        if event["sg_event_id"] not in seen:
            seen.add(event["sg_event_id"])
            fresh.append(event)
    at = timestamp(now)
    conn.executemany("INSERT INTO webhook_events (sg_event_id, received_at) VALUES (?, ?)",
                     [(e["sg_event_id"], at) for e in fresh])
    return fresh


def subscribers_by_key(conn: Connection, keys: Iterable[str]) -> dict[str, Subscriber]:
    """The subscribers with these email keys (lower-cased addresses), by key."""
    found = map(to_subscriber, rows_in(
        conn, f"SELECT {COLUMNS} FROM subscribers WHERE email_key IN", sorted(keys)))
    return {email_key(subscriber.email): subscriber for subscriber in found}


def known_issues(conn: Connection, keys: Iterable[str | None]) -> set[str]:
    wanted = [key for key in keys if key is not None]
    return {row[0] for row in rows_in(conn, "SELECT key FROM issues WHERE key IN", wanted)}


def count_activity(conn: Connection, known: Sequence[tuple[dict[str, Any], Effect]],
                   subscribers: Mapping[str, Subscriber], issues: set[str], now: datetime) -> int:
    """One row per (issue, kind, reader), at the earliest time seen; returns the events
    counted (an issue the ledger does not know is not counted)."""
    rows = [(issue, effect.kind, subscribers[email_key(event["email"])].id,
             timestamp(event_time(event, now)))
            for event, effect in known
            if effect.kind is not None and (issue := issue_of(event)) in issues]
    conn.executemany(
        "INSERT INTO issue_activity (issue_key, kind, subscriber_id, at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (issue_key, kind, subscriber_id) "
        "DO UPDATE SET at = min(issue_activity.at, excluded.at)",
        rows)
    return len(rows)


def record_soft_bounces(conn: Connection,
                        known: Sequence[tuple[dict[str, Any], Effect]],
                        subscribers: Mapping[str, Subscriber], issues: set[str],
                        now: datetime) -> int:
    """Blocked messages: when, which issue, SendGrid's classification and the SMTP
    status code; not the reason text, which often quotes the address."""
    rows = [(subscribers[email_key(event["email"])].id,
             issue if (issue := issue_of(event)) in issues else None,
             timestamp(event_time(event, now)),
             short(event.get("bounce_classification")), short(event.get("status")))
            for event, effect in known if effect.soft_bounce]
    conn.executemany(
        "INSERT INTO soft_bounces (subscriber_id, issue_key, at, classification, smtp_status) "
        "VALUES (?, ?, ?, ?, ?)", rows)
    return len(rows)


def short(value: Any, limit: int = 40) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def soft_bounces(store: Store, subscriber: Subscriber) -> list[tuple[str, str | None]]:
    """(time, issue key) of each soft bounce recorded for a subscriber, oldest first."""
    return list(store.conn.execute(
        "SELECT at, issue_key FROM soft_bounces WHERE subscriber_id = ? ORDER BY at, id",
        (subscriber.id,)))


# ---------------------------------------------------------------- statistics


def activity_counts(conn: Connection, key: str) -> dict[str, int] | None:
    """Readers per kind for an issue; None if no event has arrived for it at all."""
    rows = dict(conn.execute(
        "SELECT kind, count(*) FROM issue_activity WHERE issue_key = ? GROUP BY kind", (key,)))
    return {kind: rows.get(kind, 0) for kind in KINDS} if rows else None


def issue_stats(store: Store, key: str | None = None) -> list[dict[str, Any]]:
    """One row per issue (or only `key`), with STATS_KEYS in that order."""
    ledger = Ledger(store)
    issues = ledger.issues() if key is None else [ledger.require(key)]
    return [stats_row(store.conn, ledger, issue) for issue in issues]


def stats_row(conn: Connection, ledger: Ledger, issue: IssueRow) -> dict[str, Any]:
    counts = ledger.counts(issue.key)
    activity = activity_counts(conn, issue.key)
    return {"key": issue.key, "cadence": issue.cadence, "status": issue.status,
            **{name: counts[name] for name in LEDGER_KEYS},
            **{kind: activity[kind] if activity else None for kind in KINDS}}
