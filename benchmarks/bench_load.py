"""CPU time the loader spends on one article file, parsed in this process (no pool, no
cache); print one summary line. A busy machine disturbs this figure far less than
bench_pipeline's wall-clock cold load, so it is the one to compare two versions with.

    python benchmarks/bench_load.py [--articles 3000] [--repeat 5] [--body-excerpts] [--small]

With --body-excerpts the articles have no excerpt field: every excerpt is made from the
body's markdown (a link, emphasis, a code span and an escape in each paragraph).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).parent))

from corpus import generate

from digest.content import LoadOptions, article_files, outcome_of


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--body-excerpts", action="store_true",
                        help="no excerpt fields: excerpts from the markdown bodies")
    parser.add_argument("--small", action="store_true", help="CI size: 300 articles, twice")
    args = parser.parse_args()
    if args.small:
        args.articles, args.repeat = 300, 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.articles, body_excerpts=args.body_excerpts)
        files = article_files(root)
        options = LoadOptions(base_url="https://bench.example.org", timezone=ZoneInfo("UTC"))
        best = min(cpu_seconds(files, options) for _ in range(args.repeat))
    source = "the markdown bodies" if args.body_excerpts else "excerpt fields"
    print(f"load: {len(files)} articles, {best / len(files) * 1e6:.0f} µs of CPU a file "
          f"(best of {args.repeat}), excerpts from {source}")


def cpu_seconds(files: list[str], options: LoadOptions) -> float:
    began = time.process_time()
    for file in files:
        outcome_of(file, options)
    return time.process_time() - began


if __name__ == "__main__":
    main()
