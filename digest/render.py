"""Render an issue into an email: Jinja2 → MJML → mjml-python → premailer.

Takes data, returns strings. The only I/O is reading templates:
the site's `templates/` first, the shipped defaults after.
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
import mjml
from jinja2.loaders import split_template_path
from markupsafe import Markup, escape
from premailer import Premailer

from digest.content import slugify
from digest.emails import PREFERENCES_TAG as PREFERENCES_TAG  # where they were
from digest.emails import UNSUBSCRIBE_TAG as UNSUBSCRIBE_TAG
from digest.emails import Email as Email
from digest.errors import DigestError, TemplateError, not_utf8
from digest.i18n import Language, load_language
from digest.select import Issue
from digest.theme import Theme

DOCTYPE = "<!doctype html>"
HTML_TEMPLATES = ("email.mjml.j2",)
TEXT_TEMPLATES = ("email.txt.j2", "subject.txt.j2", "preheader.txt.j2")
PREHEADER_MIN, PREHEADER_MAX = 40, 140
BLOCK = "<!--digest:block-->"  # between the blocks of the HTML, removed at the end
BLOCK_MARK = f"<mj-raw>{BLOCK}</mj-raw>"  # the same in the MJML template
UTC = ZoneInfo("UTC")
# The context values that differ between the segments of a run: holes in the frames
# Blocks converts once (a template may show them anywhere; Blocks checks where)
SEGMENT_VALUES = ("subject", "preheader", "intro", "issue_label")


def default_templates_dir() -> Path:
    """The shipped templates: inside the installed package, else the repository's."""
    packaged = Path(__file__).parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "templates"


@dataclass(frozen=True)
class Site:
    name: str
    base_url: str
    language: str = "en"
    timezone: ZoneInfo = UTC
    postal_address: str = ""
    category_url_pattern: str = "{base_url}/category/{category}"
    theme: Theme = field(default_factory=Theme)
    archive_url: str = ""  # archive.url: each email links to its issue's page there

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url

    def category_url(self, category: str) -> str:
        return self.category_url_pattern.format(
            base_url=self.base_url.rstrip("/"), category=slugify(category)
        )

    def view_url(self, key: str) -> str | None:
        """The issue's archive page ("View in browser"), or None without an archive."""
        return issue_page_url(self.archive_url, key) if self.archive_url else None


def archive_slug(key: str) -> str:
    """An issue key as one path segment of the archive (keys are safe already:
    `2026-W48`, `2026-11-01..2026-11-07`; anything else becomes `-`)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-._") else "-" for c in key)


def issue_page_url(archive_url: str, key: str) -> str:
    return f"{archive_url.rstrip('/')}/{archive_slug(key)}/"


class Blocks:
    """The HTML of each distinct block of MJML (a category's section, the "more" list,
    the footer: the parts between two `block_mark`s), converted and inlined once and
    reused by every email of a run that shows it.

    A block's inlined HTML does not depend on its neighbours, so an email assembled from
    blocks equals its whole render: the first assembly that reuses a block is checked
    against a whole render, and a template for which they differ (a selector such as
    `:first-child` or `+` that sees across blocks) is rendered whole from then on.

    The frame around the blocks (the head and the tail) is converted once too, with a hole
    where each of the segment's `values` (its subject, preheader…) is the whole text of an
    element (see `punched`): each email fills the holes of the converted frame with its
    own values, as mjml and premailer write that text. The first email with holes, and the
    first that reuses a frame with holes, are checked against a whole render; holes are
    left out from then on where they differ.
    """

    def __init__(self) -> None:
        self.html: dict[str, str] = {}
        self.frames: dict[tuple[str, str], tuple[str, str]] = {}  # head and tail, the same
        self.conversions = 0  # MJML conversions of a frame and the blocks it lacked
        self.checked: set[str] = set()  # what an assembly did, checked once: see `kinds`
        self.usable = True
        self.holes = True

    def to_html(self, source: str, values: Sequence[str] = ()) -> str:
        parts = source.split(BLOCK_MARK)
        if self.usable and not self.html:
            self.usable = not sees_across_blocks(source)
        if len(parts) < 3 or not self.usable:
            return mjml_to_html(source)
        middle, frame = parts[1:-1], self.holed((parts[0], parts[-1]), values)
        holes = frame != (parts[0], parts[-1])
        missing = list(dict.fromkeys(part for part in middle if part not in self.html))
        cached = frame in self.frames
        if (missing or not cached) and not self.convert(frame, missing):
            return mjml_to_html(source)
        head, tail = (filled(piece, values if holes else ()) for piece in self.frames[frame])
        if head is None or tail is None:
            return mjml_to_html(source)
        html = BLOCK.join([head, *(self.html[part] for part in middle), tail])
        return self.checked_once(source, html, kinds(len(missing) < len(middle), holes, cached))

    def holed(self, frame: tuple[str, str], values: Sequence[str]) -> tuple[str, str]:
        """`frame` with a hole for each of `values` it holds as an element's whole text."""
        if not self.holes or any(HOLE_PREFIX in part for part in frame):
            return frame
        spots = {str(escape(value)): HOLE.format(i)
                 for i, value in enumerate(values) if holeable(value)}
        return punched(frame[0], spots), punched(frame[1], spots)

    def convert(self, frame: tuple[str, str], missing: list[str]) -> bool:
        """Convert the head and tail `frame` with the `missing` blocks between them, and
        keep each; False when a mark or a hole was lost (the template is unusual)."""
        self.conversions += 1
        pieces = mjml_to_html(BLOCK_MARK.join([frame[0], *missing, frame[1]])).split(BLOCK)
        if len(pieces) != len(missing) + 2:
            self.usable = False
            return False
        if not holes_kept("".join(frame), pieces[0] + pieces[-1]):
            self.holes = False
            return False
        self.html.update(zip(missing, pieces[1:-1], strict=True))
        self.frames[frame] = (pieces[0], pieces[-1])
        return True

    def checked_once(self, source: str, assembled: str, done: set[str]) -> str:
        """`assembled`, or the whole render of `source` the first time the assembly did
        one of the things in `done`: those are left out from then on if they differ."""
        if done <= self.checked:
            return assembled
        self.checked |= done
        whole = mjml_to_html(source)
        if whole != assembled:
            self.usable = self.usable and "blocks" not in done
            self.holes = self.holes and not done & {"holes", "refill"}
        return whole


