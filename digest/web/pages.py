"""The readers' pages. A GET never changes anything; every POST but RFC 8058's one-click
unsubscribe needs the CSRF token of its form; an unknown or malformed token is a 404
that looks the same whatever was wrong with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from digest.i18n import N_
from digest.store import STOPPED, Subscriber, email_key
from digest.subscriber_files import checked_email
from digest.web import readers
from digest.web.language import _
from digest.web.mail import confirmation_message
from digest.web.state import request_store, web_state
from digest.web.tokens import SUBSCRIBE_FORM, ConfirmClaim, binding_of

blueprint = Blueprint("pages", __name__)
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's body


def not_found() -> NoReturn:
    abort(404)


def require_csrf(binding: str) -> None:
    if not web_state().tokens.csrf_ok(request.form.get("csrf"), binding):
        abort(400)


def csrf(binding: str) -> str:
    return web_state().tokens.csrf_token(binding)


def confirm_binding(token: str) -> str:
    return "confirm:" + binding_of(token)


def client_address() -> str:
    return request.remote_addr or "unknown"


# ---------------------------------------------------------------- subscribe


@blueprint.get("/")
def index() -> str:
    return render_template("subscribe.html", csrf=csrf(SUBSCRIBE_FORM), email="", error=None)


@blueprint.post("/subscribe")
def subscribe() -> tuple[str, int] | str:
    """Double opt-in. The answer is the same for a new, known, stopped or rate-limited
    address; only the client's own request rate can get a different one (429)."""
    require_csrf(SUBSCRIBE_FORM)
    typed = request.form.get("email", "")
    try:
        email = checked_email(typed)
    except ValueError:
        error = _("That is not an email address: check it and try again.")
        return render_template("subscribe.html", csrf=csrf(SUBSCRIBE_FORM), email=typed,
                               error=error), 400
    state = web_state()
    if not state.client_limits.allow(client_address()):
        abort(429)
    subscriber = readers.request_subscription(request_store(), email)
    if readers.may_confirm(subscriber) and state.address_limits.allow(email_key(email)):
        send_confirmation(subscriber)
    return render_template("subscribe_sent.html")


def send_confirmation(subscriber: Subscriber) -> None:
    state = web_state()
    token = state.tokens.confirm_token(readers.claim_for(request_store(), subscriber))
    url = f"{state.settings.web_url}/confirm/{token}"
    html = render_template("confirm_email.html", url=url)
    text = render_template("confirm_email.txt", url=url).strip() + "\n"
    subject = _("Confirm your subscription to %(site_name)s",
                site_name=state.settings.site_name)
    state.mailer.submit(confirmation_message(state.settings, subscriber.email,
                                             html=html, text=text, subject=subject))


# ---------------------------------------------------------------- confirm


def claim_or_404(token: str) -> ConfirmClaim:
    claim = web_state().tokens.confirm_claim(token)
    if claim is None or readers.claimed(request_store(), claim) is None:
        not_found()
    return claim


@blueprint.get("/confirm/<token>")
def confirm_page(token: str) -> str:
    claim_or_404(token)
    return render_template("confirm.html", csrf=csrf(confirm_binding(token)),
                           action=url_for(".confirm", token=token))


@blueprint.post("/confirm/<token>")
def confirm(token: str) -> Response:
    claim = claim_or_404(token)
    require_csrf(confirm_binding(token))
    link_token = readers.confirm(request_store(), claim, web_state().secret)
    if link_token is None:
        not_found()
    return redirect(url_for(".preferences", token=link_token, welcome=1), 303)


# ---------------------------------------------------------------- preferences


def reader_or_404(token: str) -> Subscriber:
    subscriber = readers.reader(request_store(), token)
    if subscriber is None:
        not_found()
    return subscriber


@blueprint.get("/preferences/<token>")
def preferences(token: str) -> str:
    subscriber = reader_or_404(token)
    return preferences_page(token, subscriber, saved=request.args.get("saved") == "1",
                            welcome=request.args.get("welcome") == "1")


@blueprint.post("/preferences/<token>")
def save_preferences(token: str) -> Response | tuple[str, int]:
    subscriber = reader_or_404(token)
    require_csrf(binding_of(token))
    if subscriber.status in STOPPED:  # a form from before they left: nothing to save
        return preferences_page(token, subscriber), 409
    site = web_state().categories.names()
    offered = readers.options(site, subscriber.categories)
    picked = request.form.getlist("category")
    choice = readers.parse_choice(offered, site, picked, request.form.get("cadence"),
                                  subscriber)
    if isinstance(choice, str):
        folded = {name.casefold() for name in picked}
        shown = [readers.Option(o.name, o.name.casefold() in folded) for o in offered]
        return preferences_page(token, subscriber, error=_(choice), shown=shown), 422
    readers.save_preferences(request_store(), token, choice.categories, choice.cadence)
    return redirect(url_for(".preferences", token=token, saved=1), 303)


def preferences_page(token: str, subscriber: Subscriber, *, saved: bool = False,
                     welcome: bool = False, error: str | None = None,
                     shown: Sequence[readers.Option] | None = None) -> str:
    site = web_state().categories.names()
    context: dict[str, Any] = {
        "subscriber": subscriber, "stopped": subscriber.status in STOPPED,
        "options": shown if shown is not None else readers.options(site, subscriber.categories),
        "cadences": (("weekly", _("Weekly")), ("daily", _("Daily"))),
        "status_label": status_label(subscriber.status),
        "csrf": csrf(binding_of(token)), "saved": saved, "welcome": welcome, "error": error,
        "action": url_for(".save_preferences", token=token),
        "unsubscribe": url_for(".unsubscribe", token=token),
    }
    return render_template("preferences.html", **context)


def status_label(status: str) -> str:
    """How the preferences page names a stopped reader's status."""
    labels = {"unsubscribed": N_("unsubscribed"), "bounced": N_("bounced"),
              "complained": N_("marked as spam")}
    return _(labels[status]) if status in labels else status


# ---------------------------------------------------------------- unsubscribe


@blueprint.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> str:
    """A page with a button: mail scanners follow links, so a GET changes nothing."""
    subscriber = reader_or_404(token)
    return render_template("unsubscribe.html", subscriber=subscriber,
                           stopped=subscriber.status in STOPPED, csrf=csrf(binding_of(token)),
                           action=url_for(".unsubscribe", token=token),
                           preferences=url_for(".preferences", token=token))


@blueprint.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> str:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`, urlencoded or multipart,
    no CSRF: it can only ever unsubscribe), or the page's own form with its CSRF token."""
    reader_or_404(token)
    if request.form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
        require_csrf(binding_of(token))
    subscriber = readers.unsubscribe(request_store(), token)
    if subscriber is None:
        not_found()
    return render_template("unsubscribed.html", subscriber=subscriber,
                           preferences=url_for(".preferences", token=token))
