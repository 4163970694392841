"""digest.quality: one fixture per case under tests/fixtures/quality/, exact findings asserted.

good.html is good.mjml rendered the way the send path renders it (mjml-python, then premailer,
then the doctype put back). Regenerate it after an intended change with:
    PYTHONPATH=. python tests/test_quality.py
The bad fixtures are good.html with one defect each (leftover_mj_tag.html is good.mjml with
`mj-button` misspelt `mj-buton`, rendered the same way).
"""

from __future__ import annotations

import logging
from pathlib import Path

import mjml
import pytest
from premailer import Premailer

from digest.quality import Finding, check_email

FIXTURES = Path(__file__).parent / "fixtures" / "quality"
UNSUBSCRIBE_TAG = "-unsubscribe_url-"
ARTICLE_URLS = (
    "https://example.com/posts/local-models",
    "https://example.com/posts/calmer-inbox",
)
KB = 1024


def render(mjml_source: str) -> str:
    html = mjml.mjml2html(mjml_source, fonts={})
    inlined = Premailer(
        html,
        allow_network=False,
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
        keep_style_tags=False,
    ).transform()
    return f"<!DOCTYPE html>\n{inlined}"


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def check(
    html: str, text: str | None = None, *, unsubscribe_url: str = UNSUBSCRIBE_TAG
) -> list[Finding]:
    text = read("good.txt") if text is None else text
    return check_email(html, text, unsubscribe_url=unsubscribe_url, article_urls=ARTICLE_URLS)


def error(code: str, message: str) -> Finding:
    return Finding("error", code, message)


def warning(code: str, message: str) -> Finding:
    return Finding("warning", code, message)


def padded(size: int) -> str:
    """good.html grown to exactly `size` UTF-8 bytes by a comment before </body>."""
    good = read("good.html")
    filler = size - len(good.encode("utf-8")) - len("<!---->")
    return good.replace("</body>", f"<!--{'x' * filler}--></body>")


# --- the good email ---------------------------------------------------------------------


def test_good_fixture_has_no_findings() -> None:
    assert check(read("good.html")) == []


def test_good_mjml_rendered_now_has_no_findings() -> None:
    assert check(render(read("good.mjml"))) == []


def test_lowercase_doctype_is_accepted() -> None:
    # mjml-python writes "<!doctype html>", and so does digest.render when it restores it.
    assert check(read("good.html").replace("<!DOCTYPE html>", "<!doctype html>", 1)) == []


def test_finding_str_shows_level_and_message() -> None:
    assert str(error("lang", "No lang.")) == "error: No lang."


# --- one stored fixture per defect --------------------------------------------------------

