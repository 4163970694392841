import re
from datetime import datetime, timedelta

import pytest
from helpers import BASE_URL, BERLIN, make_article, make_settings
from lxml import html as lxml_html

from digest.errors import TemplateError
from digest.pipeline import check_site
from digest.render import Renderer, Site
from digest.select import Caps, cadence_window, select

DEFAULT_CAPS = Caps()
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
SITE = Site(name="Example News", base_url=BASE_URL, language="en", timezone=BERLIN,
            postal_address="Example News, 1 Sample Road, Testville")
UNSUBSCRIBE = f"{BASE_URL}/unsubscribe/tok123"
TRICKY_TITLE = """Why "<think>" tags & 'traces' confuse evaluators"""


def issue_of(articles, caps=DEFAULT_CAPS):
    return select(articles, key="2026-W48", window=cadence_window(NOW), caps=caps)


def week():
    return [
        make_article("lead", "2026-11-28T10:00", "Work",
                     cover_image="https://news.example.org/img/lead.jpg", author=None),
        make_article("second", "2026-11-27T10:00", "Work"),
        make_article("tricky", "2026-11-26T10:00", "Research", title=TRICKY_TITLE,
                     excerpt="Raw <b>markup</b> & \"quotes\" must stay text."),
        make_article("tool", "2026-11-25T10:00", "Tools"),
    ]


@pytest.fixture(scope="module")
def email():
    return Renderer(SITE).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)


def test_golden_week(golden, email):
    golden("week.html", email.html)
    golden("week.txt", email.text)


def test_golden_capped_week_with_more_links(golden):
    articles = [make_article(f"w{i}", NOW - timedelta(hours=i + 1), "Work") for i in range(4)]
    articles += [make_article(f"p{i}", NOW - timedelta(hours=i + 1), "Policy") for i in range(2)]
    email = Renderer(SITE).render(issue_of(articles, Caps(2, 3)), unsubscribe_url=UNSUBSCRIBE)
    golden("capped.html", email.html)
    golden("capped.txt", email.text)
    assert "2 more in Work →" in email.html
    assert f"1 more in Policy: {BASE_URL}/category/policy" in email.text


def test_html_has_doctype_lang_title_and_dark_mode_meta(email):
    assert email.html.startswith("<!doctype html>\n<html")
    tree = lxml_html.fromstring(email.html.encode())
    assert tree.get("lang") == "en"
    assert tree.findtext(".//title") == email.subject
    metas = {m.get("name"): m.get("content") for m in tree.iter("meta")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"
    assert metas["viewport"] == "width=device-width, initial-scale=1"


def test_no_mjml_left_and_media_rules_kept(email):
    assert "<mj-" not in email.html
    assert "@media (prefers-color-scheme: dark)" in email.html
    assert "@media only screen and (min-width: 480px)" in email.html


def test_images_have_alt_and_keep_their_pixel_width(email):
    images = lxml_html.fromstring(email.html.encode()).findall(".//img")
    assert [(img.get("src"), img.get("alt"), img.get("width")) for img in images] == [
        ("https://news.example.org/img/lead.jpg", "Lead", "552"),
    ]


def test_layout_tables_are_presentational(email):
    tables = lxml_html.fromstring(email.html.encode()).findall(".//table")
    assert tables
    assert all(table.get("role") == "presentation" for table in tables)


def test_every_link_is_absolute(email):
    tree = lxml_html.fromstring(email.html.encode())
    links = [el.get("href") for el in tree.iter("a")]
    assert links
    assert all(link.startswith("https://") for link in links)
    assert UNSUBSCRIBE in links


def test_content_is_escaped_in_html_but_plain_in_text_and_subject(email):
    assert "&lt;think&gt;" in email.html
    assert "<think>" not in email.html
    assert "Raw &lt;b&gt;markup&lt;/b&gt; &amp;" in email.html
    assert TRICKY_TITLE in email.text
    assert "&lt;" not in email.text and "&amp;" not in email.text


def test_text_part_has_every_article_url_and_the_footer(email):
    for article in week():
        assert article.url in email.text
    assert f"Unsubscribe: {UNSUBSCRIBE}" in email.text
    assert email.text.endswith("Example News, 1 Sample Road, Testville\n")


def test_subject_counts_and_names_top_categories(email):
    assert email.subject == "Example News: 4 new articles in Work and Research"


def test_subject_is_plain_text_even_with_markup_in_a_category():
    issue = issue_of([make_article("a", "2026-11-28T10:00", "R&D <lab>")])
    email = Renderer(SITE).render(issue, unsubscribe_url=UNSUBSCRIBE)
    assert email.subject == "Example News: 1 new article in R&D <lab>"
    assert "R&amp;D &lt;lab&gt;" in email.html


def test_preheader_is_between_40_and_140_characters(email):
    assert 40 <= len(email.preheader) <= 140
    assert email.preheader.startswith("Lead · Second · ")
    short = Renderer(SITE).render(issue_of([make_article("a", "2026-11-28T10:00")]),
                                  unsubscribe_url=UNSUBSCRIBE)
    assert short.preheader == "A · 1 article this week. The week's picks from Example News."


def test_long_preheader_is_cut_at_a_word():
    titles = [f"A rather long headline number {i} about something" for i in range(5)]
    articles = [make_article(f"t{i}", NOW - timedelta(hours=i + 1), title=t)
                for i, t in enumerate(titles)]
    email = Renderer(SITE).render(issue_of(articles), unsubscribe_url=UNSUBSCRIBE)
    assert len(email.preheader) <= 140
    assert email.preheader.endswith("…")


def test_site_templates_override_the_defaults(tmp_path):
    (tmp_path / "subject.txt.j2").write_text("{{ site.name }} weekly ({{ count }})")
    email = Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)
    assert email.subject == "Example News weekly (4)"
    assert "<!doctype html>" in email.html  # the other templates are the shipped ones


