"""`digest sync`: SendGrid's suppression lists into the store (source `sync`).

SendGrid keeps lists of addresses it will not mail for us: global unsubscribes, the
unsubscribe group's unsubscribes (sendgrid.asm_group_id), bounces, spam reports and
invalid emails. `SuppressionReader` reads each through the official client, page by
page; `plan` (pure) turns them into status changes: an active or pending reader on a
list becomes unsubscribed, bounced or complained (the most serious if on several); a
reader already stopped keeps their status. Nothing here ever makes anyone active, and a
reader who left and then confirmed again on the web is left active (with a warning to
take them off SendGrid's list, which SendGrid cannot learn from us).

Paging: `limit` (500, SendGrid's maximum page size) and `offset`, until a page comes
back shorter than asked. SendGrid documents no paging for a group's suppressions (the
whole list in one answer), so `pages` also stops on a page longer than asked for, or
one that repeats the previous page.

The API key goes to the client only: error texts are redacted and the client's debug
log is filtered, as in transports/sendgrid.py. Every request has a time-out.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import threading
import urllib.error
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from digest import feedback
from digest.config import Settings
from digest.errors import DigestError
from digest.store import STOPPED, Change, Status, Subscriber, email_key, open_store
from digest.transports.sendgrid import error_detail, os_error_text, redact_client_logs

PAGE_SIZE = 500
MAX_PAGES = 20_000  # ten million addresses: a guard against a server that never ends
GROUP = "group unsubscribes"
# list name: (the endpoint on the official client, the status it means)
LISTS: dict[str, tuple[Callable[[Any, int | None], Any], Status]] = {
    "global unsubscribes": (lambda c, group: c.suppression.unsubscribes, "unsubscribed"),
    GROUP: (lambda c, group: c.asm.groups._(str(group)).suppressions, "unsubscribed"),
    "bounces": (lambda c, group: c.suppression.bounces, "bounced"),
    "spam reports": (lambda c, group: c.suppression.spam_reports, "complained"),
    "invalid emails": (lambda c, group: c.suppression.invalid_emails, "bounced"),
}
SEVERITY = ("unsubscribed", "bounced", "complained")  # on several lists: the last wins
MISSING_KEY = ("SENDGRID_API_KEY is not set: digest sync reads SendGrid's suppression "
               "lists with it")


class Listed(NamedTuple):
    email: str
    created: float | None  # when SendGrid listed it (Unix time); None: the list gives no date


class SyncError(DigestError):
    """SendGrid's suppression lists could not be read, or the store not updated."""


@dataclass(frozen=True)
class Report:
    read: Mapping[str, int]  # list name: addresses on it (lists not read are absent)
    changes: tuple[Change, ...]
    requests: int
    came_back: tuple[str, ...] = ()  # on a list, but confirmed again since they left

    def warnings(self) -> list[str]:
        if not self.came_back:
            return []
        count = len(self.came_back)
        return [f"{count} subscriber{'' if count == 1 else 's'} on SendGrid's lists confirmed "
                f"again after leaving and stay active: {', '.join(self.came_back)}. Remove "
                "them from SendGrid's suppression lists, or SendGrid keeps dropping their mail."]

    def lines(self) -> list[str]:
        lists = ", ".join(f"{name} {self.read[name]}" if name in self.read
                          else f"{name} not read (no sendgrid.asm_group_id)" for name in LISTS)
        return [f"Read SendGrid's suppression lists ({self.requests} requests): {lists}.",
                self.marked()]

    def marked(self) -> str:
        if not self.changes:
            return "No subscriber to mark."
        by_status = {s: sum(1 for c in self.changes if c.after.status == s) for s in SEVERITY}
        counts = ", ".join(f"{n} {s}" for s, n in by_status.items() if n)
        count = len(self.changes)
        return f"Marked {count} subscriber{'' if count == 1 else 's'}: {counts}."


# ---------------------------------------------------------------- pure parts


def pages(fetch: Callable[[int, int], list[Any]], limit: int = PAGE_SIZE
          ) -> Iterator[list[Any]]:
    """Each page of a list read with `fetch(limit, offset)`, until a short page (or a
    long or repeated one: the server does not page this list)."""
    offset, previous = 0, None
    for _ in range(MAX_PAGES):
        page = fetch(limit, offset)
        if page == previous:
            return
        yield page
        if len(page) != limit:
            return
        previous, offset = page, offset + limit
    raise SyncError(f"SendGrid's list did not end after {MAX_PAGES} pages")


