"""A kill campaign: weekly runs SIGKILLed at random moments (planning, rendering,
freezing, sending, retry waits), a third of them with 30% injected 429/5xx, each
followed at once by reruns until nothing is left to send. Local only, bounded.

    python benchmarks/bench_kills.py [--trials 30] [--readers 2000] [--seed 1] [--small]

Prints the moments the kills landed in, then the counts the send path promises:
duplicates 0, silent misses 0, unknown batches only those truly in flight (split by
whether the local SendGrid server had accepted them), blocked reruns 0. Needs the test
extras (`pip install -e '.[test]'`) for the local SendGrid server.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from processes import children, cmdline
from send_support import CATEGORIES, NOW, write_site
from sendgrid_server import SendGridServer

from digest.ledger import Ledger
from digest.store import NewSubscriber, open_store

API_KEY = "SG.kill-campaign"
SECRET = "kill-campaign-secret-0123"
KEY = "2026-W48"
RERUNS = 6  # reruns after a kill before a trial counts as stuck
RUN_TIMEOUT_S = 120.0


@dataclass
class Tally:
    trials: int = 0
    phases: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    silent_misses: int = 0
    unknown_delivered: int = 0  # unknown batches the server had in fact accepted
    unknown_not_delivered: int = 0
    unknown_recipients: int = 0
    blocked_reruns: int = 0
    stuck: int = 0  # trials still failing or pending after RERUNS reruns
    reruns: int = 0


def populate(root: Path, count: int, rng: random.Random) -> list[str]:
    """Readers over 1-3 of the 6 categories: up to 41 segments, so rendering is parallel."""
    readers = [NewSubscriber(f"reader{i}@example.org",
                             categories=tuple(sorted(rng.sample(CATEGORIES, rng.randint(1, 3)))))
               for i in range(count)]
    with open_store(root / "digest.db") as store:
        store.insert(readers, "import")
    return [reader.email for reader in readers]


def start(config: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": SECRET,
           "SENDGRID_API_URL": url, "XDG_CACHE_HOME": str(config.parent / "cache")}
    env.pop("DIGEST_DB", None)
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config),
                             "weekly", "--now", NOW], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def render_workers(pid: int) -> list[int]:
    """The run's render workers: forked, they run the run's own command (on Linux; not
    its courier, which is spawned, nor multiprocessing's resource tracker)."""
    run = cmdline(pid)
    return [child for child in children(pid) if run and cmdline(child) == run]


def phase(db: Path, pid: int) -> str:
    """Where the run is: planning, rendering, sending, retry wait, or done."""
    if render_workers(pid):
        return "rendering"
    with open_store(db) as store:
        ledger = Ledger(store)
        if ledger.issue(KEY) is None:
            return "planning"
        states = Counter(batch.state for batch in ledger.batches(KEY))
    if states["retrying"]:
        return "retry wait"
    if states["pending"] == sum(states.values()):
        return "frozen, not sent"
    return "sending" if states["pending"] or states["unknown"] == 0 else "sending (unknown)"


def calibrate(root: Path, readers: int, rng: random.Random) -> float:
    """Seconds an uninterrupted run takes: kills land between 0.2 s and that."""
    config = write_site(root, timeout=10)
    populate(root, readers, rng)
    with SendGridServer(api_key=API_KEY, delay=0.15, schema=False) as server:
        started = time.monotonic()
        process = start(config, server.url)
        process.communicate(timeout=RUN_TIMEOUT_S)
        if process.returncode != 0:
            raise SystemExit("the uninterrupted run failed")
        return time.monotonic() - started


def trial(root: Path, readers: int, faults: bool, kill_at: float, rng: random.Random,
          tally: Tally) -> None:
    config = write_site(root, timeout=10)
    emails = populate(root, readers, rng)
    with SendGridServer(api_key=API_KEY, fault_rate=0.3 if faults else 0.0,
                        seed=rng.randrange(1 << 30), delay=0.15, schema=False) as server:
        first = start(config, server.url)
        time.sleep(kill_at)
        if first.poll() is None:
            tally.phases[phase(root / "digest.db", first.pid)] += 1
            first.send_signal(signal.SIGKILL)
        else:
            tally.phases["finished before the kill"] += 1
        first.communicate(timeout=RUN_TIMEOUT_S)
        rerun_until_settled(config, server, tally)
        counts = server.accepted_count_by_address()
        accepted = [a.body for a in server.accepted]
    count_outcomes(root / "digest.db", emails, counts, accepted, tally)
    tally.trials += 1


def rerun_until_settled(config: Path, server: SendGridServer, tally: Tally) -> None:
    """Rerun at once, then until exit 0 or only unknown batches are left."""
    for _ in range(RERUNS):
        process = start(config, server.url)
        _, err = process.communicate(timeout=RUN_TIMEOUT_S)
        tally.reruns += 1
        if "another run is sending" in err:
            tally.blocked_reruns += 1
        if process.returncode == 0 or settled(config.parent / "digest.db"):
            return
    tally.stuck += 1


def settled(db: Path) -> bool:
    with open_store(db) as store:
        counts = Ledger(store).counts(KEY)
    return counts["pending"] == counts["failed"] == 0 and counts["planned"] > 0


def count_outcomes(db: Path, emails: list[str], counts: dict[str, int],
                   accepted: list[dict], tally: Tally) -> None:
    tally.duplicates += sum(n - 1 for n in counts.values() if n > 1)
    requested = {(body["custom_args"]["segment"], body["custom_args"].get("batch"))
                 for body in accepted}
    with open_store(db) as store:
        ledger = Ledger(store)
        by_id = {s.id: s.email for s in store.subscribers()}
        batches = ledger.batches(KEY) if ledger.issue(KEY) else []
    unknown_readers: set[str] = set()
    for batch in batches:
        if batch.unknown:
            members = {by_id[i] for i in batch.recipients}
            unknown_readers |= members
            tally.unknown_recipients += len(members)
            if (batch.segment, str(batch.number)) in requested:
                tally.unknown_delivered += 1
            else:
                tally.unknown_not_delivered += 1
    tally.silent_misses += sum(1 for email in emails
                               if counts.get(email, 0) == 0 and email not in unknown_readers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--small", action="store_true", help="CI size: 3 trials, 100 readers")
    args = parser.parse_args()
    trials, readers = (3, 100) if args.small else (args.trials, args.readers)
    rng = random.Random(args.seed)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        horizon = calibrate(Path(tmp), readers, rng)
    for number in range(trials):
        faults = number % 3 == 2  # retries make these runs longer
        with tempfile.TemporaryDirectory() as tmp:
            trial(Path(tmp), readers, faults,
                  rng.uniform(0.2, horizon * (2 if faults else 1)), rng, tally)
    wall = time.monotonic() - started
    phases = ", ".join(f"{name} {count}" for name, count in sorted(tally.phases.items()))
    print(f"kills: {tally.trials} trials of {readers} readers ({trials // 3} with 30% "
          f"faults), an uninterrupted run {horizon:.1f} s, {wall:.0f} s in all; killed "
          f"during: {phases}")
    print(f"kills: duplicates {tally.duplicates}, silent misses {tally.silent_misses}, "
          f"unknown batches {tally.unknown_delivered + tally.unknown_not_delivered} "
          f"({tally.unknown_recipients} recipients: {tally.unknown_delivered} delivered, "
          f"{tally.unknown_not_delivered} not), blocked reruns {tally.blocked_reruns}, "
          f"stuck trials {tally.stuck}, reruns {tally.reruns}")
    if tally.duplicates or tally.silent_misses or tally.blocked_reruns or tally.stuck:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
