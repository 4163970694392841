"""The sign-up form against abuse (issue 10): one mailbox, one client network, per-domain
and site-wide caps, forged and cross-site posts, bots, repeat sign-ups, and confirmation
links that work once. The app runs in the Flask test client with a hand-moved clock."""

import threading
from http.client import HTTPConnection

import pytest
from web_support import (
    WAIT_S,
    Clock,
    add_reader,
    confirm_path,
    csrf_of,
    dump,
    outbox,
    parts,
    read_eml,
    reader,
    serving,
    site_settings,
    write_site,
)

from digest.web import create_app
from digest.web.abuse import client_key, mailbox_key

VICTIM = "victim@example.com"


@pytest.fixture
def clock():
    return Clock()


def make(tmp_path, clock, extra=""):
    app = create_app(site_settings(tmp_path, extra=extra), clock=clock)
    return app, app.test_client()


def tokens(app, clock, count):
    made = [app.extensions["digest"].tokens.form_token() for _ in range(count)]
    clock.advance(seconds=5)
    return iter(made)


def sign_up(client, token, email, ip="192.0.2.1", headers=None, **fields):
    return client.post("/subscribe", data={"csrf": token, "email": email, **fields},
                       environ_base={"REMOTE_ADDR": ip}, headers=headers or {})


def drain(app):
    assert app.extensions["digest"].mailer.drain(WAIT_S)


def mailed(root):
    return [read_eml(p)["To"] for p in outbox(root)]


# ---------------------------------------------------------------- one mailbox, one client


def test_a_mailbox_is_one_whatever_its_tags_dots_and_case():
    assert mailbox_key("Victim+1@Example.COM") == "victim@example.com"
    assert mailbox_key("v.i.c.t.i.m+news@GoogleMail.com") == "victim@gmail.com"
    assert mailbox_key("V.ictim@gmail.com") == "victim@gmail.com"
    assert mailbox_key("v.ictim@example.com") == "v.ictim@example.com"  # dots count elsewhere


def test_a_client_is_an_ipv4_address_or_an_ipv6_64():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff:1:2:3") \
        == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"


def test_tag_dot_and_case_variants_from_five_clients_get_one_email(tmp_path, clock):
    app, client = make(tmp_path, clock)
    forms = tokens(app, clock, 90)
    variants = [f"victim+{i}@example.com" for i in range(45)] + \
        [f"Victim+{i}@EXAMPLE.com" for i in range(45)]
    statuses = {sign_up(client, next(forms), email, ip=f"198.51.100.{i % 5}").status_code
                for i, email in enumerate(variants)}
    drain(app)
    assert statuses == {200}
    assert len(outbox(tmp_path)) == 1  # was 90


def test_gmail_dots_are_one_mailbox(tmp_path, clock):
    app, client = make(tmp_path, clock)
    forms = tokens(app, clock, 3)
    for email in ["victim@gmail.com", "v.ictim@gmail.com", "vi.c.tim+x@googlemail.com"]:
        sign_up(client, next(forms), email, ip=f"198.51.100.{len(email)}")
    drain(app)
    assert mailed(tmp_path) == ["victim@gmail.com"]


def test_every_address_of_an_ipv6_64_is_one_client(tmp_path, clock):
    app, client = make(tmp_path, clock)
    forms = tokens(app, clock, 25)
    statuses = [sign_up(client, next(forms), f"r{i}@example{i}.org",
                        ip=f"2001:db8:7:7:{i:x}::1").status_code for i in range(25)]
    drain(app)
    assert statuses == [200] * 20 + [429] * 5


def test_a_domain_gets_at_most_30_confirmations_an_hour(tmp_path, clock):
    app, client = make(tmp_path, clock)
    forms = tokens(app, clock, 40)
    for i in range(40):
        sign_up(client, next(forms), f"reader{i}@example.net", ip=f"10.9.{i}.1")
    drain(app)
    assert len(outbox(tmp_path)) == 30
    clock.advance(hours=1)
    sign_up(client, next(tokens(app, clock, 1)), "late@example.net", ip="10.9.99.1")
    drain(app)
    assert len(outbox(tmp_path)) == 31


def test_the_site_sends_at_most_max_confirmations_per_hour(tmp_path, clock):
    app, client = make(tmp_path, clock, extra="max_confirmations_per_hour = 5\n")
    forms = tokens(app, clock, 12)
    for i in range(10):
        sign_up(client, next(forms), f"reader@example{i}.org", ip=f"10.8.{i}.1")
    drain(app)
    assert len(outbox(tmp_path)) == 5
    clock.advance(hours=1)
    sign_up(client, next(tokens(app, clock, 1)), "later@example99.org", ip="10.8.99.1")
    drain(app)
    assert len(outbox(tmp_path)) == 6


