"""The readers' web app over real HTTP on 127.0.0.1 (and the Flask test client where a
thousand requests are needed): subscribe, confirm, preferences, one-click unsubscribe,
and what it refuses."""

import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from http.client import HTTPConnection

import pytest
from click.testing import CliRunner
from web_support import (
    CATEGORIES,
    SECRET,
    WAIT_S,
    WEB_URL,
    Clock,
    add_reader,
    confirm_path,
    csrf_of,
    dump,
    history,
    http,
    multipart,
    outbox,
    parts,
    read_eml,
    reader,
    serving,
    site_settings,
    token_of,
)

from digest.cli import cli
from digest.errors import ConfigError
from digest.store import open_store
from digest.web import create_app
from digest.web.tokens import ConfirmClaim, Tokens

ADA = "ada@example.com"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def served(tmp_path, clock):
    with serving(site_settings(tmp_path), clock) as running:
        yield running


def subscribe(served, email):
    form_page = http("GET", f"{served.url}/")
    served.clock.advance(seconds=5)  # a person takes a few seconds to fill it in
    reply = http("POST", f"{served.url}/subscribe",
                 form={"csrf": csrf_of(form_page.body), "email": email})
    served.drain()
    return reply


def form_tokens(app, clock, count):
    """`count` sign-up form tokens, served 5 seconds ago."""
    tokens = [app.extensions["digest"].tokens.form_token() for _ in range(count)]
    clock.advance(seconds=5)
    return tokens


def confirmation(served, email):
    """The confirmation email's parts and its link's path, from the files transport."""
    found = [p for p in outbox(served.root) if email in p.name]
    assert len(found) == 1, [p.name for p in outbox(served.root)]
    message = read_eml(found[0])
    assert message["To"] == email
    text, html = parts(message)
    return message, text, html, confirm_path(text)


def confirm(served, path):
    page = http("GET", served.url + path)
    assert page.status == 200, page.body
    return http("POST", served.url + path, form={"csrf": csrf_of(page.body)})


# ---------------------------------------------------------------- the whole journey


def test_subscribe_confirm_choose_and_unsubscribe_over_http(served):
    root = served.root
    reply = subscribe(served, ADA)
    assert reply.status == 200 and "Check your inbox" in reply.body
    subscriber, _ = reader(root, ADA)
    assert subscriber.status == "pending"
    assert history(root, ADA) == [(None, "pending", "web")]

    message, text, html, path = confirmation(served, ADA)
    assert message["Subject"] == "Confirm your subscription to Web Test"
    assert f"{WEB_URL}{path}" in text and f'href="{WEB_URL}{path}"' in html
    assert "List-Unsubscribe" not in message

    before = dump(root)
    page = http("GET", served.url + path)
    assert page.status == 200 and "Yes, subscribe me" in page.body
    assert dump(root) == before  # the GET changed nothing
    done = http("POST", served.url + path, form={"csrf": csrf_of(page.body)})
    assert done.status == 303
    assert reader(root, ADA)[0].status == "active"
    assert history(root, ADA) == [(None, "pending", "web"), ("pending", "active", "web")]

    token = token_of(done.headers["Location"])
    prefs = http("GET", f"{served.url}/preferences/{token}?welcome=1")
    assert prefs.status == 200 and "You are subscribed" in prefs.body
    boxes = re.findall(r'name="category" value="([^"]+)"( checked)?', prefs.body)
    assert boxes == [("Tools", " checked"), ("Research", " checked"), ("Work", " checked")]
    saved = http("POST", f"{served.url}/preferences/{token}",
                 form={"csrf": csrf_of(prefs.body), "category": ["Work", "Research"],
                       "cadence": "daily"})
    assert saved.status == 303 and saved.headers["Location"].endswith("saved=1")
    subscriber, _ = reader(root, ADA)
    assert (subscriber.categories, subscriber.cadence, subscriber.status) == (
        ("Research", "Work"), "daily", "active")  # in the site's order
    again = http("GET", served.url + saved.headers["Location"].split(served.url)[-1])
    assert "Saved." in again.body
    assert re.findall(r'value="([^"]+)" checked', again.body) == ["Research", "Work", "daily"]

    body, content_type = multipart(ONE_CLICK)
    gone = http("POST", f"{served.url}/unsubscribe/{token}", body=body,
                content_type=content_type)
    assert gone.status == 200 and "You are unsubscribed" in gone.body
    assert "Set-Cookie" not in gone.headers
    assert reader(root, ADA)[0].status == "unsubscribed"
    assert history(root, ADA)[-1] == ("active", "unsubscribed", "web")


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_one_click_unsubscribe_needs_no_cookie_or_csrf(served, encoding):
    token = add_reader(served.root, ADA, categories=("Work",))
    if encoding == "multipart":
        body, content_type = multipart(ONE_CLICK)
    else:
        body, content_type = b"List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"
    reply = http("POST", f"{served.url}/unsubscribe/{token}", body=body,
                 content_type=content_type)
    assert reply.status == 200
    assert reader(served.root, ADA)[0].status == "unsubscribed"
    assert history(served.root, ADA) == [(None, "active", "cli"),
                                         ("active", "unsubscribed", "web")]
    repeat = http("POST", f"{served.url}/unsubscribe/{token}", body=body,
                  content_type=content_type)
    assert repeat.status == 200
    assert len(history(served.root, ADA)) == 2  # nothing more to record


