"""The web archive: issues sent through the local SendGrid server, `digest archive`, the
"View in browser" link in every email, the pages in Chromium and at /archive/."""

import re
import shutil
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from helpers import BERLIN, busy_week, make_settings
from send_support import API_KEY, NOW, SECRET, add_readers, digest, set_send_environment
from send_support import write_site as write_send_site
from sendgrid_server import SendGridServer
from test_browser import CONTRAST_JS, open_page
from web_support import Clock, http, serving, site_settings

from digest import archive
from digest.ledger import IssueRow
from digest.pipeline import build_issue, quality_of, renderer_for
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG
from digest.select import cadence_window
from digest.store import open_store

URL = "https://send.example.org/newsletter"
ARCHIVE = f'[archive]\ndir = "public/newsletter"\nurl = "{URL}"\n'
LATER = "2026-12-06T08:00"  # the second issue, 2026-W49
WIDTHS = (320, 375, 1280)


@pytest.fixture
def env(monkeypatch):
    set_send_environment(monkeypatch)


def archive_site(root: Path, server_url: str, extra: str = ARCHIVE) -> Path:
    """send_support's site with an archive, and one more article for a second week."""
    config = write_send_site(root, server_url, extra)
    (root / "content" / "2026-12-03-work-later.md").write_text(
        "---\ntitle: A later Work story\ndate: '2026-12-03T10:00'\ncategory: Work\n"
        "excerpt: What happened next in Work.\n---\nBody.\n")
    add_readers(root, 12)
    return config


def send_two_issues(config: Path) -> None:
    for now in (NOW, LATER):
        result = digest(config, "weekly", "--now", now)
        assert result.exit_code == 0, result.output


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def file_for(url: str, folder: Path) -> Path:
    """The file in the archive folder that `url` (under URL) is published as."""
    assert url.startswith(f"{URL}/"), url
    relative = url[len(URL) + 1:]
    return folder / (relative + "index.html" if relative.endswith("/") or not relative
                     else relative)


def hrefs(html: str) -> list[str]:
    return re.findall(r'<a\b[^>]*\bhref="([^"]*)"', html)


def test_two_sent_issues_give_pages_an_index_and_a_feed_a_parser_reads(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url)
        send_two_issues(config)
    folder = tmp_path / "public" / "newsletter"
    shutil.rmtree(folder)
    result = digest(config, "archive")
    assert (result.exit_code, result.stdout) == (0, "".join(
        f"Wrote {folder / name}\n" for name in (
            "2026-W48/index.html", "2026-W49/index.html", "index.html", "feed.xml")) +
        f"Archive in {folder}: 4 files written, 0 unchanged.\n")

    feed = feedparser.parse((folder / "feed.xml").read_bytes())
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10"
    assert feed.feed.id == f"{URL}/"
    assert [(e.id, e.link) for e in feed.entries] == [
        (f"{URL}/2026-W49/", f"{URL}/2026-W49/"), (f"{URL}/2026-W48/", f"{URL}/2026-W48/")]
    assert feed.entries[0].title == "Send Test: 1 new article in Work"
    assert feed.entries[1].summary == "A Culture story · A Health story · A Policy story"
    assert {link.rel: link.href for link in feed.feed.links} == {
        "self": f"{URL}/feed.xml", "alternate": f"{URL}/"}
    assert all(file_for(e.link, folder).is_file() for e in feed.entries)

    index = (folder / "index.html").read_text()
    listed = [href for href in hrefs(index) if re.fullmatch(r"2026-W\d\d/", href)]
    assert listed == ["2026-W49/", "2026-W48/"]
    assert all((folder / href / "index.html").is_file() for href in listed)
    assert "A Culture story · A Health story · A Policy story" in index
    page = (folder / "2026-W48" / "index.html").read_text()
    for tag in (f'<link rel="canonical" href="{URL}/2026-W48/">',
                f'<meta property="og:url" content="{URL}/2026-W48/">',
                '<meta name="description" content="A Culture story · A Health story · '
                'A Policy story">',
                "<title>Send Test: 6 new articles in Culture and Health</title>",
                '<a href="https://send.example.org/"><strong>Subscribe</strong></a>'):
        assert tag in page
    for name in ("index.html", "2026-W48/index.html", "2026-W49/index.html"):
        assert "https://send.example.org/" in hrefs((folder / name).read_text())


