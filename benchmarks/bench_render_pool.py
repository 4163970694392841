"""Render and check the segments of a real-sized week in one process, then with the pool
of workers (pipeline.render_many: forked on Linux, spawned with --spawn or elsewhere),
for a few segment counts; one line each.

    python benchmarks/bench_render_pool.py [--articles 12763] [--readers 20000]
                                           [--sizes 24,100,300,1000] [--repeat 3]
                                           [--spawn] [--small] [--no-holes]

Wall and CPU (this process and its workers), the median of --repeat runs: the machine is
shared, so CPU is the steadier figure. Sets pipeline.PARALLEL_RENDER_FROM: the pool's
fixed cost (two workers, each with its own block caches; spawned ones first import
digest) against what it saves per segment. The one-process figure says how many MJML
conversions it made; --no-holes converts each distinct head and tail whole (as before
render.Blocks had holes).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import END, choices, generate

from digest import pipeline, workers
from digest.config import SPEC, Settings
from digest.select import cadence_window, issue_key, within


def settings_for(root: Path) -> Settings:
    values = {key: default for key, (_, default) in SPEC.items()}
    values.update({"site.name": "Bench", "site.base_url": "https://bench.example.org",
                   "content.dir": str(root), "email.postal_address": "1 Road"})
    return Settings(root=root, values=values)


def cpu() -> float:
    mine, workers = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return mine.ru_utime + mine.ru_stime + workers.ru_utime + workers.ru_stime


def category_sets(count: int) -> list[tuple[str, ...]]:
    """The distinct non-empty category sets `count` readers choose (benchmarks/corpus.py)."""
    rng = random.Random(1)
    return sorted({choices(rng) for _ in range(count)} - {()})


def measure(job: pipeline.RenderJob, sets: list[tuple[str, ...]], pooled: bool,
            repeat: int, holes: bool) -> str:
    pipeline.PARALLEL_RENDER_FROM = 1 if pooled else len(sets) + 1
    walls, used = [], []
    for _ in range(repeat):
        renderer = job.renderer()
        renderer.blocks.holes = holes
        started, before = time.perf_counter(), cpu()
        pipeline.render_many(sets, job, renderer)
        walls.append(time.perf_counter() - started)
        used.append(cpu() - before)
    conversions = "" if pooled else f", {renderer.blocks.conversions} MJML conversions"
    return (f"{'pool' if pooled else 'one process'} {statistics.median(walls):.2f} s wall, "
            f"{statistics.median(used):.2f} s CPU{conversions}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=12_763)
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--sizes", default="24,100,300,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spawn", action="store_true", help="spawned workers, not forked")
    parser.add_argument("--small", action="store_true",
                        help="CI size: 1,500 articles, 24 and 100, once")
    parser.add_argument("--no-holes", action="store_true",
                        help="each distinct head and tail of the emails converted whole")
    args = parser.parse_args()
    if args.small:
        args.articles, args.sizes, args.repeat = 1_500, "24,100", 1
    if args.spawn:
        workers.can_fork = lambda: False
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")
        generate(Path(tmp), args.articles)
        settings = settings_for(Path(tmp))
        now = END.replace(tzinfo=settings.timezone)
        window = cadence_window(now)
        articles = within(pipeline.load(settings).articles, window)
        job = pipeline.RenderJob(articles, issue_key("weekly", now, settings.timezone), window,
                                 settings, pipeline.site_of(settings), None,
                                 "-unsubscribe_url-", "-preferences_url-", None, True)
        sets = category_sets(args.readers)
        for size in map(int, args.sizes.split(",")):
            chosen = sets[:size]
            print(f"render pool: {len(chosen)} segments: "
                  f"{measure(job, chosen, False, args.repeat, not args.no_holes)}; "
                  f"{measure(job, chosen, True, args.repeat, not args.no_holes)}", flush=True)


if __name__ == "__main__":
    main()
