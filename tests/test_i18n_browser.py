"""site.language in headless Chromium: the readers' pages in German, and a right-to-left
email at a phone's width (375 px). Nothing outside the page or the app is fetched."""

from datetime import datetime

import pytest
from helpers import BERLIN, busy_week, make_settings
from web_support import SECRET, Clock, http, outbox, parts, read_eml, serving, write_site

from digest.config import load_settings
from digest.pipeline import build_issue, renderer_for
from digest.select import cadence_window

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
WIDTH = 375
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def site_in(tmp_path, language):
    """web_support's site, in `language`."""
    path = write_site(tmp_path)
    path.write_text(path.read_text().replace("[site]\n", f'[site]\nlanguage = "{language}"\n'))
    return load_settings(path, environ={"DIGEST_SECRET_KEY": SECRET})


@pytest.fixture
def german(tmp_path):
    with serving(site_in(tmp_path, "de"), Clock()) as running:
        yield running


def phone(browser, served=None):
    context = browser.new_context(viewport={"width": WIDTH, "height": 740},
                                  java_script_enabled=False)
    prefix = served.url + "/" if served else "\0"
    context.route("**/*", lambda route: route.continue_()
                  if route.request.url.startswith(prefix) else route.abort())
    return context, context.new_page()


@pytest.mark.browser
def test_the_readers_pages_in_german_at_375_px(browser, german):
    context, page = phone(browser, german)
    try:
        page.goto(german.url + "/")
        assert page.evaluate("document.documentElement.lang") == "de"
        assert page.get_by_role("heading").inner_text() == "Web Test abonnieren"
        assert page.evaluate(OVERFLOW_JS) <= 0
        page.get_by_label("E-Mail-Adresse").fill("ada@example.com")
        german.clock.advance(seconds=5)  # a person takes a moment
        with page.expect_navigation():
            page.get_by_role("button", name="Abonnieren").click()
        assert page.get_by_role("heading").inner_text() == "Sehen Sie in Ihr Postfach"
        german.drain()
        message = read_eml(outbox(german.root)[0])
        text, html = parts(message)
        assert message["Subject"] == "Bestätigen Sie Ihr Abonnement von Web Test"
        assert text.startswith("Bitte bestätigen Sie, dass Sie Web Test an diese Adresse")
        assert '<html lang="de" dir="ltr">' in html
        link = next(word for word in text.split() if "/confirm/" in word)
        page.goto(german.url + link.split("readers.example.org", 1)[1])
        assert page.evaluate(OVERFLOW_JS) <= 0
        with page.expect_navigation():
            page.get_by_role("button", name="Ja, abonnieren").click()
        assert page.get_by_role("status").inner_text().startswith("Ihr Abonnement ist bestätigt.")
        assert page.get_by_label("Wöchentlich").is_checked()
        page.get_by_label("Täglich").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Speichern").click()
        assert page.get_by_role("status").inner_text() == "Gespeichert."
        assert page.get_by_label("Täglich").is_checked()
        assert page.evaluate(OVERFLOW_JS) <= 0
        with page.expect_navigation():
            page.get_by_role("button", name="Abmelden").click()
        assert page.get_by_role("heading").inner_text() == "Sie sind abgemeldet"
        page.goto(german.url + "/nowhere")
        assert page.get_by_role("heading").inner_text() == "Nicht gefunden"
        assert page.evaluate(OVERFLOW_JS) <= 0
    finally:
        context.close()


def test_the_readers_pages_of_a_right_to_left_language_say_so(tmp_path):
    with serving(site_in(tmp_path, "he"), Clock()) as served:
        page = http("GET", served.url + "/")
    assert '<html lang="he" dir="rtl">' in page.body


@pytest.mark.browser
def test_a_right_to_left_email_at_375_px(browser):
    settings = make_settings(site__language="ar")
    built = build_issue(busy_week(NOW, count=40), key="2026-W48", window=cadence_window(NOW),
                        settings=settings, renderer=renderer_for(settings),
                        unsubscribe_url="https://news.example.org/unsubscribe/t")
    assert '<html lang="ar" dir="rtl"' in built.email.html
    assert "\u200f" not in built.email.text and "dir=" not in built.email.text  # plain text
    context, page = phone(browser)
    try:
        page.set_content(built.email.html, wait_until="domcontentloaded")
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        widest = page.evaluate("Math.max(...[...document.body.querySelectorAll('*')]"
                               ".map(e => e.getBoundingClientRect().right))")
        leftmost = page.evaluate("Math.min(...[...document.body.querySelectorAll('*')]"
                                 ".map(e => e.getBoundingClientRect().left))")
        assert widest <= WIDTH and leftmost >= 0
        direction = "e => getComputedStyle(e).direction"
        assert page.locator("h2").first.evaluate(direction) == "rtl"  # digest's own words
        assert page.locator("h3").first.evaluate(direction) == "ltr"  # an English title
        date = page.locator("p.meta").nth(1)  # an article's date, Arabic, flush right
        box, text_box = date.bounding_box(), date.evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e);"
            " const b = r.getBoundingClientRect(); return {left: b.left, right: b.right}; }")
        assert abs((box["x"] + box["width"]) - text_box["right"]) < 2
        assert "نوفمبر" in date.inner_text()
    finally:
        context.close()
