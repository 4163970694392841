"""The email in a real browser: headless Chromium (Debian), driven by Playwright.

Every network request is blocked: the email must lay out without fetching anything.
"""

from datetime import datetime

import pytest
from helpers import BERLIN, busy_week, make_settings

from digest.pipeline import build_issue, renderer_for
from digest.select import cadence_window

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)

CONTRAST_JS = """
() => {
  const parse = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const luminance = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const results = [];
  for (const el of document.querySelectorAll('h1, h2, h3, p, a, li')) {
    if (!el.textContent.trim() || el.closest('[style*="display:none"]')) continue;
    const fg = luminance(parse(getComputedStyle(el).color));
    const bg = luminance(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    results.push([el.tagName, el.textContent.trim().slice(0, 40), Math.round(ratio * 100) / 100]);
  }
  return results;
}
"""


@pytest.fixture(scope="module")
def email_html():
    settings = make_settings()
    built = build_issue(busy_week(NOW, count=60), key="2026-W48", window=cadence_window(NOW),
                        settings=settings, renderer=renderer_for(settings),
                        unsubscribe_url="https://news.example.org/unsubscribe/t")
    return built.email.html


def open_page(browser, html, width, scheme="light"):
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="domcontentloaded")
    return page


@pytest.mark.browser
@pytest.mark.parametrize("width", [320, 375])
def test_no_horizontal_overflow_on_phones(browser, email_html, width):
    page = open_page(browser, email_html, width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    widest = page.evaluate(
        "Math.max(...[...document.body.querySelectorAll('*')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert widest <= width
    page.close()


@pytest.mark.browser
def test_content_column_is_at_most_600px_on_desktop(browser, email_html):
    page = open_page(browser, email_html, 1280)
    widths = page.evaluate(
        "[...document.querySelectorAll('h1, h2, h3, p, img')]"
        ".map(e => e.getBoundingClientRect().width)"
    )
    assert widths
    assert max(widths) <= 600
    column = page.evaluate(
        "Math.max(...[...document.querySelectorAll('div[style*=\"max-width:600px\"]')]"
        ".map(e => e.getBoundingClientRect().width))"
    )
    assert column == 600
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_contrast_is_at_least_4_5(browser, email_html, scheme):
    page = open_page(browser, email_html, 375, scheme)
    results = page.evaluate(CONTRAST_JS)
    page.close()
    assert len(results) > 50
    low = [result for result in results if result[2] < 4.5]
    assert low == []


@pytest.mark.browser
def test_dark_mode_actually_changes_the_background(browser, email_html):
    colors = {}
    for scheme in ("light", "dark"):
        page = open_page(browser, email_html, 375, scheme)
        colors[scheme] = page.evaluate(
            "getComputedStyle(document.querySelector('h3')).color")
        page.close()
    assert colors["light"] != colors["dark"]