def kinds(reused: bool, holes: bool, cached: bool) -> set[str]:
    """What an assembly did other than convert its source whole: reuse a block, fill
    holes, fill a cached frame's holes again (with other values)."""
    return ({"blocks"} if reused else set()) | ({"holes"} if holes else set()) | (
        {"refill"} if holes and cached else set())


HOLE_PREFIX = "-digest-hole-"
HOLE = HOLE_PREFIX + "{}-"  # the place of the i-th value in a frame; see Blocks
HOLES = re.compile(rf"{HOLE_PREFIX}(\d+)-")
TEXT_HOLES = re.compile(rf">{HOLE_PREFIX}(\d+)-<")
TITLE_COPY_AT = 'aria-label="'
TITLE_COPIES = re.compile(rf"{TITLE_COPY_AT}{HOLE_PREFIX}(\d+)-\"")
RAW = re.compile(  # a comment, a script or a style ([^<]* saves the regex from `.*?`'s steps)
    r"<!--.*?-->|<(script|style|mj-style|textarea)\b[^<]*(?:<(?!/\1>)[^<]*)*</\1>", re.DOTALL)
TEXT_NODE = re.compile(  # an element's whole text (outside RAW's comments and styles)
    r"(?P<open><(?P<tag>mj-title|mj-preview|p|h[1-6]|a|span|strong|em|b|i|small|li|td|th"
    r"|div)(?:\s[^<>]*)?>)(?P<text>[^<>]+)(?P<close></(?P=tag)>)")
NONCHARACTERS = "".join(chr(plane + end) for plane in range(0x10000, 0xF0000, 0x10000)
                        for end in (0xFFFE, 0xFFFF))
UNSAFE = re.compile(  # characters whose text mjml refuses or lxml rewrites (\r into \n)
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufdd0-\ufdef\ufffe\uffff"
    f"{NONCHARACTERS}\U000f0000-\U0010ffff]")
HOLE_MAX = 2000  # characters: a longer value stays in its frame


def holeable(value: str) -> bool:
    """Whether mjml and premailer write `value`, as an element's text, as `html_text`
    does: a plain string, not blank, of characters other than `UNSAFE`'s (none of which
    Python calls printable)."""
    return type(value) is str and 0 < len(value) <= HOLE_MAX and not value.isspace() and \
        (value.isprintable() or UNSAFE.search(value) is None)


