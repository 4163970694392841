"""One language per site: the words (gettext catalogs), dates, numbers and plurals.

The shipped catalogs are `.po` files in `digest/locales/`, read and compiled in memory
when a site's language is first used (no `.mo` build step, nothing binary in the
repository). A site's own `templates/LANG.po` (`digest translations init LANG`) is laid
over the shipped one: its translations win, message by message. Dates and numbers come
from Babel's CLDR data for the language even when no catalog has its words.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_interval, format_skeleton
from babel.lists import format_list
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from digest.errors import ConfigError, not_utf8
from digest.quality import Finding

SOURCE = "en"  # the language the templates are written in
SHIPPED = ("de", "en", "es", "fr")
LOCALES_DIR = Path(__file__).parent / "locales"
TEMPLATE_CATALOG = LOCALES_DIR / "messages.pot"
DOMAIN = "digest"
SHOWN_MISSING = 3  # untranslated strings quoted in a warning
MessageId = str | tuple[str, ...] | list[str]  # Babel's: a plural's id is (singular, plural)


def N_(message: str) -> str:
    """Marks `message` for the catalogs where it is defined; it is translated where used."""
    return message


def shipped_list() -> str:
    return ", ".join(SHIPPED)


def parse_locale(code: str) -> Locale:
    """The Babel locale for `de`, `de-AT` or `de_AT`; ConfigError for anything else."""
    try:
        return Locale.parse(code.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        raise ConfigError(f"site.language: unknown language code {code!r} "
                          f"(shipped: {shipped_list()}; others take a CLDR code "
                          "such as it, pt-BR or ar)") from None


def language_problem(code: str) -> str | None:
    """Why `code` is no language (for the configuration check), or None."""
    try:
        parse_locale(code)
    except ConfigError as exc:
        return str(exc)
    return None


def tag_of(locale: Locale) -> str:
    """The BCP 47 tag for an HTML `lang` attribute: `de`, `de-AT`, `zh-Hant-TW`."""
    return "-".join(part for part in (locale.language, locale.script, locale.territory)
                    if part)


def candidates(locale: Locale) -> list[str]:
    """Catalog names to try, most specific first: `de_AT`, then `de`."""
    names = [str(locale), locale.language]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Language:
    """A site's language: its locale, its words, and where they came from."""

    code: str
    locale: Locale
    translations: NullTranslations
    words_from: str | None  # the catalog language of the words; None: English fallback
    site_catalog: Path | None = None
    site_catalog_language: str | None = None  # the `Language:` header of the site catalog
    missing: tuple[str, ...] = ()  # shipped strings left untranslated

    @property
    def tag(self) -> str:
        return tag_of(self.locale)

    @property
    def direction(self) -> str:
        return "rtl" if self.locale.text_direction == "rtl" else "ltr"

    def gettext(self, message: str, **values: object) -> str:
        return self.translations.gettext(message) % values if values else \
            self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int, **values: object) -> str:
        text = self.translations.ngettext(singular, plural, count)
        return text % {"num": self.number(count), **values}

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def join(self, names: Sequence[str]) -> str:
        """`Work and Research`, `Work und Research`; in English when the words are."""
        words = self.locale if self.words_from else Locale.parse(SOURCE)
        return format_list(list(names), locale=words) if names else ""

    def date_filter(self, tz: ZoneInfo) -> Callable[[datetime], str]:
        """`Sat, Nov 28, 2026`, `Sa., 28. Nov. 2026`: CLDR's short date with the weekday."""

        @functools.lru_cache(maxsize=4096)  # a run shows the same dates in every segment
        def local_date(moment: datetime) -> str:
            return format_skeleton("yMMMEd", moment.astimezone(tz), locale=self.locale)

        return local_date

    def day(self, day: date) -> str:
        return format_skeleton("yMMMMd", day, locale=self.locale)

    def days(self, first: date, last: date) -> str:
        return format_interval(first, last, "yMMMd", locale=self.locale)