def addresses(page: Iterable[Any]) -> list[Listed]:
    """The addresses on a page, with when SendGrid listed each: objects with `email` and
    `created` (Unix time), or (a group's list) plain strings, undated."""
    found = []
    for entry in page:
        email = entry.get("email") if isinstance(entry, dict) else entry
        created = entry.get("created") if isinstance(entry, dict) else None
        if isinstance(email, str) and email.strip():
            found.append(Listed(email, created if isinstance(created, int | float) else None))
    return found


def latest_listing(lists: Mapping[str, Iterable[Listed]]) -> dict[str, float | None]:
    """email key: when SendGrid last listed it; None when a list gives no date for it."""
    latest: dict[str, float | None] = {}
    for entries in lists.values():
        for entry in entries:
            key, seen = email_key(entry.email), latest.get(email_key(entry.email), 0.0)
            latest[key] = None if seen is None or entry.created is None \
                else max(seen, entry.created)
    return latest


def returned_since_listed(back: Mapping[int, datetime], subscribers: Iterable[Subscriber],
                          latest: Mapping[str, float | None]) -> set[int]:
    """Ids of readers who confirmed again after SendGrid listed them (or on an undated
    list): their return wins. A listing after their return is a new opt-out and counts."""
    kept = set()
    for subscriber in subscribers:
        at, listed = back.get(subscriber.id), latest.get(email_key(subscriber.email))
        if at is not None and (listed is None or listed < at.timestamp()):
            kept.add(subscriber.id)
    return kept


def wanted_statuses(lists: Mapping[str, Iterable[str]]) -> dict[str, Status]:
    """email key: the status its lists call for (the most serious of them)."""
    wanted: dict[str, Status] = {}
    for name, emails in lists.items():
        status = LISTS[name][1]
        for email in emails:
            key = email_key(email)
            current = wanted.get(key)
            if current is None or SEVERITY.index(status) > SEVERITY.index(current):
                wanted[key] = status
    return wanted


def plan(subscribers: Iterable[Subscriber], wanted: Mapping[str, Status],
         came_back: Iterable[int] = ()) -> list[Change]:
    """Active or pending readers on a list move to its status; stopped ones stay, and so
    do those in `came_back` (ids of readers who confirmed again after leaving)."""
    back = set(came_back)
    return [Change(subscriber, replace(subscriber, status=wanted[email_key(subscriber.email)]))
            for subscriber in sorted(subscribers, key=lambda r: email_key(r.email))
            if email_key(subscriber.email) in wanted and subscriber.status not in STOPPED
            and subscriber.id not in back]


# ---------------------------------------------------------------- SendGrid


class SuppressionReader:
    """Reads SendGrid's suppression lists with the official client."""

    def __init__(self, api_key: str, api_url: str, *, timeout: float = 30) -> None:
        if not api_key.strip():
            raise SyncError(MISSING_KEY)
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.requests = 0
        self._client = SendGridAPIClient(api_key.strip(), host=self.api_url)
        self._client.client.timeout = timeout  # urllib's default is to wait forever
        redact_client_logs()

    def __repr__(self) -> str:
        return f"SuppressionReader(api_url={self.api_url!r}, timeout={self.timeout!r})"

    def read(self, name: str, group_id: int | None = None) -> tuple[Listed, ...]:
        """Every address on the list `name` (a key of LISTS), page by page."""
        found: list[Listed] = []
        for page in pages(lambda limit, offset: self.page(name, group_id, limit, offset)):
            found.extend(addresses(page))
        return tuple(found)

    def page(self, name: str, group_id: int | None, limit: int, offset: int) -> list[Any]:
        endpoint = LISTS[name][0](self._client.client, group_id)
        self.requests += 1
        try:
            response = endpoint.get(query_params={"limit": limit, "offset": offset})
        except HTTPError as error:
            raise self.failed(name, refused(error)) from None
        except urllib.error.URLError as error:  # before anything was sent
            raise self.failed(name, f"could not connect to SendGrid at {self.api_url} "
                                    f"({os_error_text(error.reason)})") from None
        except TimeoutError:
            raise self.failed(name, f"SendGrid did not answer within {self.timeout:g} s"
                              ) from None
        except (OSError, http.client.HTTPException) as error:
            raise self.failed(name, f"the connection to SendGrid broke "
                                    f"({os_error_text(error)})") from None
        try:
            body = json.loads(response.body or b"")
        except ValueError:
            body = None
        if not isinstance(body, list):
            raise self.failed(name, "SendGrid's answer is not a JSON list")
        return body

    def failed(self, name: str, reason: str) -> SyncError:
        key = self._client.api_key
        text = f"could not read SendGrid's {name}: {reason}"
        return SyncError(text.replace(key, "[redacted]") if key else text)


