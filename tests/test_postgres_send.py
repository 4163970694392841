"""Sending with the store in PostgreSQL: real `digest` processes against the local
SendGrid server and a real cluster. Killed mid-send, cut off from the server, or
started twice on two "hosts" (two folders, two config copies, one database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from send_support import API_KEY, NOW, SECRET, set_send_environment, write_site
from sendgrid_server import SendGridServer

from digest.cli import cli
from digest.errors import DeliveryError
from digest.ledger import Ledger
from digest.location import PostgresURL
from digest.store import NewSubscriber, open_store

WAIT_S = 60  # a loaded 2-core machine renders slowly; the tests never wait this long when healthy


def add_readers(url: PostgresURL, count: int) -> list[str]:
    emails = [f"reader{i}@example.com" for i in range(count)]
    categories = ["Work", "Tools", "Research", "Policy", "Health", "Culture"]
    with open_store(url) as store:
        store.insert([NewSubscriber(email, name=f"Reader {i}",
                                    categories=(categories[i % 6],))
                      for i, email in enumerate(emails)], "cli")
    return emails


def run(config: Path, url: PostgresURL, server_url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": SECRET,
           "SENDGRID_API_URL": server_url, "DIGEST_DB": url.dsn}
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=config.parent)


def weekly(config: Path, url: PostgresURL, server_url: str) -> subprocess.Popen:
    return run(config, url, server_url, "weekly", "--now", NOW)


def sessions(url: PostgresURL, pid: int) -> list[int]:
    """The server processes of the digest run with this pid (its lock's session)."""
    with psycopg.connect(url.dsn, autocommit=True) as conn:
        return [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
            (f"digest pid {pid} %",))]


def wait_gone(url: PostgresURL, pid: int, timeout: float = WAIT_S) -> None:
    """The server notices a killed client's socket close within moments."""
    deadline = time.monotonic() + timeout
    while sessions(url, pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sessions(url, pid)


def counts(url: PostgresURL) -> dict[str, int]:
    with open_store(url) as store:
        return Ledger(store).counts("2026-W48")


@pytest.mark.parametrize("k", [0, 2])
def test_killed_after_k_accepted_batches_then_rerun(tmp_path, pg_url, k):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(pg_url, 36)
        server.hold_after(k, timeout=WAIT_S)
        process = weekly(config, pg_url, server.url)
        try:
            server.wait_accepted(k, timeout=WAIT_S)
            server.wait_held(1, timeout=WAIT_S)
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=10)
        server.release()  # what was held reaches "SendGrid" after all: outcome unknown
        wait_gone(pg_url, process.pid)  # its lock went with its session
        rerun = weekly(config, pg_url, server.url)
        out, err = rerun.communicate(timeout=60)
        sent = server.accepted_count_by_address()
    assert all(count == 1 for count in sent.values()), sent
    ledger = counts(pg_url)
    assert ledger["accepted"] + ledger["unknown"] == len(emails)
    assert ledger["failed"] == ledger["pending"] == 0 and ledger["unknown"] > 0
    assert rerun.returncode == 1, out + err
    assert "outcome unknown" in err


def test_losing_the_server_mid_send_leaves_the_batch_unknown_and_a_rerun_completes(
        tmp_path, pg_url):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = add_readers(pg_url, 36)
        server.hold_after(1, timeout=WAIT_S)
        process = weekly(config, pg_url, server.url)
        try:
            server.wait_held(1, timeout=WAIT_S)
            with psycopg.connect(pg_url.dsn, autocommit=True) as admin:
                for backend in sessions(pg_url, process.pid):
                    admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        finally:
            server.release()
        out, err = process.communicate(timeout=60)
        rerun = weekly(config, pg_url, server.url)
        again, again_err = rerun.communicate(timeout=60)
        sent = server.accepted_count_by_address()
    assert process.returncode == 1, out + err
    assert err.splitlines()[-1].startswith(
        f"Error: lost the connection to PostgreSQL at {pg_url.where}: ")
    assert "Traceback" not in err
    assert all(count == 1 for count in sent.values()), sent
    ledger = counts(pg_url)
    assert ledger["accepted"] + ledger["unknown"] == len(emails)
    assert ledger["pending"] == ledger["failed"] == 0 and ledger["unknown"] > 0
    assert rerun.returncode == 1 and "outcome unknown" in again_err, again + again_err


def test_two_hosts_at_once_one_sends_the_other_exits_1(tmp_path, pg_url):
    """Two folders with their own config copy (so no file lock is shared), one store."""
    with SendGridServer(api_key=API_KEY) as server:
        hosts = [tmp_path / "host-a", tmp_path / "host-b"]
        configs = []
        for host in hosts:
            host.mkdir()
            configs.append(write_site(host, server.url))
        emails = add_readers(pg_url, 12)
        server.hold_after(0, timeout=WAIT_S)
        first = weekly(configs[0], pg_url, server.url)
        try:
            server.wait_held(1, timeout=WAIT_S)
            second = weekly(configs[1], pg_url, server.url)
            out, err = second.communicate(timeout=30)
        finally:
            server.release()
            first_out, first_err = first.communicate(timeout=60)
        sent = server.accepted_count_by_address()
    assert (second.returncode, out) == (1, "")
    assert err.startswith(f"Error: another run is sending (pid {first.pid} on ")
    assert first.returncode == 0, first_out + first_err
    assert sent == dict.fromkeys(emails, 1)
    assert pg_url.dsn.split(":")[2].split("@")[0] not in err + first_err + first_out


def test_sync_marks_readers_in_a_postgresql_store(tmp_path, pg_url, monkeypatch):
    set_send_environment(monkeypatch)
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        add_readers(pg_url, 3)
        server.set_suppressions("unsubscribes", ["Reader0@Example.com"])
        server.set_suppressions("bounces", ["reader1@example.com"])
        result = CliRunner().invoke(cli, ["--config", str(config), "--db", pg_url.dsn, "sync"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == (
        "Marked 2 subscribers: 1 unsubscribed, 1 bounced.")
    with open_store(pg_url) as store:
        assert {s.email: s.status for s in store.subscribers()} == {
            "reader0@example.com": "unsubscribed", "reader1@example.com": "bounced",
            "reader2@example.com": "active"}


HOLDER = """
import os, sys, time
from digest.location import PostgresURL
from digest.store import open_store
store = open_store(PostgresURL(sys.argv[1]))
with store.run_lock("weekly"):
    child = os.fork()  # as the render workers are forked during a run
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
"""


def test_a_forked_worker_does_not_keep_a_killed_runs_lock(tmp_path, pg_url):
    open_store(pg_url).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, pg_url.dsn],
                              stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())  # type: ignore[union-attr]
    try:
        with open_store(pg_url) as store:
            with pytest.raises(DeliveryError), store.run_lock("weekly"):
                pass
            holder.kill()
            holder.wait(timeout=10)
            wait_gone(pg_url, holder.pid, timeout=15)  # the forked child sleeps 60 s
            with store.run_lock("weekly"):
                pass
    finally:
        os.kill(child, signal.SIGKILL)
        holder.stdout.close()  # type: ignore[union-attr]
