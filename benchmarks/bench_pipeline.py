"""Load a 15,000-article site, select one week, render one issue; then write the
previews of about 1,000 segments; print one summary line for each.

    python benchmarks/bench_pipeline.py [--articles 15000] [--repeat 5] [--readers 20000]
                                        [--small] [--body-excerpts]

With --body-excerpts the articles have no excerpt field: every excerpt is made from
the body's markdown (a link, emphasis, a code span and an escape in each paragraph).

Targets (2 cores): load + select <= 1.5 s, render one issue <= 100 ms, `digest preview`
with 1,000 segment previews <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from corpus import END, choices, generate

from digest.config import SPEC, Settings
from digest.pipeline import build_issue, caps_of, load, renderer_for
from digest.select import cadence_window, issue_key, select
from digest.store import NewSubscriber, open_store


def settings_for(root: Path) -> Settings:
    values = {key: default for key, (_, default) in SPEC.items()}
    values.update({"site.name": "Bench", "site.base_url": "https://bench.example.org",
                   "content.dir": str(root)})
    return Settings(root=root, values=values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=15_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readers", type=int, default=20_000,
                        help="weekly readers in the store: 20,000 choose about 1,000 "
                        "distinct sets of categories")
    parser.add_argument("--small", action="store_true",
                        help="CI size: 1,500 articles, 2,000 readers")
    parser.add_argument("--body-excerpts", action="store_true",
                        help="no excerpt fields: excerpts from the markdown bodies")
    args = parser.parse_args()
    if args.small:
        args.articles, args.repeat, args.readers = 1_500, 2, 2_000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # start cold, then warm
        root = Path(tmp) / "content"
        generate(root, args.articles, body_excerpts=args.body_excerpts)
        print(summary(settings_for(root), args), flush=True)
        print(preview(Path(tmp), args.readers))


def preview(root: Path, readers: int) -> str:
    """`digest preview` of the benchmark week with a store of `readers`: the whole issue
    and one preview per segment, each checked, as a publisher runs it."""
    rng = random.Random(1)
    with open_store(root / "digest.db") as store:
        store.insert([NewSubscriber(f"r{i}@example.org", categories=choices(rng),
                                    cadence="weekly", status="active")
                      for i in range(readers)], "import")
    (root / "digest.toml").write_text(
        '[site]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
        '[email]\npostal_address = "1 Road"\n')
    started, cpu = time.perf_counter(), children_cpu()
    result = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(root / "digest.toml"), "preview",
         "--now", END.isoformat(), "--out", str(root / "previews")],
        capture_output=True, text=True, check=False,
        env={**os.environ, "DIGEST_SECRET_KEY": "bench" * 4})
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"digest preview failed:\n{result.stdout}\n{result.stderr}")
    written = len(list((root / "previews").glob("*.html"))) - 2  # the issue and the index
    return (f"preview: {written} segment previews (and the issue) written in {wall:.1f} s "
            f"wall, {cpu:.1f} s CPU")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summary(settings: Settings, args: argparse.Namespace) -> str:
    now = END.replace(tzinfo=settings.timezone)
    window, key = cadence_window(now), issue_key("weekly", now, settings.timezone)
    began = time.perf_counter()
    load(settings)
    cold = time.perf_counter() - began
    started = time.perf_counter()
    loaded = load(settings)
    loaded_at = time.perf_counter()
    issue = select(loaded.articles, key=key, window=window, caps=caps_of(settings))
    selected_at = time.perf_counter()
    renderer = renderer_for(settings)
    renders = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        built = build_issue(loaded.articles, key=key, window=window, settings=settings,
                            renderer=renderer, unsubscribe_url="https://bench.example.org/u/t")
        renders.append(time.perf_counter() - began)
    return (f"pipeline: {len(loaded.articles)} articles loaded cold in {cold:.2f} s, "
            f"warm (cached) in {loaded_at - started:.2f} s, "
            f"week selected in {(selected_at - loaded_at) * 1000:.1f} ms "
            f"({len(issue.articles)} of {issue.in_window}), load+select "
            f"{selected_at - started:.2f} s; "
            f"render median {statistics.median(renders) * 1000:.0f} ms "
            f"({built.email.size / 1024:.1f} KB, {len(loaded.problems)} problems)")


if __name__ == "__main__":
    main()
