"""The web archive in the site's language (issues 16 and 19 together): the archive's own
words, dates, `lang` and `dir`, and the public version of an email in every shipped
language."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from helpers import BERLIN, busy_week, make_settings

from digest import archive
from digest.i18n import SHIPPED, load_language
from digest.ledger import Ledger, PlannedSegment
from digest.pipeline import build_issue, renderer_for
from digest.render import PREFERENCES_TAG, UNSUBSCRIBE_TAG
from digest.select import cadence_window
from digest.store import open_store

URL = "https://news.example.org/newsletter"
SIGNUP = "https://news.example.org/signup"
MANAGE = "https://news.example.org/manage"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
SENT = datetime(2026, 11, 29, 9, tzinfo=UTC)


def site_in(language: str) -> archive.ArchiveSite:
    return archive.ArchiveSite("Example News", language, BERLIN, URL, SIGNUP, MANAGE)


def entry_in(language: str, key: str = "2026-W48", sent: datetime | None = SENT,
             count: int = 5, archive_url: str = "") -> archive.Entry:
    """An issue rendered in `language` as the archive freezes it (the links as tags), or
    with `archive_url`, as its emails are sent ("View in browser")."""
    settings = make_settings(site__language=language, archive__url=archive_url)
    built = build_issue(busy_week(NOW, count=count), key=key, window=cadence_window(NOW),
                        settings=settings, renderer=renderer_for(settings),
                        unsubscribe_url=UNSUBSCRIBE_TAG, preferences_url=PREFERENCES_TAG)
    return archive.Entry(key, built.email, sent)


def test_a_german_archive_page_has_its_bar_in_german():
    page = archive.issue_page(entry_in("de"), site_in("de"))
    assert page.startswith('<!doctype html>\n<html lang="de" dir="ltr"')
    assert ('<nav class="archive-bar" lang="de" dir="ltr" aria-label="Archiv">'
            '<a href="../">Example News: alle Ausgaben</a> · verschickt am 29. November 2026'
            ' · <a href="https://news.example.org/signup"><strong>Abonnieren</strong></a>'
            '</nav>') in page
    assert f'<a href="{SIGNUP}" style="color:#0b57d0">Abonnieren</a>' in page
    assert f'<a href="{MANAGE}" style="color:#0b57d0">Abonnement verwalten</a>' in page


def test_a_segments_page_names_its_categories_in_german():
    variant = archive.Variant("work-tools", "Work und Tools", entry_in("de").email)
    page = archive.issue_page(entry_in("de"), site_in("de"), variant)
    assert (" · verschickt am 29. November 2026 · die Fassung für Work und Tools · "
            in page)
    assert '<a href="../../">Example News: alle Ausgaben</a>' in page


def test_segment_labels_list_the_categories_in_the_sites_language(tmp_path):
    email = entry_in("de", count=2).email
    with open_store(tmp_path / "digest.db") as store:
        ledger = Ledger(store)
        ledger.create("2026-W48", "weekly", cadence_window(NOW), [
            PlannedSegment("all", (), (), email, ()),
            PlannedSegment("research-work", ("Research", "Work"), (), email, ())])
        found = archive.variants(ledger, "2026-W48", load_language("de"))
    assert [(v.slug, v.label) for v in found] == [("all", "alle Themen"),
                                                  ("research-work", "Research und Work")]


def test_a_segments_page_links_to_the_whole_issue_not_to_view_in_browser():
    sent = entry_in("de", archive_url=URL).email
    assert f'<a href="{URL}/2026-W48/" style="color:#0b57d0">Im Browser ansehen</a>' in sent.html
    variant = archive.Variant("work", "Work", sent)
    page = archive.issue_page(entry_in("de"), site_in("de"), variant)
    assert '<a href="../" style="color:#0b57d0">Alle Themen dieser Ausgabe</a>' in page
    assert "Im Browser ansehen" not in page and f"{URL}/2026-W48/\"" not in page


def test_a_german_index_and_its_paging_are_in_german():
    email, first_sent = entry_in("de", count=2).email, datetime(2025, 1, 5, 9, tzinfo=UTC)
    entries = [archive.Entry(f"2025-W{n:02d}", email, first_sent + timedelta(weeks=n - 1))
               for n in range(1, 52)]
    pages = archive.index_pages(entries, site_in("de"))
    first, second = pages["index.html"], pages["page/2/index.html"]
    assert first.startswith('<!doctype html>\n<html lang="de" dir="ltr">\n')
    for expected in (
            "<title>Example News: alle Ausgaben</title>",
            '<meta name="description" content="Alle Ausgaben von Example News, die neueste '
            'zuerst.">',
            '<meta property="og:title" content="Example News: alle Ausgaben">',
            '<p>Alle Ausgaben, die neueste zuerst. <a href="https://news.example.org/signup">'
            "<strong>Abonnieren</strong></a> Sie den Newsletter, um die nächste Ausgabe per "
            'E-Mail zu bekommen, oder folgen Sie dem <a href="https://news.example.org/'
            'newsletter/feed.xml">Feed</a>.</p>',
            '<nav aria-label="Seiten"><a href="page/2/">Ältere Ausgaben →</a>\n'
            '<span class="meta">Seite 1 von 2</span>',
            '<time datetime="2025-12-21T09:00:00Z">21. Dezember 2025</time>'):
        assert expected in first
    assert "<title>Example News: alle Ausgaben (Seite 2 von 2)</title>" in second
    assert '<a href="../../">← Neuere Ausgaben</a>' in second


def test_an_empty_german_archive_says_so_in_german():
    files = archive.archive_files([], site_in("de"))
    assert "<p>Es wurde noch keine Ausgabe verschickt.</p>" in files["index.html"]
    assert '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">' in files["feed.xml"]


def test_a_sites_own_catalog_translates_the_archive(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "it.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: it\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "%(name)s: all issues"\nmsgstr "%(name)s: tutti i numeri"\n', encoding="utf-8")
    settings = make_settings(tmp_path, site__language="it", archive__url=URL)
    index = archive.index_pages([entry_in("en")], archive.site_of(settings))["index.html"]
    assert "<title>Example News: tutti i numeri</title>" in index
    assert '<time datetime="2026-11-29T09:00:00Z">29 novembre 2026</time>' in index


def test_an_arabic_sites_archive_pages_are_right_to_left():
    files = archive.archive_files([entry_in("ar")], site_in("ar"))
    page, index = files["2026-W48/index.html"], files["index.html"]
    assert re.match(r'<!doctype html>\n<html lang="ar" dir="rtl"', page)
    assert '<nav class="archive-bar" lang="ar" dir="rtl"' in page
    assert index.startswith('<!doctype html>\n<html lang="ar" dir="rtl">')
    assert "<time datetime=\"2026-11-29T09:00:00Z\">29 نوفمبر 2026</time>" in index


PUBLIC_LINKS = {  # the footer's two links on an archive page, in each shipped language
    "en": ("Subscribe", "Manage your subscription"),
    "de": ("Abonnieren", "Abonnement verwalten"),
    "fr": ("S’abonner", "Gérer mon abonnement"),
    "es": ("Suscribirse", "Gestionar tu suscripción"),
}


@pytest.mark.parametrize("language", SHIPPED)
def test_the_public_email_has_no_reader_link_in_any_shipped_language(language):
    public = archive.public_email(entry_in(language).email, site_in(language))
    subscribe, manage = PUBLIC_LINKS[language]
    for part in (public.html, public.text):
        assert UNSUBSCRIBE_TAG not in part and PREFERENCES_TAG not in part
        assert "token" not in part.lower() and "/unsubscribe/" not in part
    links = dict((text, href) for href, text in re.findall(
        r'<a href="([^"]*)" style="[^"]*">([^<]*)</a>', public.html))
    assert (links[subscribe], links[manage]) == (SIGNUP, MANAGE)
    colon = "\u00a0:" if language == "fr" else ":"
    assert f"\n{subscribe}{colon} {SIGNUP}\n{manage}{colon} {MANAGE}\n" in public.text


# ---------------------------------------------------------------- in Chromium


EXTENT_JS = """
() => { const boxes = [...document.body.querySelectorAll('*')].map(e => e.getBoundingClientRect());
  return [Math.min(0, ...boxes.map(b => b.left)),
          Math.max(document.documentElement.scrollWidth, ...boxes.map(b => b.right))]; }
"""


@pytest.mark.browser
@pytest.mark.parametrize("language", ["de", "ar"])
def test_translated_archive_pages_fit_a_phone_and_the_bar_follows_the_direction(
        browser, language):
    from test_browser import open_page

    later = entry_in(language, "2026-W49", datetime(2026, 12, 6, 9, tzinfo=UTC))
    files = archive.archive_files([entry_in(language), later], site_in(language))
    for name, shown in (("index.html", "main"), ("2026-W48/index.html", ".archive-bar")):
        page = open_page(browser, files[name], 375)
        assert page.evaluate(EXTENT_JS) == [0, 375], (language, name)
        direction = page.evaluate(
            f"getComputedStyle(document.querySelector('{shown}')).direction")
        assert direction == ("rtl" if language == "ar" else "ltr"), name
        page.close()
