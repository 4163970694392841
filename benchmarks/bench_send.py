"""A weekly run on a real-sized archive against the local SendGrid server, measured
against the send floor of the same run.

    python benchmarks/bench_send.py [--subscribers 100000] [--articles 12763] [--small]
                                    [--scale] [--again] [--no-schema] [--db postgresql://…]

The site: 12,763 posts over three years, 200 of them in the week, 13 categories
(benchmarks/corpus.py). The readers choose 0 to 4 categories with skewed popularity:
100,000 of them make 1,093 distinct category sets. One line per run: the wall time as a
multiple of the floor (the official client alone pushing the same request bodies to a
local server that does nothing, 4 in flight, measured in the same run), the time before
the first request (load, select, render, plan, freeze) and after it (send), peak RSS,
requests against the minimum and the number of segments, and the stages digest's
`--timings` reports. `--scale` prints a line for 10,000, 100,000 and 1,000,000
subscribers; `--again` adds the same readers' next issue (a steady week: the first
run recorded their unsubscribe tokens).

Targets (2 cores): <= 3x the floor, <= 300 MB peak RSS at 100,000; requests within 1% of
the sum over segments of ceil(segment size / 1000); 1,000,000 in <= 60 s and <= 1 GB.
The local server records each request as it comes and checks it (the JSON Schema and
SendGrid's limits) after the run, so that, like the floor's do-nothing server, it takes
no CPU from the run it measures; the line says what the checks found. `--live-checks`
checks each request before answering it, as the tests' server does (its CPU then
competes with the run's for the two cores); --no-schema skips the JSON Schema.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from corpus import choices, generate
from floor import send_floor
from processes import children, cmdline
from sendgrid_server import SendGridServer
from stores import add_db_argument, backend, dsn, fresh_store

from digest.location import Location
from digest.store import NewSubscriber, open_store

API_KEY = "SG.bench-key"
NOW = "2026-11-29T08:00"


def populate(db: Location, count: int, seed: int = 1) -> Counter[tuple[str, ...]]:
    rng = random.Random(seed)
    readers = [NewSubscriber(email=f"reader{i}@example{i % 89}.org", name=f"Reader {i}",
                             categories=choices(rng), cadence="weekly", status="active")
               for i in range(count)]
    with open_store(db) as store:
        store.insert(readers, "import")
    return Counter(reader.categories for reader in readers)


def write_config(root: Path, url: str) -> Path:
    (root / "digest.toml").write_text(
        '[site]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
        '[email]\nfrom = "Bench <news@bench.example.org>"\npostal_address = "1 Road"\n'
        f'[sendgrid]\napi_url = "{url}"\n')
    return root / "digest.toml"


class FirstRequest:
    """Notes when the server saw its first request: the end of the run's preparation."""

    def __init__(self, server: SendGridServer) -> None:
        self.server, self.at, self.before = server, 0.0, len(server.statuses)
        self.done = threading.Event()
        threading.Thread(target=self.watch, daemon=True).start()

    def watch(self) -> None:
        while not self.done.wait(0.005):
            if len(self.server.statuses) > self.before:
                self.at = time.perf_counter()
                return


WEEKLY = ["weekly", "--now", NOW]
AGAIN = ["send", "--since", "2026-11-23", "--until", "2026-11-29", "--yes"]  # same week


def digest(root: Path, server: SendGridServer, db: Location, command: list[str]
           ) -> tuple[float, float, dict[str, float], float]:
    """Wall time of a digest send command, of its preparation before the first request,
    each stage its --timings report (load, plan, freeze, send), and its peak RSS in MB."""
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": "bench" * 4,
           "XDG_CACHE_HOME": str(root / "cache"), "DIGEST_DB": dsn(db)}
    first = FirstRequest(server)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(write_config(root, server.url)),
             *command, "--timings"], env=env, stdout=out, stderr=err, text=True)
        peak = peak_rss_mb(process)
        wall = time.perf_counter() - started
        first.done.set()
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"digest {command[0]} failed:\n{stdout}\n{stderr}")
    stages = {name: float(seconds) for name, seconds, _ in (
        line.removeprefix("Timing: ").split(" ") for line in stderr.splitlines()
        if line.startswith("Timing: "))}
    return wall, (first.at or started) - started, stages, peak


