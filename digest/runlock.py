"""The run lock: one send run per lock name (weekly, daily, manual) at a time.

An OS file lock (`flock`) on `<db>.<name>.lock`, which the OS drops when the process
that holds it dies. Nothing else may hold it: every file Python opens is closed on exec,
so a spawned process inherits no descriptor; a forked one (the render workers,
`workers.py`) points its copy of the lock's descriptor at /dev/null at once
(`drop_inherited_locks`), so it holds nothing of the lock, and the kernel kills it with
its parent anyway. The file says who holds it: `pid N` and the process's start time.

A lock held although the process it names is gone (a leftover child of a run killed
by an older digest), or names a live process that is not that run (its pid reused, or
not a digest process at all), is stale: the next run takes it over, says so, and goes
on. It replaces the file, so whatever still holds the old one holds nothing that
matters. A short second lock (`.takeover`) is held while the lock is taken and its
holder written, and while a stale one is taken over, so no run can read a stale holder
that a live run is about to replace.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from digest.errors import DeliveryError

ATTEMPTS = 3  # a takeover, then a lock file replaced under us: then give up
HELD: list[IO[str]] = []  # the run locks this process holds


class Echo(Protocol):
    """How the library says a line: click.echo's shape (`err=True`: to stderr)."""

    def __call__(self, message: str, *, err: bool = False) -> None: ...


def quiet(message: str, *, err: bool = False) -> None:
    """Says nothing (the default `echo`)."""


def busy(holder: str) -> DeliveryError:
    """The refusal of a second run, whichever backend holds the lock."""
    return DeliveryError(f"another run is sending ({holder}); "
                         "try again when it has finished")


@contextmanager
def run_lock(path: Path, echo: Echo = quiet) -> Iterator[None]:
    """Held by this process for the whole run; a stale holder is taken over. The file
    is emptied when the run ends, so a clean finish leaves no pid behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = acquire(path, echo)
    except OSError as exc:
        raise DeliveryError(f"{path}: cannot take the run lock: {os_problem(exc)}") from None
    with handle:
        HELD.append(handle)
        try:
            yield
        finally:
            HELD.remove(handle)
            handle.truncate(0)


def drop_inherited_locks() -> None:
    """In a forked child: its copies of the lock files' descriptors point at /dev/null,
    so only the run's own process holds the lock (its death frees it at once)."""
    for handle in HELD:
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, handle.fileno())
        os.close(null)
    HELD.clear()


os.register_at_fork(after_in_child=drop_inherited_locks)


def acquire(path: Path, echo: Echo) -> IO[str]:
    """The lock, taken and its holder written under the short `.takeover` lock, so no
    other run can read a stale holder between the two and take over a live lock."""
    for _ in range(ATTEMPTS):
        handle = open(path, "a+")  # noqa: SIM115 (returned, held for the run)
        try:
            with fence(path):
                if locked(handle, echo) and same_file(path, handle):
                    write_identity(handle)
                    return handle
        except BaseException:
            handle.close()
            raise
        handle.close()
    raise DeliveryError(f"another run keeps replacing the lock file {path}; try again")


@contextmanager
def fence(path: Path) -> Iterator[None]:
    """A second lock held for a moment while the run lock is taken or taken over, never
    across a run."""
    with open(path.with_name(f"{path.name}.takeover"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        yield


def locked(handle: IO[str], echo: Echo) -> bool:
    """Lock `handle`'s file; False if it was replaced meanwhile or a stale lock was just
    taken over (try again), a DeliveryError if a live run holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    handle.seek(0)
    holder = handle.read()
    stale = stale_reason(holder)
    if stale is None:
        name = holder.splitlines()[0].strip() if holder.strip() else "another process"
        raise busy(name) from None
    path = Path(handle.name)
    if same_file(path, handle):  # under the fence: nobody replaced it meanwhile
        os.unlink(path)
        echo(f"Warning: took over the run lock {path}: {stale}", err=True)
    return False


def same_file(path: Path, handle: IO[str]) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def write_identity(handle: IO[str]) -> None:
    handle.truncate(0)
    started = start_time(os.getpid())
    handle.write(f"pid {os.getpid()}\n" + (f"started {started}\n" if started else ""))
    handle.flush()


def stale_reason(holder: str) -> str | None:
    """Why the process the lock file names cannot be the run holding it, or None."""
    fields = dict(line.split(" ", 1) for line in holder.splitlines() if " " in line)
    if not fields.get("pid", "").strip().isdigit():
        return None
    pid = int(fields["pid"])
    if not alive(pid):
        return f"pid {pid} is no longer running"
    recorded, actual = fields.get("started", "").strip(), start_time(pid)
    if recorded and actual and recorded != actual:
        return f"pid {pid} is another process now"
    if not recorded and not digest_process(pid):
        return f"pid {pid} is not a digest run"
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not zombie(pid)


def zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def digest_process(pid: int) -> bool:
    """Whether the process runs digest; True when that cannot be told (no /proc)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"digest" in command


def os_problem(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)
