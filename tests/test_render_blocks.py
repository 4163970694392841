"""Rendering by block: each distinct block of MJML is converted and inlined once per run,
and every email assembled from blocks equals its whole render."""

from datetime import datetime
from itertools import combinations

from helpers import BERLIN, busy_week

from digest.render import Renderer, Site, default_templates_dir
from digest.select import Caps, cadence_window, select

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
SITE = Site(name="Example News", base_url="https://news.example.org", timezone=BERLIN,
            postal_address="Example News, 1 Sample Road, Testville")
ARTICLES = busy_week(NOW, count=120, categories=6)
CATEGORIES = sorted({article.category for article in ARTICLES})


def category_sets():
    """Every set of 0 to 3 of the 6 categories: 42 segments that share their blocks."""
    return [()] + [combo for size in (1, 2, 3) for combo in combinations(CATEGORIES, size)]


def email(renderer, categories, caps=None):
    caps = caps or Caps(5, 30)
    issue = select(ARTICLES, key="2026-W48", window=cadence_window(NOW), caps=caps,
                   categories=categories)
    return renderer.render(issue, unsubscribe_url="-unsubscribe_url-",
                           preferences_url="-preferences_url-")


def whole(renderer):
    renderer.blocks.usable = False  # every email rendered whole, as before blocks
    return renderer


def test_every_assembled_email_equals_its_whole_render():
    assembled, alone = Renderer(SITE), whole(Renderer(SITE))
    for categories in category_sets():
        assert email(assembled, categories) == email(alone, categories), categories
    assert assembled.blocks.usable and assembled.blocks.checked


def test_blocks_are_converted_once_per_run():
    renderer = Renderer(SITE)
    for categories in category_sets():
        email(renderer, categories)
    # a section per category and article count, the footer, the "more" lists
    assert len(renderer.blocks.html) < 30
    first = dict(renderer.blocks.html)
    for categories in category_sets():
        email(renderer, categories)
    assert renderer.blocks.html == first


def test_an_emails_head_and_tail_are_converted_once_per_run():
    """The same head and tail (subject, preheader, intro, footer) with blocks already
    converted: nothing is converted again, and the email still equals its whole render."""
    renderer, alone = Renderer(SITE), whole(Renderer(SITE))
    first = [email(renderer, categories) for categories in category_sets()]
    conversions = renderer.blocks.conversions
    assert len(renderer.blocks.frames) <= conversions <= len(category_sets())
    again = [email(renderer, categories) for categories in category_sets()]
    assert renderer.blocks.conversions == conversions
    assert again == first == [email(alone, categories) for categories in category_sets()]


def test_a_trimmed_issue_reuses_the_blocks_too():
    assembled, alone = Renderer(SITE), whole(Renderer(SITE))
    for total in (30, 20, 10, 3):
        assert email(assembled, (), Caps(5, total)) == email(alone, (), Caps(5, total))


def copy_templates(tmp_path, replace):
    for path in default_templates_dir().iterdir():
        text = path.read_text(encoding="utf-8")
        for old, new in replace:
            text = text.replace(old, new)
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    return tmp_path


NEIGHBOURLY = [  # a border between two category sections, none above the first
    ('<mj-section css-class="card{% if not theme.header_image %} top{% endif %}" '
     'padding="24px 0px 8px">', '<mj-section css-class="masthead" padding="24px 0px 8px">'),
    (".card { background-color: {{ colours.background }}; }",
     ".card { background-color: {{ colours.background }}; } "
     ".card + .card { border-top: 1px solid #d0d7de; }"),
]


def test_a_selector_that_sees_across_blocks_means_whole_renders(tmp_path):
    """`.card + .card` styles a section by its neighbour: blocks cannot be reused."""
    folder = copy_templates(tmp_path, NEIGHBOURLY)
    assembled, alone = Renderer(SITE, folder), whole(Renderer(SITE, folder))
    emails = [email(assembled, categories) for categories in category_sets()[:10]]
    assert not assembled.blocks.usable and assembled.blocks.html == {}
    assert emails == [email(alone, categories) for categories in category_sets()[:10]]
    assert "border-top:1px solid #d0d7de" in emails[0].html


def test_the_first_reuse_is_checked_against_a_whole_render(tmp_path, monkeypatch):
    """Were a template's blocks to depend on their neighbours in a way the CSS scan
    misses, the check of the first reused block catches it, and that email and every
    later one are rendered whole."""
    folder = copy_templates(tmp_path, NEIGHBOURLY)
    monkeypatch.setattr("digest.render.sees_across_blocks", lambda source: False)
    assembled, alone = Renderer(SITE, folder), whole(Renderer(SITE, folder))
    # Category 01 is second in the first email (a border), first in the second (none)
    sets = [("Category 00", "Category 01"), ("Category 01",), ("Category 00",)]
    emails = [email(assembled, categories) for categories in sets]
    assert assembled.blocks.checked and not assembled.blocks.usable
    assert emails == [email(alone, categories) for categories in sets]


def test_a_template_without_marks_is_rendered_whole(tmp_path):
    folder = copy_templates(tmp_path, [("{{ block_mark }}", "")])
    renderer = Renderer(SITE, folder)
    emails = [email(renderer, categories) for categories in category_sets()[:5]]
    assert renderer.blocks.html == {}
    assert emails == [email(whole(Renderer(SITE)), categories)
                      for categories in category_sets()[:5]]