def test_the_unsubscribe_page_asks_and_its_form_needs_csrf(served):
    token = add_reader(served.root, ADA)
    before = dump(served.root)
    page = http("GET", f"{served.url}/unsubscribe/{token}")
    assert page.status == 200 and ADA in page.body and "<button" in page.body
    assert dump(served.root) == before
    assert http("POST", f"{served.url}/unsubscribe/{token}", form={}).status == 400
    assert dump(served.root) == before
    reply = http("POST", f"{served.url}/unsubscribe/{token}", form={"csrf": csrf_of(page.body)})
    assert reply.status == 200
    assert history(served.root, ADA)[-1] == ("active", "unsubscribed", "web")


def test_the_preferences_page_unsubscribes_too(served):
    token = add_reader(served.root, ADA)
    page = http("GET", f"{served.url}/preferences/{token}")
    action = f"/unsubscribe/{token}"
    reply = http("POST", served.url + action, form={"csrf": csrf_of(page.body, action)})
    assert reply.status == 200
    assert reader(served.root, ADA)[0].status == "unsubscribed"


@pytest.mark.parametrize("status", ["unsubscribed"])
def test_confirming_again_is_the_one_way_back(served, status):
    add_reader(served.root, ADA, status=status)
    assert subscribe(served, ADA).status == 200
    assert reader(served.root, ADA)[0].status == status  # asking changes nothing
    _, _, _, path = confirmation(served, ADA)
    assert confirm(served, path).status == 303
    assert history(served.root, ADA) == [(None, status, "cli"), (status, "active", "web")]


def test_a_confirmation_link_works_once_and_expires(served, clock):
    subscribe(served, ADA)
    _, _, _, path = confirmation(served, ADA)
    page = http("GET", served.url + path)
    assert confirm(served, path).status == 303
    assert http("GET", served.url + path).status == 404
    assert http("POST", served.url + path, form={"csrf": csrf_of(page.body)}).status == 404

    bob = "bob@example.com"
    subscribe(served, bob)
    _, _, _, late = confirmation(served, bob)
    clock.advance(days=7, seconds=1)
    assert http("GET", served.url + late).status == 404
    assert reader(served.root, bob)[0].status == "pending"