def load_language(code: str, site_dir: Path | None = None) -> Language:
    """The language for `code`, with the site's catalog in `site_dir` over the shipped one.
    Raises ConfigError for an unknown code or a catalog that cannot be read."""
    locale = parse_locale(code)
    site = next((path for name in candidates(locale)
                 if site_dir is not None and (path := site_dir / f"{name}.po").is_file()), None)
    stamp = site.stat().st_mtime_ns if site else 0
    return _load(code, str(locale), site, stamp)


@functools.lru_cache(maxsize=32)
def _load(code: str, locale_name: str, site: Path | None, _stamp: int) -> Language:
    locale = Locale.parse(locale_name)
    shipped = next((path for name in candidates(locale)
                    if (path := LOCALES_DIR / f"{name}.po").is_file()), None)
    layers = [read_catalog(path) for path in (shipped, site) if path is not None]
    if locale.language == SOURCE and not layers:
        return Language(code, locale, NullTranslations(), SOURCE)
    if not layers:
        return Language(code, locale, NullTranslations(), None)
    merged = merge(layers, locale)
    site_language = layers[-1].locale_identifier if site else None
    return Language(code, locale, compile_catalog(merged), merged.locale_identifier or None,
                    site, site_language, untranslated(merged, locale))


def read_catalog(path: Path) -> Catalog:
    try:
        with path.open("rb") as handle:
            return read_po(handle, abort_invalid=True)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8(exc)}") from None
    except PoFileError as exc:  # Babel counts lines from 0, and says "on N"
        reason = re.sub(r" on \d+$", "", str(exc))
        raise ConfigError(f"{path}:{exc.lineno + 1}: not a valid .po catalog: {reason}: "
                          f"{exc.line!r}") from None
    except ValueError as exc:  # e.g. a Language header Babel does not know
        raise ConfigError(f"{path}: not a valid .po catalog: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def translated(message: Message) -> bool:
    strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
    return bool(message.id) and not message.fuzzy and all(strings)


def merge(layers: Sequence[Catalog], locale: Locale) -> Catalog:
    """The last layer's header and plural rule; each message from the last layer that
    translates it."""
    top = layers[-1]
    merged = Catalog(locale=locale, domain=DOMAIN, fuzzy=False)
    merged.mime_headers = top.mime_headers
    chosen = {message.id: message for layer in layers for message in layer
              if translated(message)}  # a later layer's message replaces an earlier one's
    for message in chosen.values():
        merged[message.id] = message
    return merged


def compile_catalog(catalog: Catalog) -> Translations:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@functools.cache
def shipped_ids() -> tuple[MessageId, ...]:
    """Every string digest itself writes: the ids of the shipped template catalog."""
    return tuple(message.id for message in read_catalog(TEMPLATE_CATALOG) if message.id)


def untranslated(catalog: Catalog, locale: Locale) -> tuple[str, ...]:
    if locale.language == SOURCE:
        return ()
    return tuple(key if isinstance(key, str) else key[0] for key in shipped_ids()
                 if not (found := catalog.get(key)) or not translated(found))


# ---------------------------------------------------------------- the quality gate


def language_findings(language: Language, html_lang: str | None = None) -> list[Finding]:
    """Warnings: English words for lack of a catalog, shipped strings left untranslated,
    a site catalog or an email `lang` that names another language than site.language."""
    return list(_findings(language, html_lang))


def _findings(language: Language, html_lang: str | None) -> Iterator[Finding]:
    name = language.locale.english_name
    if language.words_from is None:
        yield Finding("warning", "language-catalog", (
            f"site.language {language.code!r}: no catalog has {name} words (shipped: "
            f"{shipped_list()}), so they stay English while dates and numbers are {name}; "
            f"`digest translations init {language.code}` starts one in templates/"))
    if language.missing:
        quoted = ", ".join(repr(text) for text in language.missing[:SHOWN_MISSING])
        more = len(language.missing) - SHOWN_MISSING
        yield Finding("warning", "language-untranslated", (
            f"{len(language.missing)} of digest's strings have no {name} translation and "
            f"stay English: {quoted}{f' and {more} more' if more > 0 else ''}"))
    if language.site_catalog and not same_language(language.site_catalog_language, language):
        yield Finding("warning", "language-mismatch", (
            f"{language.site_catalog} says Language: {language.site_catalog_language or '(none)'}"
            f", but site.language is {language.code!r}"))
    if html_lang is not None and not same_language(html_lang, language):
        yield Finding("warning", "language-mismatch", (
            f'The <html> element has lang="{html_lang}", but site.language is '
            f"{language.code!r}: a template hard-codes the language?"))


HTML_LANG = re.compile(r"<html\b[^>]*?\slang=[\"']?([^\"'\s>]*)", re.IGNORECASE)


def html_lang(html: str) -> str | None:
    """The `lang` of the `<html>` element, or None (quality.py reports a missing one)."""
    found = HTML_LANG.search(html)
    return found.group(1) if found else None


def same_language(code: str | None, language: Language) -> bool:
    if not code:
        return False
    try:
        return Locale.parse(code.replace("-", "_")).language == language.locale.language
    except (UnknownLocaleError, ValueError, TypeError):
        return False


# ---------------------------------------------------------------- translations init


SITE_TEMPLATES = [("**.j2", "jinja2"), ("**.html", "jinja2"), ("**.txt", "jinja2")]


@dataclass(frozen=True)
class Started:
    """What `digest translations init` wrote."""

    path: Path
    strings: int
    filled: int  # taken from the shipped catalog


def init_catalog(code: str, templates_dir: Path) -> Started:
    """Write `templates_dir/LANG.po`: every string digest writes and every string in the
    site's own `{% trans %}` blocks, filled in from the shipped catalog when there is one.
    Never overwrites a catalog."""
    locale = parse_locale(code)
    path = templates_dir / f"{locale}.po"
    if path.exists():
        raise ConfigError(f"{path} already exists: edit it, or delete it to start again")
    catalog = new_catalog(locale, site_strings(templates_dir))
    templates_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False)
    path.write_bytes(buffer.getvalue())
    filled = sum(1 for message in catalog if message.id and translated(message))
    return Started(path, sum(1 for message in catalog if message.id), filled)