def test_a_second_run_writes_nothing_and_a_lost_frozen_copy_renders_the_same(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url)
        send_two_issues(config)
    folder = tmp_path / "public" / "newsletter"
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    result = digest(config, "archive")
    assert result.stdout == f"Archive in {folder}: 0 files written, 4 unchanged.\n"
    with sqlite3.connect(tmp_path / "digest.db") as conn:  # as an issue sent before 0.2
        conn.execute("DELETE FROM issue_archive")
    again = digest(config, "archive")
    assert again.stdout == f"Archive in {folder}: 0 files written, 4 unchanged.\n"
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before


def test_every_email_links_to_its_page_which_exists_before_the_first_email(tmp_path, env):
    folder = tmp_path / "public" / "newsletter"
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url)
        server.hold_after(0, timeout=20)  # the first request waits at "SendGrid"
        results = []
        run = threading.Thread(target=lambda: results.append(
            digest(config, "weekly", "--now", NOW)))
        run.start()
        try:
            server.wait_held(1, timeout=20)
            existed = (folder / "2026-W48" / "index.html").is_file()
        finally:
            server.release()
            run.join(timeout=30)
        assert results[0].exit_code == 0, results[0].output
        assert digest(config, "weekly", "--now", LATER).exit_code == 0
        bodies = [a.body for a in server.accepted]
    assert existed
    assert len(bodies) == 7  # six segments, then the one with the later Work story
    for body in bodies:
        text, html = (part["value"] for part in body["content"])
        key = body["custom_args"]["issue"]
        link = f"{URL}/{key}/"
        assert f'<a href="{link}" style="color:#0b57d0">View in browser</a>' in html
        assert text.splitlines()[1] == f"View in browser: {link}"
        assert file_for(link, folder).is_file()


def test_no_token_or_address_anywhere_in_the_archive(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url)
        send_two_issues(config)
        sent = [a.body for a in server.accepted]
    result = digest(config, "archive", "--segments")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "public" / "newsletter"
    found = files_in(folder)
    assert {"2026-W48/work/index.html", "2026-W48/culture/index.html",
            "2026-W49/work/index.html"} <= set(found)
    with open_store(tmp_path / "digest.db") as store:
        readers = store.subscribers()
        tokens = store.tokens(readers, SECRET).values()
    secrets = [r.email for r in readers] + [r.name for r in readers] + list(tokens) + [
        UNSUBSCRIBE_TAG, PREFERENCES_TAG, "/unsubscribe/", "/preferences/"]
    sent_urls = {value for body in sent for person in body["personalizations"]
                 for value in person["substitutions"].values()}
    assert len(sent_urls) == 24  # each reader's two links, in both issues the same
    for name, data in found.items():
        for secret in [*secrets, *sent_urls]:
            assert secret.encode() not in data, (name, secret)


def test_a_dry_run_writes_no_archive(tmp_path, env):
    config = archive_site(tmp_path, "http://127.0.0.1:9")
    result = digest(config, "weekly", "--now", NOW, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "public").exists()


def test_a_folder_that_cannot_be_written_stops_the_send_before_any_email(tmp_path, env):
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url,
                              f'[archive]\ndir = "blocked/newsletter"\nurl = "{URL}"\n')
        (tmp_path / "blocked").write_text("a file, not a folder")
        result = digest(config, "weekly", "--now", NOW)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == (
            f"Error: cannot write {tmp_path}/blocked/newsletter/2026-W48/index.html: "
            "Not a directory")
        assert server.accepted == []
        (tmp_path / "blocked").unlink()
        again = digest(config, "weekly", "--now", NOW)
        assert again.exit_code == 0, again.output
        assert len(server.accepted) == 6
    assert (tmp_path / "blocked" / "newsletter" / "2026-W48" / "index.html").is_file()


def test_the_archive_failing_after_a_successful_send_is_a_warning(tmp_path, env):
    folder = tmp_path / "public" / "newsletter"
    (folder / "index.html").mkdir(parents=True)  # the page can be written, the index not
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url)
        result = digest(config, "weekly", "--now", NOW)
        assert len(server.accepted) == 6
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("Issue 2026-W48: sent to 12,")
    assert result.stderr.splitlines()[-1] == (
        f"Warning: the archive was not updated: cannot write {folder}/index.html: "
        "Is a directory (run digest archive to retry)")
    folder.joinpath("index.html").rmdir()
    assert digest(config, "archive").stdout.splitlines()[-1] == (
        f"Archive in {folder}: 2 files written, 1 unchanged.")


