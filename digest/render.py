"""Render an issue into an email: Jinja2 → MJML → mjml-python → premailer.

Takes data, returns strings. The only I/O is reading templates:
the site's `templates/` first, the shipped defaults after.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
import mjml
from jinja2.loaders import split_template_path
from premailer import Premailer

from digest.content import slugify
from digest.errors import DigestError, TemplateError, not_utf8
from digest.select import Issue

DOCTYPE = "<!doctype html>"
HTML_TEMPLATES = ("email.mjml.j2",)
TEXT_TEMPLATES = ("email.txt.j2", "subject.txt.j2", "preheader.txt.j2")
PREHEADER_MIN, PREHEADER_MAX = 40, 140
UNSUBSCRIBE_TAG = "-unsubscribe_url-"
PREFERENCES_TAG = "-preferences_url-"
UTC = ZoneInfo("UTC")


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

    @property
    def domain(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url

    def category_url(self, category: str) -> str:
        return self.category_url_pattern.format(
            base_url=self.base_url.rstrip("/"), category=slugify(category)
        )


@dataclass(frozen=True)
class Email:
    subject: str
    preheader: str
    html: str
    text: str

    @property
    def size(self) -> int:
        """Bytes of the HTML part: what Gmail measures before clipping."""
        return len(self.html.encode("utf-8"))


class Renderer:
    """Holds the two Jinja2 environments; `render` is pure given its arguments."""

    def __init__(self, site: Site, templates_dir: Path | None = None) -> None:
        self.site, self.templates_dir = site, templates_dir
        dirs = [d for d in (templates_dir, default_templates_dir()) if d and d.is_dir()]
        self.html_env = make_env(dirs, autoescape=True, site=site)
        self.text_env = make_env(dirs, autoescape=False, site=site)

    def render(
        self, issue: Issue, *, unsubscribe_url: str, preferences_url: str | None = None
    ) -> Email:
        context = self.context(issue, unsubscribe_url, preferences_url)
        subject = one_line(self.fill("subject.txt.j2", context, text=True))
        preheader = fit_preheader(one_line(self.fill("preheader.txt.j2", context, text=True)),
                                  context)
        context.update(subject=subject, preheader=preheader)
        html = mjml_to_html(self.fill("email.mjml.j2", context))
        text = self.fill("email.txt.j2", context, text=True).strip() + "\n"
        return Email(subject, preheader, html, text)

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
        articles = issue.articles
        period = "day" if issue.window.end - issue.window.start <= timedelta(days=1) else "week"
        return {
            "site": self.site,
            "issue": issue,
            "sections": issue.sections,
            "articles": articles,
            "count": len(articles),
            "period": period,
            "when": when(period),
            "top_categories": [s.category for s in issue.sections if s.articles][:2],
            "issue_label": window_label(issue, self.site.timezone),
            "intro": intro(len(articles), issue.more, period),
            "category_url": self.site.category_url,
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": preferences_url,
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


def make_env(dirs: Sequence[Path], *, autoescape: bool, site: Site) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=SiteLoader([str(d) for d in dirs]),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    env.filters["local_date"] = local_date_filter(site.timezone)
    env.filters["join_names"] = join_names
    return env


def local_date_filter(tz: ZoneInfo) -> Callable[[datetime], str]:
    def local_date(moment: datetime) -> str:
        local = moment.astimezone(tz)
        return f"{local:%a} {local.day} {local:%b %Y}"

    return local_date


def join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def window_label(issue: Issue, tz: ZoneInfo) -> str:
    start = (issue.window.start + timedelta(microseconds=1)).astimezone(tz)
    end = issue.window.end.astimezone(tz)
    if start.date() == end.date():
        return f"{end.day} {end:%B %Y}"
    return f"{start.day} {start:%b} – {end.day} {end:%b %Y}"


def intro(count: int, more: int, period: str) -> str:
    noun = "article" if count == 1 else "articles"
    text = f"{count} {noun} {when(period)}"
    return f"{text}, and {more} more on the site." if more else f"{text}."


def when(period: str) -> str:
    return "today" if period == "day" else f"this {period}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def fit_preheader(text: str, context: dict[str, Any]) -> str:
    """Between 40 and 140 characters: padded with the count, cut at a word."""
    if len(text) < PREHEADER_MIN:
        text = f"{text} · {context['intro']}".strip(" ·")
    if len(text) < PREHEADER_MIN:
        text = f"{text} The {context['period']}'s picks from {context['site'].name}."
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


def inline_css(html: str) -> str:
    inlined: str = CachingPremailer(
        html,
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