# mjml-python 1.4.2 writes the title again, in the aria-label of the body's first div,
# as Rust's `{:?}` writes a string: `\\` for a backslash, `\u{a0}` for a character Rust
# does not print (spaces but " ", marks, format characters). Known here: these, letters,
# numbers, punctuation and symbols; a title with another character is converted whole.
RUST_HIDDEN = "".join(chr(code) for first, last in (
    (0xA0, 0xA0), (0xAD, 0xAD), (0x61C, 0x61C), (0x115F, 0x1160), (0x1680, 0x1680),
    (0x2000, 0x200F), (0x2028, 0x202F), (0x205F, 0x2060), (0x2066, 0x2069),
    (0x3000, 0x3000), (0x3164, 0x3164), (0xFEFF, 0xFEFF), (0xFF9E, 0xFFA0))
    for code in range(first, last + 1))
TITLE_COPY = str.maketrans({"\\": "\\\\"} | {char: f"\\u{{{ord(char):x}}}" for char in RUST_HIDDEN})
NOT_COPIED = re.compile(r'["\t\n]|&\{')  # premailer writes a quote, and `&{`, otherwise


def title_copy(value: str) -> str | None:
    """The aria-label premailer writes for the title `value`, or None if not known."""
    if NOT_COPIED.search(value) or not (value.isascii() or all(map(known_to_rust, value))):
        return None
    return html_text(value.translate(TITLE_COPY))


@functools.lru_cache(maxsize=4096)
def known_to_rust(char: str) -> bool:
    return char in RUST_HIDDEN or unicodedata.category(char)[0] in "LNPS" or char == " "


def punched(part: str, spots: dict[str, str]) -> str:
    """`part` with each element's whole text that is a key of `spots` replaced by its
    value (a hole), outside comments, scripts and styles."""
    def punch(match: re.Match[str]) -> str:
        text = match["text"]
        return match["open"] + spots[text] + match["close"] if text in spots else match[0]
    if not any(f">{text}<" in part for text in spots):
        return part
    pieces, at = [], 0
    for raw in RAW.finditer(part):
        pieces += [TEXT_NODE.sub(punch, part[at:raw.start()]), raw[0]]
        at = raw.end()
    return "".join([*pieces, TEXT_NODE.sub(punch, part[at:])])


def holes_kept(source: str, html: str) -> bool:
    """Whether each hole of `source` is an element's whole text in `html`, and any other
    hole in `html` a copy of the title."""
    texts, everywhere = TEXT_HOLES.findall(html), HOLES.findall(html)
    return sorted(texts) == sorted(HOLES.findall(source)) and \
        len(texts) + len(TITLE_COPIES.findall(html)) == len(everywhere)


def filled(html: str, values: Sequence[str]) -> str | None:
    """`html` with each hole filled with its value as premailer writes it; None if a
    value copied from the title is written in a way `title_copy` does not know."""
    pieces = HOLES.split(html) if values else [html]  # text, a hole's number, text…
    for at in range(1, len(pieces), 2):
        value = values[int(pieces[at])]
        text = title_copy(value) if pieces[at - 1].endswith(TITLE_COPY_AT) else \
            html_text(value)
        if text is None:
            return None
        pieces[at] = text
    return "".join(pieces)


def html_text(value: str) -> str:
    """`value` as lxml writes an element's text in HTML: `&`, `<` and `>` escaped."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


STYLES = re.compile(r"<(?:mj-)?style[^>]*>(.*?)</(?:mj-)?style>", re.DOTALL | re.IGNORECASE)
ACROSS = re.compile(r"[+~]|:(?:first|last|nth|only)-", re.IGNORECASE)


def sees_across_blocks(source: str) -> bool:
    """Whether the template's CSS may style an element by its siblings (`a + b`,
    `:first-child`…), which would make a block's HTML depend on its neighbours."""
    return any(ACROSS.search(css) for css in STYLES.findall(source))


