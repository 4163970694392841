"""SendGrid's signed event webhook: signatures, the event mapping, idempotency."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import make_settings
from webhook_support import SIGNATURE, TIMESTAMP, Signer, make_hooks_app, serving

from digest import feedback
from digest.config import Settings
from digest.errors import StoreError
from digest.ledger import Ledger, PlannedSegment
from digest.location import Location, PostgresURL
from digest.render import Email
from digest.select import Window
from digest.store import Change, NewSubscriber, Store, open_store
from digest.web import hooks

GROUP = 4242
ISSUE = "2026-W48"
READERS = {  # address: status before the batch
    "ada@example.com": "active",
    "bob@example.com": "active",
    "cy@example.com": "active",
    "dee@example.com": "active",
    "eve@example.com": "active",
    "fay@example.com": "unsubscribed",
    "gus@example.com": "bounced",
    "hal@example.com": "pending",
    "ivy@example.com": "active",
}


# ---------------------------------------------------------------- helpers


def http_post(url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def event(name: str, email: str, n: int, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it for a digest (custom args at the top level)."""
    return {"email": email, "timestamp": 1_764_400_000 + n, "event": name,
            "sg_event_id": f"ev-{name}-{n}", "sg_message_id": f"msg{n}.filter0001",
            "smtp-id": f"<{n}@ismtpd>", "category": ["digest", ISSUE],
            "issue": ISSUE, "segment": "all", **fields}


def the_batch() -> list[dict[str, Any]]:
    """One event of each kind the webhook maps, plus some it ignores."""
    return [
        event("delivered", "ada@example.com", 1, response="250 OK"),
        event("open", "ada@example.com", 2, useragent="Mail", ip="192.0.2.1"),
        event("open", "ada@example.com", 3, useragent="Mail", ip="192.0.2.1"),
        event("click", "ada@example.com", 4, url="https://news.example.org/posts/a"),
        event("delivered", "bob@example.com", 5),
        event("bounce", "bob@example.com", 6, type="bounce", status="5.1.1",
              reason="550 5.1.1 <bob@example.com>: no such user"),
        event("bounce", "cy@example.com", 7, type="blocked", status="4.7.1",
              bounce_classification="Reputation", reason="421 try later <cy@example.com>"),
        event("spamreport", "dee@example.com", 8),
        event("unsubscribe", "eve@example.com", 9),
        event("group_resubscribe", "fay@example.com", 10, asm_group_id=GROUP),
        event("group_resubscribe", "gus@example.com", 11, asm_group_id=GROUP),
        event("dropped", "hal@example.com", 12, reason="Invalid"),
        event("group_unsubscribe", "ivy@example.com", 13, asm_group_id=GROUP),
        event("processed", "ivy@example.com", 14),
        event("deferred", "ivy@example.com", 15, response="400 try again later"),
        event("delivered", "stranger@example.com", 16),
    ]


def statuses(path: Path) -> dict[str, str]:
    with open_store(path) as store:
        return {s.email: s.status for s in store.subscribers()}


def snapshot(path: Location) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that the webhook may write, to show that nothing changed."""
    with open_store(path) as store:
        return {table: sorted(tuple(row) for row in store.conn.execute(
                    f"SELECT * FROM {table}").fetchall())
                for table in ("subscribers", "subscriber_events", "webhook_events",
                              "issue_activity", "soft_bounces")}


def stored_bytes(path: Location) -> bytes:
    """What the store keeps: the SQLite files' bytes, or every row of every table."""
    if isinstance(path, Path):
        return b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*"))
    with open_store(path) as store:
        return "\n".join(repr(row) for table in store.conn.tables()
                         for row in store.conn.execute(f"SELECT * FROM {table}")).encode()


def plan_issue(store: Store, key: str = ISSUE) -> None:
    """An issue in the ledger, as a send leaves it (the events are counted against it)."""
    window = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    ids = tuple(s.id for s in store.subscribers())
    Ledger(store).create(key, "weekly", window, [PlannedSegment(
        "all", (), ("a-story",), Email("Subject", "", "<html></html>", "text"), ids)])


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def site(tmp_path: Path, signer: Signer, db: Location) -> Settings:
    """The readers and a planned issue, in each backend in turn (the `db` fixture)."""
    settings = make_settings(tmp_path, sendgrid__webhook_public_key=signer.public,
                             sendgrid__asm_group_id=GROUP,
                             store__path=db.dsn if isinstance(db, PostgresURL) else str(db))
    with open_store(settings.store_path) as store:
        store.insert([NewSubscriber(email, status=status) for email, status in READERS.items()],
                     "cli")
        plan_issue(store)
    return settings