@pytest.mark.parametrize(("extra", "message"), [
    ('[archive]\ndir = "public"\n',
     "archive.url is required when archive.dir is set (the absolute URL the archive's "
     "pages are published at, e.g. https://example.org/newsletter)"),
    ('[archive]\ndir = "public"\nurl = "/newsletter"\n',
     "archive.url must be an absolute http(s) URL, not '/newsletter'"),
    (f'[archive]\nurl = "{URL}"\n',
     "archive.dir is required when archive.url is set (the folder digest writes the "
     "pages the emails link to)"),
])
def test_archive_keys_that_do_not_fit_are_named(tmp_path, env, extra, message):
    config = write_send_site(tmp_path, extra=extra)
    for args in (["archive"], ["weekly", "--now", NOW, "--dry-run"]):
        result = digest(config, *args)
        assert (result.exit_code, result.stderr) == (1, f"Error: {config}: {message}\n")


def test_digest_archive_names_the_path_it_cannot_write(tmp_path, env):
    config = write_send_site(tmp_path, extra=ARCHIVE)
    (tmp_path / "blocked").write_text("a file, not a folder")
    result = digest(config, "archive", "--out", str(tmp_path / "blocked" / "site"))
    assert (result.exit_code, result.stderr) == (
        1, f"Error: cannot write {tmp_path}/blocked/site/index.html: Not a directory\n")


def test_check_warns_when_a_sites_own_template_has_no_view_link(tmp_path, env):
    config = write_send_site(tmp_path, extra=ARCHIVE)
    assert digest(config, "check").stderr == ""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "email.txt.j2").write_text(
        "{{ site.name }}\n{{ intro }}\nUnsubscribe: {{ unsubscribe_url }}\n"
        "{% for article in articles %}{{ article.url }}\n{% endfor %}")
    result = digest(config, "check")
    assert (result.exit_code, result.stderr) == (0, (
        'Warning: rendered email: the text part has no "View in browser" link '
        "({{ view_url }}), though archive.url is set\n"))


def test_archive_without_a_folder_asks_for_out(tmp_path, env):
    config = write_send_site(tmp_path)
    result = digest(config, "archive")
    assert (result.exit_code, result.stderr) == (
        1, "Error: archive.dir is not set in the configuration: give --out DIR\n")


# ---------------------------------------------------------------- the pure part


def site() -> archive.ArchiveSite:
    return archive.ArchiveSite("Example News", "en", BERLIN, URL,
                               "https://news.example.org/", "https://news.example.org/manage")


def busy_entry(key: str = "2026-W48", sent: datetime | None = None) -> archive.Entry:
    """A heavy week, rendered as the archive freezes it (the reader's links as tags)."""
    now = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
    settings = make_settings()
    built = build_issue(busy_week(now, count=60), key=key, window=cadence_window(now),
                        settings=settings, renderer=renderer_for(settings),
                        unsubscribe_url=UNSUBSCRIBE_TAG, preferences_url=PREFERENCES_TAG)
    return archive.Entry(key, built.email, sent or datetime(2026, 11, 29, 9, tzinfo=UTC))


def test_the_index_is_paged_past_50_and_the_feed_keeps_the_newest_50():
    email = busy_entry().email
    start = datetime(2025, 1, 5, 9, tzinfo=UTC)
    entries = [archive.Entry(f"2025-W{n:02d}" if n < 53 else "2026-W01", email,
                             start + timedelta(weeks=n - 1)) for n in range(1, 54)]
    pages = archive.index_pages(entries, site())
    assert list(pages) == ["index.html", "page/2/index.html"]
    first, second = pages["index.html"], pages["page/2/index.html"]
    assert [h for h in hrefs(first) if "W" in h][:2] == ["2026-W01/", "2025-W52/"]
    assert len(re.findall(r"<li>", first)) == 50 and len(re.findall(r"<li>", second)) == 3
    assert '<a href="page/2/">Older issues →</a>' in first
    assert '<a href="../../">← Newer issues</a>' in second
    assert [h for h in hrefs(second) if "W" in h] == ["../../2025-W03/", "../../2025-W02/",
                                                      "../../2025-W01/"]
    assert f'<link rel="canonical" href="{URL}/page/2/">' in second
    feed = feedparser.parse(archive.atom_feed(entries, site()))
    assert len(feed.entries) == 50 and feed.entries[0].id == f"{URL}/2026-W01/"


def test_an_issue_being_sent_has_a_page_but_is_not_listed_yet():
    sending = archive.Entry("2026-W49", busy_entry().email, None)
    files = archive.archive_files([busy_entry(), sending], site())
    assert set(files) == {"2026-W48/index.html", "2026-W49/index.html", "index.html",
                          "feed.xml"}
    assert "2026-W49" not in files["index.html"] + files["feed.xml"]


def test_an_empty_archive_has_a_valid_feed_and_says_so():
    files = archive.archive_files([], site())
    assert "No issue has been sent yet." in files["index.html"]
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo and feed.entries == [] and feed.feed.updated == "1970-01-01T00:00:00Z"


