"""What the subscribers' pages do to the store; the Flask views only parse and answer.

Every change is written with source `web`, inside one write transaction that reads the
subscriber again first, so a concurrent send, import or webhook is never overwritten.
Confirming is the one web action that may move a stopped (unsubscribed) address
back to `active` (store.refusal allows source `web` to): the reader asked again and
proved they read the mailbox. A bounced or complained address is never sent a
confirmation (the page says the same).
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from digest import pipeline
from digest.config import Settings
from digest.errors import DigestError
from digest.i18n import N_
from digest.store import (
    CADENCES,
    STOPPED,
    Cadence,
    Change,
    NewSubscriber,
    Store,
    Subscriber,
    as_cadence,
)
from digest.web.tokens import ConfirmClaim, salt_print

log = logging.getLogger("digest.web")
LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # store.derive_token: 32 bytes, base64url
CATEGORIES_TTL_S = 300.0


# ---------------------------------------------------------------- subscribe and confirm


def request_subscription(store: Store, email: str) -> Subscriber:
    """The subscriber for `email`, added as `pending` if new. A known address keeps its
    status (only confirming changes it), and a pending one its date: `subscribers prune`
    forgets it 30 days after the first sign-up, however often it is asked for again."""
    with store.transaction():
        if store.get(email) is None:
            store.insert([NewSubscriber(email, status="pending")], "web")
        current = store.get(email)
    assert current is not None
    return current


def may_confirm(subscriber: Subscriber) -> bool:
    """Whether to send a confirmation: not to a bounced address (it would bounce again),
    nor to one that reported our mail as spam."""
    return subscriber.status not in ("bounced", "complained")


def claim_for(store: Store, subscriber: Subscriber, number: int) -> ConfirmClaim:
    salt = store.salts([subscriber.id])[subscriber.id]
    return ConfirmClaim(subscriber.id, len(store.events(subscriber)), salt_print(salt), number)


def claimed(store: Store, claim: ConfirmClaim) -> Subscriber | None:
    """The subscriber a claim was made for, if nothing about them changed since and no
    link of theirs was used since that email was sent."""
    subscriber = store.by_id(claim.subscriber_id)
    if subscriber is None or subscriber.status == "bounced":
        return None
    current = claim_for(store, subscriber, claim.number)
    sent, used = store.confirmations(subscriber)
    if current.events != claim.events or not hmac.compare_digest(
            current.salt_print, claim.salt_print) or not (used < claim.number <= sent):
        return None
    return subscriber


def confirm(store: Store, claim: ConfirmClaim, secret: str) -> str | None:
    """Activate the claimed subscriber (source `web`) and use up their links; their link
    token for the preferences page, or None if the claim no longer holds."""
    with store.transaction():
        subscriber = claimed(store, claim)
        if subscriber is None:
            return None
        if subscriber.status != "active":
            store.update([Change(subscriber, replace(subscriber, status="active"))], "web")
        store.use_confirmations(subscriber)
        return store.tokens([subscriber], secret)[subscriber.id]


# ---------------------------------------------------------------- link token pages


def subscriber_of_link(store: Store, token: str) -> Subscriber | None:
    """The subscriber an unsubscribe/preferences link was made for; None for a token
    that is unknown or not even shaped like one."""
    if not LINK_TOKEN.fullmatch(token):
        return None
    return store.by_token(token)


def unsubscribe(store: Store, token: str) -> Subscriber | None:
    """Unsubscribe the link's reader (source `web`); an address already stopped stays
    as it is (bounced and complained keep their reason)."""
    with store.transaction():
        current = subscriber_of_link(store, token)
        if current is None or current.status in STOPPED:
            return current
        after = replace(current, status="unsubscribed")
        store.update([Change(current, after)], "web")
        return after


def save_preferences(store: Store, token: str, categories: tuple[str, ...],
                     cadence: Cadence) -> Subscriber | None:
    """Write the reader's chosen categories (empty: every one) and cadence."""
    with store.transaction():
        current = subscriber_of_link(store, token)
        if current is None:
            return None
        after = replace(current, categories=categories, cadence=cadence)
        if after != current:
            store.update([Change(current, after)], "web")
        return after


# ---------------------------------------------------------------- the preferences form


@dataclass(frozen=True)
class Option:
    name: str
    checked: bool


def options(site: Sequence[str], chosen: Sequence[str]) -> list[Option]:
    """The site's categories, then any the reader chose that no article uses; every one
    checked when the reader chose none (that means all)."""
    folded = {name.casefold() for name in chosen}
    extra = [name for name in chosen if name.casefold() not in {s.casefold() for s in site}]
    return [Option(name, not chosen or name.casefold() in folded) for name in [*site, *extra]]


@dataclass(frozen=True)
class Choice:
    categories: tuple[str, ...]
    cadence: Cadence


def parse_choice(offered: Sequence[Option], site: Sequence[str], picked: Iterable[str],
                 cadence: str | None, current: Subscriber) -> Choice | str:
    """What the form asks for, or the message saying what is wrong with it. Every site
    category checked means all of them (new ones too): stored as no choice at all."""
    if cadence is None or cadence not in CADENCES:
        return N_("Choose how often: weekly or daily.")
    cadence = as_cadence(cadence)
    if not offered:  # the site's categories could not be read: keep the reader's
        return Choice(current.categories, cadence)
    wanted = {name.casefold() for name in picked}
    chosen = tuple(o.name for o in offered if o.name.casefold() in wanted)
    if not chosen:
        return N_("Choose at least one topic, or unsubscribe below.")
    if site and {s.casefold() for s in site} <= {c.casefold() for c in chosen}:
        return Choice((), cadence)
    return Choice(chosen, cadence)


class SiteCategories:
    """The categories the site's articles use, loaded at most once per `ttl` seconds
    (the article cache makes a reload cheap), in the configured order, then by name."""

    def __init__(self, settings: Settings, *, ttl: float = CATEGORIES_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.ttl, self._clock = settings, ttl, clock
        self._names: list[str] = []
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            now = self._clock()
            if self._loaded_at is None or now - self._loaded_at >= self.ttl:
                self._names = self._load() or self._names
                self._loaded_at = now
            return list(self._names)

    def _load(self) -> list[str]:
        try:
            # feeds from their cache only: a visitor never makes the server fetch them
            loaded = pipeline.load(self.settings.override(pipeline.OFFLINE, True))
        except DigestError as exc:
            log.warning("the site's categories could not be read: %s", exc)
            return []
        return ordered({article.category for article in loaded.articles},
                       self.settings.names("selection.category_order"))


def ordered(names: Iterable[str], first: Sequence[str]) -> list[str]:
    rank = {name.casefold(): i for i, name in enumerate(first)}
    return sorted(names, key=lambda n: (rank.get(n.casefold(), len(rank)), n.casefold()))
