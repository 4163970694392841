"""Sending through the real sendgrid client to the local SendGrid server, and the ledger."""

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from send_support import (
    API_KEY,
    NOW,
    SECRET,
    add_readers,
    digest,
    ledger_counts,
    set_send_environment,
    write_site,
)
from sendgrid_server import SendGridServer

from digest.cli import cli
from digest.ledger import Ledger
from digest.runlock import run_lock
from digest.store import NewSubscriber, open_store


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def test_weekly_sends_each_reader_once_with_their_own_unsubscribe_link(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 30)
        result = digest(config, "weekly", "--now", NOW)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == (
            "Issue 2026-W48: sent to 30, already sent 0, skipped 0 (empty segment), "
            "stopped since planned 0, failed 0, unknown 0.")
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
        bodies = [a.body for a in server.accepted]
    assert len(bodies) == 6  # one request per segment
    assert not [line for line in result.output.splitlines() if line.startswith("Timing:")]
    body = bodies[0]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["categories"] == ["digest", "2026-W48"]
    assert body["custom_args"]["issue"] == "2026-W48"
    person = body["personalizations"][0]
    url = person["substitutions"]["-unsubscribe_url-"]
    assert url.startswith("https://send.example.org/unsubscribe/")
    assert person["to"][0]["email"] not in url
    assert person["headers"] == {"List-Unsubscribe": f"<{url}>",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert 'href="-unsubscribe_url-"' in body["content"][1]["value"]
    with open_store(tmp_path / "digest.db") as store:
        assert store.by_token(url.rsplit("/", 1)[1]).email == person["to"][0]["email"]


def test_run_twice_in_a_week_sends_once(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 12)
        before = datetime.now(UTC)
        assert digest(config, "weekly", "--now", NOW).exit_code == 0
        second = digest(config, "weekly", "--now", "2026-11-29T20:00")
        with open_store(tmp_path / "digest.db") as store:
            finished = Ledger(store).issue("2026-W48").finished_at
        assert finished is not None and finished[:10] in {
            before.date().isoformat(), datetime.now(UTC).date().isoformat()}
        assert (second.exit_code, second.stdout) == (
            0, f"Issue 2026-W48 was sent on {finished[:10]}: nothing to do.\n")
        assert len(server.accepted) == 6


def test_failed_batch_is_reported_exit_1_and_retried_by_the_next_run(tmp_path, env,
                                                                      monkeypatch):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 6, segments=1)
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        failed = digest(config, "weekly", "--now", NOW)
        assert failed.exit_code == 1
        assert "failed: SendGrid refused the request (401): The provided authorization grant " \
               "is invalid, expired, or revoked." in failed.stderr
        assert ledger_counts(tmp_path)["failed"] == 6
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        again = digest(config, "weekly", "--now", NOW)
        assert again.exit_code == 0, again.output
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


def test_read_time_out_leaves_the_batch_unknown(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, timeout=1)
        add_readers(tmp_path, 3, segments=1)
        server.set_delay(3)
        result = digest(config, "weekly", "--now", NOW)
        assert result.exit_code == 1
        assert "outcome unknown: SendGrid did not answer within 1 s" in result.stderr
        server.set_delay(0)
        rerun = digest(config, "weekly", "--now", NOW)
        assert rerun.exit_code == 1
        assert "left alone: check SendGrid's activity, then rerun with --resend-unknown" in (
            rerun.stderr)
        assert len(server.accepted) == 1  # accepted once, never resent on its own
        resent = digest(config, "weekly", "--now", NOW, "--resend-unknown")
        assert resent.exit_code == 0, resent.output
        assert len(server.accepted) == 2


def test_dry_run_sends_and_records_nothing(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 6)
        result = digest(config, "weekly", "--now", NOW, "--dry-run")
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == "Plan for 2026-W48: 6 recipients in 6 segments"
        assert result.stdout.splitlines()[1] == (
            "  culture: 1 recipient in 1 batch, 1 article, 8.7 KB")
        assert result.stdout.splitlines()[-1] == "Dry run: nothing sent, nothing recorded."
        assert server.accepted == []
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_no_articles_in_the_window_is_not_an_error(tmp_path, env):
    config = write_site(tmp_path)
    add_readers(tmp_path, 2)
    result = digest(config, "weekly", "--now", "2027-03-01T08:00")
    assert (result.exit_code, result.stdout) == (
        0, "No articles from 2027-02-22 08:00 to 2027-03-01 08:00: nothing to send.\n")


