"""Reading feeds from the local feed server (tests/feed_server.py): 20 RSS 2.0 feeds of 100
items each (about 60 KB a feed, with media: and dc: elements and HTML descriptions), read
cold (empty cache: fetch and parse every feed), then warm (every feed answers 304 and
its cached items are reused). Prints one line with both times.

    python benchmarks/bench_feeds.py [--feeds 20] [--items 100] [--small]

Target: a cron run's feeds cost well under a second when nothing changed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests")]

from feed_server import FeedServer, Route

from digest.feeds import FeedSource, load_feeds

START = datetime(2026, 11, 1, tzinfo=UTC)


def rss(feed: int, items: int) -> bytes:
    entries = []
    for i in range(items):
        when = START + timedelta(hours=feed * 7 + i * 3)
        url = f"https://blog{feed}.example.org/2026/11/post-{i}/"
        text = escape(f"<p>Post {i} of blog {feed}: <b>what changed</b> this week &amp; why "
                      "it matters, in the two or three sentences a feed usually carries.</p>"
                      f'<p><img src="https://blog{feed}.example.org/img/{i}.jpg"></p>')
        entries.append(
            f"<item><title>Post {i} of blog {feed}</title><link>{url}?utm_source=rss</link>"
            f"<guid>{url}</guid><pubDate>{when:%a, %d %b %Y %H:%M:%S} +0000</pubDate>"
            f"<dc:creator>Author {i % 7}</dc:creator><category>Topic {i % 5}</category>"
            f'<media:thumbnail url="https://blog{feed}.example.org/thumb/{i}.jpg"/>'
            f"<description>{text}</description></item>")
    return ('<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:media="http://search.yahoo.com/mrss/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>Blog {feed}</title><link>https://blog{feed}.example.org/</link>"
            f"<description>Blog {feed}</description>{''.join(entries)}</channel></rss>"
            ).encode()


def timed(sources: list[FeedSource], cache: Path) -> tuple[str, int, int]:
    """Wall time, and this process's CPU time (steadier on a busy machine; the server's
    threads count too)."""
    started, cpu = time.perf_counter(), time.process_time()
    loaded = load_feeds(sources, timezone=ZoneInfo("UTC"), root=cache.parent, cache=cache)
    took = f"{time.perf_counter() - started:.3f} s ({time.process_time() - cpu:.3f} s CPU)"
    return took, len(loaded.articles), len(loaded.problems)


def run(root: Path, feeds: int, items: int) -> str:
    with FeedServer() as server:
        sources = []
        for feed in range(feeds):
            server.route(f"/feed{feed}.xml", Route(rss(feed, items), "application/rss+xml",
                                                   etag=f'"feed{feed}-v1"'))
            sources.append(FeedSource(f"{server.url}/feed{feed}.xml"))
        cache = root / "feeds.pickle"
        cold, count, problems = timed(sources, cache)
        warm, again, _ = timed(sources, cache)
        statuses = len(server.requests)
    if count != feeds * items or again != count or problems or statuses != 2 * feeds:
        raise SystemExit(f"unexpected: {count} then {again} articles, {problems} problems")
    size = sum(len(route.body) for route in server.routes.values()) / 1e6
    return (f"feeds: {feeds} feeds x {items} items ({size:.1f} MB): cold {cold}, "
            f"warm with 304s {warm}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--small", action="store_true", help="CI size: 4 feeds x 20 items")
    args = parser.parse_args()
    feeds, items = (4, 20) if args.small else (args.feeds, args.items)
    with tempfile.TemporaryDirectory() as tmp:
        print(run(Path(tmp), feeds, items))


if __name__ == "__main__":
    main()
