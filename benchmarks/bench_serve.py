"""`digest serve` on a real-sized site: save a template, and time until the variant on
screen is served with the change, polling as the page does.

    python benchmarks/bench_serve.py [--readers 100000] [--articles 12763] [--saves 5]
                                     [--small]

The site: 12,763 posts over three years, 200 of them in the week, 13 categories
(benchmarks/corpus.py), and a store of readers who choose 0 to 4 categories (100,000 of
them make 1,093 segments, bench_send.populate). The server runs in this process on
127.0.0.1 and shows the biggest segment's variant. Each save rewrites the site's
`templates/email.mjml.j2` with a new line in it; the time runs from the write until the
page's live reload has seen a new /version (asked every POLL_MS, as the page asks) and
fetched the variant's HTML with the new line in it. One line: the median and the worst
of those times, how many variants were rendered for the saves (the server's own record,
`LiveSite.renders`), the number of variants, and the time another variant took when
opened.

Target (2 cores): the variant on screen within 1 s of a save; no other variant rendered.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from bench_send import populate
from corpus import END, generate

from digest.config import load_settings
from digest.serve import POLL_MS, Period, PreviewServer, Snapshot, Variant, make_server

BODY = '<mj-body width="600px" css-class="bg">'
LIMIT_S = 30.0  # a save not seen by then is a failure, not a number


def write_site(root: Path, articles: int, readers: int) -> Path:
    generate(root / "content", articles)
    populate(root / "digest.db", readers)
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "digest.toml").write_text(
        '[site]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
        '[email]\npostal_address = "1 Road"\n')
    return root / "digest.toml"


def save(templates: Path, number: int) -> str:
    """Rewrite the email template with a new line in it; the line."""
    line = f"Edit number {number}"
    path = templates / "email.mjml.j2"
    original = (REPO / "templates" / "email.mjml.j2").read_text(encoding="utf-8")
    path.write_text(original.replace(BODY, f"{BODY}\n    <mj-section><mj-column><mj-text>"
                                           f"<p>{line}</p></mj-text></mj-column></mj-section>"),
                    encoding="utf-8")
    return line


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=LIMIT_S) as answer:
        return str(answer.read().decode("utf-8"))


def seen(url: str, stem: str, version: str, line: str, phase: float
         ) -> tuple[float, str]:
    """Poll the variant's version as the page does, the first time `phase` of a polling
    interval after the save (the page's timer runs on its own), then reload as the page
    does: the time the new HTML arrived, and the new version."""
    deadline = time.monotonic() + LIMIT_S
    time.sleep(phase * POLL_MS / 1000)
    while time.monotonic() < deadline:
        new = fetch(f"{url}version?variant={quote(stem)}")
        if new != version:
            fetch(f"{url}?variant={quote(stem)}")
            if line not in fetch(f"{url}email/{quote(stem)}.html"):
                raise SystemExit(f"the new version of {stem} lacks {line!r}")
            return time.perf_counter(), new
        time.sleep(POLL_MS / 1000)
    raise SystemExit(f"no new version of {stem} {LIMIT_S:.0f} s after a save")


def biggest(snapshot: Snapshot) -> Variant:
    """The segment variant with the most readers and something to show."""
    shown = [v for v in snapshot.variants if v.articles and v.subscribers]
    if not shown:
        raise SystemExit(f"no segment to show: {snapshot.error or 'no readers'}")
    return max(shown, key=lambda v: v.subscribers or 0)


def measure(server: PreviewServer, root: Path, saves: int) -> str:
    url, live = server.url, server.live
    started = time.perf_counter()
    stem = biggest(live.current()).stem
    version = fetch(f"{url}version?variant={quote(stem)}")
    first = time.perf_counter() - started
    times, before, rng = [], len(live.renders), random.Random(1)
    for number in range(1, saves + 1):
        time.sleep(1.1)  # apart, as an author saves, and past the slow files' check
        written = time.perf_counter()
        line = save(root / "templates", number)
        at, version = seen(url, stem, version, line, rng.random())
        times.append(at - written)
    rendered = len(live.renders) - before
    other = next(v for v in reversed(live.snapshot.variants) if v.articles).stem
    began = time.perf_counter()
    fetch(f"{url}email/{quote(other)}.html")
    return (f"serve: template save to the on-screen variant's new HTML in "
            f"{statistics.median(times):.2f} s median, {max(times):.2f} s worst "
            f"({saves} saves, the page polling every {POLL_MS} ms); {rendered} variants "
            f"rendered for {saves} saves, of {len(live.snapshot.variants)} variants; "
            f"another variant opened in {time.perf_counter() - began:.2f} s; "
            f"first page {first:.1f} s (load, plan, one render)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=12_763)
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--small", action="store_true",
                        help="CI size: 1,500 articles, 3,000 readers, 2 saves")
    args = parser.parse_args()
    if args.small:
        args.articles, args.readers, args.saves = 1_500, 3_000, 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        config = write_site(root, args.articles, args.readers)
        server, _ = make_server(load_settings(config), config=config, period=Period(now=END))
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            print(measure(server, root, args.saves), flush=True)
        finally:
            server.shutdown()
            server.server_close()


if __name__ == "__main__":
    main()