class Renderer:
    """Holds the two Jinja2 environments and the run's converted blocks; `render` is
    pure given its arguments (the blocks only save work)."""

    def __init__(self, site: Site, templates_dir: Path | None = None) -> None:
        self.site, self.templates_dir = site, templates_dir
        self.language = load_language(site.language, templates_dir)
        dirs = [d for d in (templates_dir, default_templates_dir()) if d and d.is_dir()]
        self.html_env = make_env(dirs, autoescape=True, site=site, language=self.language)
        self.text_env = make_env(dirs, autoescape=False, site=site, language=self.language)
        self.blocks = Blocks()
        self.palette = site.theme.palette  # derived: the same for every email of a run

    def render(
        self, issue: Issue, *, unsubscribe_url: str, preferences_url: str | None = None
    ) -> Email:
        context = self.context(issue, unsubscribe_url, preferences_url)
        subject = one_line(self.fill("subject.txt.j2", context, text=True))
        preheader = fit_preheader(one_line(self.fill("preheader.txt.j2", context, text=True)),
                                  context, self.language)
        context.update(subject=subject, preheader=preheader)
        source = self.fill("email.mjml.j2", context)
        values = [context[name] for name in SEGMENT_VALUES]
        pieces = self.blocks.to_html(source, values).split(BLOCK)
        text = self.fill("email.txt.j2", context, text=True).strip() + "\n"
        return Email.assembled(subject, preheader, pieces, text)

    def fill(self, name: str, context: dict[str, Any], *, text: bool = False) -> str:
        """Template `name` rendered; whatever it raises becomes a TemplateError."""
        env = self.text_env if text else self.html_env
        try:
            return env.get_template(name).render(context)
        except DigestError:
            raise
        except Exception as exc:  # a site's template can raise anything: name its line
            raise TemplateError(template_problem(exc)) from None

    def context(
        self, issue: Issue, unsubscribe_url: str, preferences_url: str | None
    ) -> dict[str, Any]:
        articles, words = issue.articles, self.language
        period = "day" if issue.window.end - issue.window.start <= timedelta(days=1) else "week"
        return {
            "site": self.site,
            "theme": self.site.theme,
            "colours": self.palette,
            "issue": issue,
            "sections": issue.sections,
            "articles": articles,
            "count": len(articles),
            "period": period,
            "when": when(period, words),
            "more_heading": more_heading(period, words),
            "direction": words.direction,
            "start_side": "right" if words.direction == "rtl" else "left",
            "top_categories": [s.category for s in issue.sections if s.articles][:2],
            "issue_label": window_label(issue, self.site.timezone, words),
            "intro": intro(len(articles), issue.more, period, words),
            "category_url": self.site.category_url,
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
            "block_mark": Markup(BLOCK_MARK),
            "view_url": self.site.view_url(issue.key),
        }


