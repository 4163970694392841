"""Checks on a rendered email: what Gmail, Outlook and screen readers trip over.

Pure: no files, no network, no clock. `check_email` parses the HTML once with lxml and runs
one small check per rule; findings come back in the order of `_CHECKS`, then document order.
Errors block a send (unless forced); warnings are advice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import lxml.html
from lxml import etree

from digest.theme import contrast_problems

Level = Literal["error", "warning"]

KB = 1024
SIZE_ERROR_BYTES = 102 * KB  # Gmail clips the message past this ("[Message clipped]")
SIZE_WARNING_BYTES = 90 * KB  # the default budget: leaves room under Gmail's clip
STYLE_BLOCK_MAX_BYTES = 16 * KB  # Gmail ignores a whole <style> block past this
PREHEADER_MIN_CHARS = 40
PREHEADER_MAX_CHARS = 140
# Zero-width characters used to pad a preheader (&#847; &zwnj; &zwj; &#8203; &#8288; &#65279;
# &shy;). Padding spaces (&nbsp;, &#8199;) are whitespace to Python and are collapsed instead.
PREHEADER_FILLERS = "\u034f\u200c\u200d\u200b\u2060\ufeff\u00ad"
ABSOLUTE_URL_PREFIXES = ("https://", "mailto:")
FORBIDDEN_TAGS = ("script", "form")
MJML_TAG_PREFIX = "mj-"
# What may follow a URL in the text part: closing punctuation, then whitespace or the end.
_URL_END = r"""[)\]}>"'.,;:!?]*(?!\S)"""


@dataclass(frozen=True)
class Finding:
    """One problem found in a rendered email."""

    level: Level
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


@dataclass(frozen=True)
class _Email:
    html: str
    root: lxml.html.HtmlElement
    text: str
    unsubscribe_url: str
    article_urls: tuple[str, ...]
    colours: tuple[tuple[str, str, str], ...] = ()


def check_email(
    html: str, text: str, *, unsubscribe_url: str, article_urls: Sequence[str],
    colours: Sequence[tuple[str, str, str]] = (),
) -> list[Finding]:
    """Every finding for the HTML part `html` and the plain-text part `text`.

    `unsubscribe_url` is accepted as a link target as is, so that a SendGrid substitution
    tag such as `-unsubscribe_url-` passes, and must be linked from the HTML and appear in
    `text`; `article_urls` must all appear in `text`; each of `colours` (what, foreground,
    background) must reach 4.5:1.
    """
    email = _Email(html, _parse(html), text, unsubscribe_url, tuple(article_urls),
                   tuple(colours))
    return [finding for check in _CHECKS for finding in check(email)]


def _parse(html: str) -> lxml.html.HtmlElement:
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
    except etree.ParserError:  # nothing but whitespace: check an empty document instead
        return lxml.html.document_fromstring(b"<html></html>", parser=parser)


def _error(code: str, message: str) -> Finding:
    return Finding("error", code, message)


def _warning(code: str, message: str) -> Finding:
    return Finding("warning", code, message)


# --- size -------------------------------------------------------------------------------


def _check_size(email: _Email) -> Iterator[Finding]:
    size = len(email.html.encode("utf-8"))
    if size > SIZE_ERROR_BYTES:
        yield _error(
            "size",
            f"The HTML is {_kb(size)}, over the {_kb_limit(SIZE_ERROR_BYTES)} at which Gmail "
            "clips the message and hides the rest, unsubscribe link included.",
        )
    elif size > SIZE_WARNING_BYTES:
        yield _warning(
            "size",
            f"The HTML is {_kb(size)}, over the {_kb_limit(SIZE_WARNING_BYTES)} budget "
            f"(Gmail clips at {_kb_limit(SIZE_ERROR_BYTES)}).",
        )


def _check_style_blocks(email: _Email) -> Iterator[Finding]:
    for number, style in enumerate(email.root.iter("style"), start=1):
        size = len((style.text or "").encode("utf-8"))
        if size > STYLE_BLOCK_MAX_BYTES:
            yield _warning(
                "style-block-size",
                f"<style> block {number} is {_kb(size)}, over the "
                f"{_kb_limit(STYLE_BLOCK_MAX_BYTES)} past which Gmail ignores the whole block.",
            )