def test_the_view_in_browser_link_is_only_there_with_an_archive_url():
    now = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
    for url, expected in (("", None), (URL, f"{URL}/2026-W48/")):
        settings = make_settings(archive__url=url)
        built = build_issue(busy_week(now, count=5), key="2026-W48",
                            window=cadence_window(now), settings=settings,
                            renderer=renderer_for(settings), unsubscribe_url="https://u.example/x")
        assert ("View in browser" in built.email.html) == bool(expected)
        assert ("View in browser" in built.email.text) == bool(expected)
        if expected:
            assert f'href="{expected}"' in built.email.html
        assert quality_of(built, "https://u.example/x") == []


def test_a_page_passes_the_quality_checks_that_apply_to_pages():
    files = archive.archive_files([busy_entry()], site())
    for name, text in files.items():
        if name.endswith(".html"):
            assert archive.page_findings(text) == [], name


def test_a_page_turns_the_readers_links_into_subscribe_and_manage():
    page = archive.issue_page(busy_entry(), site())
    assert ('<a href="https://news.example.org/" style="color:#0b57d0">Subscribe</a>'
            in page)
    assert ('<a href="https://news.example.org/manage" style="color:#0b57d0">'
            "Manage your subscription</a>") in page
    text = archive.public_email(busy_entry().email, site()).text
    assert "Subscribe: https://news.example.org/\n" in text
    assert "Manage your subscription: https://news.example.org/manage\n" in text


def test_the_frozen_copy_has_no_view_link_where_the_emails_have_one():
    now = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
    settings = make_settings(archive__url=URL, archive__dir="public")
    issue = IssueRow("2026-W48", "weekly", cadence_window(now), "done", "", None)
    email = archive.render_whole(settings, issue, busy_week(now, count=5))
    assert "View in browser" not in email.html + email.text
    assert renderer_for(settings).site.view_url("2026-W48") == f"{URL}/2026-W48/"


# ---------------------------------------------------------------- in Chromium


OVERFLOW_JS = """
() => Math.max(document.documentElement.scrollWidth,
  ...[...document.body.querySelectorAll('*')].map(e => e.getBoundingClientRect().right))
"""


@pytest.fixture(scope="module")
def pages():
    later = busy_entry("2026-W49", datetime(2026, 12, 6, 9, tzinfo=UTC))
    files = archive.archive_files([busy_entry(), later], site())
    return {name: text for name, text in files.items() if name.endswith(".html")}


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_overflow_on_any_page(browser, pages, width):
    for name, html in pages.items():
        page = open_page(browser, html, width)
        assert page.evaluate(OVERFLOW_JS) <= width, (name, width)
        assert page.title()
        page.close()


@pytest.mark.browser
def test_the_bar_and_the_email_share_one_column_on_desktop(browser, pages):
    page = open_page(browser, pages["2026-W48/index.html"], 1280)
    bar = page.evaluate("document.querySelector('.archive-bar').getBoundingClientRect().width")
    column = page.evaluate(
        "Math.max(...[...document.querySelectorAll('div[style*=\"max-width:600px\"]')]"
        ".map(e => e.getBoundingClientRect().width))")
    page.close()
    assert bar == column == 600


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_bar_and_the_index_keep_a_contrast_of_4_5(browser, pages, scheme):
    for name in ("index.html", "2026-W48/index.html"):
        page = open_page(browser, pages[name], 375, scheme)
        results = page.evaluate(CONTRAST_JS)
        page.close()
        assert len(results) > 5
        assert [result for result in results if result[2] < 4.5] == [], name


# ---------------------------------------------------------------- digest web


def test_digest_web_serves_the_archive_with_its_headers_and_404s_the_rest(tmp_path):
    settings = site_settings(
        tmp_path, extra='[archive]\ndir = "archive"\nurl = "https://web.example.org/archive"\n')
    manual = busy_entry("2026-11-01..2026-11-07", datetime(2026, 11, 8, tzinfo=UTC))
    archive.write_changed(tmp_path / "archive",
                          archive.archive_files([busy_entry(), manual], site()))
    with serving(settings, Clock()) as served:
        index = http("GET", f"{served.url}/archive/")
        page = http("GET", f"{served.url}/archive/2026-W48/")
        by_hand = http("GET", f"{served.url}/archive/2026-11-01..2026-11-07/")
        feed = http("GET", f"{served.url}/archive/feed.xml")
        bare = http("GET", f"{served.url}/archive/2026-W48")
        missing = [http("GET", f"{served.url}/archive/{path}") for path in (
            "2026-W47/", "2026-W48/nope.html", "../digest.db", "%2e%2e/digest.db",
            ".hidden")]
    assert (index.status, page.status, feed.status, by_hand.status) == (200, 200, 200, 200)
    assert "Example News" in index.body and "2026-W48/" in index.body
    assert f'<link rel="canonical" href="{URL}/2026-W48/">' in page.body
    assert feed.body.startswith("<?xml")
    assert (bare.status, bare.headers["Location"]) == (308, "/archive/2026-W48/")
    assert [reply.status for reply in missing] == [404] * 5
    for reply in (index, page, missing[0]):
        assert reply.headers["X-Frame-Options"] == "DENY"
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
        assert reply.headers["Referrer-Policy"] == "no-referrer"
        assert reply.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
    assert missing[0].headers["Content-Security-Policy"].startswith("default-src 'none'; "
                                                                    "style-src 'self'")


