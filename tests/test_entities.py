"""HTML character references in front matter are decoded once at load and escaped once on
output: readers see `"` and `'`, never `&quot;` or `&#39;` (issue 18)."""

from datetime import datetime
from pathlib import Path

import pytest
from helpers import BASE_URL, BERLIN
from lxml import html as lxml_html

from digest.content import LoadOptions, load_articles
from digest.render import Renderer, Site
from digest.select import Caps, cadence_window, select
from digest.text import decode_references

FIXTURES = Path(__file__).parent / "fixtures" / "entities"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
SITE = Site(name="Example News", base_url=BASE_URL, language="en", timezone=BERLIN,
            postal_address="Example News, 1 Sample Road, Testville")
NBSP = "\xa0"


@pytest.fixture(scope="module")
def articles():
    loaded = load_articles(FIXTURES, LoadOptions(base_url=BASE_URL, timezone=BERLIN))
    assert loaded.problems == []
    return {article.slug: article for article in loaded.articles}


@pytest.fixture(scope="module")
def email(articles):
    issue = select(list(articles.values()), key="2026-W48", window=cadence_window(NOW), caps=Caps())
    return Renderer(SITE).render(issue, unsubscribe_url=f"{BASE_URL}/unsubscribe/tok")


def test_quot_and_numeric_apostrophe_are_decoded_in_every_text_field(articles):
    article = articles["quoted-excerpt"]
    assert article.title == "Orchard board says \"grafting\" isn't the bottleneck"
    assert article.excerpt == "The growers call it \"a shortcut,\" and say the method isn't new."
    assert article.author == "Dana O'Neill"
    assert article.category == "Q&A"
    assert article.tags == ("R&D", "AT&T")


def test_double_encoded_amp_is_decoded_once_and_numeric_references_both_ways(articles):
    article = articles["double-encoded"]
    assert article.title == "Fish &amp; chips \u2014 a hex and a decimal \u2014 dash"
    assert article.author == f"Kitchen{NBSP}Desk"


def test_a_body_excerpt_decodes_what_commonmark_decodes_and_keeps_the_rest(articles):
    assert articles["double-encoded"].excerpt == (
        f"Tea{NBSP}time at 5{NBSP}pm \u00a9 \u00a9 \u00a9, a bare & ampersand, an unknown "
        "&madeup; name and &amp without its semicolon."
    )


def test_a_bare_ampersand_and_angle_brackets_stay_as_written(articles):
    article = articles["bare-ampersand"]
    assert article.title == "Salt & pepper <grinders> compared & ranked"
    assert article.excerpt == f"Prices under 10 & over 5 {NBSP}euros: x < y and <b> stays text."


def test_subject_and_preheader_get_the_decoded_characters(email):
    assert email.subject == "Example News: 3 new articles in Research and Q&A"
    assert email.preheader == (
        "Salt & pepper <grinders> compared & ranked · Fish &amp; chips \u2014 a hex and a "
        "decimal \u2014 dash · Orchard board says \"grafting\" isn't the…"
    )  # cut at 140 characters


def test_html_escapes_once_so_readers_see_the_characters(email):
    assert "&amp;quot;" not in email.html and "&amp;#39;" not in email.html
    assert "Fish &amp;amp; chips" in email.html  # the title's literal "&amp;", escaped once
    shown = lxml_html.fromstring(email.html.encode()).text_content()
    assert "Orchard board says \"grafting\" isn't the bottleneck" in shown
    assert "Dana O'Neill" in shown
    assert "x < y and <b> stays text." in shown


def test_text_part_shows_the_characters(email):
    assert "&quot;" not in email.text and "&#39;" not in email.text
    assert "Orchard board says \"grafting\" isn't the bottleneck" in email.text
    assert "Fish &amp; chips" in email.text


def test_golden_entities(golden, email):
    golden("entities.html", email.html)
    golden("entities.txt", email.text)


@pytest.mark.parametrize(("written", "shown"), [
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&amp;amp;", "&amp;"),
    ("&nbsp;", NBSP),
    ("&#8212; &#x2014; &#X2014;", "\u2014 \u2014 \u2014"),
    ("AT&T & co", "AT&T & co"),
    ("&copy 2026", "&copy 2026"),  # no semicolon: not a reference in CommonMark
    ("&copyx;", "&copyx;"),  # HTML's legacy prefix matching does not apply
    ("&#0; &#xD800; &#x110000;", "\ufffd \ufffd \ufffd"),
    ("a&#8238;b&#1;c", "abc"),  # a bidi override and a C0 control are never decoded in
    ("&#x85;", "\u2026"),  # as browsers read it (windows-1252), not the C1 control NEL
])
def test_references_decoded_once(written, shown):
    assert decode_references(written) == shown