def refused(error: HTTPError) -> str:
    status = int(error.status_code)
    detail = error_detail(status, error.body)
    if status == 401:
        return f"SendGrid refused the API key (401): {detail} Check SENDGRID_API_KEY."
    if status == 403:
        return (f"SendGrid refused access (403): {detail} The API key needs read access "
                "to Suppressions.")
    return f"SendGrid answered {status}: {detail}"


# ---------------------------------------------------------------- running it


def api_key(environ: Mapping[str, str] | None = None) -> str:
    key = (os.environ if environ is None else environ).get("SENDGRID_API_KEY", "").strip()
    if not key:
        raise SyncError(MISSING_KEY)
    return key


def run(settings: Settings, key: str) -> Report:
    """Read every list, then mark the subscribers on them in one transaction."""
    reader = SuppressionReader(key, settings.text("sendgrid.api_url"),
                               timeout=settings.integer("sendgrid.timeout"))
    group = settings.optional_integer("sendgrid.asm_group_id")
    lists = {name: reader.read(name, group) for name in LISTS
             if name != GROUP or group is not None}
    wanted = wanted_statuses({name: [e.email for e in entries] for name, entries in lists.items()})
    try:
        with open_store(settings.store_path) as store, store.transaction():
            listed = feedback.subscribers_by_key(store.conn, wanted).values()
            back = returned_since_listed(store.came_back(), listed, latest_listing(lists))
            changes = plan(listed, wanted, back)
            store.update(changes, "sync")
    except sqlite3.Error as exc:
        raise SyncError(f"could not mark the subscribers: {exc}") from None
    kept = tuple(r.email for r in sorted(listed, key=lambda r: email_key(r.email))
                 if r.id in back and r.status not in STOPPED)
    return Report({name: len(emails) for name, emails in lists.items()}, tuple(changes),
                  reader.requests, kept)


def start_before_send(settings: Settings, environ: Mapping[str, str] | None = None
                      ) -> BeforeSend | None:
    """The sync `weekly`, `daily` and `send` run first, when the transport is sendgrid and
    a key is set (None otherwise), started in a thread of its own, so that SendGrid's
    lists are read while the run imports what it loads and renders with."""
    key = (os.environ if environ is None else environ).get("SENDGRID_API_KEY", "").strip()
    if settings.text("delivery.transport") != "sendgrid" or not key:
        return None
    return BeforeSend(settings, key)


class BeforeSend:
    """The sync before a send, running in a thread (with its own store connection)."""

    def __init__(self, settings: Settings, key: str) -> None:
        self.outcome: Report | BaseException = ValueError("the sync before the send did not end")
        self.thread = threading.Thread(target=self.run, args=(settings, key), daemon=True,
                                       name="digest-sync")
        self.thread.start()

    def run(self, settings: Settings, key: str) -> None:
        try:
            self.outcome = run(settings, key)
        except BaseException as exc:  # raised, or warned of, where the run waits for it
            self.outcome = exc

    def wait(self, echo: Callable[..., Any]) -> Report | None:
        """Its report, once it ended. A failure is a warning (`echo(text, err=True)`): the
        send goes on, since SendGrid drops suppressed addresses itself. Says nothing when
        nothing changed."""
        self.thread.join()
        outcome = self.outcome
        if isinstance(outcome, DigestError):
            echo(f"Warning: suppression sync failed, sending anyway (SendGrid drops "
                 f"suppressed addresses itself): {outcome}", err=True)
            return None
        if not isinstance(outcome, Report):
            raise outcome
        tell(outcome, echo)
        return outcome


def tell(report: Report, echo: Callable[..., Any]) -> None:
    """What a sync before a send changed (nothing when nothing did), and its warnings."""
    if report.changes:
        echo(f"Synced SendGrid's suppression lists. {report.marked()}")
    for warning in report.warnings():
        echo(f"Warning: {warning}", err=True)
