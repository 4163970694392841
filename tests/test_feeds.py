"""Feeds as a source: RSS 2.0/1.0, Atom and JSON Feed 1.1 read from a local HTTP server
(tests/feed_server.py) into articles, politely, safely and each article once."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from feed_server import FeedServer, Route
from helpers import BERLIN

from digest import __version__
from digest.cli import cli
from digest.content import Article, LoadResult, Problem
from digest.errors import ConfigError, ContentError
from digest.feeds import (
    FeedLoad,
    FeedSource,
    FetchPolicy,
    combine,
    html_text_and_image,
    html_to_text,
    load_feeds,
    normalize_url,
)

FEEDS = Path(__file__).resolve().parent / "fixtures" / "feeds"
NOW = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
RSS, ATOM, JSON = "application/rss+xml", "application/atom+xml", "application/feed+json"


def fixture(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def slug(last: str, url: str) -> str:
    return f"{last}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


@pytest.fixture
def server():
    with FeedServer() as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def policy(waits: list[float]) -> FetchPolicy:
    """Short time-outs, and back-off recorded instead of slept."""
    return FetchPolicy(timeout=0.5, deadline=2.0, backoff=0.25, sleep=waits.append)


@pytest.fixture
def load(tmp_path: Path, policy: FetchPolicy):
    def run(*sources: FeedSource | str, **options) -> FeedLoad:
        options = {"timezone": BERLIN, "root": tmp_path, "cache": tmp_path / "feeds.pickle",
                   "policy": policy, "now": NOW, **options}
        return load_feeds([s if isinstance(s, FeedSource) else FeedSource(s) for s in sources],
                          **options)
    return run


def serve(server: FeedServer, path: str, name: str, content_type: str = RSS, **route) -> str:
    server.route(path, Route(fixture(name), content_type, **route))
    return server.url + path


def test_rss2_with_media_and_dc_elements(server, load):
    url = serve(server, "/rss", "rss2_media_dc.xml")
    loaded = load(url)
    planting = "https://notes.example.com/2026/11/planting/?utm_source=rss&utm_medium=feed"
    assert loaded.articles == [
        Article(slug=slug("planting", "https://notes.example.com/2026/11/planting"),
                title="Planting & pruning in <November>",
                date=datetime(2026, 11, 3, 9, 30, tzinfo=timezone(timedelta(hours=1))),
                excerpt="Cut back the roses & mulch the beds. Then rest.", url=planting,
                category="Gardening", tags=("Gardening", "Seasons"),
                cover_image="https://notes.example.com/img/planting-thumb.jpg",
                author="Rosa Gardener"),
        Article(slug=slug("spade", "https://notes.example.com/2026/11/spade"),
                title="A new spade", date=datetime(2026, 11, 2, 18, 0, tzinfo=UTC),
                excerpt="Short text only.", url="https://notes.example.com/2026/11/spade/",
                category="Tools", tags=("Tools",),
                cover_image="https://notes.example.com/img/spade-cover.jpg", author="Tom Tools"),
        Article(slug=slug("watering", "https://notes.example.com/2026/11/watering"),
                title="Watering", date=datetime(2026, 11, 1, 7, 0, tzinfo=UTC),
                excerpt="How much water? See and more.",
                url="https://notes.example.com/2026/11/watering",
                cover_image="https://cdn.example.com/water.jpg"),
    ]


def test_links_other_than_http_are_dropped_with_a_warning(server, load):
    url = serve(server, "/rss", "rss2_media_dc.xml")
    assert [str(problem) for problem in load(url).problems] == [
        f"feed {url}: item 4 ('A script link'): link 'javascript:alert(1)' is not an "
        "http(s) URL",
        f"feed {url}: item 5 ('A file link'): link 'ftp://notes.example.com/file.txt' is "
        "not an http(s) URL",
    ]


def test_atom_with_xhtml_content_and_a_date_without_zone(server, load):
    loaded = load(serve(server, "/atom", "atom_xhtml.xml", ATOM))
    assert loaded.problems == []
    assert loaded.articles == [
        Article(slug=slug("deadlines", "https://diary.example.net/posts/deadlines"),
                title="Scheduling deadlines",
                date=datetime(2026, 11, 4, 9, 15, tzinfo=timezone(timedelta(hours=2))),
                excerpt="The deadline scheduler — explained.",
                url="https://diary.example.net/posts/deadlines", category="Kernel",
                tags=("Kernel",), cover_image="https://diary.example.net/img/gantt.png",
                author="Linus Example"),
        Article(slug=slug("naive", "https://diary.example.net/posts/naive"),
                title="Naive times", date=datetime(2026, 11, 3, 8, 0, tzinfo=BERLIN),
                excerpt="A date without a zone is read in the site's zone.",
                url="https://diary.example.net/posts/naive", author="Linus Example"),
    ]


def test_json_feed_1_1(server, load):
    loaded = load(serve(server, "/feed.json", "jsonfeed11.json", JSON))
    assert loaded.problems == []
    assert loaded.articles == [
        Article(slug=slug("on-walking", "https://essays.example.org/on-walking"),
                title="On walking",
                date=datetime(2026, 11, 5, 7, 30, tzinfo=timezone(timedelta(hours=-8))),
                excerpt="Walk slowly.", url="https://essays.example.org/on-walking/",
                category="Essays", tags=("Essays", "Outdoors"),
                cover_image="https://essays.example.org/walking.jpg", author="Mary Walker"),
        Article(slug=slug("on-sitting", "https://essays.example.org/on-sitting"),
                title="A summary is plain text: <b> stays as written.",
                date=datetime(2026, 11, 4, 20, 0, tzinfo=UTC),
                excerpt="A summary is plain text: <b> stays as written.",
                url="https://essays.example.org/on-sitting", author="Feed Author"),
    ]


def test_entries_with_only_updated_dates(server, load):
    [article] = load(serve(server, "/changes", "only_updated.xml", ATOM)).articles
    assert (article.title, article.date, article.excerpt, article.author) == (
        "Release 2.0", datetime(2026, 11, 6, 16, 45, tzinfo=UTC), "Faster & smaller.",
        "Release Bot")


def test_rss_1_0_with_dublin_core(server, load):
    [article] = load(serve(server, "/rdf", "rss1.rdf", "application/rdf+xml")).articles
    assert (article.title, article.date, article.category, article.author) == (
        "Still here", datetime(2026, 11, 2, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
        "History", "Ann Archivist")


def test_a_bad_date_skips_the_item_with_a_warning(server, load):
    url = serve(server, "/sloppy", "bad_date.xml")
    loaded = load(url)
    assert [article.title for article in loaded.articles] == ["Good one"]
    assert [str(problem) for problem in loaded.problems] == [
        f"feed {url}: item 2 ('Bad one'): cannot read 'next Tuesday-ish' as a date",
        f"feed {url}: item 3 ('Undated'): no date (neither published nor updated)",
    ]


def test_a_huge_feed_is_refused_and_the_others_still_load(server, load):
    huge = fixture("rss2_media_dc.xml").replace(b"</channel>", b" " * (10 * 1024 * 1024)
                                                + b"</channel>")
    server.route("/huge", Route(huge, RSS))
    server.route("/streamed", Route(huge, RSS, length=False))  # no Content-Length
    loaded = load(FeedSource(server.url + "/huge", name="Huge"), server.url + "/streamed",
                  serve(server, "/atom", "atom_xhtml.xml", ATOM))
    assert [str(problem) for problem in loaded.problems] == [
        f"feed 'Huge' ({server.url}/huge): larger than 10 MB",
        f"feed {server.url}/streamed: larger than 10 MB"]
    assert len(loaded.articles) == 2


def test_gzip_is_asked_for_and_decoded(server, load):
    import gzip

    server.route("/gz", Route(gzip.compress(fixture("atom_xhtml.xml")), ATOM, encoding="gzip"))
    assert len(load(server.url + "/gz").articles) == 2
    assert server.hits("/gz")[0].headers["Accept-Encoding"] == "gzip"


def test_a_gzip_bomb_stops_at_the_size_cap(server, load):
    import gzip

    bomb = gzip.compress(b"<rss>" + b" " * (11 * 1024 * 1024))  # 11 KB sent, 11 MB decoded
    server.route("/bomb", Route(bomb, RSS, encoding="gzip"))
    server.route("/bad", Route(b"not gzip at all", RSS, encoding="gzip"))
    server.route("/br", Route(b"...", RSS, encoding="br"))
    loaded = load(server.url + "/bomb", server.url + "/bad", server.url + "/br")
    assert [p.message for p in loaded.problems] == [
        "larger than 10 MB", "invalid gzip data: Error -3 while decompressing data: "
        "incorrect header check", "unknown Content-Encoding 'br'"]


def test_user_agent_names_digest(server, load):
    load(serve(server, "/rss", "rss2_media_dc.xml"))
    agent = server.hits("/rss")[0].headers["User-Agent"]
    assert agent == f"digest/{__version__} (newsletter digest builder; feed reader)"


def test_conditional_get_with_etag_reuses_the_cached_items(server, load):
    url = serve(server, "/rss", "rss2_media_dc.xml", etag='"v1"')
    first = load(url)
    second = load(url)
    assert second.articles == first.articles and len(second.articles) == 3
    first_hit, second_hit = server.hits("/rss")
    assert "If-None-Match" not in first_hit.headers
    assert second_hit.headers["If-None-Match"] == '"v1"'
    assert len(second.problems) == 2  # the cached skipped items are still reported


def test_conditional_get_with_last_modified(server, load):
    stamp = "Fri, 06 Nov 2026 10:00:00 GMT"
    url = serve(server, "/atom", "atom_xhtml.xml", ATOM, last_modified=stamp)
    load(url)
    server.routes["/atom"].body = b"changed, but the server says 304"
    assert len(load(url).articles) == 2
    assert server.hits("/atom")[1].headers["If-Modified-Since"] == stamp


def test_a_changed_feed_is_read_again(server, load):
    url = serve(server, "/feed", "atom_xhtml.xml", ATOM, etag='"v1"')
    load(url)
    server.route("/feed", Route(fixture("only_updated.xml"), ATOM, etag='"v2"'))
    assert [article.title for article in load(url).articles] == ["Release 2.0"]


def test_redirects_are_followed_up_to_five(server, load):
    serve(server, "/final", "only_updated.xml", ATOM)
    for hop in range(1, 7):
        target = "/final" if hop == 1 else f"/hop{hop - 1}"
        server.route(f"/hop{hop}", Route(redirect=server.url + target))
    assert len(load(server.url + "/hop5").articles) == 1
    six = load(server.url + "/hop6")
    assert [str(problem) for problem in six.problems] == [
        f"feed {server.url}/hop6: more than 5 redirects"]


def test_a_redirect_to_another_scheme_is_refused(server, load):
    server.route("/away", Route(redirect="file:///etc/passwd"))
    assert [str(p) for p in load(server.url + "/away").problems] == [
        f"feed {server.url}/away: redirected to 'file:///etc/passwd', which is not an "
        "http(s) URL"]


def test_5xx_answers_are_retried_with_back_off(server, load, waits):
    url = serve(server, "/rss", "rss2_media_dc.xml", fail_first=2)
    assert len(load(url).articles) == 3
    assert (len(server.hits("/rss")), waits) == (3, [0.25, 0.5])


def test_a_feed_that_keeps_failing_warns_and_the_others_load(server, load, waits):
    server.route("/down", Route(fail_first=99))
    loaded = load(server.url + "/down", serve(server, "/atom", "atom_xhtml.xml", ATOM))
    assert [str(problem) for problem in loaded.problems] == [
        f"feed {server.url}/down: HTTP 503 Service Unavailable (after 3 attempts)"]
    assert len(loaded.articles) == 2
    assert len(server.hits("/down")) == 3


def test_a_client_error_is_not_retried(server, load):
    loaded = load(server.url + "/missing")
    assert [str(p) for p in loaded.problems] == [f"feed {server.url}/missing: HTTP 404 Not Found"]
    assert len(server.hits("/missing")) == 1


def test_a_slow_server_times_out(server, load):
    serve(server, "/slow", "rss2_media_dc.xml", delay=1.0)
    loaded = load(server.url + "/slow", policy=FetchPolicy(timeout=0.2, attempts=1))
    assert [str(p) for p in loaded.problems] == [f"feed {server.url}/slow: timed out (no "
                                                 "answer within 0.2 s)"]


def test_a_closed_port_is_a_connection_error(load):
    with FeedServer() as gone:
        url = gone.url + "/feed"
    loaded = load(url, policy=FetchPolicy(attempts=2, backoff=0, sleep=lambda _s: None))
    assert [str(p) for p in loaded.problems] == [
        f"feed {url}: cannot connect: Connection refused (after 2 attempts)"]


def test_a_failing_feed_falls_back_to_its_cached_items(server, load):
    url = serve(server, "/atom", "atom_xhtml.xml", ATOM)
    load(url)
    server.routes["/atom"].fail_first = 99
    later = load(url, now=NOW + timedelta(days=1))
    assert len(later.articles) == 2
    assert [str(p) for p in later.problems] == [
        f"feed {url}: HTTP 503 Service Unavailable (after 3 attempts); using the copy read "
        "on 2026-11-07 12:00 UTC"]


def test_offline_reads_the_cache_only(server, load):
    url = serve(server, "/atom", "atom_xhtml.xml", ATOM)
    load(url)
    missing = server.url + "/never-fetched"
    offline = load(url, missing, offline=True)
    assert len(offline.articles) == 2
    assert [str(p) for p in offline.problems] == [
        f"feed {missing}: not in the cache (--offline)"]
    assert len(server.requests) == 1


def test_strict_makes_a_failing_feed_fatal(server, load):
    with pytest.raises(ContentError) as raised:
        load(server.url + "/missing", strict=True)
    assert str(raised.value) == f"feed {server.url}/missing: HTTP 404 Not Found"


def test_a_feed_broken_across_runs_is_named(server, load):
    url = server.url + "/down"
    server.route("/down", Route(status=500, body=b"broken"))
    assert load(url).broken == []
    again = load(url, now=NOW + timedelta(days=7))
    assert again.broken == [f"feed {url} has failed on the last 2 runs (since 2026-11-07 "
                            "12:00 UTC): HTTP 500 Internal Server Error (after 3 attempts)"]
    serve(server, "/down", "atom_xhtml.xml", ATOM)
    assert load(url).broken == []


def test_billion_laughs_is_refused(server, load):
    url = serve(server, "/lol", "billion_laughs.xml")
    loaded = load(url)
    assert loaded.articles == []
    assert [str(p) for p in loaded.problems] == [
        f"feed {url}: refused: the document declares XML entities (entity expansion and "
        "external entities are not allowed)"]


@pytest.mark.parametrize("prolog", [
    b'<?xml version="1.0" encoding="shift_jis"?>',  # an encoding expat cannot read
    b'<?xml version="1.0" encoding="no-such-encoding"?>',
    b'<?xml version="1.0"?><!DOCTYPE broken [ <!ELEMENT > ]>',  # malformed before the entities
])
def test_entities_are_refused_behind_a_prolog_expat_cannot_read(server, load, prolog):
    body = fixture("billion_laughs.xml").replace(b'<?xml version="1.0"?>', prolog)
    server.route("/lol", Route(body, RSS))
    loaded = load(server.url + "/lol")
    assert loaded.articles == []
    assert [p.message for p in loaded.problems] == [
        "refused: the document declares XML entities (entity expansion and external "
        "entities are not allowed)"]


def test_billion_laughs_in_utf_16_is_refused(server, load):
    server.route("/lol16", Route(fixture("billion_laughs.xml").decode().encode("utf-16"), RSS))
    assert [p.message[:8] for p in load(server.url + "/lol16").problems] == ["refused:"]


def test_external_entities_are_refused(server, load, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    body = fixture("xxe.xml").replace(b"SECRET_PATH", str(secret).encode())
    server.route("/xxe", Route(body, RSS))
    loaded = load(server.url + "/xxe")
    assert loaded.articles == []
    assert [p.message for p in loaded.problems] == [
        "refused: the document declares XML entities (entity expansion and external "
        "entities are not allowed)"]
    assert not any("TOP-SECRET" in str(a) for a in loaded.articles)


def test_a_local_file_is_a_feed(load, tmp_path):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "essays.json").write_bytes(fixture("jsonfeed11.json"))
    loaded = load(FeedSource("feeds/essays.json", category="Reading"))
    assert [(a.title, a.category) for a in loaded.articles] == [
        ("On walking", "Reading"), ("A summary is plain text: <b> stays as written.", "Reading")]


def test_a_local_feed_that_is_missing_or_a_fifo(load, tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.xml")
    loaded = load("missing.xml", "pipe.xml")
    assert [str(p) for p in loaded.problems] == [
        "feed missing.xml: cannot read: No such file or directory",
        f"feed pipe.xml: {tmp_path / 'pipe.xml'}: not a regular file"]


def test_a_document_that_is_not_a_feed(server, load):
    server.route("/page", Route(b"<html><body>hello</body></html>", "text/html"))
    server.route("/json", Route(b'{"hello": 1}', "application/json"))
    loaded = load(server.url + "/page", server.url + "/json")
    assert [p.message for p in loaded.problems] == [
        "not an RSS, Atom or JSON feed",
        "not a JSON Feed (no https://jsonfeed.org/version/ version)"]


def test_items_without_a_category_take_the_feeds_own(server, load):
    body = fixture("rss2_media_dc.xml").replace(
        b"<description>A blog about gardens and tools</description>",
        b"<description>A blog</description><category>Garden Life</category>")
    server.route("/rss", Route(body, RSS))
    assert [a.category for a in load(server.url + "/rss").articles] == [
        "Gardening", "Tools", "Garden Life"]


def test_the_cache_keeps_only_the_configured_feeds(server, load, tmp_path):
    import pickle

    first, second = (serve(server, f"/{n}", "only_updated.xml", ATOM) for n in ("a", "b"))
    load(first, second)
    load(second)
    _, feeds = pickle.loads((tmp_path / "feeds.pickle").read_bytes())
    assert list(feeds) == [second]


def test_the_category_of_the_feed_entry_overrides_the_items(server, load):
    url = serve(server, "/rss", "rss2_media_dc.xml")
    loaded = load(FeedSource(url, category="Garden News", name="Notes"))
    assert {a.category for a in loaded.articles} == {"Garden News"}
    assert loaded.articles[0].tags == ("Gardening", "Seasons")


# One article once

def test_items_are_deduplicated_across_feeds_by_url_then_id(server, load):
    rss = serve(server, "/rss", "rss2_media_dc.xml")
    copy = fixture("rss2_media_dc.xml").replace(
        b"?utm_source=rss&amp;utm_medium=feed", b"").replace(
        b"https://notes.example.com/2026/11/spade/", b"HTTP://Notes.Example.com/2026/11/spade")
    copy = copy.replace(b"https://notes.example.com/2026/11/watering",
                        b"https://mirror.example.com/watering")  # another URL …
    copy = copy.replace(b"<title>Watering</title>",
                        b"<title>Watering</title><guid isPermaLink='false'>notes-planting</guid>")
    server.route("/copy", Route(copy, RSS))
    loaded = load(rss, server.url + "/copy")
    assert [a.url for a in loaded.articles] == [
        "https://notes.example.com/2026/11/planting/?utm_source=rss&utm_medium=feed",
        "https://notes.example.com/2026/11/spade/",
        "https://notes.example.com/2026/11/watering",
    ]  # … but the guid of a post already kept


def test_feed_items_are_deduplicated_against_markdown_posts():
    markdown = Article(slug="spade", title="A new spade", date=NOW, excerpt="",
                       url="https://notes.example.com/2026/11/spade")
    linked = Article(slug="linked", title="Linked", date=NOW, excerpt="",
                     url="https://tiny.example.org/posts/linked",
                     source="https://essays.example.org/on-walking")
    fed = [Article(slug=f"f{i}", title="x", date=NOW, excerpt="", url=url) for i, url in
           enumerate(["https://notes.example.com/2026/11/spade/?utm_campaign=x#top",
                      "https://essays.example.org/on-walking/", "https://new.example/post"])]
    problem = Problem("feed x", None, "bad")
    merged = combine(LoadResult([markdown, linked], []), FeedLoad(fed, [problem], []))
    assert [a.url for a in merged.articles] == [markdown.url, linked.url,
                                                "https://new.example/post"]
    assert merged.problems == [problem]


@pytest.mark.parametrize(("url", "normal"), [
    ("HTTP://Example.COM:80/a/?utm_source=x&id=3&fbclid=y#frag", "https://example.com/a?id=3"),
    ("https://example.com:8443/a/", "https://example.com:8443/a"),
    ("https://example.com/", "https://example.com"),
    ("https://example.com/a?UTM_Medium=feed", "https://example.com/a"),
])
def test_normalised_urls(url, normal):
    assert normalize_url(url) == normal


def test_html_to_text_drops_tags_scripts_and_decodes_references_once():
    html = "<p>A &amp;amp; B</p><script>alert(1)</script><style>p{}</style><br>C&nbsp;D &lt;x&gt;"
    assert html_to_text(html) == "A &amp; B C D <x>"



def test_an_items_figure_gives_its_image_but_not_its_caption_as_an_articles_does():
    html = ('<p>See the chart</p><figure><img data-src="lazy.png"><img src="chart.png">'
            "<figcaption>Rainfall by month</figcaption></figure><p>Next.</p>")
    assert html_text_and_image(html) == ("See the chart Next.", "chart.png")


# The site: configuration, every command's loading, check, the CLI

def write_feed_site(root: Path, feeds: str, articles: dict[str, str] | None = None) -> Path:
    (root / "digest.toml").write_text(
        '[site]\nname = "Tiny"\nbase_url = "https://notes.example.com"\n'
        'timezone = "Europe/Berlin"\n[email]\nfrom = "Tiny <news@tiny.example.org>"\n'
        'postal_address = "1 Tiny Lane"\n[content]\nurl_pattern = "{base_url}/{year}/{month}/'
        '{slug}/"\n' + feeds)
    (root / "content").mkdir()
    for name, text in (articles or {}).items():
        (root / "content" / name).write_text(text)
    return root / "digest.toml"


SPADE_POST = "---\ntitle: A new spade (markdown)\ndate: '2026-11-02'\ncategory: Tools\n---\nDig.\n"


@pytest.mark.parametrize(("feeds", "problem"), [
    ('feeds = "https://x.example/feed"',
     "content.feeds must be a list of URLs or tables, not 'https://x.example/feed'"),
    ('feeds = [42]', "content.feeds[0] must be a URL or a table with url, not 42"),
    ('feeds = ["https://ok.example/feed", {url = "ftp://x.example/feed"}]',
     "content.feeds[1].url must be an http(s) URL or a local file, not 'ftp://x.example/feed'"),
    ('feeds = ["http://[::1/feed"]',
     "content.feeds[0].url must be an http(s) URL or a local file, not 'http://[::1/feed'"),
    ('feeds = ["https:///feed"]',
     "content.feeds[0].url must be an http(s) URL or a local file, not 'https:///feed'"),
    ('[[content.feeds]]\nname = "No URL"', "content.feeds[0]: url is required"),
    ('[[content.feeds]]\nurl = "https://x.example/feed"\ncolour = "red"',
     "content.feeds[0]: unknown key 'colour' (known: url, category, name)"),
    ('feeds = [{url = "https://x.example/feed", category = ""}]',
     "content.feeds[0].category must be non-empty text, not ''"),
    ('feeds = ["https://x.example/a", "https://x.example/b", {url = "https://x.example/a"}]',
     "content.feeds[2]: the same feed as content.feeds[0] (https://x.example/a)"),
    ('dir = ""\nfeeds = []', "content.dir and content.feeds are both empty: set a folder of "
                            "articles, feeds, or both"),
])
def test_bad_feed_configuration_is_named(tmp_path, feeds, problem):
    from digest.config import load_settings

    config = tmp_path / "digest.toml"
    config.write_text(f'[site]\nbase_url = "https://x.example"\n[content]\n{feeds}\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert str(raised.value) == f"{config}: {problem}"


def test_the_loading_entry_point_combines_markdown_and_feeds(server, tmp_path):
    from digest import pipeline
    from digest.config import load_settings

    url = serve(server, "/rss", "rss2_media_dc.xml")
    json_url = serve(server, "/feed.json", "jsonfeed11.json", JSON)
    config = write_feed_site(tmp_path, f'feeds = ["{url}", {{url = "{json_url}", '
                             'category = "Essays", name = "Essays"}]\n',
                             {"spade.md": SPADE_POST})
    loaded = pipeline.load(load_settings(config))
    assert [(a.title, a.category) for a in loaded.articles] == [
        ("A new spade (markdown)", "Tools"),  # the feed's copy of the same URL is dropped
        ("Planting & pruning in <November>", "Gardening"), ("Watering", "Uncategorized"),
        ("On walking", "Essays"), ("A summary is plain text: <b> stays as written.", "Essays")]
    assert len(loaded.problems) == 2  # the two non-http links


def test_a_feeds_only_site(server, tmp_path):
    from digest import pipeline
    from digest.config import load_settings

    url = serve(server, "/atom", "atom_xhtml.xml", ATOM)
    config = write_feed_site(tmp_path, f'dir = ""\nfeeds = ["{url}"]\n')
    assert len(pipeline.load(load_settings(config)).articles) == 2


def test_the_email_shows_feed_text_escaped_never_its_html(server, tmp_path):
    from digest import pipeline
    from digest.config import load_settings

    url = serve(server, "/rss", "rss2_media_dc.xml")
    settings = load_settings(write_feed_site(tmp_path, f'feeds = ["{url}"]\n'))
    shown = pipeline.build_preview(settings, pipeline.load(settings).articles)
    html = shown.whole.email.html
    assert "Planting &amp; pruning in &lt;November&gt;" in html
    assert "Cut back the roses &amp; mulch the beds. Then rest." in html
    assert "<b>roses" not in html and "alert(" not in html and "<November>" not in html


def test_check_names_a_feed_broken_across_runs_as_a_warning(server, tmp_path):
    from digest import pipeline
    from digest.config import load_settings

    server.route("/gone", Route(status=410, body=b"gone"))
    config = write_feed_site(tmp_path, f'feeds = ["{server.url}/gone"]\n',
                             {"spade.md": SPADE_POST})
    first = pipeline.check_site(load_settings(config))
    assert (first.errors, first.warnings) == (0, [f"feed {server.url}/gone: HTTP 410 Gone"])
    second = pipeline.check_site(load_settings(config))
    assert second.warnings[1].startswith(f"feed {server.url}/gone has failed on the last 2 runs "
                                         "(since ")
    assert second.warnings[1].endswith("UTC): HTTP 410 Gone")


def test_cli_warns_about_a_failing_feed_and_still_previews(server, tmp_path):
    config = write_feed_site(tmp_path, f'feeds = ["{server.url}/missing"]\n',
                             {"spade.md": SPADE_POST})
    result = CliRunner().invoke(cli, ["--config", str(config), "preview", "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"Warning: feed {server.url}/missing: HTTP 404 Not Found (skipped)\n" in result.stderr
    strict = CliRunner().invoke(cli, ["--config", str(config), "preview", "--strict", "--out",
                                      str(tmp_path / "strict")])
    assert (strict.exit_code, strict.stderr) == (
        1, f"Error: feed {server.url}/missing: HTTP 404 Not Found\n")


def test_cli_offline_reads_feeds_from_the_cache_only(server, tmp_path):
    url = serve(server, "/atom", "atom_xhtml.xml", ATOM)
    config = write_feed_site(tmp_path, f'feeds = ["{url}"]\n')
    out = ["--out", str(tmp_path / "out"), "--since", "2026-11-01", "--until", "2026-11-07"]
    assert CliRunner().invoke(cli, ["--config", str(config), "preview", *out]).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(config), "--offline", "preview", *out])
    assert result.exit_code == 0, result.output
    assert "2 articles" in result.stdout
    assert len(server.requests) == 1


def test_relative_links_and_images_are_resolved_against_the_feed(server, load):
    server.route("/blog/feed.xml", Route(
        b'<rss version="2.0"><channel><title>t</title><link>/</link><item><title>x</title>'
        b"<link>/post/1</link><pubDate>Wed, 04 Nov 2026 10:00:00 +0000</pubDate>"
        b'<description>&lt;img src="i.jpg"&gt;</description></item></channel></rss>', RSS))
    [article] = load(server.url + "/blog/feed.xml").articles
    assert (article.url, article.cover_image) == (f"{server.url}/post/1",
                                                  f"{server.url}/post/i.jpg")


def test_a_doctype_without_entity_declarations_is_read(server, load):
    server.route("/091", Route(
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS '
        b'0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91">'
        b"<channel><title>t</title><link>https://a.example/</link><item><title>Old</title>"
        b"<link>https://a.example/1</link><pubDate>Wed, 04 Nov 2026 10:00:00 GMT</pubDate>"
        b"</item></channel></rss>", RSS))
    assert [a.title for a in load(server.url + "/091").articles] == ["Old"]


def test_the_readers_pages_take_feed_categories_from_the_cache_only(server, tmp_path):
    from digest import pipeline
    from digest.config import load_settings
    from digest.web.subscribers import SiteCategories

    url = serve(server, "/atom", "atom_xhtml.xml", ATOM)
    settings = load_settings(write_feed_site(tmp_path, f'feeds = ["{url}"]\n',
                                             {"spade.md": SPADE_POST}))
    assert SiteCategories(settings).names() == ["Tools"]  # not fetched yet: not offered
    pipeline.load(settings)  # a preview or send run fetches and caches the feed
    assert SiteCategories(settings).names() == ["Kernel", "Tools", "Uncategorized"]
    assert len(server.requests) == 1


def test_weekly_sends_feed_items_and_a_failing_feed_does_not_stop_it(server, tmp_path,
                                                                     monkeypatch):
    import json

    from send_support import API_KEY, NOW, add_readers, digest, set_send_environment
    from send_support import write_site as write_send_site
    from sendgrid_server import SendGridServer

    set_send_environment(monkeypatch)
    server.route("/feed.json", Route(json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "Partner",
        "items": [{"id": "p1", "url": "https://partner.example/p1", "title": "Partner news",
                   "date_published": "2026-11-25T09:00:00+01:00", "summary": "From a feed."}],
    }).encode(), JSON))
    feeds = (f'[content]\nfeeds = [{{url = "{server.url}/feed.json", category = "Work"}}, '
             f'"{server.url}/gone"]\n')
    with SendGridServer(api_key=API_KEY) as sendgrid:
        config = write_send_site(tmp_path, sendgrid.url, feeds)
        add_readers(tmp_path, 6)
        result = digest(config, "weekly", "--now", NOW)
        assert result.exit_code == 0, result.output
        assert f"Warning: feed {server.url}/gone: HTTP 404 Not Found (skipped)\n" in result.stderr
        work = [a.body for a in sendgrid.accepted
                if "A Work story" in a.body["content"][0]["value"]]
    assert len(sendgrid.accepted) == 6
    assert "Partner news" in work[0]["content"][0]["value"]
    assert "https://partner.example/p1" in work[0]["content"][1]["value"]