def test_no_active_readers_is_not_an_error_and_freezes_nothing(tmp_path, env):
    config = write_site(tmp_path)
    result = digest(config, "weekly", "--now", NOW)
    assert (result.exit_code, result.stdout) == (
        0, "No active weekly subscribers: nothing to send\n")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_a_second_run_while_one_is_sending_exits_at_once(tmp_path, env):
    config = write_site(tmp_path)
    add_readers(tmp_path, 2)
    with run_lock(tmp_path / "digest.db.weekly.lock"):
        result = digest(config, "weekly", "--now", NOW)
    assert result.exit_code == 1
    assert result.stderr == (f"Error: another run is sending (pid {os.getpid()}); "
                             "try again when it has finished\n")


def test_test_copy_goes_to_the_given_address_only_and_leaves_the_ledger(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 6)
        result = digest(config, "send", "--since", "2026-11-22", "--until", "2026-11-28",
                        "--to", "editor@example.com")
        assert result.exit_code == 0, result.output
        assert server.accepted_count_by_address() == {"editor@example.com": 1}
        assert server.accepted[0].body["subject"].startswith("[TEST] Send Test: 6 new articles")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_manual_send_asks_first_and_sends_with_yes(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 6)
        args = ["send", "--since", "2026-11-22", "--until", "2026-11-28"]
        declined = CliRunner().invoke(cli, ["--config", str(config), *args], input="n\n")
        assert declined.exit_code == 1
        assert "Send 2026-11-22..2026-11-28 to 6 recipients? [y/N]" in declined.output
        assert server.accepted == []
        result = digest(config, *args, "--yes")
        assert result.exit_code == 0, result.output
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
        listed = digest(config, "issues")
        assert listed.stdout.splitlines()[1].split() == [
            "2026-11-22..2026-11-28", "manual", "done", "6", "6", "0", "0", "0"]


def test_quality_errors_block_the_send_unless_forced(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 1, segments=1)
        (tmp_path / "templates").mkdir()
        shipped = (Path(__file__).parent.parent / "templates" / "email.mjml.j2").read_text()
        (tmp_path / "templates" / "email.mjml.j2").write_text(
            shipped.replace('<a href="{{ article.url }}">', '<a href="/relative">'))
        blocked = digest(config, "weekly", "--now", NOW)
        assert blocked.exit_code == 1
        assert blocked.stderr.splitlines() == [
            'Error: segment work: The URL "/relative" is not an absolute https:// or mailto: '
            "URL, so it will not work from an inbox.",
            "Error: not sending: 1 error-level quality problem (listed above); fix the "
            "templates or content, or pass --force"]
        assert server.accepted == []
        forced = digest(config, "weekly", "--now", NOW, "--force")
        assert forced.exit_code == 0, forced.output
        assert len(server.accepted) == 1


def test_the_key_appears_nowhere(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, '[delivery]\ntransport = "sendgrid"\n')
        add_readers(tmp_path, 6)
        server.script(500, 429)
        result = digest(config, "weekly", "--now", NOW)
        files = digest(config.parent / "digest.toml", "issues", "--json")
    everything = result.output + result.stderr + files.output
    assert API_KEY not in everything
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


# A real process, killed mid-send

def run_process(config: Path, server_url: str, *args: str) -> subprocess.Popen:
    """A real `python -m digest` process sending to the local server."""
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": SECRET,
           "SENDGRID_API_URL": server_url}
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_weekly_process(config: Path, server_url: str) -> subprocess.Popen:
    return run_process(config, server_url, "weekly", "--now", NOW)


@pytest.mark.parametrize("k", [0, 2, 5])
def test_killed_after_k_accepted_batches_then_rerun(tmp_path, k):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 36)
        server.hold_after(k, timeout=20)
        process = run_weekly_process(config, server.url)
        try:
            server.wait_accepted(k, timeout=20)
            server.wait_held(1, timeout=20)
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=10)
        server.release()  # what was held reaches "SendGrid" after all: outcome unknown
        rerun = run_weekly_process(config, server.url)
        out, err = rerun.communicate(timeout=60)
        counts = server.accepted_count_by_address()
    assert all(count == 1 for count in counts.values()), counts
    ledger = ledger_counts(tmp_path)
    assert ledger["accepted"] + ledger["unknown"] == len(emails)
    assert ledger["failed"] == ledger["pending"] == 0
    assert set(counts) <= set(emails)
    assert rerun.returncode == (1 if ledger["unknown"] else 0), out + err
    if ledger["unknown"]:
        assert "outcome unknown" in err


def test_send_issue_completes_a_planned_issue(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 6, segments=2)
        server.script(500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
        first = digest(config, "weekly", "--now", NOW)
        assert first.exit_code == 1
        done = digest(config, "send", "--issue", "2026-W48", "--yes")
        assert done.exit_code == 0, done.output
        assert done.stdout.splitlines()[-1] == (
            "Issue 2026-W48: sent to 6, already sent 0, skipped 0 (empty segment), "
            "stopped since planned 0, failed 0, unknown 0.")
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)
        unknown = digest(config, "send", "--issue", "2026-W99", "--yes")
        assert (unknown.exit_code, unknown.stderr) == (
            1, "Error: no issue 2026-W99 in the ledger (see: digest issues)\n")


