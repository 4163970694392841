"""Holes in an email's frame: the head and tail around the blocks are converted once per
run with a hole for each value that differs between segments (subject, preheader, intro,
issue label), and each email fills the holes with its own values, byte for byte as a
whole render writes them."""

import re
import unicodedata
from datetime import datetime
from itertools import combinations

import pytest
from helpers import BERLIN, busy_week, make_article
from markupsafe import escape

from digest import render
from digest.errors import TemplateError
from digest.render import (
    BLOCK_MARK,
    Blocks,
    Renderer,
    Site,
    default_templates_dir,
    holeable,
    html_text,
    mjml_to_html,
    punched,
    title_copy,
)
from digest.select import Caps, cadence_window, select

EVERY_CHECK = {"blocks", "holes", "refill"}

# --- the converters, pinned: what holes rely on -------------------------------------


def assigned(first, last):
    """Every character of [first, last) the Unicode database knows."""
    return [chr(code) for code in range(first, last)
            if unicodedata.category(chr(code)) != "Cn"]


HOLEABLE = [char for char in assigned(0x20, 0x20000) + assigned(0x20000, 0x110000)[::97]
            if holeable(f"x{char}")]


def converted(title="Title", preview="Preview", text="Text"):
    """The HTML of an email with these (already escaped) title, preview and text."""
    return mjml_to_html(
        f"<mjml><mj-head><mj-title>{title}</mj-title><mj-preview>{preview}</mj-preview>"
        f"</mj-head><mj-body><mj-section><mj-column><mj-text><p>{text}</p>"
        f"<h2 class='x'>{text}</h2></mj-text></mj-column></mj-section></mj-body></mjml>")


def test_mjml_and_premailer_write_an_elements_text_escaping_only_amp_lt_and_gt():
    """Every character `holeable` allows (one in 97 past the first two planes), as the
    whole text of a title, a preview and a paragraph, comes out as `html_text` writes it."""
    text = " ".join(HOLEABLE)
    escaped = escape(text)
    html = converted(escaped, escaped, escaped)
    assert re.search(r"<title>(.*?)</title>", html, re.DOTALL)[1] == html_text(text)
    assert re.search(r'<div style="display:none[^>]*>(.*?)</div>', html, re.DOTALL)[1] == \
        html_text(text)
    assert re.search(r"<p[^>]*>(.*?)</p>", html, re.DOTALL)[1] == html_text(text)
    assert re.search(r"<h2[^>]*>(.*?)</h2>", html, re.DOTALL)[1] == html_text(text)


def aria_label(html):
    return re.search(r"aria-label=(.*?) aria-roledescription", html, re.DOTALL)[1]


def test_mjml_copies_the_title_into_an_aria_label_as_title_copy_says():
    """mjml-python writes the title again in an aria-label, as Rust's `{:?}` does: every
    character `title_copy` knows comes out as it says (`\\u{a0}` for a no-break space)."""
    known = [char for char in HOLEABLE if title_copy(char) is not None]
    assert "\u00a0" in known and "\u202f" in known and "\u200f" in known and "\\" in known
    text = "|".join(known)
    assert aria_label(converted(escape(text))) == f'"{title_copy(text)}"'


@pytest.mark.parametrize(("title", "label"), [
    ('Say "hi"', "'Say \"hi\"'"),  # single quotes around it
    ("Q &{x}", '"Q &{x}"'),  # premailer leaves `&{` alone in an attribute
    ("a\tb", '"a\\tb"'),
    ("e\u0301t\u0301e\u0301", '"e\\u{301}t\\u{301}e\\u{301}"'),  # combining accents
])
def test_a_title_copy_does_not_know_is_written_otherwise(title, label):
    assert title_copy(title) is None
    assert aria_label(converted(escape(title))) == label


def test_characters_mjml_refuses_or_lxml_rewrites_are_not_holes():
    assert not holeable("a\rb") and "<title>a\nb</title>" in converted("a\rb")
    for refused in ("a\x0bb", "a\ufffeb", "a\x00b"):
        assert not holeable(refused)
        with pytest.raises(TemplateError):
            converted(refused)
    assert not holeable("") and not holeable("   ") and not holeable("x" * 2001)
    assert not holeable(escape("<b>already markup</b>"))


