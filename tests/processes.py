"""What Linux's /proc tells of a process: its children, its command line, whether it
still runs. The tests and benchmarks that kill runs and watch their workers use it."""

from __future__ import annotations

from pathlib import Path


def children(pid: int) -> list[int]:
    """The processes that `pid` (any of its threads) started and that are not reaped."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in listing.read_text().split()]
        except (OSError, ValueError):  # the thread or the process has just ended
            continue
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it has just exited
        return b""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
