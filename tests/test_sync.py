"""`digest sync` against the local SendGrid server's suppression lists, and before a send."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from send_support import API_KEY, NOW, add_readers, digest, set_send_environment, write_site
from sendgrid_server import SendGridServer
from test_unknowns import SUNDAY

from digest import pipeline, runs, send, sync
from digest.config import load_settings
from digest.store import Change, NewSubscriber, open_store

GROUP = 4242


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def statuses(root: Path) -> dict[str, str]:
    with open_store(root / "digest.db") as store:
        return {s.email: s.status for s in store.subscribers()}


def others(count: int, name: str) -> list[str]:
    return [f"{name}{i}@elsewhere.example" for i in range(count)]


def seed(server: SendGridServer) -> None:
    """More entries than a page on three lists; readers 0-5 on some of them."""
    server.set_suppressions("unsubscribes", [*others(600, "u"), "Reader0@Example.com",
                                             *others(601, "v"), "reader4@example.com"])
    server.set_group_suppressions(GROUP, [*others(599, "g"), "reader1@example.com"])
    server.set_suppressions("bounces", [*others(500, "b"), "reader2@example.com",
                                        "reader5@example.com"])
    server.set_suppressions("spam_reports", ["reader4@example.com", "x@elsewhere.example"])
    server.set_suppressions("invalid_emails", ["reader6@example.com"])


def add_more(root: Path) -> None:
    with open_store(root / "digest.db") as store:
        store.insert([NewSubscriber("reader5@example.com", status="unsubscribed"),
                      NewSubscriber("reader6@example.com", status="pending")], "cli")


def test_sync_reads_every_list_page_by_page_and_marks_subscribers(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, f"asm_group_id = {GROUP}\n")
        add_readers(tmp_path, 5)
        add_more(tmp_path)
        seed(server)
        result = digest(config, "sync")
        requests = server.suppression_requests
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "Read SendGrid's suppression lists (8 requests): global unsubscribes 1203, "
        "group unsubscribes 600, bounces 502, spam reports 2, invalid emails 1.\n"
        "Marked 5 subscribers: 2 unsubscribed, 2 bounced, 1 complained.\n")
    assert requests == [
        "/v3/suppression/unsubscribes?limit=500&offset=0",
        "/v3/suppression/unsubscribes?limit=500&offset=500",
        "/v3/suppression/unsubscribes?limit=500&offset=1000",
        f"/v3/asm/groups/{GROUP}/suppressions?limit=500&offset=0",
        "/v3/suppression/bounces?limit=500&offset=0",
        "/v3/suppression/bounces?limit=500&offset=500",
        "/v3/suppression/spam_reports?limit=500&offset=0",
        "/v3/suppression/invalid_emails?limit=500&offset=0",
    ]
    assert statuses(tmp_path) == {
        "reader0@example.com": "unsubscribed",  # global unsubscribe, other case
        "reader1@example.com": "unsubscribed",  # the group's
        "reader2@example.com": "bounced",  # on the second page of bounces
        "reader3@example.com": "active",
        "reader4@example.com": "complained",  # unsubscribed and spam report: the worse
        "reader5@example.com": "unsubscribed",  # already stopped: keeps its reason
        "reader6@example.com": "bounced",  # pending, invalid address
    }
    with open_store(tmp_path / "digest.db") as store:
        events = store.events(store.get("reader2@example.com"))
    assert [(e.old, e.new, e.source) for e in events] == [
        (None, "active", "cli"), ("active", "bounced", "sync")]


def test_a_second_sync_marks_nobody(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, f"asm_group_id = {GROUP}\n")
        add_readers(tmp_path, 5)
        seed(server)
        assert digest(config, "sync").exit_code == 0
        again = digest(config, "sync")
    assert again.stdout.splitlines()[-1] == "No subscriber to mark."


def test_without_a_group_its_list_is_not_read(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2)
        result = digest(config, "sync")
        requests = server.suppression_requests
    assert result.stdout.splitlines()[0] == (
        "Read SendGrid's suppression lists (4 requests): global unsubscribes 0, "
        "group unsubscribes not read (no sendgrid.asm_group_id), bounces 0, spam reports 0, "
        "invalid emails 0.")
    assert not any("/asm/" in path for path in requests)


def test_a_bad_key_is_a_clear_error_and_changes_nothing(tmp_path, env, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    with SendGridServer(api_key="SG.the-right-key") as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2)
        server.set_suppressions("unsubscribes", ["reader0@example.com"])
        result = digest(config, "sync")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: could not read SendGrid's global unsubscribes: SendGrid refused the API key "
        "(401): The provided authorization grant is invalid, expired, or revoked. Check "
        "SENDGRID_API_KEY.\n")
    assert set(statuses(tmp_path).values()) == {"active"}
    assert "Bearer [redacted]" in caplog.text
    assert API_KEY not in caplog.text + result.output


def test_no_key_is_a_clear_error(tmp_path, env, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = digest(write_site(tmp_path), "sync")
    assert (result.exit_code, result.stderr) == (
        1, "Error: SENDGRID_API_KEY is not set: digest sync reads SendGrid's suppression "
           "lists with it\n")


def test_a_server_that_never_answers_times_out(tmp_path, env):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = write_site(tmp_path, f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1)
        result = digest(config, "sync")
    assert result.stderr == ("Error: could not read SendGrid's global unsubscribes: "
                             "SendGrid did not answer within 1 s\n")


def test_a_reader_who_confirmed_again_after_leaving_stays_active_with_a_warning(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2)
        server.set_suppressions("unsubscribes", ["reader0@example.com", "reader1@example.com"])
        assert digest(config, "sync").exit_code == 0
        with open_store(tmp_path / "digest.db") as store:  # reader0 signs up and confirms
            reader = store.get("reader0@example.com")
            store.update([Change(reader, replace(reader, status="active"))], "web")
        again = digest(config, "sync")
    assert again.stdout.splitlines()[-1] == "No subscriber to mark."
    assert again.stderr == (
        "Warning: 1 subscriber on SendGrid's lists confirmed again after leaving and stay "
        "active: reader0@example.com. Remove them from SendGrid's suppression lists, or "
        "SendGrid keeps dropping their mail.\n")
    assert statuses(tmp_path) == {"reader0@example.com": "active",
                                  "reader1@example.com": "unsubscribed"}


def test_a_listing_after_the_readers_return_is_a_new_opt_out(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2)
        server.set_suppressions("unsubscribes", ["reader0@example.com"])
        assert digest(config, "sync").exit_code == 0
        with open_store(tmp_path / "digest.db") as store:  # reader0 confirms again
            reader = store.get("reader0@example.com")
            store.update([Change(reader, replace(reader, status="active"))], "web")
        later = int(time.time()) + 60  # then marks the next issue as spam
        server.set_suppressions("spam_reports", ["reader0@example.com"], created=later)
        again = digest(config, "sync")
    assert again.stdout.splitlines()[-1] == "Marked 1 subscriber: 1 complained."
    assert (again.stderr, statuses(tmp_path)["reader0@example.com"]) == ("", "complained")


def test_a_group_list_of_exactly_one_page_is_read_once(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, f"asm_group_id = {GROUP}\n")
        add_readers(tmp_path, 2)
        server.set_group_suppressions(GROUP, [*others(499, "g"), "reader1@example.com"])
        result = digest(config, "sync")
        group_requests = [p for p in server.suppression_requests if "/asm/" in p]
    assert "group unsubscribes 500," in result.stdout
    assert len(group_requests) == 2  # the second answer repeats the first: the end
    assert statuses(tmp_path)["reader1@example.com"] == "unsubscribed"


# ---------------------------------------------------------------- before a send


def test_weekly_syncs_first_and_skips_suppressed_readers(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 6)
        server.set_suppressions("bounces", ["reader2@example.com"])
        result = digest(config, "weekly", "--now", NOW)
        sent = server.accepted_count_by_address()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "Synced SendGrid's suppression lists. Marked 1 subscriber: 1 bounced.",
        "Plan for 2026-W48: 5 recipients in 5 segments"]
    assert sent == dict.fromkeys([e for e in emails if e != "reader2@example.com"], 1)


def test_the_sync_before_a_send_runs_while_the_run_imports_and_ends_before_it_loads(
        tmp_path, env, monkeypatch):
    working, said, threads_at_load = threading.Event(), [], []
    read_lists, window_for, load = sync.run, send.window_for, pipeline.load

    def run(settings, key):  # fails unless the run goes on meanwhile
        assert working.wait(5), "the run waited for the sync before its window"
        return read_lists(settings, key)

    def window(*args, **kwargs):
        working.set()
        return window_for(*args, **kwargs)

    def loaded(*args, **kwargs):  # a forked load worker needs a run without other threads
        threads_at_load.extend(t.name for t in threading.enumerate() if t.name == "digest-sync")
        return load(*args, **kwargs)

    monkeypatch.setattr(sync, "run", run)
    monkeypatch.setattr(send, "window_for", window)
    monkeypatch.setattr(pipeline, "load", loaded)
    with SendGridServer(api_key=API_KEY) as server:
        settings = load_settings(write_site(tmp_path, server.url))
        emails = add_readers(tmp_path, 3)
        server.set_suppressions("bounces", [emails[1]])
        summary = runs.send_cadence(settings, "weekly", SUNDAY, talk=runs.Talk(
            echo=lambda text, err=False: said.append(text)))
        sent = server.accepted_count_by_address()
    assert summary is not None and summary.accepted == 2
    assert threads_at_load == []
    assert said[0] == "Synced SendGrid's suppression lists. Marked 1 subscriber: 1 bounced."
    assert sent == {emails[0]: 1, emails[2]: 1}  # the bounced reader was never planned


def test_weekly_goes_on_when_the_sync_fails(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 6)
        server.set_suppressions("bounces", ["reader2@example.com"])
        server.fail_suppressions(503)
        result = digest(config, "weekly", "--now", NOW)
        sent = server.accepted_count_by_address()
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Warning: suppression sync failed, sending anyway (SendGrid drops suppressed "
        "addresses itself): could not read SendGrid's global unsubscribes: SendGrid "
        "answered 503: The SendGrid v3 Web API is not available.")
    assert sent == dict.fromkeys(emails, 1)


def test_daily_syncs_first_too(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber("daily@example.com", cadence="daily")], "cli")
        server.set_suppressions("unsubscribes", ["daily@example.com"])
        result = digest(config, "daily", "--now", NOW)
    assert result.stdout.splitlines()[0] == (
        "Synced SendGrid's suppression lists. Marked 1 subscriber: 1 unsubscribed.")
    assert statuses(tmp_path)["daily@example.com"] == "unsubscribed"


def test_completing_a_frozen_issue_syncs_first(tmp_path, env, monkeypatch):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 3, segments=1)
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        assert digest(config, "weekly", "--now", NOW).exit_code == 1  # planned, all failed
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        server.set_suppressions("bounces", ["reader1@example.com"])
        result = digest(config, "send", "--issue", "2026-W48", "--yes")
        sent = server.accepted_count_by_address()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "Synced SendGrid's suppression lists. Marked 1 subscriber: 1 bounced.")
    assert "stopped since planned 1" in result.stdout
    assert sent == {emails[0]: 1, emails[2]: 1}


@pytest.mark.parametrize("case", ["files transport", "no key", "dry run"])
def test_no_sync_without_sendgrid_or_on_a_dry_run(tmp_path, env, monkeypatch, case):
    with SendGridServer(api_key=API_KEY) as server:
        extra = '[delivery]\ntransport = "files"\n' if case == "files transport" else ""
        config = write_site(tmp_path, server.url, extra)
        add_readers(tmp_path, 2)
        if case == "no key":
            monkeypatch.delenv("SENDGRID_API_KEY")
        result = digest(config, "weekly", "--now", NOW,
                        *(["--dry-run"] if case == "dry run" else []))
        assert server.suppression_requests == []
    if case == "no key":  # the send stops before anything is planned, and nothing synced
        assert result.stderr.startswith("Error: SENDGRID_API_KEY is not set")
    else:
        assert "Plan for 2026-W48: 2 recipients in 2 segments" in result.stdout  # got that far


# ---------------------------------------------------------------- the pure parts


def test_pages_stop_at_a_short_page():
    entries = list(range(1001))
    calls = []

    def fetch(limit: int, offset: int) -> list[int]:
        calls.append(offset)
        return entries[offset:offset + limit]

    assert [len(page) for page in sync.pages(fetch, 500)] == [500, 500, 1]
    assert calls == [0, 500, 1000]


@pytest.mark.parametrize(("size", "calls"), [(499, 1), (500, 2), (501, 1)])
def test_pages_stop_when_the_server_does_not_page(size, calls):
    entries = list(range(size))
    made = []

    def whole_list(limit: int, offset: int) -> list[int]:
        made.append(offset)
        return entries

    assert [len(page) for page in sync.pages(whole_list, 500)] == [size]
    assert len(made) == calls


def test_the_most_serious_list_wins_whatever_the_order():
    assert sync.wanted_statuses({"spam reports": ["A@x.org"], "bounces": ["a@x.org"],
                                 "global unsubscribes": ["a@X.org"]}) == {"a@x.org": "complained"}


# ---------------------------------------------------------------- the local server's lists


def test_the_server_caps_a_page_at_500_and_checks_the_key():
    from python_http_client.exceptions import BadRequestsError, UnauthorizedError
    from sendgrid import SendGridAPIClient

    with SendGridServer(api_key=API_KEY) as server:
        server.set_suppressions("bounces", others(700, "b"))
        client = SendGridAPIClient(API_KEY, host=server.url).client
        page = json.loads(client.suppression.bounces.get(
            query_params={"limit": 1000, "offset": 100}).body)
        assert (len(page), page[0]["email"]) == (500, "b100@elsewhere.example")
        assert set(page[0]) == {"created", "email", "reason", "status"}
        with pytest.raises(BadRequestsError):
            client.suppression.bounces.get(query_params={"limit": "many"})
        with pytest.raises(UnauthorizedError):
            SendGridAPIClient("SG.wrong", host=server.url).client.suppression.bounces.get()
        assert server.statuses == []  # mail/send answers only
    with pytest.raises(ValueError, match="unknown suppression list 'blocks'"):
        server.set_suppressions("blocks", [])
