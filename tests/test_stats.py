"""`digest stats` on a ledger built by a real send, plus SendGrid webhook events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from send_support import API_KEY, NOW, add_readers, digest, set_send_environment, write_site
from sendgrid_server import SendGridServer
from webhook_support import Signer, make_hooks_app

from digest.config import load_settings
from digest.store import open_store

MANUAL = "2026-11-22..2026-11-28"


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def events_for(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What SendGrid would post about the requests it accepted: delivered to all but
    reader5, who bounced; opens, a click, a spam report and an unsubscribe."""
    events: list[dict[str, Any]] = []

    def add(name: str, email: str, args: dict[str, str], **fields: Any) -> None:
        events.append({"email": email, "event": name, "timestamp": 1_764_403_200 + len(events),
                       "sg_event_id": f"e{len(events)}", **args, **fields})

    for body in bodies:
        for personalization in body["personalizations"]:
            email, args = personalization["to"][0]["email"], body["custom_args"]
            if email == "reader5@example.com":
                add("bounce", email, args, type="bounce", status="5.1.1")
                continue
            add("delivered", email, args)
            if email in ("reader0@example.com", "reader1@example.com"):
                add("open", email, args)
                add("open", email, args)
            if email == "reader0@example.com":
                add("click", email, args, url="https://send.example.org/posts/x")
            if email == "reader3@example.com":
                add("unsubscribe", email, args)
            if email == "reader4@example.com":
                add("spamreport", email, args)
    return events


@pytest.fixture
def sent(tmp_path: Path, env) -> Path:
    """A weekly issue sent to six readers through the local SendGrid server, the events
    SendGrid reported about it, then a manual issue to those still active."""
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 6)
        assert digest(config, "weekly", "--now", NOW).exit_code == 0
        bodies = [accepted.body for accepted in server.accepted]
        signer = Signer()
        settings = load_settings(config).override("sendgrid.webhook_public_key", signer.public)
        raw = json.dumps(events_for(bodies)).encode()
        hooks = make_hooks_app(settings).test_client()
        assert hooks.post("/hooks/sendgrid", data=raw,
                          headers=signer.headers(raw)).status_code == 200
        manual = digest(config, "send", "--since", "2026-11-22", "--until", "2026-11-28",
                        "--yes")
        assert manual.exit_code == 0, manual.output
    return config


TABLE = (
    "ISSUE                   PLANNED  ACCEPTED  FAILED  UNKNOWN  SKIPPED  DELIVERED  "
    "BOUNCED  COMPLAINED  UNSUBSCRIBED  OPENED  CLICKED\n"
    "2026-11-22..2026-11-28  3        3         0       0        0        -          "
    "-        -           -             -       -\n"
    "2026-W48                6        6         0       0        0        5          "
    "1        1           1             2       1\n")


def test_stats_table(sent):
    result = digest(sent, "stats")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == TABLE


def test_removing_readers_changes_no_past_count(sent):
    """reader0 got both issues, opened and clicked; reader5 bounced. Removing them
    forgets who they were, not that the issues went to them."""
    before = digest(sent, "stats", "--json").stdout
    for email in ("reader0@example.com", "reader5@example.com"):
        assert digest(sent, "subscribers", "remove", email).exit_code == 0
    after = digest(sent, "stats", "--json")
    assert (after.exit_code, after.stdout) == (0, before)
    assert digest(sent, "stats").stdout == TABLE
    with open_store(sent.parent / "digest.db") as store:
        assert store.conn.execute(
            "SELECT count(*) FROM deliveries WHERE subscriber_id IS NULL").fetchone() == (3,)


def test_stats_json_is_stable(sent):
    result = digest(sent, "stats", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [  # in the ledger's order, by window end
        {"key": MANUAL, "cadence": "manual", "status": "done", "planned": 3, "accepted": 3,
         "failed": 0, "unknown": 0, "pending": 0, "skipped": 0, "delivered": None,
         "bounced": None, "complained": None, "unsubscribed": None, "opened": None,
         "clicked": None},
        {"key": "2026-W48", "cadence": "weekly", "status": "done", "planned": 6,
         "accepted": 6, "failed": 0, "unknown": 0, "pending": 0, "skipped": 0,
         "delivered": 5, "bounced": 1, "complained": 1, "unsubscribed": 1, "opened": 2,
         "clicked": 1},
    ]
    assert list(json.loads(result.stdout)[1]) == [
        "key", "cadence", "status", "planned", "accepted", "failed", "unknown", "pending",
        "skipped", "delivered", "bounced", "complained", "unsubscribed", "opened", "clicked"]


def test_stats_for_one_issue(sent):
    result = digest(sent, "stats", "--issue", "2026-W48", "--json")
    assert [row["key"] for row in json.loads(result.stdout)] == ["2026-W48"]
    table = digest(sent, "stats", "--issue", MANUAL)
    assert table.stdout.splitlines()[1].split() == [MANUAL, "3", "3", "0", "0", "0",
                                                    "-", "-", "-", "-", "-", "-"]


def test_stats_for_an_unknown_issue_is_an_error(sent):
    result = digest(sent, "stats", "--issue", "1999-W01")
    assert (result.exit_code, result.stderr) == (
        1, "Error: no issue 1999-W01 in the ledger (see: digest issues)\n")
