"""The readers' web app (Flask): subscribe with confirmation, preferences, unsubscribe.

`create_app(settings)` builds it; `digest web` serves it with Werkzeug's server for
local use, and `digest.web.wsgi:app` is the entry for gunicorn. The pages are in
`pages.py`, what they do to the store in `readers.py`.
"""

from __future__ import annotations

import importlib
import logging
import re
import secrets
import socket
from collections.abc import Callable
from datetime import datetime
from html import escape
from urllib.parse import unquote

import jinja2
from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from digest.config import Settings
from digest.errors import ConfigError, DigestError
from digest.store import MIN_SECRET_LENGTH, utc_now
from digest.transports import Transport, transport_for
from digest.web import pages
from digest.web.mail import Mailer
from digest.web.readers import SiteCategories
from digest.web.shared_limits import SharedLimiter
from digest.web.state import EXTENSION, WebState, close_store, request_store
from digest.web.tokens import Tokens

log = logging.getLogger("digest.web")

NO_SECRET = ("web.secret_key / DIGEST_SECRET_KEY is not set: the web app signs its links "
             "and forms with it (for a local try-out, digest web --dev uses a random one)")
SHORT_SECRET = (f"web.secret_key / DIGEST_SECRET_KEY must be at least {MIN_SECRET_LENGTH} "
                "characters")
NO_SENDER = ("email.from is not set in the configuration: the web app sends confirmation "
             "emails from it")
DEV_SECRET = ("no web.secret_key / DIGEST_SECRET_KEY: --dev uses a random secret for this "
              "process, so its confirmation links and forms stop working when it stops")

# Confirmations per address: one per 10 minutes, three a day. Subscribe requests per
# client IP: 20 per 10 minutes. Counted in the store: one limit for every worker and host.
ADDRESS_LIMITS = ((1, 600.0), (3, 86_400.0))
CLIENT_LIMITS = ((20, 600.0),)
MAX_FORM_BYTES = 64 * 1024

# Blueprints other parts of digest add, registered when their module exists.
# digest.web.hooks (SendGrid's event webhook, issue 7) exposes `blueprint`.
OPTIONAL_BLUEPRINTS = ("digest.web.hooks",)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",  # the links carry tokens
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
ERROR_TEXT = {
    400: ("Bad request", "The form has expired or did not come from this site: "
                         "go back, reload the page and try again."),
    404: ("Not found", "There is nothing here. A link from one of our emails may have "
                       "expired, been used already or been cut short; nothing was changed."),
    405: ("Method not allowed", "This page cannot be used that way."),
    413: ("Too large", "That request was too large."),
    429: ("Too many requests", "Too many sign-ups from your network: please try again in "
                               "a few minutes."),
}


def create_app(settings: Settings, *, dev: bool = False,
               clock: Callable[[], datetime] = utc_now,
               transport: Transport | None = None) -> Flask:
    """The app for `settings`. Refuses (ConfigError) without a secret unless `dev`."""
    secret = app_secret(settings, dev)
    if not settings["email.from"]:
        raise ConfigError(NO_SENDER)
    if transport is None:
        transport = transport_for(settings)
    app = Flask(__name__)
    # Every body is capped at 64 KB (urlencoded and chunked ones too); the webhook, which
    # takes large batches, raises its own request's limit.
    app.config.update(SECRET_KEY=secret, MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
                      MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
                      DIGEST_SETTINGS=settings)  # what digest.web.hooks reads
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.extensions[EXTENSION] = web_state(settings, secret, clock, transport)
    if settings["web.proxies"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings["web.proxies"])  # type: ignore[method-assign]
    app.teardown_appcontext(close_store)
    app.after_request(security_headers)
    app.register_error_handler(HTTPException, error_page)
    app.context_processor(lambda: {"site_name": settings.site_name,
                                   "language": settings.language})
    app.register_blueprint(pages.blueprint)
    register_optional_blueprints(app)
    return app


def app_secret(settings: Settings, dev: bool) -> str:
    secret = settings["web.secret_key"]
    if not secret:
        if not dev:
            raise ConfigError(NO_SECRET)
        log.warning(DEV_SECRET)
        return secrets.token_urlsafe(32)
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(SHORT_SECRET)
    return secret


def web_state(settings: Settings, secret: str, clock: Callable[[], datetime],
              transport: Transport) -> WebState:
    return WebState(
        settings=settings, secret=secret, clock=clock, transport=transport,
        tokens=Tokens(secret, clock), mailer=Mailer(transport),
        address_limits=SharedLimiter("address", ADDRESS_LIMITS, request_store),
        client_limits=SharedLimiter("client", CLIENT_LIMITS, request_store),
        categories=SiteCategories(settings))


# ---- Other engineers: register further blueprints here (OPTIONAL_BLUEPRINTS above). ----
def register_optional_blueprints(app: Flask) -> None:
    """Register `blueprint` of each module in OPTIONAL_BLUEPRINTS that exists. A module
    that exists but fails to import (a missing dependency) is an error, not skipped."""
    for name in OPTIONAL_BLUEPRINTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.register_blueprint(module.blueprint)


def security_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(error: HTTPException) -> Response | HTTPException:
    """One page per status; a 404 says the same whatever was wrong with the link."""
    if error.code is None:
        return error
    title, text = ERROR_TEXT.get(error.code, (error.name, error.description or ""))
    try:
        page = render_template("error.html", title=title, text=text)
    except Exception:  # no URL adapter for a malformed Host: a page without links
        page = f"<!DOCTYPE html><title>{escape(title)}</title><p>{escape(text)}</p>"
    response = Response(page, status=error.code, content_type="text/html; charset=utf-8")
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if error.code == 429:
        response.headers["Retry-After"] = str(int(CLIENT_LIMITS[0][1]))
    return response


# ---------------------------------------------------------------- `digest web`

TOKEN_IN_PATH = re.compile(r"(?i)(/(?:confirm|preferences|unsubscribe)/+)[^\s?]+")
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")  # a token in any other path


def redact(text: str) -> str:
    """`text` with anything like a token replaced by …, read as Werkzeug logs it (with
    %-escapes decoded, so `/pr%65ferences/TOKEN` is caught too)."""
    text = TOKEN_IN_PATH.sub(r"\1…", unquote(text, errors="replace"))
    return TOKEN_LIKE.sub("…", text)


class RedactingHandler(WSGIRequestHandler):
    """Werkzeug's request log, without the tokens in the paths (they are credentials)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path, line = getattr(self, "path", None), self.requestline
        if path is not None:
            self.path = redact(path)
        self.requestline = redact(line)
        try:
            super().log_request(code, size)
        finally:
            if path is not None:
                self.path = path
            self.requestline = line


def make_dev_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """Werkzeug's threaded server for `digest web` (production: gunicorn)."""
    check_can_listen(host, port)  # Werkzeug prints its own message and exits otherwise
    try:
        return make_server(host, port, app, threaded=True, request_handler=RedactingHandler)
    except SystemExit:
        raise DigestError(f"cannot listen on {host}:{port} (see above)") from None


def check_can_listen(host: str, port: int) -> None:
    """A port in use or a host name that does not resolve, as a DigestError."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug does
            probe.bind(address)
    except OSError as exc:
        raise DigestError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