def site_strings(templates_dir: Path) -> Catalog:
    """The `{% trans %}` and `_()` strings of the site's own templates."""
    catalog = Catalog(domain=DOMAIN)
    if not templates_dir.is_dir():
        return catalog
    found = extract_from_dir(str(templates_dir), method_map=SITE_TEMPLATES,
                             options_map={"**": {"trimmed": "true"}})
    try:
        for filename, lineno, message, comments, context in found:
            catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                        context=context)
    except Exception as exc:  # a template that does not parse: name it
        raise ConfigError(f"{templates_dir}: cannot read the templates' strings: {exc}") from None
    return catalog


def new_catalog(locale: Locale, extracted: Catalog | None) -> Catalog:
    catalog = Catalog(locale=locale, domain=DOMAIN, project="digest", fuzzy=False)
    shipped = shipped_catalog(locale)
    for source in (read_catalog(TEMPLATE_CATALOG), extracted):
        for message in source or ():
            if message.id and message.id not in catalog:
                known = shipped.get(message.id) if shipped else None
                string = known.string if known and translated(known) else \
                    blank(message.id, catalog.num_plurals)
                catalog.add(message.id, string, locations=message.locations,
                            auto_comments=message.auto_comments)
    return catalog


def shipped_catalog(locale: Locale) -> Catalog | None:
    path = next((path for name in candidates(locale)
                 if (path := LOCALES_DIR / f"{name}.po").is_file()), None)
    return read_catalog(path) if path else None


def blank(message_id: MessageId, plurals: int) -> str | tuple[str, ...]:
    return ("",) * plurals if isinstance(message_id, tuple | list) else ""
