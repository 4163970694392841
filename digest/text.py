"""Text as its authors meant readers to see it.

Invisible characters removed, HTML character references decoded once (as CommonMark
decodes them in text), and markdown or HTML reduced to the plain text of an excerpt.
Pure functions: the loader, the subscriber files and the feed reader share them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from html.entities import html5
from typing import Any

from lxml import html as lxml_html
from lxml.etree import ParserError, XPath
from markdown_it import MarkdownIt
from markdown_it.token import Token

EXCERPT_LIMIT = 300
EXCERPT_SOURCE_LIMIT = 2000  # characters of markdown read for an excerpt
INLINE_PREFIX = 700  # a paragraph's first characters parsed first: most give the excerpt
BLOCK_PREFIX = 300  # blocks up to the first blank line past this are parsed first

# Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) reorder what a
# reader sees ("Trojan Source"), and C1 controls are invisible: neither belongs in a name.
INVISIBLE = re.compile(r"[\x80-\x9f\u202a-\u202e\u2066-\u2069]")
# Those and the C0 controls but tab, newline and CR; DEL; and what XML also forbids (lone
# surrogates, U+FFFE, U+FFFF): one in a title made the MJML parser reject the whole email.
CONTROL_CHARACTERS = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
    r"\ud800-\udfff\ufffe\uffff]"
)
# What CommonMark reads as a character reference: a literal `&` elsewhere stays as written.
REFERENCE = re.compile(r"&(?:#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[A-Za-z][A-Za-z0-9]{1,31});")
# Characters that start inline markdown, a reference, a tag or a template tag: text
# without any of them is already plain.
MARKUP = re.compile(r"[\\`*_~\[<&{]")
MARKUP_OR_CONTROL = re.compile(f"{MARKUP.pattern}|{CONTROL_CHARACTERS.pattern}")
# Spaces, tabs and line breaks, but not the no-break spaces an author put there on purpose.
SPACES = re.compile(r"[^\S\xa0\u2007\u202f]+")


def remove_invisible(text: str) -> str:
    """`text` without bidi controls and C1 controls (NEL, a line break, becomes a space)."""
    return replace_controls(INVISIBLE, text)


def remove_controls(text: str) -> str:
    """`text` without any control character, bidi control or XML-forbidden character;
    those that separate words (form feed, vertical tab, NEL…) become spaces."""
    return replace_controls(CONTROL_CHARACTERS, text)


def replace_controls(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda found: " " if found[0].isspace() else "", text)


def one_line(text: str) -> str:
    """Runs of white space made one space, no-break spaces kept; trimmed."""
    if "\xa0" in text or "\u2007" in text or "\u202f" in text:
        return SPACES.sub(" ", text).strip(" ")
    return " ".join(text.split())  # the same, three times faster


def decode_references(text: str) -> str:
    """HTML character references decoded once: `&quot;` → `"`, `&amp;amp;` → `&amp;`,
    `&#39;` → `'`; a bare `&`, or a name HTML does not know, stays as written."""
    if "&" not in text:
        return text
    return remove_controls(REFERENCE.sub(decode_reference, text))


def decode_reference(found: re.Match[str]) -> str:
    reference = found[0]
    if reference[1] == "#":
        return html.unescape(reference)  # 0, surrogates and past U+10FFFF give U+FFFD
    return html5.get(reference[1:], reference)


def plain_field(value: str) -> str:
    """A front-matter text (title, author, category, tag) as one line of plain text."""
    return one_line(decode_references(value))


# --- excerpts -------------------------------------------------------------------------


def markdown_parser() -> MarkdownIt:
    """CommonMark with tables and strikethrough, without the core rules only HTML output
    needs: escapes and references stay `text_special` tokens, joined by token_texts."""
    parser = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    return parser.disable(["text_join", "replacements", "smartquotes"])


BLOCKS = markdown_parser()
BLOCKS.core.ruler.disable("inline")  # paragraphs are parsed inline only when chosen
INLINE = markdown_parser()
# Links are reduced to their text: their addresses need no normalizing, and a
# `javascript:` one is still a link whose text is kept, not literal markup.
INLINE.normalizeLink = INLINE.normalizeLinkText = lambda url: url  # type: ignore[method-assign,assignment]
INLINE.validateLink = lambda url: True  # type: ignore[method-assign]
MAYBE_REFERENCE = re.compile(r"\](?!\()")  # `[text][label]` or `[label]`, not `[text](url)`

# Code between paired tags goes with them, and the line break after (not to split the
# paragraph around them in two).
HUGO_PAIRED = re.compile(
    r"\{\{[<%]\s*(highlight|code)\b.*?[>%]\}\}.*?\{\{[<%]\s*/\1\s*[>%]\}\}\n?", re.DOTALL)
LIQUID_PAIRED = re.compile(
    r"\{%-?\s*(comment|highlight|raw)\b.*?%\}.*?\{%-?\s*end\1\s*-?%\}\n?", re.DOTALL)
TEMPLATE_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)  # Hugo shortcodes, Liquid
MDX_ESM = re.compile(r"^(?:import|export)\s.*$", re.MULTILINE)
JSX_START = re.compile(r"</?(?:[A-Z][\w.]*|>)")
JSX_TAG_LIMIT = 500  # characters a component tag may span, props included


def excerpt_from_markdown(markdown: str, *, title: str = "", limit: int = EXCERPT_LIMIT) -> str:
    """The plain text of the first paragraph of `markdown` (read up to
    EXCERPT_SOURCE_LIMIT characters), cut at a word to `limit`: escapes resolved,
    references decoded, emphasis, code and links reduced to their text; images, HTML,
    Hugo shortcodes, Liquid tags and MDX/JSX components removed; headings and a first
    paragraph that only repeats the title skipped."""
    source = without_templates(markdown[:EXCERPT_SOURCE_LIMIT])
    wanted = one_line(title).casefold()
    head = first_blocks(source)
    found = first_paragraph(head, wanted, limit, whole=False) if head else None
    return found if found is not None else first_paragraph(source, wanted, limit) or ""


def first_blocks(source: str) -> str | None:
    """`source` up to the first blank line past BLOCK_PREFIX characters (the blocks
    before a blank line are complete), or None if that is all of it."""
    end = source.find("\n\n", BLOCK_PREFIX)
    return source[:end] if end != -1 else None


def first_paragraph(source: str, wanted: str, limit: int, *, whole: bool = True) -> str | None:
    """The text of the first paragraph that is not `wanted` (the title, casefolded).
    Not `whole` (the first blocks only): None when none is found, or when the one found
    may use a reference link defined further down."""
    env: dict[str, Any] = {}
    for paragraph in paragraphs(BLOCKS.parse(source, env)):
        if not whole and MAYBE_REFERENCE.search(paragraph.content):
            return None
        text = paragraph_text(paragraph, env, limit)
        if text and text.casefold() != wanted:
            return shorten(text, limit)
    return "" if whole else None


def excerpt_from_text(markdown: str, limit: int = EXCERPT_LIMIT) -> str:
    """A front-matter excerpt, summary or description: inline markdown only (a leading
    `2024.` or `#1` is text, not a list or a heading), reduced like a body's."""
    source = markdown[:EXCERPT_SOURCE_LIMIT]
    if not MARKUP_OR_CONTROL.search(source):  # most: one pass over the text
        return shorten(one_line(source), limit)
    return shorten(inline_text(without_templates(source), {}), limit)