def template_problem(exc: Exception) -> str:
    """`path:line: message`, at the innermost template line the traceback passes through."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"{exc.filename}:{exc.lineno}: {exc.message}"
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if is_template_file(frame.filename)]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    return where + error_text(exc)


def is_template_file(filename: str) -> bool:
    """Jinja gives a template's frames its file name; Python's are `.py` or `<frozen …>`."""
    return not filename.endswith(".py") and not filename.startswith("<")


def error_text(exc: Exception) -> str:
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found"
    if isinstance(exc, jinja2.TemplateError):  # 'x' is undefined, and Jinja's other errors
        return exc.message or type(exc).__name__
    if isinstance(exc, RecursionError):
        return "templates nest too deep: does one include itself?"
    return f"{type(exc).__name__}: {exc}"


class SiteLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that names the file when a template is not UTF-8."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError as exc:
            path = next((path for folder in self.searchpath
                         if (path := Path(folder, *split_template_path(template))).is_file()),
                        template)
            raise TemplateError(f"{path}: {not_utf8(exc)}") from None


def make_env(dirs: Sequence[Path], *, autoescape: bool, site: Site,
             language: Language) -> jinja2.Environment:
    """An environment with the i18n extension: `{% trans %}` blocks and `_()` use the
    site's catalog; `local_date`, `join_names` and `number` follow its locale."""
    env = jinja2.Environment(
        loader=SiteLoader([str(d) for d in dirs]),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(language.translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["local_date"] = language.date_filter(site.timezone)
    env.filters["join_names"] = language.join
    env.filters["number"] = functools.lru_cache(maxsize=1024)(language.number)  # Babel: slow
    if not autoescape:  # the text part wraps the same excerpts in every segment's email
        env.filters["wordwrap"] = cached_wordwrap
    return env


@jinja2.pass_environment
@functools.lru_cache(maxsize=4096)
def cached_wordwrap(environment: jinja2.Environment, text: str, width: int = 79,
                    break_long_words: bool = True, wrapstring: str | None = None,
                    break_on_hyphens: bool = True) -> str:
    """Jinja's `wordwrap`, remembered: textwrap is slow, and a run wraps each excerpt
    once per segment that shows it."""
    return jinja2.filters.do_wordwrap(environment, text, width, break_long_words,
                                      wrapstring, break_on_hyphens)


def window_label(issue: Issue, tz: ZoneInfo, language: Language) -> str:
    start = (issue.window.start + timedelta(microseconds=1)).astimezone(tz)
    end = issue.window.end.astimezone(tz)
    if start.date() == end.date():
        return language.day(end.date())
    return language.days(start.date(), end.date())


def intro(count: int, more: int, period: str, language: Language) -> str:
    """`7 articles this week.`, and how many more the site has, in the site's language."""
    extra = {"more": language.number(more)}
    if period == "day" and more:
        return language.ngettext("%(num)s article today, and %(more)s more on the site.",
                                 "%(num)s articles today, and %(more)s more on the site.",
                                 count, **extra)
    if period == "day":
        return language.ngettext("%(num)s article today.", "%(num)s articles today.", count)
    if more:
        return language.ngettext("%(num)s article this week, and %(more)s more on the site.",
                                 "%(num)s articles this week, and %(more)s more on the site.",
                                 count, **extra)
    return language.ngettext("%(num)s article this week.", "%(num)s articles this week.", count)


def when(period: str, language: Language) -> str:
    return language.gettext("today") if period == "day" else language.gettext("this week")


def more_heading(period: str, language: Language) -> str:
    """The heading over the categories with no article shown, only a link."""
    return language.gettext("More today") if period == "day" else \
        language.gettext("More this week")


SPACES = re.compile(r"[^\S\u00a0\u202f]+")  # no-break spaces stay (French `Nom\u00a0:`)


def one_line(text: str) -> str:
    return SPACES.sub(" ", text).strip(" \t\r\n\f\v")


def fit_preheader(text: str, context: dict[str, Any], language: Language) -> str:
    """Between 40 and 140 characters: padded with the count, cut at a word."""
    if len(text) < PREHEADER_MIN:
        text = f"{text} · {context['intro']}".strip(" ·")
    if len(text) < PREHEADER_MIN:
        picks = (language.gettext("Today's picks from %(site)s.", site=context["site"].name)
                 if context["period"] == "day" else
                 language.gettext("The week's picks from %(site)s.", site=context["site"].name))
        text = f"{text} {picks}"
    if len(text) > PREHEADER_MAX:
        text = text[: PREHEADER_MAX - 1].rsplit(" ", 1)[0].rstrip(" ·,;:") + "…"
    return text


def mjml_to_html(source: str) -> str:
    """MJML to HTML with CSS inlined offline; the doctype premailer drops is put back."""
    try:
        html = mjml.mjml2html(source, fonts={})
    except ValueError as exc:
        raise TemplateError(f"the email template produced invalid MJML: {exc}") from None
    return inline_css(html)


class CachingPremailer(Premailer):  # type: ignore[misc]
    """Premailer that parses each stylesheet once per process, not once per email.

    Every segment's email carries the same <style> blocks, and parsing them with
    cssutils is most of premailer's time (about 20 of 24 ms per email); the inlining
    itself is unchanged. The caches only grow with distinct stylesheets (templates).
    """

    parsed: ClassVar[dict[tuple[Any, ...], tuple[list[Any], list[Any]]]] = {}
    serialized: ClassVar[dict[tuple[Any, ...], str]] = {}

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        key = (css_body, ruleset_index, self.strip_important, self.disable_validation)
        if key not in self.parsed:
            self.parsed[key] = super()._parse_style_rules(css_body, ruleset_index)
        rules, leftover = self.parsed[key]
        return list(rules), list(leftover)

    def _css_rules_to_string(self, rules: list[Any]) -> str:
        # Leftover rules are the cached parse's own objects, so their ids are stable.
        key = tuple(rule if isinstance(rule, tuple) else id(rule) for rule in rules)
        if key not in self.serialized:
            self.serialized[key] = super()._css_rules_to_string(rules)
        return self.serialized[key]


FLOAT = re.compile(r"float\s*:", re.IGNORECASE)


def inline_css(html: str) -> str:
    """CSS inlined by premailer. Its pass that gives floating images an `align` parses
    every image's style with cssutils, uncached (8 ms an image, most of a render's time):
    it runs only when the document has a float at all, so the output is the same."""
    inlined: str = CachingPremailer(
        html,
        align_floating_images=FLOAT.search(html) is not None,
        allow_network=False,
        keep_style_tags=False,
        strip_important=False,
        disable_basic_attributes=["width", "height"],
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
    ).transform()
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = f"{DOCTYPE}\n{inlined}"
    return inlined
