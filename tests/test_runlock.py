"""The run lock's take-over of a stale holder never takes over a live run's lock."""

import os
import threading

import pytest

from digest import runlock
from digest.errors import DeliveryError

WAIT_S = 10


def test_a_run_that_has_locked_but_not_yet_written_its_pid_is_not_taken_over(
        tmp_path, monkeypatch):
    """A finished run leaves no pid; a killed one leaves a dead pid. The next run (A) locks
    the file, then writes its own pid. A second run (B) arriving between the two must not
    read the dead pid, call the lock stale and take it over: both would send."""
    path = tmp_path / "digest.db.weekly.lock"
    path.write_text("pid 999999\nstarted 1\n")  # what a run killed before this fix left
    locked, release = threading.Event(), threading.Event()
    write = runlock.write_identity

    def slow_write(handle):
        locked.set()
        release.wait(WAIT_S)
        write(handle)

    monkeypatch.setattr(runlock, "write_identity", slow_write)
    held, finish, refused = threading.Event(), threading.Event(), []

    def run_a():
        with runlock.run_lock(path):
            held.set()
            finish.wait(WAIT_S)

    def run_b():
        try:
            with runlock.run_lock(path):
                pass
        except DeliveryError as exc:
            refused.append(str(exc))

    a = threading.Thread(target=run_a)
    a.start()
    assert locked.wait(WAIT_S)
    monkeypatch.setattr(runlock, "write_identity", write)
    b = threading.Thread(target=run_b)
    b.start()
    b.join(0.5)  # B waits for A to say who holds the lock
    release.set()
    b.join(WAIT_S)
    assert held.wait(WAIT_S)  # A may set it just after B was refused
    finish.set()
    a.join(WAIT_S)
    assert refused == [f"another run is sending (pid {os.getpid()}); "
                       "try again when it has finished"]


def test_a_finished_run_leaves_no_pid_behind(tmp_path):
    path = tmp_path / "digest.db.weekly.lock"
    with runlock.run_lock(path):
        assert path.read_text().startswith("pid ")
    assert path.read_text() == ""


@pytest.mark.parametrize("holder", ["pid 999999\nstarted 1\n", ""])
def test_a_stale_or_empty_lock_file_is_taken(tmp_path, holder):
    path = tmp_path / "digest.db.weekly.lock"
    path.write_text(holder)
    with runlock.run_lock(path):
        assert path.read_text().startswith("pid ")
