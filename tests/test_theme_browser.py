"""The themed email and the sample's first preview in headless Chromium, at phone and
desktop widths, light and dark. Network requests are blocked; the preview's own local
images (file://) are allowed, and must all load."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_browser import CONTRAST_JS
from test_theme import themed_email

from digest.cli import cli

REPO = Path(__file__).resolve().parent.parent
LOGO = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8"
        "z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def themed_html():
    _, built = themed_email()
    return built.email.html


def open_page(browser, html, width, scheme, *, files=False):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route("**/*", lambda route: route.continue_()
               if files and route.request.url.startswith("file://") else route.abort())
    page.set_content(html, wait_until="domcontentloaded")
    return page


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_themed_email_reads_well_at_each_width_and_scheme(browser, themed_html, width, scheme):
    page = open_page(browser, themed_html, width, scheme)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    low = [result for result in page.evaluate(CONTRAST_JS) if result[2] < 4.5]
    logo = page.evaluate("document.querySelector('img[alt=\"Example News\"]')"
                         ".getBoundingClientRect().width")
    heading = page.evaluate("getComputedStyle(document.querySelector('h2')).color")
    font = page.evaluate("getComputedStyle(document.querySelector('h3')).fontFamily")
    page.close()
    assert low == []
    assert logo == 120
    assert heading == ("rgb(179, 38, 30)" if scheme == "light" else heading)
    assert font.startswith("Georgia")


@pytest.mark.browser
def test_dark_mode_uses_the_derived_colours(browser, themed_html):
    seen = {}
    for scheme in ("light", "dark"):
        page = open_page(browser, themed_html, 375, scheme)
        seen[scheme] = page.evaluate(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.querySelector('h2')).color]")
        page.close()
    assert seen["light"][0] != seen["dark"][0]
    assert seen["light"][1] == "rgb(179, 38, 30)" != seen["dark"][1]


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
def test_the_samples_first_preview_has_no_broken_image(browser, tmp_path, width):
    for name in ("content", "static", "digest.toml"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copyfile
        copy(REPO / name, tmp_path / name)
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(cli, ["preview"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    (html_file,) = (tmp_path / "previews").glob("*..*.html")
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.route("**/*", lambda route: route.continue_()
               if route.request.url.startswith("file://") else route.abort())
    page.goto(html_file.as_uri(), wait_until="load")
    images = page.evaluate("[...document.images].map(i => [i.src, i.naturalWidth])")
    page.close()
    assert len(images) >= 3
    assert [src for src, natural in images if natural == 0] == []