def test_only_an_elements_whole_text_outside_comments_scripts_and_styles_is_punched():
    spots = {"S": "-digest-hole-0-"}
    assert punched('<p>S</p><h3 class="x">S</h3><mj-title>S</mj-title>', spots) == (
        '<p>-digest-hole-0-</p><h3 class="x">-digest-hole-0-</h3>'
        "<mj-title>-digest-hole-0-</mj-title>")
    untouched = ('<!-- <p>S</p> --><script><p>S</p></script><style><p>S</p></style>'
                 '<p>S and more</p><p><b>S</b> more</p><P>S</P><img alt="S"><abbr>S</abbr>'
                 '<mj-button>S</mj-button>')
    assert punched(untouched, spots) == untouched.replace(
        "<p><b>S</b>", "<p><b>-digest-hole-0-</b>")


# --- Blocks, given MJML and values ----------------------------------------------------

FRAME = (
    "<mjml><mj-head><mj-title>{0}</mj-title><mj-preview>{1}</mj-preview></mj-head>"
    "<mj-body><mj-section><mj-column><mj-text><h1>Example</h1><p class=\"meta\">{3}</p>"
    "<p>{2}</p></mj-text></mj-column></mj-section>{mark}<mj-section><mj-column><mj-text>"
    "<p>A block of articles</p></mj-text></mj-column></mj-section>{mark}<mj-section>"
    "<mj-column><mj-text><p>The footer</p></mj-text></mj-column></mj-section></mj-body>"
    "</mjml>")
PLAIN = ("Example: 5 new articles in Finance", "Policy workflow data · Inbox policy study",
         "5 articles this week, and 2 more on the site.", "23–29 November 2026")


def email_source(values):
    """The MJML of an email showing `values` (subject, preheader, intro, label), escaped
    as the email template's autoescape does."""
    return FRAME.format(*map(escape, values), mark=BLOCK_MARK)


def test_one_conversion_serves_every_segments_frame():
    blocks = Blocks()
    segments = [(f"Example: {n} new articles in Topic {n}", f"Title {n} · Title {n + 1}",
                 f"{n} articles this week, and {n * 3} more on the site.", PLAIN[3])
                for n in range(1, 21)]
    for values in segments:
        assert blocks.to_html(email_source(values), values) == \
            mjml_to_html(email_source(values))
    assert blocks.conversions == 1 and len(blocks.frames) == 1
    assert blocks.checked == EVERY_CHECK and blocks.holes


TRICKY = [
    "Q&A: 5 new articles", "x < y > z", "it's here", "Café crème in Zürich",
    "Nom\u00a0: 5 nouveaux articles", "1\u202f000 articles", "🎉 Party 👍🏻 time",
    "שלום עולם", "مرحبا\u200f بالعالم", "\u2066isolated\u2069", "back\\slash",
    "  padded  ", "&amp; literally", "<b>not bold</b>", "&#39; entity", "100% {{ braces }}",
    # not holed, or not in the title's copy: converted whole
    'Say "hi"', "a &{b}", "tab\there", "line\nbreak", "cr\rhere", "e\u0301te\u0301",
    "\u3164filler", "x" * 2500,
]


@pytest.mark.parametrize("position", range(4))
def test_a_reused_frame_filled_with_tricky_values_equals_its_whole_render(position):
    """With every check already done, nothing hides a wrong fill: each email is the
    filled frame, or a whole render where a value cannot be filled."""
    blocks = Blocks()
    blocks.to_html(email_source(PLAIN), PLAIN)
    blocks.checked = set(EVERY_CHECK)
    for value in TRICKY:
        values = (*PLAIN[:position], value, *PLAIN[position + 1:])
        assert blocks.to_html(email_source(values), values) == \
            mjml_to_html(email_source(values)), value
    assert blocks.holes and blocks.conversions < len(TRICKY)


@pytest.mark.parametrize("subject", TRICKY[:TRICKY.index('Say "hi"')])
def test_a_tricky_subject_fills_the_cached_frame(subject):
    """These need no conversion of their own: the subject's text and its aria-label copy
    are both filled in."""
    blocks = Blocks()
    blocks.to_html(email_source(PLAIN), PLAIN)
    values = (subject, *PLAIN[1:])
    assert blocks.to_html(email_source(values), values) == mjml_to_html(email_source(values))
    assert blocks.conversions == 1