def _kb(size: int) -> str:
    return f"{size / KB:.1f} KB"


def _kb_limit(size: int) -> str:
    return f"{size // KB} KB"


# --- document -----------------------------------------------------------------------------


def _check_doctype(email: _Email) -> Iterator[Finding]:
    # Not from lxml: libxml2 invents an HTML 4.0 doctype when the document has none.
    declaration = email.html.lstrip("\ufeff \t\r\n\f").partition(">")[0].lower().split()
    if declaration[:2] != ["<!doctype", "html"]:
        yield _error(
            "doctype",
            "The HTML does not start with <!DOCTYPE html>, so clients may render it in "
            "quirks mode.",
        )


def _check_viewport(email: _Email) -> Iterator[Finding]:
    names = ((meta.get("name") or "").strip().lower() for meta in email.root.iter("meta"))
    if "viewport" not in names:
        yield _warning(
            "viewport",
            'There is no <meta name="viewport">, so phones may show the email zoomed out.',
        )


def _check_lang(email: _Email) -> Iterator[Finding]:
    lang = email.root.get("lang")
    if lang is None:
        yield _error(
            "lang",
            "The <html> element has no lang attribute, so screen readers must guess the language.",
        )
    elif lang.strip().lower() in ("", "und"):
        yield _error(
            "lang",
            f'The <html> element has lang="{lang}", which names no language: set the '
            'newsletter\'s language (e.g. <mjml lang="en">).',
        )


def _check_title(email: _Email) -> Iterator[Finding]:
    if not (email.root.findtext(".//title") or "").strip():
        yield _warning(
            "title",
            "The <title> is missing or empty; clients show it in the browser tab and web view.",
        )


# --- preheader ----------------------------------------------------------------------------


def _check_preheader(email: _Email) -> Iterator[Finding]:
    preheader = _preheader_text(email.root)
    if preheader is None:
        yield _warning(
            "preheader",
            "There is no preheader: the first element of <body> should be a hidden <div> "
            "(mj-preview) holding the inbox preview text.",
        )
        return
    length = len(preheader)
    if not PREHEADER_MIN_CHARS <= length <= PREHEADER_MAX_CHARS:
        verdict = "short" if length < PREHEADER_MIN_CHARS else "long"
        yield _warning(
            "preheader",
            f"The preheader is too {verdict} ({length} characters); inbox previews work best "
            f"with {PREHEADER_MIN_CHARS}-{PREHEADER_MAX_CHARS}.",
        )


def _preheader_text(root: lxml.html.HtmlElement) -> str | None:
    """The visible text of the hidden first <div> of <body> (fillers removed), or None."""
    body = root.find("body")
    if body is None or (body.text or "").strip():
        return None
    first = next(body.iterchildren(etree.Element), None)
    if first is None or first.tag != "div" or not _is_hidden(first):
        return None
    visible = first.text_content().translate(dict.fromkeys(map(ord, PREHEADER_FILLERS)))
    return " ".join(visible.split())


def _is_hidden(element: lxml.html.HtmlElement) -> bool:
    declarations = (part.partition(":") for part in (element.get("style") or "").split(";"))
    display = {name.strip().lower(): value for name, _, value in declarations}.get("display")
    return display is not None and "none" in display.lower().split()


# --- elements -----------------------------------------------------------------------------


def _check_img_alt(email: _Email) -> Iterator[Finding]:
    images = email.root.iter("img")
    for src in _unique(img.get("src") or "(no src)" for img in images if img.get("alt") is None):
        yield _warning(
            "img-alt",
            f'The image {src} has no alt attribute (use alt="" for a decorative image).',
        )