def test_template_syntax_error_names_file_and_line(tmp_path):
    (tmp_path / "subject.txt.j2").write_text("line one\n{% if %}")
    with pytest.raises(TemplateError) as caught:
        Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)
    assert str(caught.value) == (
        f"{tmp_path / 'subject.txt.j2'}:2: Expected an expression, got 'end of statement block'"
    )


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        ("email.mjml.j2", "<mjml>\n<mj-body>\n{{ nosuch }}", "3: 'nosuch' is undefined"),
        ("subject.txt.j2", '{{ count + "x" }}',
         "1: TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        ("preheader.txt.j2", 'Hello\n{% include "preheader.txt.j2" %}',
         "2: templates nest too deep: does one include itself?"),
        ("email.txt.j2", "{{ issue.key | local_date }}",
         "1: AttributeError: 'str' object has no attribute 'astimezone'"),
        ("email.txt.j2", 'Hello\n{% include "footer.txt.j2" %}',
         "2: template 'footer.txt.j2' not found"),
    ],
    ids=["undefined", "type-error", "includes-itself", "filter-error", "missing-include"],
)
def test_an_error_raised_while_rendering_names_the_template_and_line(tmp_path, name, source,
                                                                       message):
    (tmp_path / name).write_text(source)
    with pytest.raises(TemplateError) as caught:
        Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)
    assert str(caught.value) == f"{tmp_path / name}:{message}"


def test_a_syntax_error_in_an_included_template_names_that_template(tmp_path):
    (tmp_path / "subject.txt.j2").write_text('{% include "part.txt.j2" %}')
    (tmp_path / "part.txt.j2").write_text("one\ntwo {% endif %}")
    with pytest.raises(TemplateError) as caught:
        Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)
    assert str(caught.value) == (
        f"{tmp_path / 'part.txt.j2'}:2: Encountered unknown tag 'endif'."
    )


@pytest.mark.parametrize("included", [False, True])
def test_a_template_that_is_not_utf8_is_named(tmp_path, included):
    bad = tmp_path / ("part.txt.j2" if included else "email.txt.j2")
    if included:
        (tmp_path / "email.txt.j2").write_text('Hello\n{% include "part.txt.j2" %}')
    bad.write_bytes(b"Caf\xe9 news")
    with pytest.raises(TemplateError) as caught:
        Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)
    assert str(caught.value) == f"{bad}: not valid UTF-8 (byte 0xe9 at offset 3)"


def test_check_reports_a_template_error_raised_while_rendering(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "good.md").write_text(
        "---\ntitle: Good one\ndate: '2026-11-20'\ncategory: Work\n---\nBody text.\n")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "subject.txt.j2").write_text("{{ site.name }} {{ nosuch }}")
    settings = make_settings(tmp_path, email__from="News <news@news.example.org>")
    assert check_site(settings).lines() == [
        f"Error: {tmp_path / 'templates' / 'subject.txt.j2'}:1: 'nosuch' is undefined"]


def test_invalid_mjml_from_a_site_template_is_a_template_error(tmp_path):
    (tmp_path / "email.mjml.j2").write_text("<mjml><mj-body><mj-section>")
    with pytest.raises(TemplateError, match=r"^the email template produced invalid MJML: "):
        Renderer(SITE, tmp_path).render(issue_of(week()), unsubscribe_url=UNSUBSCRIBE)


def test_no_remote_fonts_or_stylesheets(email):
    assert not re.search(r"<link[^>]+stylesheet", email.html)
    assert "@import" not in email.html
