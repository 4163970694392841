"""A killed run never blocks the next: real `digest` processes, SIGKILL, then a rerun at
once, against the local SendGrid server (Linux: children are found through /proc)."""

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import children, cmdline, running
from send_support import API_KEY, CATEGORIES, NOW, SECRET, ledger_counts, write_site
from sendgrid_server import SendGridServer

from digest.ledger import Ledger
from digest.store import NewSubscriber, open_store

WAIT_S = 30.0


# `digest` with its segments rendered by worker processes however few there are
# (pipeline.PARALLEL_RENDER_FROM is larger): what a site with many segments runs. Forked
# workers (Linux) get no help from their thread that watches the run: only the kernel
# can end them in time. Spawned ones (elsewhere) have only that thread.
PARALLEL = ("import sys; import digest.pipeline, digest.workers; "
            "digest.pipeline.PARALLEL_RENDER_FROM = 2; digest.workers.WATCH_PARENT_S = 3600; "
            "from digest.cli import main; sys.argv[0] = 'digest'; main()")
SPAWNED = PARALLEL.replace("digest.workers.WATCH_PARENT_S = 3600",
                           "digest.workers.can_fork = lambda: False")


def run_process(config: Path, server_url: str, *args: str,
                parallel: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": SECRET,
           "SENDGRID_API_URL": server_url}
    program = ["-c", parallel] if parallel else ["-m", "digest"]
    return subprocess.Popen([sys.executable, *program, "--config", str(config), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(ready, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := ready():
            return value
        time.sleep(0.02)
    raise TimeoutError(what)


def many_segments(root: Path, count: int = 30) -> list[str]:
    """`count` readers, each with their own pair or triple of categories: one segment
    each, enough for the parallel render."""
    sets = [*itertools.combinations(CATEGORIES, 2), *itertools.combinations(CATEGORIES, 3)]
    readers = [NewSubscriber(f"reader{i}@example.com", categories=chosen)
               for i, chosen in enumerate(sets[:count])]
    with open_store(root / "digest.db") as store:
        store.insert(readers, "cli")
    return [reader.email for reader in readers]


def render_workers(run: subprocess.Popen, forked: bool) -> list[int]:
    """The run's render workers: forked, they run the run's own command; spawned, Python's
    `spawn_main` (not its resource tracker)."""
    def started() -> list[int]:
        mine = cmdline(run.pid)
        return [c for c in children(run.pid)
                if (cmdline(c) == mine if forked else b"spawn_main" in cmdline(c))]
    return wait_until(started, "no render worker started")


@pytest.mark.skipif((os.cpu_count() or 1) < 2,
                    reason="one core: segments render in the run's own process")
@pytest.mark.parametrize("forked", [
    pytest.param(True, marks=pytest.mark.skipif(not sys.platform.startswith("linux"),
                                                reason="workers are forked on Linux only")),
    False], ids=["forked", "spawned"])
def test_killed_while_rendering_leaves_no_worker_and_the_rerun_sends(tmp_path, forked):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        emails = many_segments(tmp_path)
        program = PARALLEL if forked else SPAWNED
        first = run_process(config, server.url, "weekly", "--now", NOW, parallel=program)
        try:
            workers = render_workers(first, forked)
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        assert server.accepted == []  # it was still rendering
        wait_until(lambda: not any(running(w) for w in workers), "render workers outlived "
                   "the run", timeout=2 if forked else 10)
        rerun = run_process(config, server.url, "weekly", "--now", NOW, parallel=program)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, out + err
        assert "took over the run lock" not in err  # the lock died with the run
        assert server.accepted_count_by_address() == dict.fromkeys(emails, 1)


def test_killed_while_a_batch_waits_to_retry_it_is_resent_not_unknown(tmp_path):
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber(f"reader{i}@example.com") for i in range(3)], "cli")
        server.script(503, 503, 503)  # then waits of 1, 2 and 4 s before each retry

        def retrying():
            with open_store(tmp_path / "digest.db") as store:
                ledger = Ledger(store)
                found = ledger.batches("2026-W48") if ledger.issue("2026-W48") else []
            return any(b.state == "retrying" and b.attempts >= 2 for b in found)

        first = run_process(config, server.url, "weekly", "--now", NOW)
        try:
            wait_until(retrying, "the batch never waited to retry")
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
        assert ledger_counts(tmp_path)["unknown"] == 0
        assert ledger_counts(tmp_path)["pending"] == 3
        rerun = run_process(config, server.url, "weekly", "--now", NOW)
        out, err = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, out + err
        assert server.accepted_count_by_address() == {
            f"reader{i}@example.com": 1 for i in range(3)}


HOLDER = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
handle.truncate(0)
handle.write(sys.argv[2])
handle.flush()
print("locked", flush=True)
time.sleep(60)
"""


def hold_lock(path: Path, text: str) -> subprocess.Popen:
    """A process that is not a digest run holding the run lock, its file saying `text`."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), text],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.communicate(timeout=10)


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with SendGridServer(api_key=API_KEY) as server:
        config = write_site(tmp_path, server.url)
        with open_store(tmp_path / "digest.db") as store:
            store.insert([NewSubscriber("reader@example.com")], "cli")
        lock = tmp_path / "digest.db.weekly.lock"
        holder = hold_lock(lock, f"pid {gone.pid}\n")  # an orphan of a killed run, say
        try:
            rerun = run_process(config, server.url, "weekly", "--now", NOW)
            out, err = rerun.communicate(timeout=60)
        finally:
            stop(holder)
        assert rerun.returncode == 0, out + err
        assert err.splitlines()[0] == (f"Warning: took over the run lock {lock}: pid "
                                       f"{gone.pid} is no longer running")
        assert server.accepted_count_by_address() == {"reader@example.com": 1}


def test_a_lock_held_by_a_process_that_is_not_digest_is_taken_over(tmp_path):
    config = write_site(tmp_path)
    lock = tmp_path / "digest.db.weekly.lock"
    sleeper = subprocess.Popen(["sleep", "60"])
    holder = hold_lock(lock, f"pid {sleeper.pid}\n")
    try:
        result = run_process(config, "http://127.0.0.1:9", "weekly", "--now", NOW,
                             "--dry-run")
        out, err = result.communicate(timeout=60)
    finally:
        for process in (holder, sleeper):
            stop(process)
    assert result.returncode == 0, out + err
    assert err.splitlines()[0] == (f"Warning: took over the run lock {lock}: pid "
                                   f"{sleeper.pid} is not a digest run")
    assert out.splitlines()[-1] == "No active weekly subscribers: nothing to send"


def test_a_live_run_still_holds_its_lock(tmp_path):
    config = write_site(tmp_path)
    lock = tmp_path / "digest.db.weekly.lock"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "digest-run-stand-in"])
    holder = hold_lock(lock, f"pid {live.pid}\n")
    try:
        result = run_process(config, "http://127.0.0.1:9", "weekly", "--now", NOW)
        _, err = result.communicate(timeout=60)
    finally:
        for process in (holder, live):
            stop(process)
    assert (result.returncode, err) == (
        1, f"Error: another run is sending (pid {live.pid}); try again when it has "
           "finished\n")