CASES = {
    "missing_doctype.html": [
        error(
            "doctype",
            "The HTML does not start with <!DOCTYPE html>, so clients may render it in "
            "quirks mode.",
        )
    ],
    "missing_viewport.html": [
        warning(
            "viewport",
            'There is no <meta name="viewport">, so phones may show the email zoomed out.',
        )
    ],
    "lang_und.html": [
        error(
            "lang",
            'The <html> element has lang="und", which names no language: set the '
            'newsletter\'s language (e.g. <mjml lang="en">).',
        )
    ],
    "lang_missing.html": [
        error(
            "lang",
            "The <html> element has no lang attribute, so screen readers must guess the language.",
        )
    ],
    "unsubscribe_link_missing.html": [
        warning(
            "html-missing-unsubscribe",
            "The HTML has no link to the unsubscribe URL -unsubscribe_url-, so a reader cannot "
            "leave from the email itself.",
        )
    ],
    "title_empty.html": [
        warning(
            "title",
            "The <title> is missing or empty; clients show it in the browser tab and web view.",
        )
    ],
    "preheader_missing.html": [
        warning(
            "preheader",
            "There is no preheader: the first element of <body> should be a hidden <div> "
            "(mj-preview) holding the inbox preview text.",
        )
    ],
    "preheader_too_short.html": [
        warning(
            "preheader",
            "The preheader is too short (27 characters); inbox previews work best with 40-140.",
        )
    ],
    "preheader_too_long.html": [
        warning(
            "preheader",
            "The preheader is too long (169 characters); inbox previews work best with 40-140.",
        )
    ],
    # 73 visible characters followed by 60 x "&#847;&zwnj;&nbsp;": the padding is not counted.
    "preheader_padded_with_fillers.html": [],
    "img_without_alt.html": [
        warning(
            "img-alt",
            "The image https://example.com/static/logo.png has no alt attribute "
            '(use alt="" for a decorative image).',
        )
    ],
    # Three tables lost their role; one of them is in an Outlook-only comment and not counted.
    "table_without_role.html": [
        warning(
            "table-role",
            '2 tables without role="presentation"; screen readers will announce them as '
            "data tables.",
        )
    ],
    # "/" is used twice (logo and button) and reported once.
    "relative_link.html": [
        error(
            "link-absolute",
            f'The URL "{url}" is not an absolute https:// or mailto: URL, so it will not work '
            "from an inbox.",
        )
        for url in (
            "/",
            "static/logo.png",
            "/posts/local-models",
            "http://example.com/posts/calmer-inbox",
        )
    ],
    "script_tag.html": [
        error(
            "forbidden-tag",
            "The email contains 1 <script> element, which email clients strip or block.",
        )
    ],
    "form_tag.html": [
        error(
            "forbidden-tag",
            "The email contains 1 <form> element, which email clients strip or block.",
        )
    ],
    "leftover_mj_tag.html": [
        error(
            "mjml-leftover",
            "The MJML tag <mj-buton> was passed through unrendered; fix its name or remove it.",
        )
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_html_fixture(name: str) -> None:
    assert check(read(name)) == CASES[name]


def test_text_part_missing_an_article_url() -> None:
    # It holds "(…/local-models)." (found) and "…/calmer-inbox-2" (not the article's URL).
    assert check(read("good.html"), read("missing_article_url.txt")) == [
        warning(
            "text-missing-url",
            "The text part does not contain the article URL "
            "https://example.com/posts/calmer-inbox.",
        )
    ]


def test_text_part_missing_the_unsubscribe_url() -> None:
    assert check(read("good.html"), read("missing_unsubscribe.txt")) == [
        warning(
            "text-missing-unsubscribe",
            "The text part does not contain the unsubscribe URL -unsubscribe_url-.",
        )
    ]


def test_substitution_tag_is_accepted_only_as_the_unsubscribe_url() -> None:
    url = "https://example.com/unsubscribe/abc123"
    assert check(read("good.html"), unsubscribe_url=url) == [
        error(
            "link-absolute",
            'The URL "-unsubscribe_url-" is not an absolute https:// or mailto: URL, so it will '
            "not work from an inbox.",
        ),
        warning(
            "html-missing-unsubscribe",
            f"The HTML has no link to the unsubscribe URL {url}, so a reader cannot leave from "
            "the email itself.",
        ),
        warning(
            "text-missing-unsubscribe",
            f"The text part does not contain the unsubscribe URL {url}.",
        ),
    ]


# --- sizes, generated ---------------------------------------------------------------------


def test_oversized() -> None:
    assert check(padded(102 * KB + 1)) == [
        error(
            "size",
            "The HTML is 102.0 KB, over the 102 KB at which Gmail clips the message and hides "
            "the rest, unsubscribe link included.",
        )
    ]


def test_over_budget() -> None:
    assert check(padded(95 * KB)) == [
        warning("size", "The HTML is 95.0 KB, over the 90 KB budget (Gmail clips at 102 KB).")
    ]


def test_exactly_90_kb_is_within_budget() -> None:
    assert check(padded(90 * KB)) == []


def test_exactly_102_kb_is_not_clipped() -> None:
    assert [(finding.level, finding.code) for finding in check(padded(102 * KB))] == [
        ("warning", "size")
    ]


def test_style_block_too_large() -> None:
    css = "".join(f".rule-{n:04d} {{ color: #123456; }}\n" for n in range(560))  # 17,360 bytes
    html = read("good.html").replace("<head>", f"<head>\n<style>{css}</style>", 1)
    assert check(html) == [
        warning(
            "style-block-size",
            "<style> block 1 is 17.0 KB, over the 16 KB past which Gmail ignores the whole block.",
        )
    ]


def test_empty_document() -> None:
    assert check("", "") == [
        CASES["missing_doctype.html"][0],
        CASES["missing_viewport.html"][0],
        CASES["lang_missing.html"][0],
        CASES["title_empty.html"][0],
        CASES["preheader_missing.html"][0],
        CASES["unsubscribe_link_missing.html"][0],
        *(
            warning("text-missing-url", f"The text part does not contain the article URL {url}.")
            for url in ARTICLE_URLS
        ),
        warning(
            "text-missing-unsubscribe",
            "The text part does not contain the unsubscribe URL -unsubscribe_url-.",
        ),
    ]


if __name__ == "__main__":
    (FIXTURES / "good.html").write_text(render(read("good.mjml")), encoding="utf-8")