@pytest.fixture
def client(site: Settings) -> Any:
    return make_hooks_app(site).test_client()


def post(client: Any, signer: Signer, events: Any, at: float | None = None) -> Any:
    raw = json.dumps(events).encode()
    return client.post("/hooks/sendgrid", data=raw, headers=signer.headers(raw, at))


# ---------------------------------------------------------------- accepted events


def test_signed_events_change_the_store_as_mapped(site, signer, client):
    response = post(client, signer, the_batch())
    assert response.status_code == 200
    assert response.get_json() == {
        "received": 16, "malformed": 0, "duplicates": 0, "unknown_addresses": 1,
        "status_changes": 6, "counted": 10, "soft_bounces": 1,
        "batches_resolved": 0}
    assert statuses(site.store_path) == {
        "ada@example.com": "active",
        "bob@example.com": "bounced",  # bounce, type bounce
        "cy@example.com": "active",  # bounce, type blocked: a soft bounce
        "dee@example.com": "complained",  # spamreport
        "eve@example.com": "unsubscribed",  # unsubscribe
        "fay@example.com": "active",  # group_resubscribe undoes an unsubscribe
        "gus@example.com": "bounced",  # ... but never a bounce
        "hal@example.com": "bounced",  # dropped: Invalid
        "ivy@example.com": "unsubscribed",  # group_unsubscribe
    }
    with open_store(site.store_path) as store:
        assert feedback.activity_counts(store.conn, ISSUE) == {
            "delivered": 2, "bounced": 2, "complained": 1, "unsubscribed": 2, "opened": 1,
            "clicked": 1}
        cy = store.get("cy@example.com")
        assert feedback.soft_bounces(store, cy) == [("2025-11-29T07:06:47+00:00", ISSUE)]
        bob = store.get("bob@example.com")
        assert [(e.old, e.new, e.source) for e in store.events(bob)] == [
            (None, "active", "cli"), ("active", "bounced", "webhook")]


def test_events_are_applied_over_real_http(site, signer):
    raw = json.dumps(the_batch()).encode()
    with serving(make_hooks_app(site)) as url:
        status, body = http_post(f"{url}/hooks/sendgrid", raw, signer.headers(raw))
    assert status == 200
    assert json.loads(body)["status_changes"] == 6
    assert statuses(site.store_path)["dee@example.com"] == "complained"


def test_nothing_but_counts_is_kept_of_an_event(site, signer, client):
    post(client, signer, the_batch())
    with open_store(site.store_path) as store:
        soft = store.conn.execute("SELECT * FROM soft_bounces").fetchall()
    assert [row[4:] for row in soft] == [("Reputation", "4.7.1")]
    data = stored_bytes(site.store_path)
    for trace in (b"stranger@example.com", b"no such user", b"192.0.2.1", b"try later",
                  b"msg1.filter0001", b"posts/a"):
        assert trace not in data


def test_a_replayed_batch_changes_nothing(site, signer, client):
    assert post(client, signer, the_batch()).status_code == 200
    before = snapshot(site.store_path)
    again = post(client, signer, the_batch())
    assert again.status_code == 200
    assert again.get_json()["duplicates"] == 16
    assert snapshot(site.store_path) == before


def test_an_event_twice_in_one_batch_counts_once(site, signer, client):
    twice = [event("spamreport", "ada@example.com", 1)] * 2
    assert post(client, signer, twice).get_json()["duplicates"] == 1
    with open_store(site.store_path) as store:
        ada = store.get("ada@example.com")
        assert [(e.old, e.new) for e in store.events(ada)][1:] == [("active", "complained")]


def test_events_apply_in_time_order_whatever_the_batch_order(site, signer, client):
    batch = [event("group_resubscribe", "ada@example.com", 9, asm_group_id=GROUP),
             event("group_unsubscribe", "ada@example.com", 1, asm_group_id=GROUP)]
    post(client, signer, batch)
    with open_store(site.store_path) as store:
        ada = store.get("ada@example.com")
        assert ada.status == "active"
        assert [(e.old, e.new, e.source) for e in store.events(ada)][1:] == [
            ("active", "unsubscribed", "webhook"), ("unsubscribed", "active", "webhook")]