def _check_table_role(email: _Email) -> Iterator[Finding]:
    # Tables inside Outlook-only conditional comments are comments to lxml: not counted.
    tables = email.root.iter("table")
    count = sum((table.get("role") or "").strip().lower() != "presentation" for table in tables)
    if count:
        yield _warning(
            "table-role",
            f'{_plural(count, "table")} without role="presentation"; screen readers will '
            "announce them as data tables.",
        )


def _check_forbidden_tags(email: _Email) -> Iterator[Finding]:
    for tag in FORBIDDEN_TAGS:
        count = sum(1 for _ in email.root.iter(tag))
        if count:
            yield _error(
                "forbidden-tag",
                f"The email contains {_plural(count, f'<{tag}> element')}, which email "
                "clients strip or block.",
            )


def _check_mjml_leftovers(email: _Email) -> Iterator[Finding]:
    tags = (element.tag for element in email.root.iter(etree.Element))
    for tag in _unique(tag for tag in tags if tag.startswith(MJML_TAG_PREFIX)):
        yield _error(
            "mjml-leftover",
            f"The MJML tag <{tag}> was passed through unrendered; fix its name or remove it.",
        )


# --- links --------------------------------------------------------------------------------


def _check_links(email: _Email) -> Iterator[Finding]:
    bad = (url for url in _urls(email.root) if not _is_allowed(url, email.unsubscribe_url))
    for url in _unique(bad):
        yield _error(
            "link-absolute",
            f'The URL "{url}" is not an absolute https:// or mailto: URL, so it will not work '
            "from an inbox.",
        )


def _check_html_unsubscribe(email: _Email) -> Iterator[Finding]:
    hrefs = (a.get("href", "").strip() for a in email.root.iter("a"))
    if email.unsubscribe_url not in hrefs:
        yield _warning(
            "html-missing-unsubscribe",
            f"The HTML has no link to the unsubscribe URL {email.unsubscribe_url}, so a "
            "reader cannot leave from the email itself.",
        )


def _urls(root: lxml.html.HtmlElement) -> Iterator[str]:
    for element in root.iter(etree.Element):
        for attribute in ("href", "src"):
            value = element.get(attribute)
            if value is not None:
                yield value


def _is_allowed(url: str, unsubscribe_url: str) -> bool:
    url = url.strip()
    if unsubscribe_url and url == unsubscribe_url:
        return True
    scheme = next((p for p in ABSOLUTE_URL_PREFIXES if url.lower().startswith(p)), None)
    if scheme == "mailto:":
        return len(url) > len(scheme)
    return scheme is not None and _has_host(url)


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # e.g. a malformed IPv6 address
        return False


# --- text part ----------------------------------------------------------------------------


def _check_text_article_urls(email: _Email) -> Iterator[Finding]:
    for url in _unique(email.article_urls):
        if not _text_has_url(email.text, url):
            yield _warning(
                "text-missing-url",
                f"The text part does not contain the article URL {url}.",
            )


def _check_text_unsubscribe(email: _Email) -> Iterator[Finding]:
    if not _text_has_url(email.text, email.unsubscribe_url):
        yield _warning(
            "text-missing-unsubscribe",
            f"The text part does not contain the unsubscribe URL {email.unsubscribe_url}.",
        )


def _text_has_url(text: str, url: str) -> bool:
    """Whether `url` appears whole in `text`: not as the start of a longer URL."""
    return re.search(re.escape(url) + _URL_END, text) is not None


# --- colours ------------------------------------------------------------------------------


def _check_contrast(email: _Email) -> Iterator[Finding]:
    for problem in contrast_problems(list(email.colours)):
        yield _error("contrast", problem + ".")


# --- helpers ------------------------------------------------------------------------------


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_CHECKS: tuple[Callable[[_Email], Iterable[Finding]], ...] = (
    _check_size,
    _check_style_blocks,
    _check_doctype,
    _check_viewport,
    _check_lang,
    _check_title,
    _check_preheader,
    _check_img_alt,
    _check_table_role,
    _check_links,
    _check_html_unsubscribe,
    _check_forbidden_tags,
    _check_mjml_leftovers,
    _check_text_article_urls,
    _check_text_unsubscribe,
    _check_contrast,
)
