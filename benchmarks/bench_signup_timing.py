"""Can response times tell a known address from an unknown one? Sign-ups over real
HTTP (digest web's Werkzeug server behind a trusted proxy, each from its own forwarded
address) for unknown, pending, active and unsubscribed addresses, interleaved; prints
the median time of each kind and how often the best single threshold between "new or
pending" (the old code wrote to the store for those) and "active or stopped" (it did
not) guesses the kind right: 50 % is a coin toss, issue 10 measured 95 % (38 of 40).

    python benchmarks/bench_signup_timing.py [--per-kind 100] [--small]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from web_support import Clock, add_reader, serving, site_settings

KINDS = ("unknown", "pending", "active", "unsubscribed")
WARM_UP = 20
WRITES = {"unknown", "pending"}  # what the old code wrote to the store for


def post(url: str, token: str, email: str, client: str) -> float:
    body = urllib.parse.urlencode({"csrf": token, "email": email}).encode()
    request = urllib.request.Request(f"{url}/subscribe", data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": client})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
    return time.perf_counter() - started


def accuracy(samples: list[tuple[str, float]]) -> float:
    """The share of samples the best threshold on time sorts into writes / no writes."""
    best = 0
    times = sorted(t for _, t in samples)
    for threshold in times:
        slow_is_write = sum((t >= threshold) == (kind in WRITES) for kind, t in samples)
        best = max(best, slow_is_write, len(samples) - slow_is_write)
    return best / len(samples)


def run(root: Path, per_kind: int) -> str:
    clock = Clock()
    settings = site_settings(root, extra="proxies = 1\n")
    for i in range(per_kind):
        add_reader(root, f"active{i}@example.org")
        add_reader(root, f"gone{i}@example.org", status="unsubscribed")
        add_reader(root, f"wait{i}@example.org", status="pending")
    address = {"unknown": "new{}@example.org", "pending": "wait{}@example.org",
               "active": "active{}@example.org", "unsubscribed": "gone{}@example.org"}
    order = [(kind, i) for kind in KINDS for i in range(per_kind)]
    random.Random(10).shuffle(order)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    samples = []
    with serving(settings, clock) as served:
        tokens = served.app.extensions["digest"].tokens
        for n in range(WARM_UP):  # the first requests load templates and caches
            token = tokens.form_token()
            clock.advance(seconds=5)
            post(served.url, token, f"warm{n}@example.org", f"10.255.{n}.9")
        for n, (kind, i) in enumerate(order):
            token = tokens.form_token()
            clock.advance(seconds=5)
            elapsed = post(served.url, token, address[kind].format(i), f"10.{n // 250}.{n % 250}.9")
            samples.append((kind, elapsed))
        served.drain()
    medians = ", ".join(
        f"{kind} {statistics.median(t for k, t in samples if k == kind) * 1000:.2f} ms"
        for kind in KINDS)
    return (f"sign-up timing: {per_kind} per kind, median {medians}; the best threshold "
            f"tells writes from no writes {accuracy(samples) * 100:.0f} % of the time")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--small", action="store_true", help="CI size: 10 per kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(run(Path(tmp), 10 if args.small else args.per_kind))


if __name__ == "__main__":
    main()
