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
from digest.web.mail import Mailer
from digest.web.readers import SiteCategories
from digest.web.shared_limits import Limiter
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
    address_limits: Limiter  # confirmations sent per address (counted in the store)
    client_limits: Limiter  # subscribe requests per client IP (counted in the store)
    categories: SiteCategories


def web_state() -> WebState:
    return current_app.extensions[EXTENSION]


def request_store() -> Store:
    """This request's store connection, opened on first use."""
    if "digest_store" not in g:
        state = web_state()
        g.digest_store = open_store(state.settings.store_path, clock=state.clock)
    return g.digest_store


def close_store(_: BaseException | None = None) -> None:
    store = g.pop("digest_store", None)
    if store is not None:
        store.close()