def test_an_old_confirmation_link_cannot_undo_a_later_unsubscribe(served):
    subscribe(served, ADA)
    _, _, _, path = confirmation(served, ADA)
    with_link = http("GET", served.url + path)
    # Ada is unsubscribed (by the operator) before she clicks the link.
    assert CliRunner().invoke(cli, ["--config", str(served.root / "digest.toml"),
                                    "subscribers", "unsubscribe", ADA]).exit_code == 0
    reply = http("POST", served.url + path, form={"csrf": csrf_of(with_link.body)})
    assert reply.status == 404
    assert history(served.root, ADA) == [(None, "pending", "web"),
                                         ("pending", "unsubscribed", "cli")]


def test_the_confirmation_email_is_escaped_html_and_plain_text(tmp_path, clock):
    settings = site_settings(tmp_path, name="Tom & <b>Jerry</b>")
    with serving(settings, clock) as served:
        subscribe(served, ADA)
        message, text, html, _ = confirmation(served, ADA)
    assert message["Subject"] == "Confirm your subscription to Tom & <b>Jerry</b>"
    assert "Tom & <b>Jerry</b>" in text and "&amp;" not in text
    assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in html and "<b>" not in html


# ---------------------------------------------------------------- no enumeration


def test_the_answer_is_the_same_whoever_the_address_is(served):
    for email, status in [("active@example.com", "active"), ("gone@example.com", "unsubscribed"),
                          ("bounced@example.com", "bounced"), ("wait@example.com", "pending")]:
        add_reader(served.root, email, status=status)
    replies = [subscribe(served, email)
               for email in ["new@example.com", "active@example.com", "gone@example.com",
                             "bounced@example.com", "wait@example.com", "new@example.com"]]
    assert {(r.status, r.body) for r in replies} == {(200, replies[0].body)}
    sent = sorted(p.name.split("--")[-1] for p in outbox(served.root))
    assert sent == ["active@example.com.eml", "gone@example.com.eml", "new@example.com.eml",
                    "wait@example.com.eml"]  # never to a bounced address; once per address
    assert reader(served.root, "bounced@example.com")[0].status == "bounced"
    assert reader(served.root, "gone@example.com")[0].status == "unsubscribed"


def test_prune_counts_30_days_from_the_first_sign_up_however_often_it_is_repeated(served):
    subscribe(served, ADA)
    for _ in range(4):
        served.clock.advance(days=7)
        subscribe(served, ADA)
    with open_store(served.root / "digest.db", clock=served.clock) as store:
        assert store.forget_unconfirmed(served.clock() - timedelta(days=30)) == []
        served.clock.advance(days=3)  # 31 days after the first sign-up
        assert store.forget_unconfirmed(served.clock() - timedelta(days=30)) == [ADA]


def test_a_bad_address_is_refused_with_the_form(served):
    page = http("GET", f"{served.url}/")
    served.clock.advance(seconds=5)
    reply = http("POST", f"{served.url}/subscribe",
                 form={"csrf": csrf_of(page.body), "email": "<not an address>"})
    assert reply.status == 400
    assert "That is not an email address" in reply.body
    assert 'value="&lt;not an address&gt;" aria-invalid="true" aria-describedby="email-error"' \
        in reply.body  # a screen reader reads the error with the field
    assert '<p class="error" id="email-error" role="alert">' in reply.body
    assert outbox(served.root) == []


# ---------------------------------------------------------------- abuse


def test_a_thousand_requests_for_one_address_send_one_confirmation(tmp_path, clock):
    settings = site_settings(tmp_path)
    app = create_app(settings, clock=clock)
    client = app.test_client()
    tokens = iter(form_tokens(app, clock, 2000))
    statuses = [client.post("/subscribe", data={"csrf": next(tokens), "email": ADA}).status_code
                for _ in range(1000)]
    assert statuses == [200] * 20 + [429] * 980  # per client: 20 in 10 minutes
    many = [client.post("/subscribe", data={"csrf": next(tokens), "email": ADA},
                        environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}"}).status_code
            for i in range(1000)]
    assert many == [200] * 1000  # a thousand clients: each within its own limit
    assert app.extensions["digest"].mailer.drain(60)  # a thousand queued sign-ups
    assert len(outbox(tmp_path)) == 1
    assert history(tmp_path, ADA) == [(None, "pending", "web")]
    with open_store(tmp_path / "digest.db") as store:  # counted in the store, hashed
        hits = store.conn.execute("SELECT key FROM rate_hits").fetchall()
    # 2,000 forms used once each, 20 + 1,000 client hits, one confirmation counted for the
    # mailbox, its domain and the site
    assert len(hits) == 2000 + 20 + 1000 + 3 and not any(b"ada" in key for (key,) in hits)


