"""Checks on a rendered email: what Gmail, Outlook and screen readers trip over.

Pure: no files, no network, no clock. `check_email` parses the HTML once with lxml, counts
what the rules look at in one walk (a `Tally`) and runs one small check per rule; findings
come back in the order of `_CHECKS`, then document order. Errors block a send (unless forced);
warnings are advice.

`BlockChecks` gives the same findings for an email assembled from blocks (digest.render),
walking each distinct block once per run: a tally adds up over the parts of a document.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
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
class Tally:
    """What the element checks look at in a part of a document, in document order.
    The tally of a document is the sum (`+`) of its parts' tallies."""

    styles: tuple[int, ...] = ()  # bytes of each <style> block
    metas: tuple[str, ...] = ()  # each <meta>'s name, stripped and lowercased
    titles: tuple[str, ...] = ()  # each <title>'s text
    images: tuple[str, ...] = ()  # the src of each <img> without alt, each once
    tables: int = 0  # <table>s without role="presentation"
    forbidden: tuple[str, ...] = ()  # the tag of each FORBIDDEN_TAGS element
    mjml: tuple[str, ...] = ()  # leftover MJML tags, each once
    bad_urls: tuple[str, ...] = ()  # href and src values that will not work, each once
    unsubscribe_links: int = 0  # <a>s to the unsubscribe URL

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, name) + getattr(other, name) for name in _TALLY_FIELDS))


_TALLY_FIELDS = tuple(item.name for item in fields(Tally))


@dataclass(frozen=True)
class _Email:
    html: str
    tally: Tally
    lang: str | None  # the <html> element's lang attribute
    preheader: str | None  # the preheader's visible text
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
    root = _parse(html)
    return _findings(_Email(html, _tally(_elements(root), unsubscribe_url), root.get("lang"),
                            _preheader_text(root), text, unsubscribe_url, tuple(article_urls),
                            tuple(colours)))


def _findings(email: _Email) -> list[Finding]:
    return [finding for check in _CHECKS for finding in check(email)]


class BlockChecks:
    """`check_email` for emails assembled from parts (digest.render's blocks): a head,
    the blocks, a tail. Each distinct block is parsed and tallied once per run, however
    many emails show it; so is each distinct head and tail (parsed together, for what only
    the whole shows: lang, title, preheader), and the size and text checks run on each
    whole email.

    The first email is also checked whole: should the two differ (parts that do not parse
    alone as they do in the whole document), every later email is checked whole.
    """

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.frames: dict[tuple[str, str, str], _Frame] = {}
        self.blocks_walked = 0  # blocks parsed and tallied: once per distinct block
        self.verified = False
        self.usable = True

    def check(
        self, parts: Sequence[str], text: str, *, unsubscribe_url: str,
        article_urls: Sequence[str], colours: Sequence[tuple[str, str, str]] = (),
    ) -> list[Finding]:
        """The findings `check_email` gives for the email `"".join(parts)`."""
        html = "".join(parts)
        if len(parts) < 3 or not self.usable:
            return check_email(html, text, unsubscribe_url=unsubscribe_url,
                               article_urls=article_urls, colours=colours)
        frame = self.frame(parts[0], parts[-1], unsubscribe_url)
        tally = sum((self.tally(block, unsubscribe_url) for block in parts[1:-1]),
                    frame.head) + frame.tail
        found = _findings(_Email(html, tally, frame.lang, frame.preheader, text,
                                 unsubscribe_url, tuple(article_urls), tuple(colours)))
        return found if self.verified else self.verified_once(found, html, text,
                                                               unsubscribe_url, article_urls,
                                                               colours)

    def tally(self, block: str, unsubscribe_url: str) -> Tally:
        key = (block, unsubscribe_url)
        if key not in self.tallies:
            self.blocks_walked += 1
            self.tallies[key] = _tally(_elements(_parse(block)), unsubscribe_url)
        return self.tallies[key]

    def frame(self, head: str, tail: str, unsubscribe_url: str) -> _Frame:
        key = (head, tail, unsubscribe_url)
        if key not in self.frames:
            self.frames[key] = _frame(head, tail, unsubscribe_url)
        return self.frames[key]

    def verified_once(
        self, found: list[Finding], html: str, text: str, unsubscribe_url: str,
        article_urls: Sequence[str], colours: Sequence[tuple[str, str, str]],
    ) -> list[Finding]:
        self.verified = True
        whole = check_email(html, text, unsubscribe_url=unsubscribe_url,
                            article_urls=article_urls, colours=colours)
        self.usable = whole == found
        return whole


_MARK = "<!--digest:checks-->"  # where an email's blocks were, in its head and tail


@dataclass(frozen=True)
class _Frame:
    """What the checks need of an email's head and tail, parsed together."""

    head: Tally
    tail: Tally
    lang: str | None
    preheader: str | None


def _frame(head: str, tail: str, unsubscribe_url: str) -> _Frame:
    root = _parse(head + _MARK + tail)
    before, after = _split_at_mark(root)
    return _Frame(_tally(before, unsubscribe_url), _tally(after, unsubscribe_url),
                  root.get("lang"), _preheader_text(root))


def _parse(html: str) -> lxml.html.HtmlElement:
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
    except etree.ParserError:  # nothing but whitespace: check an empty document instead
        return lxml.html.document_fromstring(b"<html></html>", parser=parser)


