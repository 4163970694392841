"""Confirmation emails, and the work of a sign-up, done on one background thread.

A sign-up request only queues a job (see signup.py): the store's reads and writes and
the email happen after the answer went out, so a subscribe request is answered in the
same time whatever the address (new, pending, active, stopped, rate-limited), and a
slow SendGrid never holds a request. At most MAX_QUEUED jobs wait; past that they are
dropped with a warning (the per-client limit makes that rare).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from digest.config import Settings
from digest.transports import Message, Recipient, Transport

log = logging.getLogger("digest.web")
MAX_QUEUED = 1000


def confirmation_message(settings: Settings, to: str, *, html: str, text: str,
                         subject: str | None = None) -> Message:
    from_name, from_email = settings.sender
    return Message(
        subject=subject or f"Confirm your subscription to {settings.site_name}", html=html,
        text=text,
        from_email=from_email, from_name=from_name,
        reply_to=settings.text("email.reply_to") or None, recipients=(Recipient(to),),
        categories=("digest-confirm",), custom_args={"purpose": "confirm"})


class Mailer:
    """Sends messages through `transport` on one thread, created on first use (and again
    in a forked child, e.g. a gunicorn worker of a preloaded app)."""

    def __init__(self, transport: Transport, *, max_queued: int = MAX_QUEUED) -> None:
        self.transport = transport
        self.max_queued = max_queued
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._queued = 0
        self._idle = threading.Condition()

    def submit(self, message: Message) -> bool:
        """Queue `message`; False (and a warning) if too many are already waiting."""
        return self.run(lambda: self.send(message))

    def run(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False (and a warning) if too many are already waiting."""
        with self._idle:
            if self._queued >= self.max_queued:
                log.warning("sign-up dropped: %d already waiting", self._queued)
                return False
            self._queued += 1
            future = self._executor().submit(self._guarded, job)
        future.add_done_callback(self._done)
        return True

    @staticmethod
    def _guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("a sign-up failed")

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued message was handed to the transport (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._queued == 0, timeout)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="digest-web-mail")
            self._pid = os.getpid()
        return self._pool

    def send(self, message: Message) -> None:
        """Hand `message` to the transport now (on the calling thread)."""
        try:
            outcome = self.transport.send(message)
        except Exception:
            log.exception("confirmation email not sent")
            return
        if outcome.status != "accepted":
            log.warning("confirmation email not sent (%s): %s", outcome.status, outcome.reason)

    def _done(self, future: Future[None]) -> None:
        with self._idle:
            self._queued -= 1
            self._idle.notify_all()
