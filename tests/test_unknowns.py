"""Exact unknowns, resolved one batch at a time: retry waits, `digest issues show/mark`,
SendGrid's signed events, and a locked or full database."""

import json
import sqlite3
import threading
import time
from datetime import datetime
from functools import partial

import pytest
from send_support import (
    API_KEY,
    NOW,
    add_readers,
    digest,
    ledger_counts,
    set_send_environment,
    write_site,
)
from sendgrid_server import SendGridServer
from web_support import Clock, add_reader, http, serving, site_settings
from webhook_support import Signer, make_hooks_app

from digest import ledger as ledger_module
from digest import runs
from digest import store as store_module
from digest.config import load_settings
from digest.errors import DiskFull
from digest.ledger import Ledger
from digest.store import open_store
from digest.transports.sendgrid import SendGridTransport

SUNDAY = datetime.fromisoformat("2026-11-29T08:00+01:00")


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def settings_of(tmp_path, url, extra=""):
    return load_settings(write_site(tmp_path, url, extra))


def batches(tmp_path, key="2026-W48"):
    with open_store(tmp_path / "digest.db") as store:
        return {b.label: b for b in Ledger(store).batches(key)}


def look_at_ledger(tmp_path, seconds):
    """A transport's wait to retry (in the courier process): note each batch's state."""
    with (tmp_path / "seen.jsonl").open("a") as out:
        out.write(json.dumps({label: (b.state, b.attempts)
                              for label, b in batches(tmp_path).items()}) + "\n")


def timed_out_run(tmp_path, server, segments=2, extra=""):
    """A weekly run whose every batch reached SendGrid but whose answers came too late:
    each batch's outcome is unknown, although SendGrid accepted it."""
    settings = settings_of(tmp_path, server.url, extra).override("sendgrid.timeout", 1)
    add_readers(tmp_path, 2 * segments, segments=segments)
    server.set_delay(3)
    summary = runs.send_cadence(settings, "weekly", SUNDAY)
    server.set_delay(0)
    assert summary is not None and summary.unknown == 2 * segments
    return settings.override("sendgrid.timeout", 10)


# Waiting to retry is not in flight


def test_a_batch_waiting_to_retry_is_recorded_pending_during_the_wait(tmp_path, env,
                                                                      monkeypatch):
    seen = tmp_path / "seen.jsonl"
    monkeypatch.setattr(runs, "transport_for", lambda settings: SendGridTransport(
        API_KEY, settings.text("sendgrid.api_url"), sleep=partial(look_at_ledger, tmp_path)))
    with SendGridServer(api_key=API_KEY) as server:
        settings = settings_of(tmp_path, server.url)
        add_readers(tmp_path, 2, segments=1)
        server.script(503, 429)
        summary = runs.send_cadence(settings, "weekly", SUNDAY)
    assert summary is not None and summary.accepted == 2
    assert [json.loads(line) for line in seen.read_text().splitlines()] == [
        {"work#1": ["retrying", 1]}, {"work#1": ["retrying", 2]}]
    assert batches(tmp_path)["work#1"].state == "accepted"


# One batch at a time: show and mark


def test_issues_show_lists_each_batch(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server)
    result = digest(settings.root / "digest.toml", "issues", "show", "2026-W48")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Issue 2026-W48 (weekly, sending): 2 batches"
    assert lines[1].split() == ["BATCH", "RECIPIENTS", "STATE", "ATTEMPTS", "REASON"]
    assert lines[2].startswith("tools#1  2           unknown  1         SendGrid did not "
                               "answer within 1 s")
    assert lines[3].split()[:4] == ["work#1", "2", "unknown", "1"]


def test_half_delivered_unknowns_are_marked_one_by_one_and_the_rest_sent(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server)
        config = settings.root / "digest.toml"
        # SendGrid's activity feed shows tools#1 delivered; say work#1 was not
        delivered = digest(config, "issues", "mark", "2026-W48", "tools#1", "--delivered")
        assert (delivered.exit_code, delivered.stdout) == (
            0, "Marked batch tools#1 of 2026-W48 delivered: counted as accepted "
               "(2 recipients).\n")
        missed = digest(config, "issues", "mark", "2026-W48", "work#1", "--not-delivered")
        assert (missed.exit_code, missed.stdout) == (
            0, "Marked batch work#1 of 2026-W48 not delivered: the next run sends it "
               "(2 recipients).\n")
        rerun = digest(config, "weekly", "--now", NOW)
        assert rerun.exit_code == 0, rerun.output
        assert rerun.stdout.splitlines()[-1] == (
            "Issue 2026-W48: sent to 2, already sent 2, skipped 0 (empty segment), "
            "stopped since planned 0, failed 0, unknown 0.")
        assert sorted(a.body["custom_args"]["segment"] for a in server.accepted) == [
            "tools", "work", "work"]  # only work#1 again: the operator's finding decides
    assert batches(tmp_path)["tools#1"].evidence == "marked delivered by the operator"