def test_a_reader_who_stopped_after_the_plan_is_not_sent(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 3, segments=1)
        server.script(*[503] * 5)  # the first run fails its only batch
        assert digest(config, "weekly", "--now", NOW).exit_code == 1
        assert digest(config, "subscribers", "unsubscribe", emails[0]).exit_code == 0
        rerun = digest(config, "weekly", "--now", NOW)
        assert rerun.exit_code == 0, rerun.output
        assert rerun.stdout.splitlines()[-1] == (  # "sent to 3" before: 2 plus the dropped one
            "Issue 2026-W48: sent to 2, already sent 0, skipped 0 (empty segment), "
            "stopped since planned 1, failed 0, unknown 0.")
        assert server.accepted_count_by_address() == dict.fromkeys(emails[1:], 1)


def test_a_rerun_never_sends_to_a_removed_reader_and_counts_them(tmp_path, env, monkeypatch):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 4, segments=2)  # work: 0 and 2, tools: 1 and 3
        monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
        assert digest(config, "weekly", "--now", NOW).exit_code == 1
        with open_store(tmp_path / "digest.db") as store:  # as if tools had gone through
            ledger = Ledger(store)
            [tools] = [b for b in ledger.batches("2026-W48") if b.segment == "tools"]
            ledger.mark(tools.id, "accepted", message_id="earlier")
        for email in (emails[0], emails[1]):  # one in each batch
            assert digest(config, "subscribers", "remove", email).exit_code == 0
        monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
        rerun = digest(config, "weekly", "--now", NOW)
        assert rerun.exit_code == 0, rerun.output
        assert rerun.stdout.splitlines()[-1] == (
            "Issue 2026-W48: sent to 1, already sent 2, skipped 0 (empty segment), "
            "stopped since planned 1, failed 0, unknown 0.")
        assert server.accepted_count_by_address() == {emails[2]: 1}
    assert ledger_counts(tmp_path) == {"planned": 3, "accepted": 3, "failed": 0,
                                       "unknown": 0, "pending": 0, "skipped": 0}


def test_a_removed_reader_in_an_unknown_batch_counts_there_and_is_not_resent(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url, timeout=1)
        emails = add_readers(tmp_path, 3, segments=1)
        server.set_delay(3)
        assert digest(config, "weekly", "--now", NOW).exit_code == 1
        server.set_delay(0)
        assert digest(config, "subscribers", "remove", emails[0]).exit_code == 0
        left = digest(config, "weekly", "--now", NOW)
        assert left.exit_code == 1
        assert left.stderr.splitlines()[1].startswith(  # they may have got it: counted
            "batch work#1 (3 recipients): outcome unknown (SendGrid did not answer within 1 s")
        assert ledger_counts(tmp_path)["unknown"] == 3
        resent = digest(config, "weekly", "--now", NOW, "--resend-unknown")
        assert resent.exit_code == 0, resent.output
        assert resent.stdout.splitlines()[-1] == (
            "Issue 2026-W48: sent to 2, already sent 0, skipped 0 (empty segment), "
            "stopped since planned 1, failed 0, unknown 0.")
        assert [p["to"][0]["email"] for p in server.accepted[-1].body["personalizations"]] \
            == emails[1:]
    assert ledger_counts(tmp_path) == {"planned": 2, "accepted": 2, "failed": 0,
                                       "unknown": 0, "pending": 0, "skipped": 0}


def test_issues_json_is_stable(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 2, segments=1)
        assert digest(config, "weekly", "--now", NOW).exit_code == 0
    [row] = json.loads(digest(config, "issues", "--json").stdout)
    assert sorted(row) == ["accepted", "cadence", "created_at", "failed", "finished_at",
                           "key", "pending", "planned", "skipped", "status", "unknown",
                           "window_end", "window_start"]
    assert (row["key"], row["window_start"], row["window_end"]) == (
        "2026-W48", "2026-11-22T08:00:00+01:00", "2026-11-29T08:00:00+01:00")


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        ("SENDGRID_API_KEY",
         'SENDGRID_API_KEY is not set: export it, or use delivery.transport = "files"'),
        ("DIGEST_SECRET_KEY",
         "DIGEST_SECRET_KEY (or web.secret_key) is not set: readers' links and the web "
         "app's forms are signed with it; keep it outside the repository"),
    ],
)
def test_a_missing_key_or_secret_stops_before_anything_is_planned(tmp_path, env, monkeypatch,
                                                                   unset, message):
    config = write_site(tmp_path)
    add_readers(tmp_path, 2)
    monkeypatch.delenv(unset)
    result = digest(config, "weekly", "--now", NOW)
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


