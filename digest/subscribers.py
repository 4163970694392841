"""What `subscribers add`, `import` and `unsubscribe` do; the CLI only prints the result.

The status rule (`store.refusal`): `add` and `import` never move an unsubscribed, bounced
or complained address back to `active`; only the reader confirming again does.
An import is planned and written inside one write transaction, so nothing another
process does in between can be overwritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from digest.errors import StoreError
from digest.store import (
    STOPPED,
    Cadence,
    Change,
    NewSubscriber,
    Status,
    Store,
    Subscriber,
    email_key,
    refusal,
)
from digest.subscriber_files import (
    Parsed,
    Problem,
    Row,
    checked_email,
    clean_categories,
    parse_name,
    read_subscribers,
)


@dataclass(frozen=True)
class ImportPlan:
    added: tuple[NewSubscriber, ...] = ()
    changes: tuple[Change, ...] = ()
    unchanged: int = 0
    refused: tuple[Problem, ...] = ()
    bad: tuple[Problem, ...] = ()
    bad_rows: int = 0
    warnings: tuple[str, ...] = ()
    unknown_categories: tuple[tuple[str, int], ...] = ()  # (name, subscribers choosing it)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.changes)} updated, {self.unchanged} "
                f"unchanged, {len(self.refused)} refused, {self.bad_rows} bad "
                f"{'row' if self.bad_rows == 1 else 'rows'}")


@dataclass(frozen=True)
class Added:
    subscriber: Subscriber
    action: str  # "added", "activated", "updated" or "unchanged"
    changed: tuple[str, ...] = ()  # the fields that changed


def import_file(store: Store, path: Path, known_categories: Iterable[str] | None, *,
                dry_run: bool = False) -> ImportPlan:
    """Import a CSV or JSON file; `known_categories` (None: do not check) are the site's."""
    return import_parsed(store, read_subscribers(path), known_categories, dry_run=dry_run)


def import_parsed(store: Store, parsed: Parsed, known_categories: Iterable[str] | None, *,
                  dry_run: bool = False) -> ImportPlan:
    with store.transaction():
        plan = plan_import(parsed, store.by_email_key(), known_categories)
        if not dry_run:
            store.insert(plan.added, "import")
            store.update(plan.changes, "import")
    return plan


def plan_import(parsed: Parsed, existing: Mapping[str, Subscriber],
                known_categories: Iterable[str] | None) -> ImportPlan:
    """What importing `parsed` into a store holding `existing` would do. Pure."""
    added, changes, refused, unchanged = [], [], [], 0
    for row in parsed.rows:
        current = existing.get(email_key(row.email))
        if current is None:
            added.append(new_subscriber(row))
            continue
        outcome = merge(current, row)
        if isinstance(outcome, Problem):
            refused.append(outcome)
        elif outcome == current:
            unchanged += 1
        else:
            changes.append(Change(current, outcome))
    return ImportPlan(
        tuple(added), tuple(changes), unchanged, tuple(refused), parsed.bad, parsed.bad_rows,
        parsed.warnings,
        unknown_categories((row.categories or () for row in parsed.rows), known_categories),
    )


def new_subscriber(row: Row) -> NewSubscriber:
    return NewSubscriber(row.email, row.name or "", row.categories or (),
                         row.cadence or "weekly", row.status or "active", row.created)


def merge(current: Subscriber, row: Row) -> Subscriber | Problem:
    """`current` with what the row says, or why the row is refused."""
    status = merged_status(current.status, row.status)
    reason = refusal(current.status, status, "import")
    if reason:
        return Problem(row.number, f"{current.email} {reason}")
    return replace(
        current,
        name=current.name if row.name is None else row.name,
        categories=current.categories if row.categories is None else row.categories,
        cadence=row.cadence or current.cadence,
        status=status,
    )