def test_marking_needs_an_unknown_batch_and_a_finding(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server, segments=1)
    config = settings.root / "digest.toml"
    no_finding = digest(config, "issues", "mark", "2026-W48", "work#1")
    assert no_finding.exit_code == 2
    assert no_finding.stderr.endswith("Error: give --delivered or --not-delivered\n")
    wrong = digest(config, "issues", "mark", "2026-W48", "work#9", "--delivered")
    assert (wrong.exit_code, wrong.stderr) == (
        1, "Error: issue 2026-W48 has no batch work#9 (its batches: work#1)\n")
    assert digest(config, "issues", "mark", "2026-W48", "work#1", "--delivered").stdout \
        .endswith("Issue 2026-W48 is complete.\n")
    again = digest(config, "issues", "mark", "2026-W48", "work#1", "--not-delivered")
    assert (again.exit_code, again.stderr) == (
        1, "Error: batch work#1 of 2026-W48 is accepted: only a batch whose outcome is "
           "unknown can be marked\n")
    assert ledger_counts(tmp_path)["accepted"] == 2


# SendGrid's own word: the signed event webhook


def signed_post(settings, signer, events):
    raw = json.dumps(events).encode()
    return make_hooks_app(settings).test_client().post(
        "/hooks/sendgrid", data=raw, headers=signer.headers(raw))


def event(body, index, kind="processed", **extra):
    person = body["personalizations"][index]["to"][0]["email"]
    return {"email": person, "event": kind, "sg_event_id": f"{kind}-{person}-{index}",
            "timestamp": int(time.time()), **body["custom_args"], **extra}


def test_a_processed_event_resolves_its_unknown_batch_before_the_next_run(tmp_path, env):
    signer = Signer()
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server).override(
            "sendgrid.webhook_public_key", signer.public)
        tools = next(a.body for a in server.accepted
                     if a.body["custom_args"]["segment"] == "tools")
        assert tools["custom_args"] == {"issue": "2026-W48", "segment": "tools", "batch": "1"}
        response = signed_post(settings, signer, [event(tools, 0, "delivered")])
        assert response.get_json()["batches_resolved"] == 1
        resolved = batches(tmp_path)["tools#1"]
        assert resolved.state == "accepted"
        assert resolved.evidence.startswith(
            "SendGrid's event webhook reported 'delivered' for a reader of it at 20")
        assert batches(tmp_path)["work#1"].state == "unknown"
        settings = settings.override("sendgrid.webhook_grace", 1)
        rerun = runs.send_cadence(settings, "weekly", SUNDAY)
        assert rerun is not None and (rerun.already, rerun.unknown) == (2, 2)


def test_a_rerun_waits_the_grace_period_for_events_that_come_after_it_starts(tmp_path,
                                                                              env):
    signer = Signer()
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server).override(
            "sendgrid.webhook_public_key", signer.public).override(
            "sendgrid.webhook_grace", 20)
        bodies = [a.body for a in server.accepted]
        heard, answers = [], []
        late = threading.Timer(1.0, lambda: answers.append(signed_post(
            settings, signer, [event(body, 1, "deferred") for body in bodies])))
        late.start()
        started = time.monotonic()
        summary = runs.send_cadence(settings, "weekly", SUNDAY, talk=runs.Talk(
            echo=lambda message, err=False: heard.append(message)))
        late.join()
        assert time.monotonic() - started < 15  # it stopped waiting once all were resolved
    assert heard[1].startswith("Waiting up to ")
    assert heard[1].endswith(" s for SendGrid's events about 2 unknown batches "
                             "(sendgrid.webhook_grace)")
    assert answers[0].get_json()["batches_resolved"] == 2
    assert summary is not None and (summary.already, summary.unknown, summary.ok) == (
        4, 0, True)
    assert len(server.accepted) == 2  # nothing sent twice


