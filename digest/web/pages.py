"""The readers' pages. A GET never changes anything; every POST but RFC 8058's one-click
unsubscribe needs the CSRF token of its form; an unknown or malformed token is a 404
that looks the same whatever was wrong with it."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from digest.i18n import N_
from digest.store import STOPPED, Subscriber
from digest.subscriber_files import checked_email
from digest.web import subscribers
from digest.web.abuse import client_key
from digest.web.language import _
from digest.web.signup import sign_up
from digest.web.state import request_store, web_state
from digest.web.tokens import ConfirmClaim, binding_of

blueprint = Blueprint("pages", __name__)
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058's body
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # none: typed or bookmarked
HONEYPOT = "website"  # a field hidden from people; bots fill in anything named so
MIN_FILL_S = 3  # nobody types an address and presses the button faster
NOT_AN_ADDRESS = N_("That is not an email address: check it and try again.")
TOO_FAST = N_("That was quick: please check the address and send the form again.")
NOT_VERIFIED = N_("Please complete the check that you are a person, then send the form again.")


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
    return client_key(request.remote_addr or "unknown")


@blueprint.before_request
def refuse_cross_site_posts() -> None:
    """A POST from another site's page is refused (403) whatever it carries, by the
    browser's Origin or Sec-Fetch-Site header; RFC 8058's one-click POST, which mailbox
    providers send from their own servers, is exempt."""
    if request.method != "POST" or one_click():
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if fetch_site is not None:  # the browser says where the form was; it is the judge
        if fetch_site not in SAME_SITE_FETCHES:
            abort(403)
    # Without it, a named Origin must be ours. "null" says nothing: our pages send no
    # referrer, so a browser posting our own form may send Origin: null.
    elif origin is not None and origin != "null" and origin not in own_origins():
        abort(403)


def one_click() -> bool:
    return (request.endpoint == "pages.unsubscribe"
            and request.form.get(ONE_CLICK[0]) == ONE_CLICK[1])


def own_origins() -> set[str]:
    """The origin readers reach the pages at (web.base_url), and the one this request
    was sent to (a browser sends the Host it shows in its address bar)."""
    web = urlsplit(web_state().settings.web_url)
    return {f"{web.scheme}://{web.netloc}", f"{request.scheme}://{request.host}"}


# ---------------------------------------------------------------- subscribe


@blueprint.get("/")
def index() -> str:
    return subscribe_form()


def subscribe_form(email: str = "", error: str | None = None) -> str:
    state = web_state()
    return render_template("subscribe.html", csrf=state.tokens.form_token(),
                           email=email, error=_(error) if error else None, honeypot=HONEYPOT,
                           captcha=state.captcha)


@blueprint.post("/subscribe")
def subscribe() -> tuple[str, int] | str:
    """Double opt-in. The answer is the same, and takes the same time, for a new, known,
    stopped or rate-limited address: the work is queued (signup.py). Only the client's
    own request rate can get a different one (429)."""
    state = web_state()
    issued = state.tokens.form_issued(request.form.get("csrf"), state.form_nonces)
    if issued is None:
        abort(400)
    if request.form.get(HONEYPOT):  # only a bot fills a field nobody can see
        return render_template("subscribe_sent.html")
    typed = request.form.get("email", "")
    if (state.clock() - issued).total_seconds() < MIN_FILL_S:
        return subscribe_form(typed, TOO_FAST), 400
    try:
        email = checked_email(typed)
    except ValueError:
        return subscribe_form(typed, NOT_AN_ADDRESS), 400
    if not state.client_limits.allow(client_address()):
        abort(429)
    if state.captcha is not None and not state.captcha.verify(
            request.form.get(state.captcha.provider.field), request.remote_addr):
        return subscribe_form(typed, NOT_VERIFIED), 400
    state.mailer.run(functools.partial(sign_up, current_app._get_current_object(), email))  # type: ignore[attr-defined]
    return render_template("subscribe_sent.html")


# ---------------------------------------------------------------- confirm


def claim_or_404(token: str) -> ConfirmClaim:
    claim = web_state().tokens.confirm_claim(token)
    if claim is None or subscribers.claimed(request_store(), claim) is None:
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
    link_token = subscribers.confirm(request_store(), claim, web_state().secret)
    if link_token is None:
        not_found()
    return redirect(url_for(".preferences", token=link_token, welcome=1), 303)


# ---------------------------------------------------------------- preferences


def subscriber_or_404(token: str) -> Subscriber:
    subscriber = subscribers.subscriber_of_link(request_store(), token)
    if subscriber is None:
        not_found()
    return subscriber


@blueprint.get("/preferences/<token>")
def preferences(token: str) -> str:
    subscriber = subscriber_or_404(token)
    return preferences_page(token, subscriber, saved=request.args.get("saved") == "1",
                            welcome=request.args.get("welcome") == "1")


@blueprint.post("/preferences/<token>")
def save_preferences(token: str) -> Response | tuple[str, int]:
    subscriber = subscriber_or_404(token)
    require_csrf(binding_of(token))
    if subscriber.status in STOPPED:  # a form from before they left: nothing to save
        return preferences_page(token, subscriber), 409
    site = web_state().categories.names()
    offered = subscribers.options(site, subscriber.categories)
    picked = request.form.getlist("category")
    choice = subscribers.parse_choice(offered, site, picked, request.form.get("cadence"),
                                  subscriber)
    if isinstance(choice, str):
        folded = {name.casefold() for name in picked}
        shown = [subscribers.Option(o.name, o.name.casefold() in folded) for o in offered]
        return preferences_page(token, subscriber, error=_(choice), shown=shown), 422
    subscribers.save_preferences(request_store(), token, choice.categories, choice.cadence)
    return redirect(url_for(".preferences", token=token, saved=1), 303)


def preferences_page(token: str, subscriber: Subscriber, *, saved: bool = False,
                     welcome: bool = False, error: str | None = None,
                     shown: Sequence[subscribers.Option] | None = None) -> str:
    site = web_state().categories.names()
    context: dict[str, Any] = {
        "subscriber": subscriber, "stopped": subscriber.status in STOPPED,
        "options": shown if shown is not None else subscribers.options(site, subscriber.categories),
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
    subscriber = subscriber_or_404(token)
    return render_template("unsubscribe.html", subscriber=subscriber,
                           stopped=subscriber.status in STOPPED, csrf=csrf(binding_of(token)),
                           action=url_for(".unsubscribe", token=token),
                           preferences=url_for(".preferences", token=token))


@blueprint.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> str:
    """RFC 8058 one-click (body `List-Unsubscribe=One-Click`, urlencoded or multipart,
    no CSRF: it can only ever unsubscribe), or the page's own form with its CSRF token."""
    subscriber_or_404(token)
    if request.form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
        require_csrf(binding_of(token))
    subscriber = subscribers.unsubscribe(request_store(), token)
    if subscriber is None:
        not_found()
    return render_template("unsubscribed.html", subscriber=subscriber,
                           preferences=url_for(".preferences", token=token))
