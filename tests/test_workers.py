"""Forked render workers (Linux): they start with what their run has loaded, hold none of
its run lock, and die with it."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from processes import running

from digest import runlock, workers

LINUX = sys.platform.startswith("linux")
WAIT_S = 10.0
MARK = "set before the pool started"
inherited: list[str] = []  # what a worker sees of this process's state


def seen() -> list[str]:
    return inherited


def death_signal() -> int:
    """The signal this process gets when its parent dies (Linux: PR_GET_PDEATHSIG)."""
    import ctypes

    value = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)
    return value.value


def alone() -> bool:
    """`workers.can_fork` in a run: no other thread (here, earlier tests may leave some)."""
    return LINUX


@pytest.mark.skipif(not LINUX, reason="forked workers are for Linux only")
def test_a_pool_asked_to_fork_is_forked_and_its_workers_die_with_this_process(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "inherited", [MARK])
    monkeypatch.setattr(workers, "can_fork", alone)
    with workers.process_pool(2, fork=True) as pool:
        assert pool.submit(seen).result(WAIT_S) == [MARK]
        assert pool.submit(death_signal).result(WAIT_S) == signal.SIGKILL


def test_a_pool_not_asked_to_fork_is_spawned(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "inherited", [MARK])
    with workers.process_pool(1) as pool:
        assert pool.submit(seen).result(WAIT_S) == []


def test_a_process_with_another_thread_running_spawns_its_workers(monkeypatch):
    """A lock another thread holds at the fork would stay locked in the worker."""
    monkeypatch.setattr(sys.modules[__name__], "inherited", [MARK])
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, args=(WAIT_S,))
    other.start()
    try:
        assert not workers.can_fork()
        with workers.process_pool(1, fork=True) as pool:
            assert pool.submit(seen).result(WAIT_S) == []
    finally:
        stop.set()
        other.join(WAIT_S)


@pytest.mark.skipif(not LINUX, reason="forked workers are for Linux only")
def test_a_forked_child_does_not_hold_the_run_lock(tmp_path):
    """The run ends (or dies) while a forked child lives: the lock is free at once."""
    path = tmp_path / "digest.db.weekly.lock"
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    with runlock.run_lock(path):
        child = os.fork()
        if child == 0:  # pragma: no cover (the child)
            os.write(ready_w, b"x")
            os.read(release_r, 1)
            os._exit(0)
        os.read(ready_r, 1)
    try:
        with runlock.run_lock(path):  # a second run, the child still alive
            assert path.read_text().startswith(f"pid {os.getpid()}\n")
    finally:
        os.write(release_w, b"x")
        os.waitpid(child, 0)
        for fd in (ready_r, ready_w, release_r, release_w):
            os.close(fd)


RUN = """
import sys, time
from digest import workers

def sleep(seconds):
    time.sleep(seconds)

workers.WATCH_PARENT_S = 3600.0  # only the kernel can end the worker in time
with workers.process_pool(1, fork=True) as pool:
    pool.submit(sleep, 0).result()
    print(*[p.pid for p in pool._processes.values()], flush=True)
    pool.submit(sleep, 60).result()
"""


def test_a_forked_worker_is_killed_with_its_parent_not_only_when_it_notices():
    parent = subprocess.Popen([sys.executable, "-c", RUN], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        assert running(worker)
    finally:
        parent.kill()
        parent.communicate(timeout=WAIT_S)
    deadline = time.monotonic() + 2.0  # the watching thread would take an hour
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not running(worker)