def peak_rss_mb(process: subprocess.Popen[str]) -> tuple[float, float, float]:
    """The run's own high-water mark (VmHWM), its couriers' (spawned) summed, and the
    peak of their proportional set sizes summed at the same moment (shared pages, such
    as the libraries both load, counted once), read until the run exits. Not ru_maxrss
    of the children: a child started by vfork inherits this process's high-water mark,
    which after a first run holds every request body the local server kept."""
    peaks: dict[int, int] = {}
    couriers: set[int] = set()  # spawned (render workers are forked: the run's command)
    together, rounds = 0, 0
    while process.poll() is None:
        pids = (process.pid, *children(process.pid))
        couriers.update(pid for pid in pids[1:] if b"spawn_main" in cmdline(pid))
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0), high_water_kb(pid))
        if rounds % PSS_EVERY == 0:  # the kernel walks every page: not too often
            together = max(together, sum(proportional_kb(pid) for pid in pids))
        rounds += 1
        time.sleep(0.02)
    run = peaks.pop(process.pid, 0)
    courier = sum(peak for pid, peak in peaks.items() if pid in couriers)
    return run / 1024, courier / 1024, together / 1024


PSS_EVERY = 10  # rounds of 20 ms between two readings of the proportional set sizes


def proportional_kb(pid: int) -> int:
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return sum(int(line.split()[1]) for line in rollup.splitlines()
                   if line.startswith("Pss:"))
    except (OSError, ValueError):
        return 0


def high_water_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return max([0, *(int(line.split()[1]) for line in status.splitlines()
                         if line.startswith("VmHWM:"))])
    except (OSError, ValueError):
        return 0


def measured(root: Path, server: SendGridServer, db: Location, command: list[str]) -> str:
    """One run's line, without its first words (what was sent to how many)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sent, accepted = len(server.statuses), len(server.accepted)
    wall, prepared, stages, peak = digest(root, server, db, command)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    requests = len(server.statuses) - sent
    floor = send_floor([request.body for request in server.accepted[accepted:]])
    return (f"{wall:.1f} s wall = "
            f"{wall / floor:.1f}x the floor ({floor:.2f} s), prepare {prepared:.1f} s "
            f"(load, select, render, freeze, tokens), send {wall - prepared:.1f} s "
            f"[{', '.join(f'{name} {seconds:.1f}' for name, seconds in stages.items())}]; "
            f"digest's CPU {cpu:.1f} s, peak RSS {peak[0] + peak[1]:.0f} MB (run "
            f"{peak[0]:.0f} + its couriers {peak[1]:.0f}; "
            f"{peak[2]:.0f} MB at most at once, shared pages counted once), "
            f"{requests} requests")


def run(root: Path, count: int, articles: int, schema: bool, db: Location,
        again: bool, live: bool) -> list[str]:
    generate(root / "content", articles)
    segments = populate(db, count)
    minimum = sum(math.ceil(size / 1000) for size in segments.values())
    with SendGridServer(api_key=API_KEY, schema=schema, deferred=not live) as server:
        first = measured(root, server, db, WEEKLY)
        requests, addresses = len(server.statuses), len(server.accepted_count_by_address())
        lines = [f"send ({backend(db)}): {count} subscribers in {len(segments)} segments, "
                 f"{first} (minimum {minimum}, {(requests - minimum) / minimum:+.1%}), "
                 f"{addresses} addresses accepted, server schema checks "
                 f"{'on' if schema else 'off'}, "
                 f"{'before each answer' if live else 'after the run'}"]
        if again:
            lines.append(f"again ({backend(db)}), the same readers' next issue (their "
                         f"tokens recorded): {measured(root, server, db, AGAIN)}")
        # every record was read (so checked) above: by the floor and the address count
        lines.append(f"the server's checks found {len(server.problems)} problems"
                     + "".join(f"; {p['message']}" for p in server.problems[:3]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=12_763)
    parser.add_argument("--small", action="store_true",
                        help="CI size: 3,000 subscribers, 1,500 articles")
    parser.add_argument("--scale", action="store_true",
                        help="one line each for 10,000, 100,000 and 1,000,000 subscribers")
    parser.add_argument("--no-schema", action="store_true",
                        help="The local server skips its JSON Schema validation (about 2.5 s "
                        "of its own CPU at 100,000 recipients), to time digest alone")
    parser.add_argument("--again", action="store_true",
                        help="then a second issue to the same readers (a manual issue of "
                        "the same week): a steady week, their tokens recorded by the first")
    parser.add_argument("--live-checks", action="store_true",
                        help="The local server checks each request before it answers (its "
                        "CPU then competes with the run's), instead of after the run")
    add_db_argument(parser)
    args = parser.parse_args()
    if args.small:
        args.subscribers, args.articles = 3_000, 1_500
    sizes = [10_000, 100_000, 1_000_000] if args.scale else [args.subscribers]
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp, fresh_store(args.db, Path(tmp)) as db:
            for line in run(Path(tmp), size, args.articles, not args.no_schema, db,
                            args.again, args.live_checks):
                print(line, flush=True)


if __name__ == "__main__":
    main()
