"""Shared by the web app's tests: a small site, the app on a real port, plain HTTP."""

from __future__ import annotations

import re
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from digest.config import Settings, load_settings
from digest.store import Event, NewSubscriber, Subscriber, open_store
from digest.web import create_app

SECRET = "web-test-secret-0123456789"
WEB_URL = "https://readers.example.org"
CATEGORIES = ("Work", "Tools", "Research")
WAIT_S = 5.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def write_site(root: Path, *, name: str = "Web Test", extra: str = "") -> Path:
    """A site with one article in each of CATEGORIES and the `files` transport."""
    (root / "digest.toml").write_text(
        f'[site]\nname = "{name}"\nbase_url = "https://web.example.org"\n'
        '[selection]\ncategory_order = ["Tools"]\n'
        '[email]\nfrom = "Web Test <news@web.example.org>"\n'
        '[delivery]\ntransport = "files"\nfiles_dir = "outbox"\n'
        f'[web]\nbase_url = "{WEB_URL}"\n' + extra, encoding="utf-8")
    content = root / "content"
    content.mkdir()
    for day, category in enumerate(CATEGORIES, start=22):
        (content / f"2026-11-{day}-{category.lower()}.md").write_text(
            f"---\ntitle: A {category} story\ndate: '2026-11-{day}T10:00'\n"
            f"category: {category}\nexcerpt: What happened in {category}.\n---\nBody.\n")
    return root / "digest.toml"


def site_settings(root: Path, **kwargs: str) -> Settings:
    return load_settings(write_site(root, **kwargs), environ={"DIGEST_SECRET_KEY": SECRET})


@dataclass
class Served:
    url: str
    app: Flask
    root: Path
    clock: Clock

    def drain(self) -> None:
        assert self.app.extensions["digest"].mailer.drain(WAIT_S)


@contextmanager
def serving(settings: Settings, clock: Clock) -> Iterator[Served]:
    """The app on a free port of 127.0.0.1, in a thread, stopped on the way out."""
    app = create_app(settings, clock=clock)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.port}", app, settings.root, clock)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=WAIT_S)
        app.extensions["digest"].mailer.drain(WAIT_S)


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: str


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method: str, url: str, *, form: Mapping[str, str | Sequence[str]] | None = None,
         body: bytes | None = None, content_type: str | None = None) -> Reply:
    """One real request; redirects are returned, not followed."""
    if form is not None:
        body = urllib.parse.urlencode(form, doseq=True).encode()
        content_type = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with OPENER.open(request, timeout=WAIT_S) as answer:
            return Reply(answer.status, dict(answer.headers), answer.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read().decode())


def multipart(fields: Mapping[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body, as RFC 8058 recommends for one-click."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), \
        f"multipart/form-data; boundary={boundary}"


def csrf_of(html: str, action: str | None = None) -> str:
    """The CSRF field of the page's first form (or of the form posting to `action`)."""
    forms = re.findall(r'<form method="post" action="([^"]*)"[^>]*>\s*'
                       r'<input type="hidden" name="csrf" value="([^"]+)">', html)
    for form_action, token in forms:
        if action is None or form_action == action:
            return token
    raise AssertionError(f"no form{' for ' + action if action else ''} with a CSRF field")


# ---------------------------------------------------------------- the store and the outbox


def add_reader(root: Path, email: str, *, status: str = "active",
               categories: tuple[str, ...] = (), cadence: str = "weekly") -> str:
    """A subscriber, and the link token their emails would carry."""
    with open_store(root / "digest.db") as store:
        store.insert([NewSubscriber(email, categories=categories, cadence=cadence,
                                    status=status)], "cli")
        subscriber = store.get(email)
        assert subscriber is not None
        return store.tokens([subscriber], SECRET)[subscriber.id]


def reader(root: Path, email: str) -> tuple[Subscriber | None, list[Event]]:
    with open_store(root / "digest.db") as store:
        subscriber = store.get(email)
        return subscriber, store.events(subscriber) if subscriber else []


def history(root: Path, email: str) -> list[tuple[str | None, str, str]]:
    """(old status, new status, source) of each of the subscriber's events."""
    return [(e.old, e.new, e.source) for e in reader(root, email)[1]]


def dump(root: Path) -> list[str]:
    """Every row of every table, to compare before and after."""
    conn = sqlite3.connect(root / "digest.db")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def outbox(root: Path) -> list[Path]:
    folder = root / "outbox"
    return sorted(folder.glob("*.eml")) if folder.exists() else []


def read_eml(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative message."""
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def confirm_path(text: str) -> str:
    found = re.search(re.escape(WEB_URL) + r"(/confirm/[A-Za-z0-9_.-]+)", text)
    assert found, text
    return found.group(1)


def token_of(location: str) -> str:
    """The link token in a /preferences/<token>?… redirect."""
    found = re.search(r"/preferences/([A-Za-z0-9_-]{43})", location)
    assert found, location
    return found.group(1)
