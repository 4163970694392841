"""A weekly run for 100,000 subscribers over 13 categories against the local SendGrid
server; prints one line: wall time, peak memory, requests against the minimum.

    python benchmarks/bench_send.py [--subscribers 100000] [--small] [--db postgresql://…]

Targets (2 cores): <= 20 s wall, <= 300 MB peak RSS, requests within 1% of
the sum over segments of ceil(segment size / 1000). The local server shares the two
cores: with --no-schema it skips its JSON Schema validation to time digest alone.
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
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from corpus import CATEGORIES, generate
from sendgrid_server import SendGridServer
from stores import add_db_argument, backend, dsn, fresh_store

from digest.location import Location
from digest.store import NewSubscriber, open_store

API_KEY = "SG.bench-key"
NOW = "2026-11-29T08:00"


def choices(rng: random.Random) -> tuple[str, ...]:
    """A realistic spread: a third take everything, the rest 1-4 categories, popular
    ones more often (weights fall off like a Zipf law)."""
    if rng.random() < 1 / 3:
        return ()
    weights = [1 / (rank + 1) for rank in range(len(CATEGORIES))]
    picked: set[str] = set()
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        picked.add(rng.choices(CATEGORIES, weights)[0])
    return tuple(sorted(picked))


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


def run(root: Path, count: int, schema: bool, db: Location) -> str:
    generate(root / "content", 400)  # two weeks at 200 a week, over 13 categories
    segments = populate(db, count)
    minimum = sum(math.ceil(size / 1000) for size in segments.values())
    with SendGridServer(api_key=API_KEY, schema=schema) as server:
        env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "DIGEST_SECRET_KEY": "bench" * 4,
               "XDG_CACHE_HOME": str(root / "cache"), "DIGEST_DB": dsn(db)}
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "digest", "--config", str(write_config(root, server.url)),
             "weekly", "--now", NOW], env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        requests, accepted = len(server.statuses), len(server.accepted_count_by_address())
    if result.returncode != 0:
        raise SystemExit(f"digest weekly failed:\n{result.stdout}\n{result.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return (f"send ({backend(db)}): {count} subscribers in {len(segments)} segments, "
            f"{wall:.1f} s wall, "
            f"peak RSS {peak:.0f} MB, {requests} requests (minimum {minimum}, "
            f"{(requests - minimum) / minimum:+.1%}), {accepted} addresses accepted, "
            f"server schema checks {'on' if schema else 'off'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--small", action="store_true", help="CI size: 3,000 subscribers")
    parser.add_argument("--no-schema", action="store_true",
                        help="The local server skips its JSON Schema validation (about 2.5 s "
                        "of its own CPU at 100,000 recipients), to time digest alone")
    add_db_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.db, Path(tmp)) as db:
        print(run(Path(tmp), 3_000 if args.small else args.subscribers, not args.no_schema,
                  db))


if __name__ == "__main__":
    main()