def test_the_address_limit_opens_again_after_its_window(tmp_path, clock):
    app = create_app(site_settings(tmp_path), clock=clock)
    client = app.test_client()
    mails = []
    for minutes in [0, 5, 11, 15, 22, 33, 44]:  # one per 10 minutes, at most 3 a day
        csrf = app.extensions["digest"].tokens.form_token()
        clock.advance(minutes=minutes - (mails[-1][0] if mails else 0), seconds=5)
        client.post("/subscribe", data={"csrf": csrf, "email": ADA},
                    environ_base={"REMOTE_ADDR": f"10.1.0.{minutes}"})
        assert app.extensions["digest"].mailer.drain(WAIT_S)
        mails.append((minutes, read_eml(outbox(tmp_path)[0])["Message-ID"]))
    changes = [m for (m, mid), (_, prev) in zip(mails[1:], mails, strict=False) if mid != prev]
    assert changes == [11, 22]


def test_over_http_the_client_limit_answers_429_with_retry_after(served):
    statuses = []
    for i in range(25):
        page = http("GET", f"{served.url}/")
        served.clock.advance(seconds=5)
        reply = http("POST", f"{served.url}/subscribe",
                     form={"csrf": csrf_of(page.body), "email": f"r{i}@example.com"})
        statuses.append(reply.status)
    assert statuses == [200] * 20 + [429] * 5
    assert reply.headers["Retry-After"] == "600" and "Too many" in reply.body
    served.drain()
    assert len(outbox(served.root)) == 20


