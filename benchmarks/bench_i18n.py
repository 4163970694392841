"""The cost of speaking the site's language: reading a shipped .po catalog at run time
(instead of a compiled .mo), and rendering one issue in German against English.

    python benchmarks/bench_i18n.py [--articles 60] [--repeat 20] [--small]

Target (2 cores): loading a catalog <= 50 ms once per process; a German issue renders
within 10 % of an English one.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from digest import i18n
from digest.content import Article
from digest.render import Renderer, Site
from digest.select import Caps, cadence_window, select

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)


def articles(count: int) -> list[Article]:
    return [Article(slug=f"story-{i}", date=NOW - timedelta(minutes=47 * i + 1),
                    category=f"Category {i % 6}", title=f"Story {i}: a headline of typical length",
                    excerpt="A summary of the article in two sentences, as editors write them.",
                    url=f"https://bench.example.org/posts/story-{i}",
                    source=f"https://source.example/story-{i}", author="Ada Example")
            for i in range(count)]


def load_ms(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        i18n._load.cache_clear()
        i18n.shipped_ids.cache_clear()
        began = time.perf_counter()
        i18n.load_language(code)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def render_ms(code: str, count: int, repeat: int) -> float:
    site = Site(name="Bench", base_url="https://bench.example.org", language=code,
                timezone=BERLIN)
    renderer = Renderer(site)
    issue = select(articles(count), key="2026-W48", window=cadence_window(NOW),
                   caps=Caps(per_category=10, total=count))
    renderer.render(issue, unsubscribe_url="https://bench.example.org/u/t")  # warm caches
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        renderer.render(issue, unsubscribe_url="https://bench.example.org/u/t")
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--small", action="store_true", help="CI size: 20 articles, 3 runs")
    args = parser.parse_args()
    if args.small:
        args.articles, args.repeat = 20, 3
    load = {code: load_ms(code, args.repeat) for code in ("de", "fr", "es")}
    english = render_ms("en", args.articles, args.repeat)
    german = render_ms("de", args.articles, args.repeat)
    print("catalog load (parse .po + compile, median): "
          + ", ".join(f"{code} {ms:.1f} ms" for code, ms in load.items())
          + f"; render {args.articles} articles: en {english:.1f} ms, de {german:.1f} ms "
          f"({(german / english - 1) * 100:+.0f} %)")


if __name__ == "__main__":
    main()