def test_digest_web_without_an_archive_has_no_archive(tmp_path):
    with serving(site_settings(tmp_path), Clock()) as served:
        assert http("GET", f"{served.url}/archive/").status == 404


# ---------------------------------------------------------------- with feeds


PARTNER_FEED = (b'{"version": "https://jsonfeed.org/version/1.1", "title": "Partner", "items": ['
                b'{"id": "p1", "url": "https://partner.example/p1", "title": "Partner news", '
                b'"date_published": "2026-11-25T09:00:00+01:00", "summary": "From a feed."}]}')


def test_the_archive_shows_the_feed_items_sent_without_fetching_the_feeds_again(tmp_path, env):
    from feed_server import FeedServer, Route

    with FeedServer() as feeds, SendGridServer(api_key=API_KEY) as server:
        route = feeds.route("/feed.json", Route(PARTNER_FEED, "application/feed+json"))
        config = archive_site(tmp_path, server.url, ARCHIVE + (
            f'[content]\nfeeds = [{{url = "{feeds.url}/feed.json", category = "Work"}}]\n'))
        result = digest(config, "weekly", "--now", NOW)
        assert result.exit_code == 0, result.output
        assert len(feeds.requests) == 1  # the plan's; the page is frozen from what it read
        route.body = PARTNER_FEED.replace(b'"p1"', b'"p2"').replace(b"/p1", b"/p2").replace(
            b"Partner news", b"Newer partner news").replace(b"11-25", b"12-04")
        with sqlite3.connect(tmp_path / "digest.db") as conn:  # as an issue sent before 0.2
            conn.execute("DELETE FROM issue_archive")
        assert digest(config, "archive").exit_code == 0
        assert len(feeds.requests) == 1  # digest archive reads the feeds' cache only
    page = (tmp_path / "public" / "newsletter" / "2026-W48" / "index.html").read_text()
    assert 'href="https://partner.example/p1"' in page and "Partner news" in page


def test_a_french_sites_emails_link_to_french_pages_with_no_reader_link(tmp_path, env):
    folder = tmp_path / "public" / "newsletter"
    with SendGridServer(api_key=API_KEY) as server:
        config = archive_site(tmp_path, server.url, ARCHIVE)
        config.write_text(config.read_text().replace(
            'timezone = "Europe/Berlin"\n', 'timezone = "Europe/Berlin"\nlanguage = "fr"\n'))
        send_two_issues(config)
        bodies = [a.body for a in server.accepted]
    assert digest(config, "archive", "--segments").exit_code == 0
    for body in bodies:
        text, html = (part["value"] for part in body["content"])
        link = f"{URL}/{body['custom_args']['issue']}/"
        assert f'<a href="{link}" style="color:#0b57d0">Voir dans le navigateur</a>' in html
        assert text.splitlines()[1] == f"Voir dans le navigateur\u00a0: {link}"
    page = (folder / "2026-W48" / "work" / "index.html").read_text()
    assert re.search(r"<nav class=\"archive-bar\" lang=\"fr\" dir=\"ltr\" aria-label=\"Archives\">"
                     r"<a href=\"../../\">Send Test\u00a0: tous les numéros</a> · envoyé le "
                     r"\d{1,2} \w+ \d{4} · la version des abonnés à Work · ", page)
    assert ('<a href="https://send.example.org/" style="color:#0b57d0">S’abonner</a> · '
            '<a href="https://send.example.org/" style="color:#0b57d0">Gérer mon abonnement'
            "</a>") in page
    for name, data in files_in(folder).items():
        for leftover in (UNSUBSCRIBE_TAG, PREFERENCES_TAG, "/unsubscribe/", "Se désabonner"):
            assert leftover.encode() not in data, (name, leftover)