def test_a_value_mjml_refuses_raises_as_a_whole_render_does():
    blocks = Blocks()
    blocks.to_html(email_source(PLAIN), PLAIN)
    values = ("Bad \ufffe subject", *PLAIN[1:])
    with pytest.raises(TemplateError) as assembled:
        blocks.to_html(email_source(values), values)
    with pytest.raises(TemplateError) as whole:
        mjml_to_html(email_source(values))
    assert str(assembled.value) == str(whole.value)


def test_a_wrong_fill_is_caught_by_the_first_email_with_holes(monkeypatch):
    """Were the rule for text wrong (here: `&` left as it is), the first email with holes
    is compared with its whole render: holes are turned off for the run."""
    monkeypatch.setattr(render, "html_text", lambda value: value)
    blocks = Blocks()
    segments = [("Q&A: 5 new articles", *PLAIN[1:]), ("R&D: 6 new articles", *PLAIN[1:])]
    for values in segments:
        assert blocks.to_html(email_source(values), values) == \
            mjml_to_html(email_source(values))
    assert not blocks.holes and blocks.usable and "holes" in blocks.checked


def test_a_wrong_refill_is_caught_by_the_first_reuse_of_a_frame_with_holes(monkeypatch):
    """Were the rule for the title's copy wrong for a no-break space, an email that
    first shows one in a reused frame is caught if it is the first reuse."""
    monkeypatch.setattr(render, "title_copy", html_text)
    blocks = Blocks()
    blocks.to_html(email_source(PLAIN), PLAIN)
    assert blocks.holes and blocks.checked == {"holes"}
    values = ("Nom\u00a0: 5 nouveaux articles", *PLAIN[1:])
    assert blocks.to_html(email_source(values), values) == mjml_to_html(email_source(values))
    assert not blocks.holes and blocks.checked == EVERY_CHECK
    again = ("Nom\u00a0: 6 nouveaux articles", *PLAIN[1:])
    assert blocks.to_html(email_source(again), again) == mjml_to_html(email_source(again))


def test_a_hole_mjml_drops_turns_holes_off():
    """Two titles: mjml keeps the last, so the subject's hole is lost in the HTML."""
    blocks = Blocks()
    frame = FRAME.replace("</mj-preview>", "</mj-preview><mj-title>Fixed</mj-title>")
    for n in (1, 2):
        values = (f"Subject {n}", *PLAIN[1:])
        source = frame.format(*map(escape, values), mark=BLOCK_MARK)
        assert blocks.to_html(source, values) == mjml_to_html(source)
    assert not blocks.holes and blocks.usable


def test_a_frame_holding_the_hole_mark_is_converted_as_it_is():
    blocks = Blocks()
    values = ("Read about -digest-hole-0- here", *PLAIN[1:])
    assert blocks.to_html(email_source(values), values) == mjml_to_html(email_source(values))
    assert "holes" not in blocks.checked


# --- the renderer and the email templates ---------------------------------------------

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
TRICKY_CATEGORIES = ["Q&A", "Café <crème>", "it's", "Nom\u00a0:", "שלום", "🎉 Fun", "back\\slash"]


def tricky_week():
    """Articles in categories and with titles of the characters a frame must get right."""
    return [make_article(f"story-{i:03d}", f"2026-11-{23 + i % 6:02d}T10:00:00+01:00",
                         TRICKY_CATEGORIES[i % len(TRICKY_CATEGORIES)],
                         title=f"{TRICKY[i % 16]} — story {i}",
                         excerpt="An excerpt & a half.")
            for i in range(40)]


def site(name="Example News", language="en"):
    return Site(name=name, base_url="https://news.example.org", timezone=BERLIN,
                language=language, postal_address="1 Sample Road, Testville")


def emails(renderer, articles, category_sets, caps=None):
    window, caps = cadence_window(NOW), caps or Caps(3, 12)
    return [renderer.render(select(articles, key="2026-W48", window=window, caps=caps,
                                   categories=categories),
                            unsubscribe_url="-unsubscribe_url-")
            for categories in category_sets]


def whole(renderer):
    renderer.blocks.usable = False
    return renderer


def sets_of(categories, most=2):
    return [()] + [combo for size in range(1, most + 1) for combo in combinations(categories, size)]


