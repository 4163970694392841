"""`[theme]`: validation, the derived palette, the contrast check of the quality gate, the
sanitised footer, and the themed email (golden file)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import BERLIN, make_article, make_settings
from lxml import html as lxml_html

from digest.cli import cli
from digest.config import load_settings
from digest.errors import ConfigError
from digest.pipeline import build_issue, quality_of, renderer_for
from digest.select import cadence_window
from digest.theme import Theme, contrast, palette_of, rgb, sanitise

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
THEMED = {
    "theme__logo": "https://news.example.org/logo.png", "theme__logo_width": 120,
    "theme__accent": "#b3261e", "theme__background": "#fffbf5", "theme__text": "#2b2118",
    "theme__font_stack": "Georgia, 'Times New Roman', serif",
    "theme__header_image": "https://news.example.org/header.png",
    "theme__footer_html": 'Made in <b>Leipzig</b> · <a href="https://news.example.org/about">'
                          'About</a><script>alert(1)</script><img src=x onerror=alert(1)>',
}


def week():
    return [make_article("lead", "2026-11-28T10:00", "Work",
                         cover_image="https://news.example.org/img/lead.jpg"),
            make_article("second", "2026-11-27T10:00", "Work",
                         cover_image="https://news.example.org/img/second.jpg"),
            make_article("third", "2026-11-26T10:00", "Research")]


def themed_email(**values):
    settings = make_settings(**{**THEMED, **values})
    return settings, build_issue(week(), key="2026-W48", window=cadence_window(NOW),
                                 settings=settings, renderer=renderer_for(settings),
                                 unsubscribe_url="https://news.example.org/unsubscribe/t")


def write_config(root: Path, theme: str) -> Path:
    path = root / "digest.toml"
    path.write_text(f'[site]\nbase_url = "https://news.example.org"\n[theme]\n{theme}\n')
    return path


def test_golden_themed_email(golden):
    _, built = themed_email()
    golden("themed.html", built.email.html)


def test_logo_header_font_and_footer_in_the_email():
    _, built = themed_email()
    tree = lxml_html.fromstring(built.email.html.encode())
    images = [(img.get("src"), img.get("alt"), img.get("width")) for img in tree.iter("img")]
    assert images[:2] == [("https://news.example.org/header.png", "", "600"),
                          ("https://news.example.org/logo.png", "Example News", "120")]
    assert ("https://news.example.org/img/second.jpg", "", "88") in images  # a row's thumbnail
    assert "Georgia, 'Times New Roman', serif" in built.email.html
    assert 'Made in <b>Leipzig</b> · <a href="https://news.example.org/about"' in built.email.html
    assert "alert(1)" not in built.email.html and "onerror" not in built.email.html
    assert tree.find(".//h1") is None  # the logo replaces the name


@pytest.mark.parametrize(("theme", "message"), [
    ('accent = "blue"', "theme.accent must be a CSS hex colour such as #0b57d0, not 'blue'"),
    ('background = "#ffff"  \ntext = "#12345"',
     "theme.text must be a CSS hex colour such as #0b57d0, not '#12345'"),
    ('logo = "http://news.example.org/logo.png"',
     "theme.logo must be an https:// address, not 'http://news.example.org/logo.png'"),
    ('header_image = "javascript:alert(1)"',
     "theme.header_image must be an https:// address, not 'javascript:alert(1)'"),
    ("logo_width = 2000", "theme.logo_width must be 16 to 600 (pixels), not 2000"),
    ('font_stack = "Arial; } body { display: none"',
     "theme.font_stack must be a list of font names (letters, digits, spaces, quotes, commas "
     "and hyphens), not 'Arial; } body { display: none'"),
    ('colour = "#fff"', "unknown key 'theme.colour'"),
])
def test_bad_theme_values_are_named(tmp_path, theme, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, theme))
    assert str(caught.value) == f"{tmp_path / 'digest.toml'}: {message}"


def test_short_and_alpha_hex_colours_are_read():
    assert rgb("#fff") == (1.0, 1.0, 1.0)
    assert rgb("#00000080") == pytest.approx((0.498, 0.498, 0.498), abs=0.002)


def test_the_dark_variant_is_derived_and_readable():
    palette = palette_of("#b3261e", "#fffbf5", "#2b2118")
    assert palette.accent == "#b3261e"
    assert contrast(rgb(palette.dark_background), rgb("#000000")) < 1.5  # near-black
    for foreground in (palette.dark_accent, palette.dark_text, palette.dark_muted):
        assert contrast(rgb(foreground), rgb(palette.dark_background)) >= 4.5
    assert contrast(rgb(palette.muted), rgb(palette.background)) >= 4.5


def test_a_light_accent_fails_the_contrast_check():
    settings, built = themed_email(theme__accent="#ffd54f")
    findings = quality_of(built, "https://news.example.org/unsubscribe/t", theme=settings.theme)
    assert [(f.level, f.code, f.message) for f in findings] == [(
        "error", "contrast",
        "theme.accent #ffd54f on the background #fffbf5 has a contrast of 1.37:1, under the "
        "4.5:1 text needs to be readable (WCAG AA): choose a darker or lighter colour.")]


def test_a_dark_background_whose_dark_mode_cannot_pass_is_caught_too():
    settings, built = themed_email(theme__background="#1b1b1b", theme__text="#f0f0f0",
                                   theme__accent="#7ab7ff")
    findings = quality_of(built, "https://news.example.org/unsubscribe/t", theme=settings.theme)
    assert findings == []  # a dark theme passes in both modes


def test_check_fails_on_a_bad_accent(tmp_path):
    shutil.copytree(REPO / "content", tmp_path / "content")
    write_config(tmp_path, 'accent = "#9ecbff"')
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "digest.toml"), "check"])
    assert result.exit_code == 1
    assert ("Error: rendered email: theme.accent #9ecbff on the background #ffffff has a "
            "contrast of 1.69:1") in result.output


def test_footer_keeps_a_few_tags_and_escapes_the_rest():
    assert sanitise('<p onclick="x">Hi <em>there</em> <a href="javascript:x">link</a> '
                    '<a href="mailto:a@b.org" class="c">mail</a><br/><u>u</u> 1 < 2') == (
        'Hi <em>there</em> link <a href="mailto:a@b.org">mail</a><br>u 1 &lt; 2')
    assert sanitise("<b>unclosed") == "<b>unclosed</b>"
    assert sanitise("<style>body{}</style>kept") == "kept"


def test_the_default_theme_is_the_shipped_palette():
    palette = Theme().palette
    assert (palette.accent, palette.background, palette.text) == ("#0b57d0", "#ffffff",
                                                                  "#1f2328")