def test_events_for_unknown_addresses_and_other_mail_change_nothing(site, signer, client):
    before = snapshot(site.store_path)
    batch = [event("spamreport", "nobody@example.com", 1),
             event("delivered", "ada@example.com", 2, issue="1999-W01"),  # not in the ledger
             event("open", "ada@example.com", 3, test="yes"),  # a [TEST] copy
             {k: v for k, v in event("click", "ada@example.com", 4).items() if k != "issue"},
             event("group_unsubscribe", "ada@example.com", 5, asm_group_id=GROUP + 1),
             event("group_resubscribe", "fay@example.com", 6, asm_group_id=GROUP + 1),
             "not an event", {"event": "open"}]
    response = post(client, signer, batch)
    assert response.status_code == 200
    assert response.get_json() | {"received": 0} == {
        "received": 0, "malformed": 2, "duplicates": 0, "unknown_addresses": 1,
        "status_changes": 0, "counted": 0, "soft_bounces": 0,
        "batches_resolved": 0}
    after = snapshot(site.store_path)
    assert len(after.pop("webhook_events")) == 6
    before.pop("webhook_events")
    assert after == before


def test_removing_a_subscriber_keeps_the_counts_but_not_them(site, signer, client):
    # Until migration 5 removing deleted their activity and the issue's counts fell
    # (ada's open and click were lost); now the rows stay with no subscriber.
    post(client, signer, the_batch())
    with open_store(site.store_path) as store:
        cy, ada = store.get("cy@example.com"), store.get("ada@example.com")
        before = feedback.activity_counts(store.conn, ISSUE)
        assert store.remove("cy@example.com") and store.remove("ada@example.com")
        for table in ("issue_activity", "soft_bounces"):
            assert store.conn.execute(
                f"SELECT count(*) FROM {table} WHERE subscriber_id IN (?, ?)",
                (cy.id, ada.id)).fetchone()[0] == 0
        assert store.conn.execute(
            "SELECT kind FROM issue_activity WHERE subscriber_id IS NULL ORDER BY kind"
        ).fetchall() == [("clicked",), ("delivered",), ("opened",)]
        assert store.conn.execute("SELECT count(*) FROM soft_bounces").fetchone() == (0,)
        assert feedback.activity_counts(store.conn, ISSUE) == before == {
            "delivered": 2, "bounced": 2, "complained": 1, "unsubscribed": 2, "opened": 1,
            "clicked": 1}


# ---------------------------------------------------------------- refused requests


def refused_requests(signer: Signer, raw: bytes) -> dict[str, dict[str, str]]:
    other = Signer()
    now = time.time()
    good = signer.headers(raw)
    return {
        "missing signature": {k: v for k, v in good.items() if k != SIGNATURE},
        "missing timestamp": {k: v for k, v in good.items() if k != TIMESTAMP},
        "unsigned": {"Content-Type": "application/json"},
        "other key": other.headers(raw),
        "other body": signer.headers(raw + b" "),
        "timestamp changed": good | {TIMESTAMP: str(int(now) - 1)},
        "not base64": good | {SIGNATURE: "not*base64"},
        "not DER": good | {SIGNATURE: base64.b64encode(b"junk").decode()},
        "stale": signer.headers(raw, now - 660),  # a minute past the skew allowed: a
        # slow machine may take seconds between signing and checking
        "future": signer.headers(raw, now + 660),
        "not a number": good | {TIMESTAMP: "1e9"},
    }


@pytest.mark.parametrize("case", list(refused_requests(Signer(), b"[]")))
def test_bad_requests_get_403_and_change_nothing(site, signer, client, case):
    raw = json.dumps(the_batch()).encode()
    before = snapshot(site.store_path)
    response = client.post("/hooks/sendgrid", data=raw,
                           headers=refused_requests(signer, raw)[case])
    assert response.status_code == 403
    assert snapshot(site.store_path) == before


def test_refused_over_real_http_too(site, signer):
    raw = json.dumps(the_batch()).encode()
    before = snapshot(site.store_path)
    with serving(make_hooks_app(site)) as url:
        stale = http_post(f"{url}/hooks/sendgrid", raw, signer.headers(raw, time.time() - 700))
        unsigned = http_post(f"{url}/hooks/sendgrid", raw, {"Content-Type": "application/json"})
    assert stale == (403, b"stale timestamp")
    assert unsigned == (403, b"missing signature")
    assert snapshot(site.store_path) == before


def test_nine_minutes_of_clock_skew_is_accepted(site, signer, client):
    assert post(client, signer, the_batch(), time.time() - 540).status_code == 200


def test_the_app_clock_judges_the_timestamp_and_dates_the_changes(site, signer):
    app_time = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)  # years from the real time
    client = make_hooks_app(site, clock=lambda: app_time).test_client()
    assert post(client, signer, the_batch()).status_code == 403  # signed at the real time
    assert post(client, signer, the_batch(), app_time.timestamp()).status_code == 200
    with open_store(site.store_path) as store:
        bob = store.get("bob@example.com")
        assert [(e.at, e.new) for e in store.events(bob)][-1] == (app_time, "bounced")