@pytest.mark.parametrize(("name", "language"), [
    ("Example News", "en"), ("Q&A «Hebdo» l'été", "fr"), ("חדשות", "he")])
def test_every_email_equals_its_whole_render(name, language):
    articles, sets = tricky_week(), sets_of(TRICKY_CATEGORIES)
    holed, alone = Renderer(site(name, language)), whole(Renderer(site(name, language)))
    assert emails(holed, articles, sets) == emails(alone, articles, sets)
    assert holed.blocks.holes and holed.blocks.checked == EVERY_CHECK
    assert len(holed.blocks.frames) <= 3 < len(sets) // 4


class Recorded(Blocks):
    """Blocks that keep each email's MJML source."""

    def __init__(self):
        super().__init__()
        self.sources = []

    def to_html(self, source, values=()):
        self.sources.append(source)
        return super().to_html(source, values)


def bringing_new_blocks(sources):
    """How many of the emails show a block no earlier email showed."""
    seen, count = set(), 0
    for source in sources:
        middle = set(source.split(BLOCK_MARK)[1:-1])
        count += not middle <= seen
        seen |= middle
    return count


def test_a_frame_is_converted_once_however_many_subjects():
    """The 42 emails of one issue have 32 subjects (their categories): the frame is
    converted once, with the first blocks, and then only with new blocks."""
    articles = busy_week(NOW, count=120, categories=6)
    sets = sets_of(sorted({article.category for article in articles}), most=3)[::-1]
    renderer = Renderer(site())
    renderer.blocks = Recorded()
    holed = emails(renderer, articles, sets, Caps(5, 30))
    assert len({email.subject for email in holed}) > len(sets) // 2
    assert len(renderer.blocks.frames) == 1
    assert renderer.blocks.conversions == bringing_new_blocks(renderer.blocks.sources) == 4
    framed = Renderer(site())
    framed.blocks.holes = False
    assert emails(framed, articles, sets, Caps(5, 30)) == holed
    # without holes: a conversion for each distinct subject (its first two categories)
    assert framed.blocks.conversions == len(framed.blocks.frames) == 32


def copy_templates(tmp_path, replace):
    for path in default_templates_dir().iterdir():
        text = path.read_text(encoding="utf-8")
        for old, new in replace:
            assert old in text or path.name != "email.mjml.j2", old
            text = text.replace(old, new)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    return tmp_path


META = '<p class="meta">{{ issue_label }}</p>'
INTRO = "<p>{{ intro }}</p>"


@pytest.mark.parametrize(("replace", "reused"), [
    pytest.param([(META, META + "\n          <h2>{{ subject }}</h2>")], True,
                 id="subject twice"),
    pytest.param([(META, '<p class="meta" title="{{ subject }}">{{ issue_label }}</p>')],
                 False, id="subject in an attribute"),
    pytest.param([(META, META + '\n          <img src="{{ site.base_url }}/l.png" '
                   'alt="{{ subject }}">')], False, id="subject as alt text"),
    pytest.param([(INTRO, '<p>{{ intro }} <a href="{{ site.base_url }}">Read on</a></p>')],
                 False, id="intro followed by a link"),
    pytest.param([(INTRO, '<p>{{ intro | replace("articles", "<em>articles</em>" | safe) }}'
                   "</p>")], False, id="intro with markup"),
    pytest.param([(INTRO, "<p><strong>{{ intro }}</strong></p>")], True, id="intro in bold"),
    pytest.param([(INTRO, "<mj-raw><!-- {{ intro }} --></mj-raw>" + INTRO)], False,
                 id="intro in a comment"),
])
def test_a_sites_template_may_show_the_values_anywhere(tmp_path, replace, reused):
    """Where a value is not an element's whole text, it stays in the frame: the frame
    is converted for each segment it differs in, and every email equals its whole render.
    """
    folder = copy_templates(tmp_path, replace)
    articles, sets = tricky_week(), sets_of(TRICKY_CATEGORIES)
    holed, alone = Renderer(site(), folder), whole(Renderer(site(), folder))
    assert emails(holed, articles, sets) == emails(alone, articles, sets)
    assert holed.blocks.holes
    assert (len(holed.blocks.frames) <= 2) == reused
