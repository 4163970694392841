"""Signed tokens for the readers' pages: confirmation links and CSRF form fields.

Both are itsdangerous timestamped signatures (HMAC-SHA256) keyed by the app's secret,
each under its own context label (itsdangerous' salt), so neither can stand in for the
other, nor for an unsubscribe token (an HMAC with its own context, see store.py).

A confirmation token carries (subscriber id, events so far, salt fingerprint, number of
the email). It works for that subscriber only, not for a later one who gets the same id
(the fingerprint of each subscriber's random token salt differs), only until their
status next changes (the event count moves on: an old link cannot undo a later
unsubscribe), and once (using a link uses up every email sent until then, see
Store.use_confirmations; an active reader's link too). It expires after CONFIRM_MAX_AGE.

A CSRF token is bound to what its form acts on (a confirmation, or one reader's link
token) and expires after CSRF_MAX_AGE. The app sets no cookie: a form that changes a
reader posts to a URL only that reader knows, so a page on another site cannot forge
it. The sign-up form, which anyone may fetch, carries a random nonce instead: its token
works once (the app keeps the nonces it has seen for FORM_MAX_AGE) and says when the
form was served, for the minimum fill time. The app also refuses POSTs that a browser
marks as coming from another site (pages.refuse_cross_site_posts).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

CONFIRM_CONTEXT = "digest.web confirm v1"
CSRF_CONTEXT = "digest.web csrf v1"
CONFIRM_MAX_AGE = timedelta(days=7)
CSRF_MAX_AGE = timedelta(hours=24)
FORM_MAX_AGE = timedelta(hours=2)
MAX_TOKEN_LENGTH = 512  # anything longer is malformed, not worth verifying
SUBSCRIBE_FORM = "subscribe"


class Nonces(Protocol):
    def allow(self, key: str) -> bool:
        """True the first time `key` is seen (within its lifetime), False after."""


@dataclass(frozen=True)
class ConfirmClaim:
    subscriber_id: int
    events: int  # how many status events the subscriber had when the link was made
    salt_print: str  # fingerprint of the subscriber's token salt
    number: int  # which confirmation email of the subscriber's it is (1, 2, …)


def salt_print(salt: bytes) -> str:
    return hashlib.sha256(b"digest confirm binding\x00" + salt).hexdigest()[:16]


def binding_of(link_token: str) -> str:
    """What a reader's forms are bound to: a hash of their link token (never the token)."""
    return "reader:" + hashlib.sha256(link_token.encode()).hexdigest()[:32]


class ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer, reading the time from an injected clock."""

    def __init__(self, *args: Any, clock: Callable[[], datetime], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock

    def get_timestamp(self) -> int:
        return int(self.clock().timestamp())


def serializer(secret: str, context: str, clock: Callable[[], datetime]
               ) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret, salt=context, signer=ClockedSigner,
        signer_kwargs={"clock": clock, "digest_method": hashlib.sha256})


class Tokens:
    """Makes and checks confirmation and CSRF tokens with one secret."""

    def __init__(self, secret: str, clock: Callable[[], datetime]) -> None:
        self._confirm = serializer(secret, CONFIRM_CONTEXT, clock)
        self._csrf = serializer(secret, CSRF_CONTEXT, clock)

    def confirm_token(self, claim: ConfirmClaim) -> str:
        return str(self._confirm.dumps([claim.subscriber_id, claim.events, claim.salt_print,
                                        claim.number]))

    def confirm_claim(self, token: str) -> ConfirmClaim | None:
        """The claim a valid, unexpired confirmation token carries; None for any other."""
        data = self._load(self._confirm, token, CONFIRM_MAX_AGE)
        if (not isinstance(data, list) or len(data) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool)
                           and 0 <= v < 2**63 for v in (*data[:2], data[3]))  # SQLite's
                or not isinstance(data[2], str)):
            return None
        return ConfirmClaim(data[0], data[1], data[2], data[3])

    def csrf_token(self, binding: str) -> str:
        return str(self._csrf.dumps(binding))

    def csrf_ok(self, token: str | None, binding: str) -> bool:
        data = self._load(self._csrf, token or "", CSRF_MAX_AGE)
        return isinstance(data, str) and hmac.compare_digest(data, binding)

    def form_token(self) -> str:
        """A token for one sign-up form: a fresh nonce, signed with the time."""
        return str(self._csrf.dumps(f"{SUBSCRIBE_FORM}:{secrets.token_urlsafe(16)}"))

    def form_issued(self, token: str | None, seen: Nonces) -> datetime | None:
        """When the sign-up form with this token was served, if the token is genuine,
        unexpired and used for the first time (`seen` then remembers its nonce)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            data, issued = self._csrf.loads(
                token, max_age=int(FORM_MAX_AGE.total_seconds()), return_timestamp=True)
        except (BadData, ValueError, UnicodeError):
            return None
        if not (isinstance(data, str) and data.startswith(f"{SUBSCRIBE_FORM}:")
                and seen.allow(data)):
            return None
        return issued  # type: ignore[no-any-return]

    @staticmethod
    def _load(signed: URLSafeTimedSerializer, token: str, max_age: timedelta) -> Any:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            return signed.loads(token, max_age=int(max_age.total_seconds()))
        except (BadData, ValueError, UnicodeError):
            return None
