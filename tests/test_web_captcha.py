"""The optional captcha on sign-up (web.captcha), verified against a local stand-in for
Turnstile's and hCaptcha's siteverify endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from web_support import WAIT_S, Clock, outbox, site_settings, write_site

from digest.config import load_settings
from digest.errors import ConfigError
from digest.web import create_app

GOOD = "solved-challenge-token"
SITE_KEY = "0x4AAAAAAAtestsitekey"
CAPTCHA_SECRET = "0x4AAAAAAAtestsecret"
NOT_VERIFIED = "Please complete the check that you are a person, then send the form again."


@contextmanager
def siteverify() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in siteverify endpoint: success only for GOOD with our secret; the forms
    it was posted, in order."""
    posted: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            posted.append(form)
            ok = form.get("response") == GOOD and form.get("secret") == CAPTCHA_SECRET
            body = json.dumps({"success": ok, "error-codes": [] if ok else
                               ["invalid-input-response"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/siteverify", posted
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


def captcha_app(tmp_path, clock, provider, verify_url):
    extra = (f'captcha = "{provider}"\ncaptcha_site_key = "{SITE_KEY}"\n'
             f'captcha_verify_url = "{verify_url}"\n')
    settings = site_settings(tmp_path, extra=extra).override("web.captcha_secret",
                                                             CAPTCHA_SECRET)
    return create_app(settings, clock=clock)


def post(app, clock, email, **fields):
    token = app.extensions["digest"].tokens.form_token()
    clock.advance(seconds=5)
    reply = app.test_client().post("/subscribe", data={"csrf": token, "email": email, **fields},
                                   environ_base={"REMOTE_ADDR": "192.0.2.44"})
    assert app.extensions["digest"].mailer.drain(WAIT_S)
    return reply


@pytest.mark.parametrize(("provider", "field", "script"), [
    ("turnstile", "cf-turnstile-response", "https://challenges.cloudflare.com/turnstile/v0/api.js"),
    ("hcaptcha", "h-captcha-response", "https://js.hcaptcha.com/1/api.js"),
])
def test_a_sign_up_counts_only_with_a_verified_captcha(tmp_path, provider, field, script):
    clock = Clock()
    with siteverify() as (url, posted):
        app = captcha_app(tmp_path, clock, provider, url)
        page = app.test_client().get("/")
        assert f'data-sitekey="{SITE_KEY}"' in page.text and f'src="{script}"' in page.text
        assert "script-src https://" in page.headers["Content-Security-Policy"]
        missing = post(app, clock, "a@example.com")
        wrong = post(app, clock, "b@example.com", **{field: "forged"})
        good = post(app, clock, "c@example.com", **{field: GOOD})
    assert (missing.status_code, wrong.status_code, good.status_code) == (400, 400, 200)
    assert NOT_VERIFIED in missing.text and NOT_VERIFIED in wrong.text
    assert "Check your inbox" in good.text
    assert [p.name.split("--")[-1] for p in outbox(tmp_path)] == ["c@example.com.eml"]
    assert posted == [  # a missing token is never sent to the provider
        {"secret": CAPTCHA_SECRET, "response": "forged", "sitekey": SITE_KEY,
         "remoteip": "192.0.2.44"},
        {"secret": CAPTCHA_SECRET, "response": GOOD, "sitekey": SITE_KEY,
         "remoteip": "192.0.2.44"}]


def test_an_unreachable_verify_endpoint_refuses_the_sign_up(tmp_path, caplog):
    clock = Clock()
    with siteverify() as (url, _):
        pass  # stopped: nothing listens there any more
    app = captcha_app(tmp_path, clock, "turnstile", url)
    reply = post(app, clock, "a@example.com", **{"cf-turnstile-response": GOOD})
    assert reply.status_code == 400 and NOT_VERIFIED in reply.text
    assert outbox(tmp_path) == []
    assert "the captcha could not be verified" in caplog.text


def test_without_a_captcha_the_page_loads_nothing_from_elsewhere(tmp_path):
    app = create_app(site_settings(tmp_path), clock=Clock())
    page = app.test_client().get("/")
    assert "<script" not in page.text and "data-sitekey" not in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]


def test_an_unknown_captcha_is_a_config_error(tmp_path):
    config = write_site(tmp_path, extra='captcha = "recaptcha"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={})
    assert "web.captcha must be one of turnstile, hcaptcha (or empty), not 'recaptcha'" in (
        str(refused.value))


def test_a_captcha_without_its_secret_refuses_to_start(tmp_path):
    config = write_site(tmp_path, extra=f'captcha = "hcaptcha"\ncaptcha_site_key = "{SITE_KEY}"\n')
    settings = load_settings(config, environ={"DIGEST_SECRET_KEY": "x" * 20})
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    assert str(refused.value) == ("web.captcha is hcaptcha: set web.captcha_site_key and the "
                                  "secret (DIGEST_CAPTCHA_SECRET or web.captcha_secret)")
    with_env = load_settings(config, environ={"DIGEST_SECRET_KEY": "x" * 20,
                                              "DIGEST_CAPTCHA_SECRET": CAPTCHA_SECRET})
    assert create_app(with_env).extensions["digest"].captcha.secret == CAPTCHA_SECRET