def test_without_a_public_key_every_request_gets_503(site, signer):
    client = make_hooks_app(site.override("sendgrid.webhook_public_key", "")).test_client()
    before = snapshot(site.store_path)
    assert post(client, signer, the_batch()).status_code == 503
    assert snapshot(site.store_path) == before


def test_the_key_may_be_pasted_with_its_pem_armour(site, signer):
    pem = f"-----BEGIN PUBLIC KEY-----\n{signer.public}\n-----END PUBLIC KEY-----\n"
    client = make_hooks_app(site.override("sendgrid.webhook_public_key", pem)).test_client()
    assert post(client, signer, the_batch()).status_code == 200


def test_a_signed_body_that_is_not_a_list_of_events_gets_400(site, signer, client):
    raw = b'{"event": "open"}'
    response = client.post("/hooks/sendgrid", data=raw, headers=signer.headers(raw))
    assert response.status_code == 400


# ---------------------------------------------------------------- the resubscribe rule


def test_group_resubscribe_reactivates_only_through_the_webhook(site):
    with open_store(site.store_path) as store:
        fay = store.get("fay@example.com")
        back = replace(fay, status="active")
        for source in ("cli", "import", "sync"):
            with pytest.raises(StoreError, match="only the reader can resubscribe"):
                store.update([Change(fay, back, event="group_resubscribe")], source)
        with pytest.raises(StoreError, match="only the reader can resubscribe"):
            store.update([Change(fay, back)], "webhook")  # any other webhook event
        with pytest.raises(StoreError, match="only the reader can resubscribe"):
            store.update([Change(fay, replace(fay, status="pending"),
                                 event="group_resubscribe")], "webhook")
        gus = store.get("gus@example.com")  # bounced: a resubscribe does not undo that
        with pytest.raises(StoreError, match=r"gus@example\.com is bounced"):
            store.update([Change(gus, replace(gus, status="active"),
                                 event="group_resubscribe")], "webhook")
        store.update([Change(fay, back, event="group_resubscribe")], "webhook")
        assert store.get("fay@example.com").status == "active"


@pytest.mark.parametrize(("fields", "expected"), [
    ({"event": "bounce", "type": "bounce"}, feedback.Effect("bounced", "bounced")),
    ({"event": "bounce"}, feedback.Effect("bounced", "bounced")),
    ({"event": "bounce", "type": "blocked"}, feedback.Effect(soft_bounce=True)),
    ({"event": "dropped", "reason": "Invalid"}, feedback.Effect("bounced", "bounced")),
    ({"event": "dropped", "reason": "Bounced Address"}, feedback.Effect("bounced")),
    ({"event": "dropped", "reason": "Spam Reporting Address"}, feedback.Effect("complained")),
    ({"event": "dropped", "reason": "Unsubscribed Address"}, feedback.Effect("unsubscribed")),
    ({"event": "dropped", "reason": "Spam Content"}, feedback.NOTHING),
    ({"event": "spamreport"}, feedback.Effect("complained", "complained")),
    ({"event": "unsubscribe"}, feedback.Effect("unsubscribed", "unsubscribed")),
    ({"event": "group_unsubscribe", "asm_group_id": GROUP},
     feedback.Effect("unsubscribed", "unsubscribed")),
    ({"event": "group_unsubscribe"}, feedback.Effect("unsubscribed", "unsubscribed")),
    ({"event": "group_unsubscribe", "asm_group_id": 1}, feedback.NOTHING),
    ({"event": "group_resubscribe", "asm_group_id": GROUP}, feedback.Effect("active")),
    ({"event": "group_resubscribe"}, feedback.NOTHING),
    ({"event": "delivered"}, feedback.Effect(kind="delivered")),
    ({"event": "open"}, feedback.Effect(kind="opened")),
    ({"event": "click"}, feedback.Effect(kind="clicked")),
    ({"event": "processed"}, feedback.NOTHING),
    ({"event": "deferred"}, feedback.NOTHING),
])
def test_the_mapping(fields, expected):
    assert feedback.effect_of(fields, GROUP) == expected


def test_without_a_group_a_resubscribe_is_never_honoured():
    assert feedback.effect_of({"event": "group_resubscribe", "asm_group_id": 7},
                              None) == feedback.NOTHING


def test_a_body_nested_thousands_deep_is_not_a_batch():
    assert hooks.parse(b"[" * 100_000 + b"]" * 100_000) is None