def test_the_default_site_cap_is_100_an_hour(tmp_path, clock):
    app, _ = make(tmp_path, clock)
    assert app.extensions["digest"].confirmations.site_limits == ((100, 3600.0),)


# ---------------------------------------------------------------- proxies and redirects


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(tmp_path, clock):
    app, client = make(tmp_path, clock, extra="proxies = 1\n")
    forms = tokens(app, clock, 25)
    statuses = [sign_up(client, next(forms), f"r{i}@example.com", ip="203.0.113.9",
                        headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                for i in range(25)]
    drain(app)
    assert statuses == [200] * 20 + [429] * 5  # was 25 of 25


def test_a_forwarded_header_from_a_configured_proxy_is_used(tmp_path, clock):
    extra = 'proxies = 1\ntrusted_proxies = ["203.0.113.0/24"]\n'
    app, client = make(tmp_path, clock, extra=extra)
    forms = tokens(app, clock, 25)
    statuses = {sign_up(client, next(forms), f"r{i}@example.com", ip="203.0.113.9",
                        headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
                for i in range(25)}
    drain(app)
    assert statuses == {200}


def test_a_trusted_proxy_that_is_not_an_address_is_a_config_error(tmp_path):
    from digest.config import load_settings
    from digest.errors import ConfigError

    config = write_site(tmp_path, extra='trusted_proxies = ["proxy.local"]\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={})
    assert "web.trusted_proxies: 'proxy.local' is not an IP address or network" \
        in str(refused.value)


@pytest.mark.parametrize("path", ["/unsubscribe//{token}", "//unsubscribe//{token}",
                                  "/static//web.css"])
def test_a_redirect_is_never_built_from_the_host_header(tmp_path, clock, path):
    with serving(site_settings(tmp_path), clock) as served:
        token = add_reader(served.root, VICTIM)
        connection = HTTPConnection(served.url.removeprefix("http://"), timeout=WAIT_S)
        connection.request("GET", path.format(token=token), headers={"Host": "evil.test"})
        answer = connection.getresponse()
        connection.close()
    expected = f"/unsubscribe/{token}" if "unsubscribe" in path else "/static/web.css"
    assert (answer.status, answer.getheader("Location")) == (308, expected)


# ---------------------------------------------------------------- forged and cross-site posts


def test_a_sign_up_form_works_once(tmp_path, clock):
    app, client = make(tmp_path, clock)
    form = next(tokens(app, clock, 1))
    assert sign_up(client, form, "a@example.com").status_code == 200
    assert sign_up(client, form, "b@example.com").status_code == 400
    drain(app)
    assert mailed(tmp_path) == ["a@example.com"]


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.test"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
])
def test_a_cross_site_post_is_refused(tmp_path, clock, headers):
    app, client = make(tmp_path, clock)
    reply = sign_up(client, next(tokens(app, clock, 1)), VICTIM, headers=headers)
    drain(app)
    assert reply.status_code == 403
    assert "This form can only be sent from this site&#39;s own pages." in reply.text
    assert outbox(tmp_path) == []


def test_a_same_origin_post_is_accepted(tmp_path, clock):
    app, client = make(tmp_path, clock)
    forms = tokens(app, clock, 3)
    own = {"Origin": "https://readers.example.org", "Sec-Fetch-Site": "same-origin"}
    assert sign_up(client, next(forms), "a@example.com", headers=own).status_code == 200
    local = {"Origin": "http://localhost"}  # the Host the browser sent
    assert sign_up(client, next(forms), "b@example.com", headers=local).status_code == 200
    # Chromium posting our own form: no referrer policy makes its Origin "null"
    browser = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert sign_up(client, next(forms), "c@example.com", headers=browser).status_code == 200


def test_one_click_unsubscribe_from_anywhere_still_works(tmp_path, clock):
    _, client = make(tmp_path, clock)
    token = add_reader(tmp_path, VICTIM)
    reply = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"},
                        headers={"Origin": "https://mail.example", "Sec-Fetch-Site": "cross-site"})
    assert reply.status_code == 200
    assert reader(tmp_path, VICTIM)[0].status == "unsubscribed"