def _elements(root: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    """The elements in document order: no comments, no processing instructions."""
    return [node for node in root.iter() if isinstance(node.tag, str)]


def _split_at_mark(root: lxml.html.HtmlElement
                   ) -> tuple[list[lxml.html.HtmlElement], list[lxml.html.HtmlElement]]:
    """The elements before `_MARK` and after it, in document order."""
    nodes = list(root.iter())
    at = next((i for i, node in enumerate(nodes) if node.tag is etree.Comment
               and f"<!--{node.text}-->" == _MARK), len(nodes))
    return ([node for node in nodes[:at] if isinstance(node.tag, str)],
            [node for node in nodes[at:] if isinstance(node.tag, str)])


def _tally(elements: Sequence[lxml.html.HtmlElement], unsubscribe_url: str) -> Tally:
    def tagged(name: str) -> list[lxml.html.HtmlElement]:
        return [element for element in elements if element.tag == name]

    return Tally(
        styles=tuple(len((style.text or "").encode("utf-8")) for style in tagged("style")),
        metas=tuple((meta.get("name") or "").strip().lower() for meta in tagged("meta")),
        titles=tuple(title.text or "" for title in tagged("title")),
        images=tuple(_unique(img.get("src") or "(no src)" for img in tagged("img")
                             if img.get("alt") is None)),
        tables=sum((table.get("role") or "").strip().lower() != "presentation"
                   for table in tagged("table")),
        forbidden=tuple(element.tag for element in elements if element.tag in FORBIDDEN_TAGS),
        mjml=tuple(_unique(element.tag for element in elements
                           if element.tag.startswith(MJML_TAG_PREFIX))),
        bad_urls=tuple(_unique(url for url in _urls(elements)
                               if not _is_allowed(url, unsubscribe_url))),
        unsubscribe_links=sum(a.get("href", "").strip() == unsubscribe_url for a in tagged("a")),
    )


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
    for number, size in enumerate(email.tally.styles, start=1):
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
    if "viewport" not in email.tally.metas:
        yield _warning(
            "viewport",
            'There is no <meta name="viewport">, so phones may show the email zoomed out.',
        )


def _check_lang(email: _Email) -> Iterator[Finding]:
    lang = email.lang
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
    if not next(iter(email.tally.titles), "").strip():
        yield _warning(
            "title",
            "The <title> is missing or empty; clients show it in the browser tab and web view.",
        )


# --- preheader ----------------------------------------------------------------------------


def _check_preheader(email: _Email) -> Iterator[Finding]:
    preheader = email.preheader
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
    for src in _unique(email.tally.images):
        yield _warning(
            "img-alt",
            f'The image {src} has no alt attribute (use alt="" for a decorative image).',
        )


def _check_table_role(email: _Email) -> Iterator[Finding]:
    # Tables inside Outlook-only conditional comments are comments to lxml: not counted.
    count = email.tally.tables
    if count:
        yield _warning(
            "table-role",
            f'{_plural(count, "table")} without role="presentation"; screen readers will '
            "announce them as data tables.",
        )


def _check_forbidden_tags(email: _Email) -> Iterator[Finding]:
    for tag in FORBIDDEN_TAGS:
        count = email.tally.forbidden.count(tag)
        if count:
            yield _error(
                "forbidden-tag",
                f"The email contains {_plural(count, f'<{tag}> element')}, which email "
                "clients strip or block.",
            )


def _check_mjml_leftovers(email: _Email) -> Iterator[Finding]:
    for tag in _unique(email.tally.mjml):
        yield _error(
            "mjml-leftover",
            f"The MJML tag <{tag}> was passed through unrendered; fix its name or remove it.",
        )


# --- links --------------------------------------------------------------------------------


def _check_links(email: _Email) -> Iterator[Finding]:
    for url in _unique(email.tally.bad_urls):
        yield _error(
            "link-absolute",
            f'The URL "{url}" is not an absolute https:// or mailto: URL, so it will not work '
            "from an inbox.",
        )


def _check_html_unsubscribe(email: _Email) -> Iterator[Finding]:
    if not email.tally.unsubscribe_links:
        yield _warning(
            "html-missing-unsubscribe",
            f"The HTML has no link to the unsubscribe URL {email.unsubscribe_url}, so a "
            "reader cannot leave from the email itself.",
        )


def _urls(elements: Iterable[lxml.html.HtmlElement]) -> Iterator[str]:
    for element in elements:
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
    return url in text and _url_pattern(url).search(text) is not None


@functools.lru_cache(maxsize=4096)
def _url_pattern(url: str) -> re.Pattern[str]:
    """Each article's URL is looked for in the text of every segment that shows it."""
    return re.compile(re.escape(url) + _URL_END)


# --- colours ------------------------------------------------------------------------------


def _check_contrast(email: _Email) -> Iterator[Finding]:
    yield from _contrast_findings(email.colours)


@functools.lru_cache(maxsize=64)
def _contrast_findings(colours: tuple[tuple[str, str, str], ...]) -> tuple[Finding, ...]:
    """The same colours in every email of a run: computed once."""
    return tuple(_error("contrast", problem + ".") for problem in contrast_problems(list(colours)))


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