def merged_status(current: Status, wanted: Status | None) -> Status:
    """A row without a status means subscribed; `pending` never demotes an active
    address; a stopped address keeps its own reason for stopping."""
    wanted = wanted or "active"
    if wanted == "pending" and current == "active":
        return current
    if wanted in STOPPED and current in STOPPED:
        return current
    return wanted


def unknown_categories(chosen: Iterable[Iterable[str]], known: Iterable[str] | None
                       ) -> tuple[tuple[str, int], ...]:
    """The categories subscribers chose (one list each) that no article uses, each with how
    many subscribers chose it. Case does not count; `known` None means do not check."""
    if known is None:
        return ()
    known_folded = {name.casefold() for name in known}
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for names in chosen:
        for name in names:
            if name.casefold() not in known_folded:
                counts[spelling.setdefault(name.casefold(), name).casefold()] += 1
    return tuple((spelling[folded], count) for folded, count in sorted(counts.items()))


def add(store: Store, email: str, *, name: str | None = None,
        categories: Sequence[str] | None = None, cadence: Cadence | None = None) -> Added:
    """Add an address as `active` (the operator vouches for it). An existing active or
    pending address gets the values given; a stopped one is refused, with the reason."""
    try:
        email, name = checked_email(email), parse_name(name)
        wanted = None if categories is None else clean_categories(categories)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    with store.transaction():
        current = store.get(email)
        if current is None:
            store.insert([NewSubscriber(email, name or "", wanted or (), cadence or "weekly")],
                         "cli")
            return Added(must_get(store, email), "added")
        return update_existing(store, current, name, wanted, cadence)


def update_existing(store: Store, current: Subscriber, name: str | None,
                    categories: tuple[str, ...] | None, cadence: Cadence | None) -> Added:
    if current.status in STOPPED:
        raise StoreError(stopped_reason(store, current))
    after = replace(current, status="active", name=current.name if name is None else name,
                    categories=current.categories if categories is None else categories,
                    cadence=cadence or current.cadence)
    changed = tuple(key for key in ("name", "categories", "cadence")
                    if getattr(after, key) != getattr(current, key))
    if after != current:
        store.update([Change(current, after)], "cli")
    action = "activated" if current.status == "pending" else "updated" if changed else "unchanged"
    return Added(after, action, changed)


def stopped_reason(store: Store, subscriber: Subscriber) -> str:
    """Why `add` refuses: the status, since when, and who set it."""
    last = next((e for e in reversed(store.events(subscriber)) if e.new == subscriber.status),
                None)
    since = f" since {last.at.date().isoformat()} (by {last.source})" if last else ""
    return (f"{subscriber.email} is {subscriber.status}{since}: only the reader can "
            "resubscribe, by signing up and confirming again")


def must_get(store: Store, email: str) -> Subscriber:
    subscriber = store.get(email)
    if subscriber is None:
        raise StoreError(f"no subscriber {email}")
    return subscriber


def unsubscribe(store: Store, email_or_token: str, source: str = "cli"
                ) -> tuple[Subscriber, bool]:
    """Unsubscribe by address or by the token from a link. Returns the subscriber and
    whether anything changed (an address already stopped stays as it is)."""
    with store.transaction():
        current = find(store, email_or_token)
        if current.status in STOPPED:
            return current, False
        after = replace(current, status="unsubscribed")
        store.update([Change(current, after)], source)
        return after, True


def find(store: Store, email_or_token: str) -> Subscriber:
    if "@" in email_or_token:
        return must_get(store, email_or_token)
    subscriber = store.by_token(email_or_token)
    if subscriber is None:
        raise StoreError("no subscriber has that unsubscribe token")
    return subscriber


def matching(subscribers: Iterable[Subscriber], status: str | None = None,
             category: str | None = None) -> list[Subscriber]:
    """Those with `status` who receive `category` (they chose it, or chose every one)."""
    folded = category.casefold() if category else None
    return [s for s in subscribers
            if (status is None or s.status == status)
            and (folded is None or not s.categories
                 or folded in {name.casefold() for name in s.categories})]
