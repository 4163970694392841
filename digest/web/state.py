"""What every view (and any blueprint registered on the app) shares: the app's state
and one store connection per request, closed when the request ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, g

from digest.config import Settings
from digest.store import Store, open_store
from digest.transports import Transport
from digest.web.abuse import ConfirmationLimits
from digest.web.captcha import Captcha
from digest.web.mail import Mailer
from digest.web.shared_limits import Limiter
from digest.web.subscribers import SiteCategories
from digest.web.tokens import Tokens

EXTENSION = "digest"


@dataclass
class WebState:
    settings: Settings
    secret: str
    clock: Callable[[], datetime]
    transport: Transport
    tokens: Tokens
    mailer: Mailer
    confirmations: ConfirmationLimits  # per mailbox, per domain, per hour (in the store)
    client_limits: Limiter  # subscribe requests per client (IPv4, IPv6 /64; in the store)
    form_nonces: Limiter  # the sign-up forms' nonces already used (in the store)
    categories: SiteCategories
    captcha: Captcha | None  # web.captcha: Turnstile or hCaptcha, checked on sign-up


def web_state() -> WebState:
    state: WebState = current_app.extensions[EXTENSION]
    return state


def request_store() -> Store:
    """This request's store connection, opened on first use."""
    if "digest_store" not in g:
        state = web_state()
        g.digest_store = open_store(state.settings.store_path, clock=state.clock)
    store: Store = g.digest_store
    return store


def close_store(_: BaseException | None = None) -> None:
    store = g.pop("digest_store", None)
    if store is not None:
        store.close()