def test_a_readers_form_posted_cross_site_is_refused(tmp_path, clock):
    _, client = make(tmp_path, clock)
    token = add_reader(tmp_path, VICTIM)
    page = client.get(f"/unsubscribe/{token}")
    reply = client.post(f"/unsubscribe/{token}", data={"csrf": csrf_of(page.text)},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert reply.status_code == 403
    assert reader(tmp_path, VICTIM)[0].status == "active"


# ---------------------------------------------------------------- bots


def test_a_filled_honeypot_gets_the_same_page_and_nothing_happens(tmp_path, clock):
    app, client = make(tmp_path, clock)
    assert 'name="website"' in client.get("/").text
    forms = tokens(app, clock, 2)
    human = sign_up(client, next(forms), "human@example.com")
    bot = sign_up(client, next(forms), "bot@example.com", website="http://spam.example")
    drain(app)
    assert (bot.status_code, bot.text) == (200, human.text)
    assert mailed(tmp_path) == ["human@example.com"]
    assert reader(tmp_path, "bot@example.com")[0] is None


def test_a_form_sent_within_3_seconds_is_shown_again(tmp_path, clock):
    app, client = make(tmp_path, clock)
    form = app.extensions["digest"].tokens.form_token()
    clock.advance(seconds=2)
    reply = sign_up(client, form, "quick@example.com")
    drain(app)
    assert reply.status_code == 400
    assert "That was quick: please check the address and send the form again." in reply.text
    assert 'value="quick@example.com"' in reply.text
    assert outbox(tmp_path) == []


# ---------------------------------------------------------------- the same work either way


def address_blind(lines):
    return [line for line in lines if not line.startswith('INSERT INTO "rate_hits"')]


def test_the_request_itself_reads_and_writes_nothing(tmp_path, clock):
    """Whatever the address, the answer comes before any store work about it: a paused
    mail thread leaves the database as it was until it runs, but for the counts every
    request makes alike (its client's sign-ups, its form's nonce: `rate_hits`)."""
    app, client = make(tmp_path, clock)
    for email, status in [("active@example.com", "active"), ("gone@example.com", "unsubscribed")]:
        add_reader(tmp_path, email, status=status)
    gate = threading.Event()
    app.extensions["digest"].mailer.run(lambda: gate.wait(WAIT_S))
    before = dump(tmp_path)
    forms = tokens(app, clock, 3)
    replies = [sign_up(client, next(forms), email)
               for email in ["new@example.com", "active@example.com", "gone@example.com"]]
    assert address_blind(dump(tmp_path)) == address_blind(before)
    gate.set()
    drain(app)
    assert len({(r.status_code, r.text) for r in replies}) == 1
    assert reader(tmp_path, "new@example.com")[0].status == "pending"


# ---------------------------------------------------------------- repeat sign-ups


def test_an_unconfirmed_address_gets_at_most_5_confirmations_ever(tmp_path, clock):
    settings, sent = site_settings(tmp_path), 0
    for _ in range(8):
        app = create_app(settings, clock=clock)  # a restart each day forgets the limiters
        client = app.test_client()
        sign_up(client, next(tokens(app, clock, 1)), VICTIM)
        drain(app)
        sent += len(outbox(tmp_path))
        for path in outbox(tmp_path):
            path.unlink()
        clock.advance(days=1)
    assert sent == 5


def test_a_complained_address_gets_the_same_page_and_no_email(tmp_path, clock):
    app, client = make(tmp_path, clock)
    add_reader(tmp_path, VICTIM, status="complained")
    forms = tokens(app, clock, 2)
    other = sign_up(client, next(forms), "new@example.com")
    reply = sign_up(client, next(forms), VICTIM)
    drain(app)
    assert (reply.status_code, reply.text) == (200, other.text)
    assert mailed(tmp_path) == ["new@example.com"]
    assert reader(tmp_path, VICTIM)[0].status == "complained"


def confirmation_link(root, email):
    [path] = [p for p in outbox(root) if email in p.name]
    return confirm_path(parts(read_eml(path))[0])


def test_an_active_readers_confirmation_link_works_once(tmp_path, clock):
    app, client = make(tmp_path, clock)
    add_reader(tmp_path, VICTIM)
    sign_up(client, next(tokens(app, clock, 1)), VICTIM)
    drain(app)
    path = confirmation_link(tmp_path, VICTIM)
    page = client.get(path)
    assert page.status_code == 200
    assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 303
    assert client.get(path).status_code == 404
    assert client.post(path, data={"csrf": csrf_of(page.text)}).status_code == 404


def test_using_a_link_uses_up_the_older_ones(tmp_path, clock):
    app, client = make(tmp_path, clock)
    sign_up(client, next(tokens(app, clock, 1)), VICTIM)
    drain(app)
    first = confirmation_link(tmp_path, VICTIM)
    for p in outbox(tmp_path):
        p.unlink()
    clock.advance(minutes=11)
    sign_up(client, next(tokens(app, clock, 1)), VICTIM, ip="192.0.2.2")
    drain(app)
    second = confirmation_link(tmp_path, VICTIM)
    page = client.get(second)
    assert client.post(second, data={"csrf": csrf_of(page.text)}).status_code == 303
    assert client.get(first).status_code == 404