def without_templates(source: str) -> str:
    """Hugo shortcodes, Liquid tags and MDX imports/exports and components removed
    (the code between paired highlight tags too); control characters removed."""
    source = remove_controls(source)
    if "{" in source:
        source = TEMPLATE_TAG.sub("", LIQUID_PAIRED.sub("", HUGO_PAIRED.sub("", source)))
    if "import " in source or "export " in source:
        source = MDX_ESM.sub("", source)
    return remove_jsx(source) if "<" in source else source


def remove_jsx(source: str) -> str:
    """Component tags (`<Chart data={[1, 2]} />`, `<Note>`, `</Note>`, fragments) removed,
    their children kept; braces and quotes inside props are skipped over."""
    kept, position = [], 0
    for found in JSX_START.finditer(source):
        if found.start() < position:
            continue
        end = jsx_tag_end(source, found.end())
        if end is not None:
            before = source[position:found.start()]
            self_closing = source[end - 2:end] == "/>"
            glued = self_closing and source[end:end + 1] in tuple(",.;:!?")
            kept.append(before.rstrip(" ") if glued else before)
            position = end
    return "".join(kept) + source[position:]


def jsx_tag_end(source: str, start: int) -> int | None:
    """The index after the `>` that closes a tag whose name ends at `start`."""
    depth, quote = 0, ""
    for index in range(start - 1, min(len(source), start + JSX_TAG_LIMIT)):
        char = source[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'`":
            quote = char
        elif char in "{}":
            depth += 1 if char == "{" else -1
        elif char == ">" and depth <= 0:
            return index + 1
    return None


def paragraphs(tokens: list[Token]) -> Iterator[Token]:
    """The inline tokens of paragraphs, in lists and quotes too, but not in tables."""
    for index, token in enumerate(tokens):
        if token.type == "inline" and index and tokens[index - 1].type == "paragraph_open":
            yield token


def paragraph_text(paragraph: Token, env: dict[str, Any], limit: int) -> str:
    """Its plain text, from a first part of a long paragraph when that is enough: more
    than `limit` characters of text past the last construct the cut may have broken."""
    source = paragraph.content
    if len(source) > INLINE_PREFIX:
        head = source[:INLINE_PREFIX].rsplit(None, 1)[0]
        text = inline_text(head, env)
        if len(text) > limit + 100:
            return text
    return inline_text(source, env)


def inline_text(source: str, env: dict[str, Any]) -> str:
    if not MARKUP.search(source):
        return one_line(source)
    tokens = INLINE.parseInline(source, env)
    return one_line(remove_controls("".join(token_texts(tokens[0].children or []))))


def token_texts(tokens: Iterable[Token]) -> Iterator[str]:
    """Text, code and line breaks; markup (tags, images, link and emphasis marks) dropped,
    but a tag that breaks a line (`<br>`, `</p>`) still separates words."""
    for token in tokens:
        if token.type in ("text", "text_special", "code_inline"):
            yield token.content
        elif token.type in ("softbreak", "hardbreak") or (
                token.type == "html_inline" and tag_name(token.content) in BLOCK_ELEMENTS):
            yield " "


def tag_name(tag: str) -> str:
    """`<br/>` → `br`, `</P>` → `p`."""
    return re.split(r"[\s/>]", tag.lstrip("</"), maxsplit=1)[0].lower()


def shorten(text: str, limit: int = EXCERPT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"


HTML_SOURCE_LIMIT = 5 * EXCERPT_SOURCE_LIMIT  # HTML is wordier than markdown
DROPPED_ELEMENTS = XPath(
    "//script|//style|//figure|//img|//picture|//iframe|//svg|//noscript|//template")
BLOCK_ELEMENTS = frozenset({"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5",
                            "h6", "tr", "td", "th", "blockquote", "pre", "section", "article",
                            "header", "footer", "dd", "dt", "hr", "table"})


def excerpt_from_html(markup: str, limit: int = EXCERPT_LIMIT) -> str:
    """The plain text of an HTML fragment (a feed's summary or content), cut at a word to
    `limit`: tags removed, references decoded once, images, figures, scripts, styles and
    embeds dropped, blocks separated by a space."""
    return excerpt_and_image_from_html(markup, limit)[0]


def excerpt_and_image_from_html(markup: str, limit: int = EXCERPT_LIMIT, *,
                                source_limit: int = HTML_SOURCE_LIMIT) -> tuple[str, str | None]:
    """`excerpt_from_html` of the first `source_limit` characters, and the `src` of the
    first `<img>` that has one (None if none), from the same parse."""
    source = remove_controls(markup[:source_limit])
    if "<" not in source:
        return shorten(one_line(decode_references(source)), limit), None
    try:
        fragment = lxml_html.fragment_fromstring(source, create_parent="div")
    except (ParserError, ValueError):  # nothing but white space or comments
        return "", None
    image = next((str(img.get("src")) for img in fragment.iter("img") if "src" in img.attrib),
                 None)
    return fragment_text(fragment, limit), image


def fragment_text(fragment: lxml_html.HtmlElement, limit: int) -> str:
    for element in DROPPED_ELEMENTS(fragment):
        element.drop_tree()
    for element in fragment.iter():
        if isinstance(element.tag, str) and element.tag.lower() in BLOCK_ELEMENTS:
            element.tail = " " + (element.tail or "")
            element.text = " " + (element.text or "")
    return shorten(one_line(remove_controls(fragment.text_content())), limit)
