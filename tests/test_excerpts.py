"""Excerpts made from markdown (or a feed's HTML) are clean plain text (issue 18)."""

from pathlib import Path

import pytest
from helpers import BERLIN

from digest import text
from digest.content import LoadOptions, read_article

FIXTURES = Path(__file__).parent / "fixtures" / "excerpts"
OPTIONS = LoadOptions(base_url="https://example.org", timezone=BERLIN)


def excerpt(name: str) -> str:
    return read_article(FIXTURES / name, OPTIONS).excerpt


@pytest.mark.parametrize(("name", "expected"), [
    ("escapes_and_code_spans.md",
     "[3f2a9c1b7e] - (SEMVER-MINOR) soil_probe: add probe.log() *and* a # marker"),
    ("links_and_emphasis.md",
     "Read the seed guide, the reference link and https://example.org/plain, then skip sow "
     "thin."),
    ("images.md", "The glass held through the night, and the gallery has the rest."),
    ("html_tags.md", "Turn the heap every week and keep it damp."),
    ("hugo_shortcodes.md", "Prune after the last frost in most regions, and keep the cuts clean."),
    ("liquid_tags.md", "Spread centimetres of bark around each shrub."),
    ("mdx_components.md", "Our beds gave record yields this year, mostly from the raised beds."),
    ("heading_repeats_title.md", "Milk jugs make fine cloches for winter sowing."),
    ("front_matter_excerpt_starting_with_a_number.md",
     "2026. A year of raised beds, # by the numbers"),
])
def test_excerpt_is_the_plain_text_of_the_first_paragraph(name, expected):
    assert excerpt(name) == expected


def test_every_excerpt_fixture_is_a_case():
    cases = test_excerpt_is_the_plain_text_of_the_first_paragraph.pytestmark[0].args[1]
    assert sorted(name for name, _ in cases) == sorted(p.name for p in FIXTURES.glob("*.md"))


def test_a_first_paragraph_repeating_the_title_is_skipped_whatever_its_case():
    assert text.excerpt_from_markdown("**WINTER sowing**\n\nThe text.",
                                      title="Winter  Sowing") == "The text."


def test_a_paragraph_that_is_not_the_title_is_kept_even_if_it_starts_like_it():
    assert text.excerpt_from_markdown("Winter sowing, step by step.",
                                      title="Winter sowing") == "Winter sowing, step by step."


def test_a_long_paragraph_is_read_in_part_when_that_gives_the_excerpt(monkeypatch):
    parsed = []
    parse_inline = text.INLINE.parseInline
    monkeypatch.setattr(text.INLINE, "parseInline",
                        lambda source, env: parsed.append(len(source)) or parse_inline(source, env))
    paragraph = "Sow thin and water often, then [weed](https://example.org/w) the rows. " * 30
    assert text.excerpt_from_markdown(paragraph) == text.shorten(
        "Sow thin and water often, then weed the rows. " * 30)
    assert parsed and max(parsed) <= text.INLINE_PREFIX


def test_a_link_cut_by_the_partial_read_is_parsed_whole():
    head = "word " * 130
    paragraph = head + "[a link whose text runs past the cut point of the partial read " + \
        "x " * 60 + "](https://example.org/long)"
    assert "[" not in text.excerpt_from_markdown(paragraph, limit=1000)


def test_a_component_tag_longer_than_the_scan_limit_is_left_as_text():
    source = "<Chart data={" + "1, " * 300 + "} />"
    assert text.remove_jsx(source) == source


@pytest.mark.parametrize(("markup", "expected"), [
    ("<p>One &amp; <b>two</b></p><p>Three</p>", "One & two Three"),
    ('<p>See <img src="x.png" alt="a chart"> the chart</p><figure><img src="y.png">'
     "<figcaption>A caption</figcaption></figure><p>Next.</p>", "See the chart Next."),
    ("<script>alert(1)</script><style>p{}</style>Text &quot;quoted&quot;", 'Text "quoted"'),
    ("plain &amp;amp; text, AT&T", "plain &amp; text, AT&T"),
    ("", ""),
    ("<!-- only a comment -->", ""),
])
def test_excerpt_from_html(markup, expected):
    assert text.excerpt_from_html(markup) == expected


def test_the_first_image_comes_from_the_excerpts_parse():
    markup = '<p>Intro</p><noscript><img src="first.png"></noscript><img src="second.png">'
    assert text.excerpt_and_image_from_html(markup) == ("Intro", "first.png")
    assert text.excerpt_and_image_from_html("no tags &amp; no image") == ("no tags & no image",
                                                                           None)
