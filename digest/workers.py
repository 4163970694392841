"""Process pools that leave nothing behind when their run is killed.

On Linux a pool asked to fork (`process_pool(..., fork=True)`, the render workers) is
forked when the process has no other thread: a worker inherits the imports, the loaded
articles and the job, so it starts in milliseconds. What else it inherits it never uses:

- the run's lock: `runlock.py` points a forked child's copy of the lock file at
  /dev/null at once, so the flock stays the parent's alone;
- database connections: `sql.py` does the same with PostgreSQL sockets, and a worker
  never touches the run's SQLite or PostgreSQL connection;
- the parent's objects: `gc.freeze()` first, so the worker's collections neither copy
  the parent's pages nor run an inherited object's finalizer; it ends with `os._exit`
  (multiprocessing's forked processes do), which runs no finalizer and no atexit.

Elsewhere (no fork, another thread running, or not asked), workers are spawned: a fresh
interpreter that inherits no descriptor. Either way a worker dies with the process that
started it: on Linux the kernel kills it (`PR_SET_PDEATHSIG`), and everywhere a thread
watches that process and exits as soon as it is gone.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

WATCH_PARENT_S = 0.2  # how often a worker checks that the process that started it lives
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@contextmanager
def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = (), *, fork: bool = False
                 ) -> Iterator[ProcessPoolExecutor]:
    """A pool of `workers` processes, forked when `fork` and `can_fork()`, else spawned;
    `initializer(*initargs)` runs in each. While forked workers run, this process's
    objects are frozen too (`gc.freeze`): its collections would otherwise walk them and
    copy every page it shares with its workers."""
    method = "fork" if fork and can_fork() else "spawn"
    with ExitStack() as stack:
        if method == "fork":
            gc.freeze()
            stack.callback(gc.unfreeze)
        yield stack.enter_context(ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=start_worker,
            initargs=(os.getpid(), initializer, initargs)))


def can_fork() -> bool:
    """Linux (the kernel can kill a worker with its parent), and no other thread that
    could hold a lock the child would inherit locked."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and \
        threading.active_count() == 1


def start_worker(parent: int, initializer: Callable[..., None] | None,
                 initargs: tuple[Any, ...]) -> None:
    die_with(parent)
    gc.freeze()  # what a forked worker inherited stays where it is, untouched
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def die_with(parent: int) -> None:
    """Ask the kernel (Linux) to SIGKILL this process when its parent dies; exit now if
    the parent died before the request was made."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_PARENT_S)
    os._exit(1)
