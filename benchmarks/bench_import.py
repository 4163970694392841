"""Import a generated CSV of subscribers into a new store; print one summary line.

    python benchmarks/bench_import.py [--rows 50000] [--db postgresql://…]

Target: 50,000 rows in a few seconds (one transaction, executemany). Reading,
checking every address with email-validator and writing are all timed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from stores import add_db_argument, backend, fresh_store

from digest.store import open_store
from digest.subscribers import import_file

CATEGORIES = ["General AI", "Work", "Research", "Tools", "Productivity", "Policy"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "categories", "cadence"])
        for n in range(rows):
            chosen = ";".join(CATEGORIES[n % 3: n % 3 + n % 4])
            writer.writerow([f"reader.{n}@example{n % 97}.org", f"Reader {n}", chosen,
                             "daily" if n % 5 == 0 else "weekly"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--small", action="store_true", help="CI size: 2,000 rows")
    add_db_argument(parser)
    args = parser.parse_args()
    if args.small:
        args.rows = 2_000
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.db, Path(tmp)) as db:
        source = Path(tmp) / "subscribers.csv"
        write_csv(source, args.rows)
        with open_store(db) as store:
            start = time.perf_counter()
            plan = import_file(store, source, CATEGORIES)
            elapsed = time.perf_counter() - start
            count = len(store.subscribers())
    if len(plan.added) != args.rows or count != args.rows:
        raise SystemExit(f"import: expected {args.rows} rows, added {len(plan.added)}")
    print(f"import ({backend(db)}): {args.rows} rows in {elapsed:.2f} s "
          f"({args.rows / elapsed:.0f} rows/s)")


if __name__ == "__main__":
    main()