def test_behind_a_proxy_the_client_is_the_forwarded_address(tmp_path, clock):
    app = create_app(site_settings(tmp_path, extra="proxies = 1\n"), clock=clock)
    client = app.test_client()
    tokens = form_tokens(app, clock, 40)
    statuses = {client.post("/subscribe", data={"csrf": tokens[i], "email": f"r{i}@example.com"},
                            headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                for i in range(40)}
    assert statuses == {200}
    app.extensions["digest"].mailer.drain(WAIT_S)


def test_without_proxies_a_forwarded_header_is_ignored(tmp_path, clock):
    app = create_app(site_settings(tmp_path), clock=clock)
    client = app.test_client()
    tokens = form_tokens(app, clock, 25)
    statuses = [client.post("/subscribe", data={"csrf": tokens[i], "email": f"r{i}@example.com"},
                            headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                for i in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    app.extensions["digest"].mailer.drain(WAIT_S)


def bad_tokens(served):
    """Tokens that are unknown, malformed, forged, of the wrong kind or expired."""
    other = Tokens("another-secret-0123456789", served.clock)
    forged = other.confirm_token(ConfirmClaim(1, 1, "0" * 16, 1))
    return ["A" * 43, "abc", "a@b.com", "%2e%2e", "x" * 600, forged,
            forged[:-2] + "xx", "WzEsMSwiYSJd", "%F0%9F%92%A5", "-" * 43]


def test_a_signed_claim_with_an_id_sqlite_cannot_hold_is_refused(served):
    tokens = Tokens(SECRET, served.clock)
    huge = tokens.confirm_token(ConfirmClaim(2**70, 1, "0" * 16, 1))
    assert tokens.confirm_claim(huge) is None
    assert http("GET", f"{served.url}/confirm/{huge}").status == 404


def test_unknown_and_malformed_tokens_all_get_the_same_404(served):
    link = add_reader(served.root, ADA)
    subscribe(served, "bob@example.com")
    _, _, _, confirm_link = confirmation(served, "bob@example.com")
    tokens = [*bad_tokens(served), confirm_link.rsplit("/", 1)[1]]
    before = dump(served.root)
    replies = []
    for token in tokens:
        for kind in ("preferences", "unsubscribe"):
            replies.append(http("GET", f"{served.url}/{kind}/{token}"))
            replies.append(http("POST", f"{served.url}/{kind}/{token}",
                                form={**ONE_CLICK, "cadence": "daily"}))
        if token != tokens[-1]:  # the last one is a good confirmation token
            replies.append(http("GET", f"{served.url}/confirm/{token}"))
            replies.append(http("POST", f"{served.url}/confirm/{token}", form={}))
    replies.append(http("GET", f"{served.url}/confirm/{link}"))  # a link token, wrong kind
    replies.append(http("GET", f"{served.url}/no/such/page"))
    assert {r.status for r in replies} == {404}
    assert len({r.body for r in replies}) == 1
    assert "Not found" in replies[0].body
    assert dump(served.root) == before


def test_form_posts_without_their_csrf_token_get_400(served, clock):
    token = add_reader(served.root, ADA)
    subscribe(served, "bob@example.com")
    _, _, _, path = confirmation(served, "bob@example.com")
    home = http("GET", f"{served.url}/")
    prefs = http("GET", f"{served.url}/preferences/{token}")
    other = http("GET", f"{served.url}/preferences/{add_reader(served.root, 'cy@example.com')}")
    mails, before = outbox(served.root), dump(served.root)
    choice = {"category": "Work", "cadence": "daily"}
    attempts = [
        ("/subscribe", {"email": "new@example.com"}),
        ("/subscribe", {"email": "new@example.com", "csrf": "forged"}),
        ("/subscribe", {"email": "new@example.com", "csrf": csrf_of(prefs.body)}),
        (path, {}),
        (path, {"csrf": csrf_of(home.body)}),
        (f"/preferences/{token}", choice),
        (f"/preferences/{token}", {**choice, "csrf": csrf_of(home.body)}),
        (f"/preferences/{token}", {**choice, "csrf": csrf_of(other.body)}),
        (f"/unsubscribe/{token}", {}),
        (f"/unsubscribe/{token}", {"List-Unsubscribe": "one-click"}),
        (f"/unsubscribe/{token}", {"csrf": csrf_of(other.body)}),
    ]
    for action, form in attempts:
        assert http("POST", served.url + action, form=form).status == 400, (action, form)
    clock.advance(hours=24, seconds=1)  # the forms' tokens have expired
    assert http("POST", f"{served.url}/preferences/{token}",
                form={**choice, "csrf": csrf_of(prefs.body)}).status == 400
    served.drain()
    assert (outbox(served.root), dump(served.root)) == (mails, before)


def test_no_get_changes_anything(served):
    tokens = {status: add_reader(served.root, f"{status}@example.com", status=status)
              for status in ("active", "unsubscribed", "bounced", "complained")}
    subscribe(served, "new@example.com")
    _, _, _, path = confirmation(served, "new@example.com")
    before, mails = dump(served.root), outbox(served.root)
    urls = ["/", "/static/web.css", path, "/subscribe", "/nowhere"]
    for token in tokens.values():
        urls += [f"/preferences/{token}", f"/preferences/{token}?saved=1&welcome=1",
                 f"/unsubscribe/{token}", f"/unsubscribe/{token}?List-Unsubscribe=One-Click"]
    for url in urls:
        for method in ("GET", "HEAD"):
            assert http(method, served.url + url).status in (200, 404, 405), url
    served.drain()
    assert dump(served.root) == before
    assert outbox(served.root) == mails


# ---------------------------------------------------------------- preferences


def test_preferences_are_checked_before_they_are_saved(served):
    token = add_reader(served.root, ADA, categories=("Work", "Crypto"))
    page = http("GET", f"{served.url}/preferences/{token}")
    boxes = re.findall(r'name="category" value="([^"]+)"( checked)?', page.body)
    assert boxes == [("Tools", ""), ("Research", ""), ("Work", " checked"),
                     ("Crypto", " checked")]  # a category no article uses stays visible
    csrf = csrf_of(page.body)
    url = f"{served.url}/preferences/{token}"
    nothing = http("POST", url, form={"csrf": csrf, "cadence": "daily"})
    assert nothing.status == 422 and "Choose at least one topic" in nothing.body
    bad = http("POST", url, form={"csrf": csrf, "category": "Work", "cadence": "hourly"})
    assert bad.status == 422 and "weekly or daily" in bad.body
    assert reader(served.root, ADA)[0].categories == ("Work", "Crypto")
    odd = http("POST", url, form={"csrf": csrf, "category": ["tools", "<script>"],
                                  "cadence": "weekly"})
    assert odd.status == 303
    assert reader(served.root, ADA)[0].categories == ("Tools",)
    every = http("POST", url, form={"csrf": csrf, "category": list(CATEGORIES),
                                    "cadence": "weekly"})
    assert every.status == 303
    assert reader(served.root, ADA)[0].categories == ()  # all, new ones too
    assert history(served.root, ADA) == [(None, "active", "cli")]  # status never changed


def test_a_stopped_reader_sees_how_to_come_back_not_a_form(served):
    token = add_reader(served.root, ADA, status="unsubscribed")
    page = http("GET", f"{served.url}/preferences/{token}")
    assert page.status == 200 and "sign up</a> and confirm" in page.body
    assert "<form" not in page.body


def test_pages_carry_security_headers_and_no_cookie(served):
    token = add_reader(served.root, ADA)
    for url in ["/", f"/preferences/{token}", f"/unsubscribe/{token}", "/nowhere"]:
        reply = http("GET", served.url + url)
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
        assert reply.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in reply.headers


# ---------------------------------------------------------------- odd requests


def test_a_form_body_over_64_kb_is_refused_whatever_its_encoding(served):
    page = http("GET", f"{served.url}/")
    big = {"csrf": csrf_of(page.body), "email": "big@example.com", "pad": "a" * 70_000}
    assert http("POST", f"{served.url}/subscribe", form=big).status == 413
    assert reader(served.root, "big@example.com")[0] is None


def test_a_malformed_host_gets_a_400_page_not_a_500(served):
    connection = HTTPConnection(served.url.removeprefix("http://"), timeout=WAIT_S)
    connection.request("GET", "/", headers={"Host": "a..b"})
    answer = connection.getresponse()
    assert (answer.status, answer.getheader("Content-Type")) == (
        400, "text/html; charset=utf-8")
    connection.close()


def test_a_wrong_method_is_answered_with_the_allowed_ones(served):
    token = add_reader(served.root, ADA)
    reply = http("PUT", f"{served.url}/unsubscribe/{token}")
    assert (reply.status, reply.headers["Allow"]) == (405, "GET, HEAD, OPTIONS, POST")


def test_a_stopped_readers_old_preferences_form_saves_nothing(served):
    token = add_reader(served.root, ADA)
    page = http("GET", f"{served.url}/preferences/{token}")
    http("POST", f"{served.url}/unsubscribe/{token}", form=ONE_CLICK)
    before = dump(served.root)
    reply = http("POST", f"{served.url}/preferences/{token}",
                 form={"csrf": csrf_of(page.body), "cadence": "daily"})
    assert reply.status == 409
    assert "This address gets no email" in reply.body and "Saved." not in reply.body
    assert dump(served.root) == before


def test_an_address_mail_cannot_carry_is_refused_at_sign_up(served):
    page = http("GET", f"{served.url}/")
    served.clock.advance(seconds=5)
    reply = http("POST", f"{served.url}/subscribe",
                 form={"csrf": csrf_of(page.body), "email": "zoë@example.com"})
    assert reply.status == 400
    assert "That is not an email address" in reply.body
    assert reader(served.root, "zoë@example.com")[0] is None


# ---------------------------------------------------------------- the secret and the app


def test_create_app_refuses_to_start_without_a_secret(tmp_path):
    settings = site_settings(tmp_path).override("web.secret_key", "")
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    assert str(refused.value) == (
        "DIGEST_SECRET_KEY (or web.secret_key) is not set: readers' links and the web app's "
        "forms are signed with it; keep it outside the repository (for a local try-out, "
        "digest web --dev uses a random one)")
    with pytest.raises(ConfigError) as short:
        create_app(settings.override("web.secret_key", "too-short"))
    assert str(short.value) == (
        "DIGEST_SECRET_KEY (or web.secret_key) must be at least 16 characters")


def test_dev_mode_uses_a_random_secret_with_a_warning(tmp_path, caplog):
    settings = site_settings(tmp_path).override("web.secret_key", "")
    with caplog.at_level(logging.WARNING, logger="digest.web"):
        first, second = create_app(settings, dev=True), create_app(settings, dev=True)
    assert "--dev uses a random secret for this process" in caplog.text
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.test_client().get("/").status_code == 200


def test_digest_web_without_a_secret_is_an_error(tmp_path):
    config = site_settings(tmp_path).root / "digest.toml"
    result = CliRunner(env={"DIGEST_SECRET_KEY": ""}).invoke(
        cli, ["--config", str(config), "web"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: DIGEST_SECRET_KEY (or web.secret_key) is not set")
    assert "gunicorn 'digest.web.wsgi:app'" in CliRunner().invoke(cli, ["web", "--help"]).output


def test_digest_web_on_a_port_in_use_is_an_error(tmp_path):
    config = site_settings(tmp_path).root / "digest.toml"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["--config", str(config), "web", "--dev", "--port",
                                          str(port)])
    assert result.exit_code == 1
    assert result.stderr.endswith(
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_digest_web_serves_until_ctrl_c_and_keeps_tokens_out_of_its_log(tmp_path):
    config = site_settings(tmp_path).root / "digest.toml"
    token = add_reader(tmp_path, ADA)
    env = {**os.environ, "DIGEST_SECRET_KEY": SECRET}
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "web", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=default_sigint)
    try:
        assert select.select([process.stdout], [], [], WAIT_S)[0], "no output from digest web"
        line = process.stdout.readline()
        found = re.fullmatch(r"Serving the readers' pages at (http://127\.0\.0\.1:\d+)/ "
                             r"\(Ctrl-C to stop\)\n", line)
        assert found, line
        assert http("GET", f"{found.group(1)}/unsubscribe/{token}").status == 200
        assert http("GET", f"{found.group(1)}/pr%65ferences/{token}").status == 200
        http("GET", f"{found.group(1)}/unsubscribe%2F{token}")  # logged decoded, as well
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        process.kill()
    assert (process.returncode, out) == (0, "Stopped\n")
    assert "GET /unsubscribe/… HTTP/1.1" in err and token not in err


def test_the_wsgi_entry_reads_digest_config(tmp_path):
    config = site_settings(tmp_path).root / "digest.toml"
    env = {**os.environ, "DIGEST_CONFIG": str(config), "DIGEST_SECRET_KEY": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", "from digest.web.wsgi import app; "
         "print(app.test_client().get('/').status_code)"],
        capture_output=True, text=True, env=env, cwd="/", timeout=30)
    assert (result.returncode, result.stdout) == (0, "200\n"), result.stderr


def test_the_readers_app_serves_the_event_webhook(tmp_path):
    app = create_app(site_settings(tmp_path))  # no webhook key: refused, but routed
    assert app.test_client().post("/hooks/sendgrid", data=b"[]").status_code == 503
