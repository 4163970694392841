"""`digest serve` on a real-sized site: save a template, or an article, and time until
the page shows the change on the variant on screen.

    python benchmarks/bench_serve.py [--readers 100000] [--articles 12763] [--saves 5]
                                     [--small]

The site: 12,763 posts over three years, 200 of them in the week, 13 categories
(benchmarks/corpus.py), and a store of readers who choose 0 to 4 categories (100,000 of
them make 1,093 segments, bench_send.populate). The server runs in this process on
127.0.0.1; a thread plays the page showing the biggest segment's variant: it asks for
the variant's /version every POLL_MS and, when that changed, reloads the page and the
email's HTML. Each template save rewrites the site's `templates/email.mjml.j2` with a new
line in it, each article save the title of the variant's first article, 0.5 to 1.5 s
apart; the time runs from the write until the page has the HTML with the change in it.

One line: the median and the worst of those times; how many renders the template saves
caused, and how many of those were of other variants than the one on screen (the
server's own record, `LiveSite.renders`; a save caught half-written is rendered twice);
the number of variants; the time another variant took when opened; the first page.

Target (2 cores): the variant on screen within 1 s of a template save, and no other
variant rendered.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from bench_send import populate
from corpus import END, generate

from digest.config import load_settings
from digest.serve import POLL_MS, Period, PreviewServer, Snapshot, Variant, make_server

BODY = '<mj-body width="600px" css-class="bg">'
TITLE = "title: >-\n  "
LIMIT_S = 30.0  # a save not seen by then is a failure, not a number


def write_site(root: Path, articles: int, readers: int) -> Path:
    generate(root / "content", articles)
    populate(root / "digest.db", readers)
    shutil.copytree(REPO / "templates", root / "templates")
    (root / "digest.toml").write_text(
        '[site]\nname = "Bench"\nbase_url = "https://bench.example.org"\n'
        '[email]\npostal_address = "1 Road"\n')
    return root / "digest.toml"


def save_template(templates: Path, number: int) -> str:
    """Rewrite the email template with a new line in it; the line."""
    line = f"Edit number {number}"
    path = templates / "email.mjml.j2"
    original = (REPO / "templates" / "email.mjml.j2").read_text(encoding="utf-8")
    path.write_text(original.replace(BODY, f"{BODY}\n    <mj-section><mj-column><mj-text>"
                                           f"<p>{line}</p></mj-text></mj-column></mj-section>"),
                    encoding="utf-8")
    return line


def save_article(article: Path, original: str, number: int) -> str:
    """Rewrite the article with a new word in its title; the word."""
    word = f"Retitled{number}"
    article.write_text(original.replace(TITLE, f"{TITLE}{word} ", 1), encoding="utf-8")
    return word


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=LIMIT_S) as answer:
        return str(answer.read().decode("utf-8"))


class Page:
    """The browser's page on one variant: asks for its version every POLL_MS and, when it
    changed, reloads (the page, then the email's HTML in the frame), as its script does."""

    def __init__(self, url: str, stem: str) -> None:
        self.url, self.stem = url, quote(stem)
        self.version = fetch(f"{url}version?variant={self.stem}")
        self.loads: queue.Queue[tuple[float, str]] = queue.Queue()
        self.stop = threading.Event()
        threading.Thread(target=self.poll, daemon=True).start()

    def poll(self) -> None:
        while not self.stop.wait(POLL_MS / 1000):
            version = fetch(f"{self.url}version?variant={self.stem}")
            if version != self.version:
                fetch(f"{self.url}?variant={self.stem}")
                html = fetch(f"{self.url}email/{self.stem}.html")
                self.version = version
                self.loads.put((time.perf_counter(), html))

    def shown(self, line: str) -> float:
        """When the page showed `line`."""
        deadline = time.monotonic() + LIMIT_S
        while time.monotonic() < deadline:
            at, html = self.loads.get(timeout=LIMIT_S)
            if line in html:
                return at
        raise SystemExit(f"the page never showed {line!r}")


def timed(page: Page, saves: int, edit: Callable[[int], str]) -> list[float]:
    """The time from each save to the page showing it; saves 0.5 to 1.5 s apart, so
    they fall anywhere in the page's and the server's rhythms."""
    times, rng = [], random.Random(1)
    for number in range(1, saves + 1):
        time.sleep(0.5 + rng.random())
        written = time.perf_counter()
        times.append(page.shown(edit(number)) - written)
    return times


def biggest(snapshot: Snapshot) -> Variant:
    """The segment variant with the most readers and something to show."""
    shown = [v for v in snapshot.variants if v.articles and v.subscribers]
    if not shown:
        raise SystemExit(f"no segment to show: {snapshot.error or 'no readers'}")
    return max(shown, key=lambda v: v.subscribers or 0)


def spread(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s median, {max(times):.2f} s worst"


def measure(server: PreviewServer, root: Path, saves: int) -> str:
    live, started = server.live, time.perf_counter()
    stem = biggest(live.current()).stem
    page = Page(server.url, stem)
    first, before = time.perf_counter() - started, len(live.renders)
    templates = timed(page, saves, lambda number: save_template(root / "templates", number))
    rendered = live.renders[before:]
    others = sum(rendered_stem != stem for rendered_stem in rendered)
    built = live.view(stem).rendered.built
    article = Path(str(built.issue.articles[0].path if built else root))
    original = article.read_text(encoding="utf-8")
    articles = timed(page, saves, lambda number: save_article(article, original, number))
    page.stop.set()
    other = next(v for v in reversed(live.snapshot.variants) if v.articles).stem
    began = time.perf_counter()
    fetch(f"{server.url}email/{quote(other)}.html")
    return (f"serve: a template save shows on screen in {spread(templates)}, an article save "
            f"in {spread(articles)} ({saves} saves each, the page polling every {POLL_MS} "
            f"ms); {len(rendered)} renders for {saves} template saves, {others} of them "
            f"of other variants than the one on screen, of {len(live.snapshot.variants)} "
            f"variants; another variant opened in "
            f"{time.perf_counter() - began:.2f} s; first page {first:.1f} s (load, plan, "
            "one render)")


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
