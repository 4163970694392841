"""The readers' web app (Flask): subscribe with confirmation, preferences, unsubscribe.

`create_app(settings)` builds it; `digest web` serves it with Werkzeug's server for
local use, and `digest.web.wsgi:app` is the entry for gunicorn. The pages are in
`pages.py`, what they do to the store in `subscribers.py`.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Iterable
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, ServiceUnavailable
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

from digest.config import Settings
from digest.errors import ConfigError, DigestError, StoreUnavailable
from digest.i18n import N_, load_language
from digest.store import secret_problem, utc_now
from digest.transports import Transport, transport_for
from digest.web import archive, hooks, language, pages
from digest.web.abuse import ConfirmationLimits
from digest.web.captcha import captcha_for
from digest.web.language import _
from digest.web.logs import redact, redact_logger
from digest.web.mail import Mailer
from digest.web.shared_limits import SharedLimiter
from digest.web.state import EXTENSION, WebState, close_store, request_store, web_state
from digest.web.subscribers import SiteCategories
from digest.web.tokens import FORM_MAX_AGE, Tokens

log = logging.getLogger("digest.web")

DEV_HINT = " (for a local try-out, digest web --dev uses a random one)"
NO_SENDER = ("email.from is not set in the configuration: the web app sends confirmation "
             "emails from it")
DEV_SECRET = ("no web.secret_key / DIGEST_SECRET_KEY: --dev uses a random secret for this "
              "process, so its confirmation links and forms stop working when it stops")

# Subscribe requests per client (an IPv4 address or an IPv6 /64): 20 per 10 minutes.
# The confirmation emails' limits are in abuse.py. Every count is kept in the store, so
# any number of workers and hosts enforce one limit.
CLIENT_LIMITS = ((20, 600.0),)
MAX_FORM_BYTES = 64 * 1024

CAPTCHA_CSP = ("default-src 'none'; style-src 'self' {sources}; img-src 'self'; "
               "script-src {sources}; frame-src {sources}; connect-src {sources}; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "no-referrer",  # the links carry tokens
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
ERROR_TEXT = {  # translated when shown (digest.web.language)
    400: (N_("Bad request"), N_("The form has expired or did not come from this site: "
                                "go back, reload the page and try again.")),
    403: (N_("Forbidden"), N_("This form can only be sent from this site's own pages.")),
    404: (N_("Not found"), N_("There is nothing here. A link from one of our emails may have "
                              "expired, been used already or been cut short; nothing was "
                              "changed.")),
    405: (N_("Method not allowed"), N_("This page cannot be used that way.")),
    413: (N_("Too large"), N_("That request was too large.")),
    429: (N_("Too many requests"), N_("Too many sign-ups from your network: please try "
                                      "again in a few minutes.")),
    500: (N_("Something went wrong"), N_("This page could not be shown: please try again "
                                         "later. Nothing was changed.")),
    503: (N_("Try again soon"), N_("The newsletter's database is busy: please try again "
                                   "in a minute.")),
}


def create_app(settings: Settings, *, dev: bool = False,
               clock: Callable[[], datetime] = utc_now,
               transport: Transport | None = None) -> Flask:
    """The app for `settings`. Refuses (ConfigError) without a secret unless `dev`."""
    secret = app_secret(settings, dev)
    if not settings.text("email.from"):
        raise ConfigError(NO_SENDER)
    if transport is None:
        transport = transport_for(settings)
    app = Flask(__name__)
    redact_logger(app.logger)  # Flask logs a 500 as "Exception on /preferences/TOKEN"
    # Every body is capped at 64 KB (urlencoded and chunked ones too); the webhook, which
    # takes large batches, raises its own request's limit.
    app.config.update(SECRET_KEY=secret, MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
                      MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES)
    app.jinja_env.undefined = jinja2.StrictUndefined
    app.extensions[EXTENSION] = new_state(settings, secret, clock, transport)
    if settings.integer("web.proxies"):
        app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
            app.wsgi_app, settings.integer("web.proxies"), settings.names("web.trusted_proxies"))
    app.teardown_appcontext(close_store)
    app.after_request(security_headers)
    app.register_error_handler(HTTPException, error_page)
    app.register_error_handler(StoreUnavailable, store_unavailable)
    app.context_processor(lambda: {"site_name": settings.site_name})
    language.install(app, load_language(settings.language, settings.templates_dir))
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(hooks.blueprint)  # SendGrid's event webhook
    app.register_blueprint(archive.blueprint)  # archive.dir at /archive/
    return app


def app_secret(settings: Settings, dev: bool) -> str:
    secret = settings.text("web.secret_key")
    if not secret and dev:
        log.warning(DEV_SECRET)
        return secrets.token_urlsafe(32)
    if problem := secret_problem(secret):
        raise ConfigError(problem + ("" if secret else DEV_HINT))
    return secret


def new_state(settings: Settings, secret: str, clock: Callable[[], datetime],
              transport: Transport) -> WebState:
    return WebState(
        settings=settings, secret=secret, clock=clock, transport=transport,
        tokens=Tokens(secret, clock), mailer=Mailer(transport),
        confirmations=ConfirmationLimits(settings.integer("web.max_confirmations_per_hour")),
        client_limits=SharedLimiter("client", CLIENT_LIMITS, request_store),
        form_nonces=SharedLimiter("nonce", ((1, FORM_MAX_AGE.total_seconds()),),
                                  request_store),
        categories=SiteCategories(settings), captcha=captcha_for(settings))


class TrustedProxies:
    """Werkzeug's ProxyFix (the client is the `hops`-th address from the right of
    X-Forwarded-For) for requests from a trusted proxy only: from anyone else the
    header is ignored, or rotating it would make every request a new client."""

    def __init__(self, app: WSGIApplication, hops: int, trusted: Iterable[str]) -> None:
        self.app, self.fixed = app, ProxyFix(app, x_for=hops)
        self.trusted = [ipaddress.ip_network(net, strict=False) for net in trusted]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        if self.is_trusted(environ.get("REMOTE_ADDR", "")):
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)

    def is_trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)


def relative_location(response: Response) -> None:
    """Every redirect as a path on this site: never built from the Host header a client
    sent (Werkzeug's own redirects are), never `//host…` (a link to another site)."""
    location = response.headers.get("Location")
    if location is None:
        return
    parts = urlsplit(location)
    path = "/" + parts.path.lstrip("/")
    response.headers["Location"] = path + (f"?{parts.query}" if parts.query else "")


def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():  # a page may set its own CSP (/archive/)
        response.headers.setdefault(name, value)
    captcha = web_state().captcha
    if captcha is not None and response.headers["Content-Security-Policy"] == \
            SECURITY_HEADERS["Content-Security-Policy"]:  # the widget's script and frame
        response.headers["Content-Security-Policy"] = CAPTCHA_CSP.format(
            sources=captcha.provider.sources)
    relative_location(response)
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def error_page(error: HTTPException) -> Response | HTTPException:
    """One page per status; a 404 says the same whatever was wrong with the link."""
    if error.code is None:
        return error
    title, text = ERROR_TEXT.get(error.code, (error.name, error.description or ""))
    if error.code in ERROR_TEXT:
        title, text = _(title), _(text)
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


def store_unavailable(error: StoreUnavailable) -> Response | HTTPException:
    """A locked database or a full disk: 503 and one log line, not a traceback."""
    log.error("answered 503: %s", error)
    response = error_page(ServiceUnavailable())
    if isinstance(response, Response):
        response.headers["Retry-After"] = "60"
    return response


# ---------------------------------------------------------------- `digest web`

DISCARD_CHUNK = 64 * 1024


class SmallReads:
    """A connection's input that hands out at most DISCARD_CHUNK bytes per read."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, size: int | None = -1) -> bytes:
        wanted = DISCARD_CHUNK if size is None or size < 0 else min(size, DISCARD_CHUNK)
        return bytes(self._raw.read(wanted))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class RedactingHandler(WSGIRequestHandler):
    """Werkzeug's request log, without the tokens in the paths (they are credentials).

    After the answer Werkzeug discards whatever body the app did not read, 10 MB per
    read: sixteen refused 31 MB uploads would cost 160 MB at once. Once the answer is
    under way the discarding reads a chunk at a time (the app reads its body through its
    own handle on the stream, which this does not touch)."""

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if not isinstance(self.rfile, SmallReads):
            self.rfile = SmallReads(self.rfile)  # type: ignore[assignment]

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
    redact_logger(logging.getLogger("werkzeug"))
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