def test_a_batch_without_the_batch_arg_is_found_by_its_reader(tmp_path, env):
    signer = Signer()
    with SendGridServer(api_key=API_KEY) as server:
        settings = timed_out_run(tmp_path, server, segments=1).override(
            "sendgrid.webhook_public_key", signer.public)
        body = server.accepted[0].body
        old = event(body, 1, "dropped", reason="Bounced Address")
        del old["batch"]  # sent by a digest before the batch id was added
        assert signed_post(settings, signer, [old]).get_json()["batches_resolved"] == 1
    assert batches(tmp_path)["work#1"].state == "accepted"
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).require("2026-W48").status == "done"


# A locked database, a full disk


def hold_write_lock(path, seconds, started):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_ledger_write_waits_out_a_locked_database_so_accepted_is_recorded(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings = settings_of(tmp_path, server.url)
        add_readers(tmp_path, 2, segments=1)
        server.set_delay(0.5)
        started = threading.Event()
        watcher = threading.Thread(target=lambda: (
            server.wait_accepted(1, timeout=10),
            hold_write_lock(tmp_path / "digest.db", 2.0, started)))
        watcher.start()
        with open_store(tmp_path / "digest.db") as store:
            store.conn.execute("PRAGMA busy_timeout = 200")  # well below the lock's 2 s
            with runs.open_run(settings, "weekly", store=store) as run:
                summary = run.send("2026-W48", None, "weekly", now=SUNDAY)
        watcher.join()
    assert started.is_set()
    assert summary is not None and (summary.accepted, summary.ok) == (2, True)
    assert batches(tmp_path)["work#1"].state == "accepted"


def test_a_database_locked_for_good_is_a_clear_error(tmp_path, env, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(ledger_module, "WRITE_RETRY_S", 0.3)
    config = write_site(tmp_path)
    add_readers(tmp_path, 2, segments=1)
    started = threading.Event()
    holder = threading.Thread(target=hold_write_lock,
                              args=(tmp_path / "digest.db", 3.0, started))
    holder.start()
    started.wait(5)
    result = digest(config, "weekly", "--now", NOW)
    holder.join()
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "Error: the database is locked by another process (database is locked after "
        "0.2 s); try again when it has finished")
    assert "Traceback" not in result.output
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_a_full_disk_freezes_nothing_sends_nothing_and_says_so(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        settings = settings_of(tmp_path, server.url)
        add_readers(tmp_path, 2, segments=1)
        with open_store(tmp_path / "digest.db") as store:
            pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
            store.conn.execute(f"PRAGMA max_page_count = {pages}")  # no room to grow
            with runs.open_run(settings, "weekly", store=store) as run, \
                    pytest.raises(DiskFull, match=r"^the database could not be written: no "
                                                  r"space left on the device \(database or "
                                                  r"disk is full\); free some space"):
                run.send("2026-W48", None, "weekly", now=SUNDAY)
        assert server.accepted == []
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_the_web_app_answers_503_when_the_database_is_locked(tmp_path, monkeypatch,
                                                             caplog):
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    settings = site_settings(tmp_path)
    token = add_reader(tmp_path, "ada@example.com")
    started = threading.Event()
    holder = threading.Thread(target=hold_write_lock,
                              args=(settings.store_path, 2.0, started))
    with serving(settings, Clock()) as served:
        holder.start()
        started.wait(5)
        reply = http("POST", f"{served.url}/unsubscribe/{token}",
                     body=b"List-Unsubscribe=One-Click",
                     content_type="application/x-www-form-urlencoded")
        holder.join()
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "60"
    assert "answered 503: the database is locked by another process" in caplog.text
    assert "Traceback" not in caplog.text
    assert "The newsletter&#39;s database is busy: please try again in a minute." in reply.body


def test_the_503_page_speaks_the_site_language(tmp_path):
    from flask import abort

    from digest.web import create_app

    settings = site_settings(tmp_path).override("site.language", "de")
    app = create_app(settings)
    app.add_url_rule("/busy", "busy", lambda: abort(503))
    reply = app.test_client().get("/busy")
    assert reply.status_code == 503
    assert "Die Datenbank des Newsletters ist gerade beschäftigt." in reply.text


def test_a_full_disk_is_one_line_from_the_cli(tmp_path, env, monkeypatch):
    config = write_site(tmp_path, extra='[delivery]\ntransport = "files"\n')
    add_readers(tmp_path, 2, segments=1)
    configure = store_module.configure

    def no_room(conn):  # every connection digest opens: the file may not grow
        configure(conn)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(store_module, "configure", no_room)
    result = digest(config, "weekly", "--now", NOW)
    assert (result.exit_code, result.stderr) == (
        1, "Error: the database could not be written: no space left on the device "
           "(database or disk is full); free some space, then run again\n")
    assert not (tmp_path / "outbox").exists()  # nothing sent


# ---------------------------------------------------------------- events while a request is out


def one_batch_issue(tmp_path):
    """Issue K with one batch of one reader, planned; the store stays open."""
    from digest.ledger import PlannedSegment
    from digest.render import Email
    from digest.select import Window
    from digest.store import NewSubscriber

    store = open_store(tmp_path / "digest.db")
    store.insert([NewSubscriber("ada@example.com")], "test")
    ledger = Ledger(store)
    ledger.create("K", "weekly", Window(SUNDAY, SUNDAY), [PlannedSegment(
        "all", (), (), Email("s", "", "<p>h</p>", "t"), (store.subscribers()[0].id,))])
    return store, ledger


def test_an_answer_after_the_webhook_accepted_the_batch_leaves_it_accepted(tmp_path):
    """SendGrid's `processed` event marks the batch accepted while its request waits for
    an answer that then times out: the batch stays accepted (the event will not come
    again), and the run counts it accepted, not unknown."""
    from digest.send import Sender, Summary
    from digest.transports import Outcome

    store, ledger = one_batch_issue(tmp_path)
    with store:
        batch = ledger.batches("K")[0]
        assert ledger.attempting(batch.id, 1)
        assert ledger.accept_on_evidence(batch.id, "SendGrid reported 'processed'")
        sender, summary = Sender.__new__(Sender), Summary("K")
        sender.ledger, sender.progress = ledger, lambda count: None
        sender.record(ledger.batches("K")[0], Outcome("unknown", reason="timed out"), summary)
        after = ledger.batches("K")[0]
    assert (after.status, after.evidence) == ("accepted", "SendGrid reported 'processed'")
    assert (summary.accepted, summary.unknown) == (1, 0)


def test_a_batch_accepted_by_its_events_while_it_waits_to_retry_is_not_sent_again(tmp_path):
    """SendGrid answered 500 but had accepted the request; its event arrives during the
    back-off: the retry is not sent."""
    from digest.send import Sender
    from digest.transports import Outcome

    store, ledger = one_batch_issue(tmp_path)
    settings = load_settings(write_site(tmp_path))
    requests = []

    class AcceptedDespite500:
        def send(self, message, attempts=None):
            for attempt in (1, 2):
                attempts.attempting(attempt)
                requests.append(attempt)
                if attempt == 1:
                    with open_store(tmp_path / "digest.db") as webhook:  # the web app's
                        hooks = Ledger(webhook)
                        assert hooks.accept_on_evidence(hooks.batch_id("K", "all", 1),
                                                        "SendGrid reported 'processed'")
                    attempts.waiting("SendGrid answered 500", 0.01)
            return Outcome("accepted", message_id="second")

    with store:
        summary = Sender(store, AcceptedDespite500(), settings, "s" * 40, workers=1).run("K")
        after = ledger.batches("K")[0]
    assert requests == [1]
    assert (after.status, after.attempts, after.message_id) == ("accepted", 1, None)
    assert summary.accepted == 1 and summary.ok


def test_readers_the_courier_found_stopped_are_dropped_from_their_batch_and_counted(tmp_path):
    """The courier's worker sent a batch without a reader who had stopped meanwhile
    (`Done.dropped`): the ledger loses them and the summary counts them dropped."""
    from digest.desk import Done
    from digest.send import Sender, Summary
    from digest.transports import Outcome

    store, ledger = one_batch_issue(tmp_path)
    with store:
        batch = ledger.batches("K")[0]
        (reader,) = batch.recipients

        class OneDone:
            def next(self):
                return Done(batch.id, Outcome("accepted", reason="every reader in it had "
                                              "stopped or was removed"), (reader,))

        sender, summary = Sender.__new__(Sender), Summary("K")
        sender.ledger, sender.progress = ledger, lambda count: None
        sender.collect(OneDone(), {batch.id: batch}, summary)
        after = ledger.batches("K")[0]
        counts = ledger.counts("K")
    assert (summary.dropped, summary.accepted) == (1, 0)
    assert (after.status, after.recipients) == ("accepted", ())
    assert after.reason == "every reader in it had stopped or was removed"
    assert counts["planned"] == 0
