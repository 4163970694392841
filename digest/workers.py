"""Process pools that leave nothing behind when their run is killed.

Workers are spawned, not forked: a fresh interpreter that inherits no descriptor, so
no worker holds the run's lock file or a database connection (a PostgreSQL session
would keep its advisory lock). Each watches the process that started it and exits as
soon as that process is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

WATCH_PARENT_S = 0.2  # how often a worker checks that the process that started it lives


def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes; `initializer(*initargs)` runs in each."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=start_worker,
                               initargs=(os.getpid(), initializer, initargs))


def start_worker(parent: int, initializer: Callable[..., None] | None,
                 initargs: tuple[Any, ...]) -> None:
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_PARENT_S)
    os._exit(1)