# Manual sends: test copies, windows, and one issue per cadence


def test_a_dry_run_test_copy_sends_nothing(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        result = digest(config, "send", "--since", "2026-11-22", "--until", "2026-11-28",
                        "--to", "editor@example.com", "--dry-run")
        assert (result.exit_code, result.stdout) == (
            0, "Dry run: the [TEST] copy of 2026-11-22..2026-11-28 to editor@example.com "
               "was not sent.\n")
        assert server.statuses == []


def test_a_reversed_window_is_a_usage_error(tmp_path, env):
    result = digest(write_site(tmp_path), "send", "--since", "2026-11-28", "--until",
                    "2026-11-22", "--yes")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: --until 2026-11-22 is before --since 2026-11-28\n")


def test_a_test_copy_to_a_bad_address_is_a_usage_error(tmp_path, env):
    result = digest(write_site(tmp_path), "send", "--since", "2026-11-22", "--until",
                    "2026-11-28", "--to", "not an address")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--to': bad address 'not an address': An email address "
        "must have an @-sign.\n")


# Completing a planned issue


def test_send_issue_shows_what_is_left_and_asks_first(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(tmp_path, 3, segments=1)
        server.script(*[503] * 5)  # the weekly run fails its only batch
        assert digest(config, "weekly", "--now", NOW).exit_code == 1
        declined = CliRunner().invoke(cli, ["--config", str(config), "send", "--issue",
                                            "2026-W48"], input="n\n")
        assert declined.exit_code == 1
        assert declined.output.splitlines()[:2] == [
            "Issue 2026-W48 is planned: 3 recipients, 0 accepted, 3 failed, 0 unknown, "
            "0 not sent yet.",
            "Send 2026-W48 to the 3 recipients left? [y/N]: n"]
        assert server.accepted == []
        dry = digest(config, "send", "--issue", "2026-W48", "--dry-run")
        assert dry.stdout.splitlines()[-1] == "Dry run: issue 2026-W48 is planned; nothing sent."
        assert server.accepted == []
        sent = CliRunner().invoke(cli, ["--config", str(config), "send", "--issue",
                                        "2026-W48"], input="y\n")
        assert sent.exit_code == 0, sent.output
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


def test_send_issue_while_the_daily_run_sends_it_exits_at_once(tmp_path):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber(f"day{i}@example.com", cadence="daily")
                          for i in range(6)], "cli")
        server.hold_after(0, timeout=20)  # the daily run's batch waits at "SendGrid"
        daily = run_process(config, server.url, "daily", "--now", "2026-11-27T12:00")
        try:
            server.wait_held(1, timeout=20)
            second = run_process(config, server.url, "send", "--issue", "2026-11-27", "--yes")
            out, err = second.communicate(timeout=30)
        finally:
            server.release()
            daily.communicate(timeout=30)
        counts = server.accepted_count_by_address()
    assert (second.returncode, out) == (1, "")
    assert err.startswith("Error: another run is sending (pid ")
    assert daily.returncode == 0
    assert counts == {f"day{i}@example.com": 1 for i in range(6)}


def test_no_sender_stops_before_anything_is_planned(tmp_path, env):
    config = write_site(tmp_path)
    text = config.read_text()
    config.write_text(text.replace('from = "Send Test <news@send.example.org>"\n', ""))
    add_readers(tmp_path, 2)
    for args in (["weekly", "--now", NOW], ["weekly", "--now", NOW, "--dry-run"]):
        result = digest(config, *args)
        assert (result.exit_code, result.stderr) == (
            1, "Error: email.from is not set in the configuration (the sender address)\n")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_a_short_secret_stops_before_anything_is_planned(tmp_path, env, monkeypatch):
    config = write_site(tmp_path)
    add_readers(tmp_path, 2)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "short")
    result = digest(config, "weekly", "--now", NOW)
    assert (result.exit_code, result.stderr) == (
        1, "Error: DIGEST_SECRET_KEY (or web.secret_key) must be at least 16 "
           "characters\n")
    with open_store(tmp_path / "digest.db") as store:
        assert Ledger(store).issues() == []


def test_timings_prints_each_stage_on_stderr(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(tmp_path, 3)
        result = digest(config, "weekly", "--now", NOW, "--timings")
    assert result.exit_code == 0, result.output
    timed = [line.rsplit(" ", 2) for line in result.stderr.splitlines()
             if line.startswith("Timing: ")]
    assert [name for name, _, unit in timed] == [
        "Timing: load", "Timing: plan", "Timing: freeze", "Timing: send"]
    assert all(unit == "s" for _, _, unit in timed)
