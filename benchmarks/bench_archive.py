"""Publish the web archive of many sent issues; print one line: the first run (every
file written) and a rerun (nothing changed, nothing written).

    python benchmarks/bench_archive.py [--issues 500] [--small]

Each issue is a busy week (60 articles, about 50 KB of HTML) frozen in the ledger, as
`weekly` leaves it. Target (2 cores): 500 issues in a few seconds, the rerun faster
than the first run and writing no file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from helpers import BERLIN, busy_week, make_settings

from digest import archive
from digest.config import load_settings
from digest.ledger import Ledger
from digest.pipeline import build_issue, renderer_for
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG, Email
from digest.select import Window, cadence_window
from digest.store import open_store

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)


def busy_email() -> Email:
    settings = make_settings()
    return build_issue(busy_week(NOW, count=60), key="2026-W48", window=cadence_window(NOW),
                       settings=settings, renderer=renderer_for(settings),
                       unsubscribe_url=UNSUBSCRIBE_TAG, preferences_url=PREFERENCES_TAG).email


def sent_issues(db: Path, count: int) -> None:
    """`count` weekly issues, done, each with its frozen archive copy."""
    email = busy_email()
    with open_store(db) as store:
        ledger = Ledger(store)
        for n in range(count):
            end = NOW - timedelta(weeks=n)
            key = f"issue-{n:05d}"
            ledger.create(key, "weekly", Window(end - timedelta(days=7), end), [])
            ledger.finish_if_complete(key)
            ledger.archive(key, email)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--small", action="store_true", help="CI size: 60 issues")
    args = parser.parse_args()
    if args.small:
        args.issues = 60
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "digest.toml").write_text(
            '[site]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
            '[archive]\ndir = "public"\nurl = "https://bench.example.org/newsletter"\n')
        settings = load_settings(root / "digest.toml", environ={})
        sent_issues(settings.store_path, args.issues)
        start = time.perf_counter()
        first = archive.publish(settings)
        middle = time.perf_counter()
        second = archive.publish(settings)
        end = time.perf_counter()
    files = len(first.changed)
    expected = args.issues + -(-args.issues // archive.PAGE_SIZE) + 1  # pages, index, feed
    if second.changed or files != expected:
        raise SystemExit(f"archive: unexpected files: {files} written, "
                         f"{len(second.changed)} rewritten")
    print(f"archive: {args.issues} issues, {files} files in {middle - start:.2f} s; "
          f"rerun {end - middle:.2f} s, {len(second.changed)} written")


if __name__ == "__main__":
    main()
