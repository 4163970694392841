"""What a sign-up does once its request has been answered (on the mailer's thread).

The request only checks the form and the client's limit, then queues `sign_up`: the
page is the same, and takes the same time, whether the address is new, pending,
active, stopped or over a limit. Here the address is added as `pending` if new, and a
confirmation email goes out unless

- the address bounced or reported our mail as spam (never mailed again from here);
- its mailbox, its domain or the whole site is over its limit (abuse.py);
- it already got MAX_UNCONFIRMED confirmation emails without confirming (counted in
  the store, so a restart does not reset it; `subscribers prune` forgets a pending
  sign-up 30 days after the first one).
"""

from __future__ import annotations

import logging

from flask import Flask, render_template

from digest.errors import DigestError
from digest.store import Store, open_store
from digest.transports import Message
from digest.web import subscribers
from digest.web.language import _
from digest.web.mail import confirmation_message
from digest.web.state import EXTENSION, WebState

log = logging.getLogger("digest.web")
MAX_UNCONFIRMED = 5


def sign_up(app: Flask, email: str) -> None:
    """Record the sign-up of `email` and send its confirmation, if it may have one."""
    state: WebState = app.extensions[EXTENSION]
    try:
        with app.app_context(), open_store(state.settings.store_path,
                                           clock=state.clock) as store:
            message = confirmation(store, state, email)
    except DigestError as exc:
        log.error("a sign-up was not recorded: %s", exc)
        return
    if message is not None:
        state.mailer.send(message)


def confirmation(store: Store, state: WebState, email: str) -> Message | None:
    """The confirmation email for `email` (its sign-up recorded), or None."""
    subscriber = subscribers.request_subscription(store, email)
    if not subscribers.may_confirm(subscriber):
        return None
    refused = state.confirmations.allow(email, store)
    if refused is not None:
        log.info("no confirmation email sent: the %s limit was reached", refused)
        return None
    number = store.count_confirmation(subscriber, MAX_UNCONFIRMED)
    if number is None:
        log.info("no confirmation email sent: %d were sent without a confirmation",
                 MAX_UNCONFIRMED)
        return None
    claim = subscribers.claim_for(store, subscriber, number)
    url = f"{state.settings.web_url}/confirm/{state.tokens.confirm_token(claim)}"
    html = render_template("confirm_email.html", url=url)
    text = render_template("confirm_email.txt", url=url).strip() + "\n"
    subject = _("Confirm your subscription to %(site_name)s",
                site_name=state.settings.site_name)
    return confirmation_message(state.settings, subscriber.email, html=html, text=text,
                                subject=subject)
