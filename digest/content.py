"""Load articles: markdown files with YAML (`---`) or TOML (`+++`) front matter.

Tolerant of what real sites write, and precise about what it cannot read: every
problem names the file and the field, and a bad file is skipped, not fatal.
"""

from __future__ import annotations

import os
import re
import stat
import string
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import frontmatter
import yaml

from digest import dating, sites, zola
from digest.cache import ArticleCache
from digest.errors import ConfigError, ContentError, not_utf8
from digest.text import (
    CONTROL_CHARACTERS,
    excerpt_from_markdown,
    excerpt_from_text,
    plain_field,
    remove_controls,
)
from digest.workers import process_pool

DEFAULT_CATEGORY = "Uncategorized"
FIRST_YEAR, LAST_YEAR = 1900, 9000
ARTICLE_SUFFIXES = (".md", ".markdown")
NOT_ARTICLES = frozenset({"readme.md", "readme.markdown"})
PARALLEL_FROM = 2000  # uncached files before parsing moves to a process pool
MAX_WORKERS = 4
NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # not on Windows, which has no FIFOs to open
URL_FIELDS = frozenset(sites.URL_FIELDS)
IMAGE_SCHEMES = frozenset({"http", "https"})


BOOL, TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
STR, SEQ, MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
INT, FLOAT, NULL = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:null"
PLAIN_TAGS = frozenset({STR, BOOL, INT, FLOAT, NULL})  # built at once, not deferred like a map
TRUE_FALSE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


def yaml_1_2_loader(base: type[Any]) -> type[Any]:
    """`base` reading plain scalars the YAML 1.2 way: `title: No` stays the text "No"
    (YAML 1.1 read yes/no/on/off as booleans), and `date: 2026-11-04` stays text for
    `parse_date`, which names the field when a date does not exist. Plain front matter
    is built by `plain_fields`."""
    resolvers = {
        first: [(tag, regexp) for tag, regexp in found if tag not in (BOOL, TIMESTAMP)]
        for first, found in base.yaml_implicit_resolvers.items()
    }

    class YamlLoader(base):  # type: ignore[misc]
        yaml_implicit_resolvers = resolvers

        def construct_document(self, node: yaml.Node) -> Any:
            fields = plain_fields(self, node)
            return super().construct_document(node) if fields is None else fields

    YamlLoader.add_implicit_resolver(BOOL, TRUE_FALSE, list("tTfF"))
    return YamlLoader


def plain_fields(loader: Any, node: yaml.Node) -> dict[str, Any] | None:
    """The usual front matter, text keys with text, numbers, booleans, nulls or lists of
    text, built straight from the nodes: PyYAML's general constructor took 40% of the
    parse. None for anything else (nested mappings, merge keys, explicit tags other than
    those), which PyYAML builds, in its order, with its errors."""
    if node.tag != MAP or not isinstance(node, yaml.MappingNode) or not all(
        is_text(key) and (is_plain(value) or is_text_list(value)) for key, value in node.value
    ):
        return None
    return {key.value: plain_value(loader, value) for key, value in node.value}


def plain_value(loader: Any, node: yaml.Node) -> Any:
    if node.tag == STR:
        return node.value
    if node.tag == SEQ:  # a sequence and its aliases share one list, as in PyYAML
        return loader.constructed_objects.setdefault(node, [item.value for item in node.value])
    return loader.construct_object(node)


def is_text(node: yaml.Node) -> bool:
    return node.tag == STR and isinstance(node, yaml.ScalarNode)


def is_plain(node: yaml.Node) -> bool:
    return node.tag in PLAIN_TAGS and isinstance(node, yaml.ScalarNode)


def is_text_list(node: yaml.Node) -> bool:
    return node.tag == SEQ and isinstance(node, yaml.SequenceNode) and all(map(is_text, node.value))


YamlLoader = yaml_1_2_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml if there
YAML_1_1_TIMESTAMP = dict(yaml.resolver.Resolver.yaml_implicit_resolvers["2"])[TIMESTAMP]
YAML_TIMESTAMPS = yaml.constructor.SafeConstructor()


class TomlHandler(frontmatter.default_handlers.BaseHandler):
    """`+++` front matter read with the standard library's tomllib: python-frontmatter
    only reads TOML when a third-party TOML package is installed, and otherwise
    silently returns no fields at all."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)
    START_DELIMITER = END_DELIMITER = "+++"

    def load(self, fm: str, **kwargs: object) -> Any:
        return tomllib.loads(fm)


TOML = TomlHandler()
HANDLERS = (frontmatter.YAMLHandler(), TOML)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    date: datetime
    excerpt: str
    url: str
    category: str = DEFAULT_CATEGORY
    tags: tuple[str, ...] = ()
    cover_image: str | None = None
    author: str | None = None
    source: str | None = None
    path: str | None = None  # a string: 15,000 Path objects cost 0.4 s to unpickle
    authors: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # other addresses of the same article (Zola, Hugo)
    publish_date: datetime | None = None  # Hugo's publishDate: not in an issue before it
    expiry_date: datetime | None = None  # Hugo's expiryDate: in no issue ending after it


@dataclass(frozen=True)
class Problem:
    path: Path | str  # a file, or a feed's label
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: {self.field}" if self.field else str(self.path)
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class LoadOptions:
    base_url: str
    timezone: ZoneInfo
    url_pattern: str = "{base_url}/posts/{slug}"
    root: str = ""  # the content folder (load_articles sets it): sections, page bundles
    section_patterns: tuple[tuple[str, str], ...] = ()  # (section, url_pattern): Hugo's
    lowercase_urls: bool = False  # Hugo's paths are lower case


@dataclass(frozen=True)
class LoadResult:
    articles: list[Article]
    problems: list[Problem]  # each skipped a file
    drafts: int = 0
    warnings: list[Problem] = field(default_factory=list)  # a field left out, file loaded
    folder_files: dict[str, int] = field(default_factory=dict)  # article files per folder
    older: int = 0  # files left unparsed, dated before the articles wanted

    @property
    def skipped_files(self) -> int:
        return len({problem.path for problem in self.problems})


class ArticleInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class Draft(Exception):
    """The file is a draft: skipped quietly."""


@dataclass(frozen=True)
class Older:
    """A file left unparsed: its front matter dates it `latest`, before the articles
    wanted (kept in the cache as such, and parsed when a load wants it)."""

    latest: date


@dataclass(frozen=True)
class Loaded:
    """An article that loaded with something left out."""

    article: Article
    warnings: tuple[Problem, ...]


Outcome = Article | Loaded | tuple[Problem, ...] | Older | None  # None: a draft


def load_articles(
    directory: Path, options: LoadOptions, *, strict: bool = False, cache: Path | None = None,
    since: datetime | None = None,
) -> LoadResult:
    """Every `*.md` / `*.markdown` file below `directory`, sorted by path.

    With `cache`, files unchanged since the last load are not parsed again; many
    changed files are parsed on every core. With `since`, a file whose front matter
    surely dates it before then is not parsed at all (nor checked): a send needs only
    its window's articles (see digest.dating).
    """
    if not directory.is_dir():
        raise ContentError(f"{directory}: content folder not found")
    for pattern in (options.url_pattern, *dict(options.section_patterns).values()):
        check_url_pattern(pattern)
    options = options if options.root else replace(options, root=str(directory))
    files = article_files(directory)
    store = ArticleCache.open(cache, repr(options))
    before = None if since is None else dating.older_than(since)
    known = {file: outcome for file, outcome in store.lookup(files).items()
             if not isinstance(outcome, Older) or (before and outcome.latest < before)}
    missing = [file for file in files if file not in known]
    for file, outcome in zip(missing, parse_many(missing, options, before), strict=True):
        store.put(file, outcome)
        known[file] = outcome
    store.save()
    loaded = collect((known[file] for file in files), strict)
    return replace(loaded, folder_files=folder_counts(files))


def folder_counts(files: Iterable[str]) -> dict[str, int]:
    """Article files per folder (not counting subfolders) as `folder_of` counts them."""
    return dict(Counter(map(folder_of, files)))


def folder_of(file: str) -> str:
    """The folder a file is one of: its own, but for the `index.md` of a page bundle
    (`posts/my-post/index.md`), the folder of the bundles (`posts`)."""
    folder = os.path.dirname(file)
    bundle = os.path.basename(file).startswith("index.")
    return os.path.dirname(folder) if bundle and os.path.dirname(folder) else folder


def article_files(directory: Path) -> list[str]:
    """Paths as strings: on 15,000 files, pathlib's sorting and globbing cost 0.5 s."""
    found = []
    for folder, folders, names in os.walk(directory):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [os.path.join(folder, name) for name in names if is_article_name(name)]
    return sorted(found)


def is_article_name(name: str) -> bool:
    """Markdown, but not hidden files, section pages (`_index.md`) or a folder's README."""
    return (name.endswith(ARTICLE_SUFFIXES) and not name.startswith((".", "_"))
            and name.lower() not in NOT_ARTICLES)


def parse_many(files: list[str], options: LoadOptions, before: date | None = None
               ) -> list[Outcome]:
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(files) < PARALLEL_FROM or workers < 2:
        return [outcome_of(file, options, before) for file in files]
    with process_pool(workers, fork=True) as pool:  # forked: see workers.py
        chunk = max(1, len(files) // (workers * 4))
        return list(pool.map(partial(outcome_of, options=options, before=before), files,
                             chunksize=chunk))


def outcome_of(file: str, options: LoadOptions, before: date | None = None) -> Outcome:
    """The file's article; with `before`, an `Older` for a file dated before that day."""
    if before is not None and (older := older_file(file, before)) is not None:
        return older
    warnings: list[Problem] = []
    try:
        article = read_article(Path(file), options, warnings)
        return Loaded(article, tuple(warnings)) if warnings else article
    except Draft:
        return None
    except ArticleInvalid as exc:
        return tuple(exc.problems)


def older_file(file: str, before: date) -> Older | None:
    """An `Older` for a file whose front matter surely dates it before `before`, read
    without parsing it (and without a Path: most of an archive's files come here); None
    for any other, and for a file that cannot be read or split (parsed, it says why)."""
    try:
        text = read_regular_file(file).decode("utf-8").removeprefix("\ufeff")
        raw, _, handler = split_text(text, file)
    except (OSError, UnicodeDecodeError, ArticleInvalid):
        return None
    day = dating.latest_day(raw, handler is TOML, file)
    return Older(day) if day is not None and day < before else None


def collect(outcomes: Iterable[Outcome], strict: bool) -> LoadResult:
    articles: list[Article] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    drafts = older = 0
    for outcome in outcomes:
        if isinstance(outcome, Older):
            older += 1
            continue
        if isinstance(outcome, Loaded) and strict:
            raise ContentError("; ".join(map(str, outcome.warnings)))
        if isinstance(outcome, Loaded):
            articles.append(outcome.article)
            warnings.extend(outcome.warnings)
        elif isinstance(outcome, Article):
            articles.append(outcome)
        elif outcome is None:
            drafts += 1
        elif strict:
            raise ContentError("; ".join(map(str, outcome)))
        else:
            problems.extend(outcome)
    return LoadResult(articles, problems, drafts, warnings, older=older)


def check_url_pattern(pattern: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
        unknown = sorted(names - URL_FIELDS)
        if not unknown:
            pattern.format(**dict.fromkeys(URL_FIELDS, "x"))
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"content.url_pattern: invalid pattern {pattern!r}: {exc}") from None
    if unknown:
        raise ConfigError(
            f"content.url_pattern: unknown placeholder {{{unknown[0]}}} "
            f"(known: {', '.join(sorted(URL_FIELDS))})"
        )


def read_article(path: Path, options: LoadOptions,
                 warnings: list[Problem] | None = None) -> Article:
    try:
        text = read_regular_file(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(path, None, not_utf8(exc)) from None
    except OSError as exc:
        raise invalid(path, None, f"cannot read: {exc.strerror}") from None
    raw, body, handler = split_text(text.removeprefix("\ufeff"), path)
    meta = parse_front_matter(raw, handler, path, first_line(text, raw))
    return build_article(meta, body, path, options, warnings)


def read_regular_file(path: Path | str) -> bytes:
    """Opening a FIFO waits for a writer, and a device may never end: the file is opened
    without waiting, and read only if it is a regular file (unbuffered: in one read)."""
    with open(os.open(path, os.O_RDONLY | NONBLOCK), "rb", buffering=0) as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise invalid(path, None, "not a regular file")
        return file.read()


def invalid(path: Path | str, field: str | None, message: str) -> ArticleInvalid:
    return ArticleInvalid([Problem(Path(path), field, message)])


def split_text(text: str, path: Path | str) -> tuple[str, str, Any]:
    """The front matter's text, the body, and the handler that reads the front matter."""
    if not text.strip():
        raise invalid(path, None, "empty file")
    for handler in HANDLERS:
        if handler.detect(text):
            try:
                raw, body = handler.split(text)
            except ValueError:
                raise invalid(path, "front matter", "is not closed (no second "
                              f"{handler.START_DELIMITER} line)") from None
            return raw, body, handler
    raise invalid(path, None, "no front matter (expected a --- or +++ block at the top)")


def first_line(text: str, raw: str) -> int:
    """The line of `text` where its front matter `raw` starts."""
    return text[: text.find(raw)].count("\n") + 1 if raw else 1


def parse_front_matter(raw: str, handler: Any, path: Path, first_line: int) -> dict[str, Any]:
    """The fields as a mapping; `first_line` is where `raw` starts in the file."""
    try:
        if isinstance(handler, TomlHandler):
            meta: Any = handler.load(raw)
        else:
            meta = yaml.load(raw, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        reason = yaml_reason(exc, first_line)
        raise invalid(path, "front matter", f"invalid YAML: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise invalid(path, "front matter", f"invalid TOML: {exc}") from None
    except ValueError as exc:  # a value PyYAML cannot build for an explicit tag: `!!int ten`
        raise invalid(path, "front matter", f"invalid value: {exc}") from None
    except RecursionError:  # tomllib on `x = [[[[…` thousands deep
        raise invalid(path, "front matter", "is nested too deeply") from None
    except Exception:  # PyYAML fails on some explicit tags (`!!bool maybe`,
        # `!!timestamp nope`) with KeyError or AttributeError: still the file's problem
        raise invalid(path, "front matter",
                      "invalid value: a tagged value (such as `!!bool maybe`) YAML cannot read"
                      ) from None
    if meta is None:
        raise invalid(path, "front matter", "is empty")
    if not isinstance(meta, dict):
        kind = type(meta).__name__
        raise invalid(path, "front matter", f"is not a mapping of fields (found a {kind})")
    if "\\" in raw or CONTROL_CHARACTERS.search(raw):  # escaped ("\a") or, in TOML, as is
        meta = {key: without_controls(value) for key, value in meta.items()}
    fields: dict[str, Any] = meta
    return fields


def yaml_reason(exc: yaml.YAMLError, first_line: int) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + first_line})" if mark is not None else problem


def build_article(meta: Mapping[str, Any], body: str, path: Path, options: LoadOptions,
                  warnings: list[Problem] | None = None) -> Article:
    """Run every field parser, collect every problem, then build the Article. What is
    dropped from an article that still loads is added to `warnings`."""
    if meta.get("draft") is True or meta.get("published") is False:
        raise Draft
    meta = zola.with_taxonomies(meta)
    place = sites.place_of(path, options.root)
    stem_date, name_slug = sites.split_file_name(place.name)
    problems: list[Problem] = []

    def field(name: str, parse: Any, *args: Any) -> Any:
        try:
            return parse(*args)
        except sites.FieldError as exc:
            problems.append(Problem(path, exc.field, str(exc)))
        except ValueError as exc:
            problems.append(Problem(path, name, str(exc)))
        return None

    title = field("title", parse_title, meta.get("title"))
    page_path = field("path", zola.page_path, meta.get("path"))
    when = field("date", parse_date, sites.date_of(meta), stem_date or zola.path_date(page_path),
                 options.timezone)
    tags = field("tags", parse_tags, meta.get("tags"))
    category = field("category", parse_category, sites.categories_of(meta, place))
    slug = field("slug", parse_slug, meta.get("slug"),
                 zola.path_slug(page_path) if page_path else name_slug)
    authors = parse_authors(meta)
    aliases = field("aliases", zola.alias_urls, options.base_url, meta.get("aliases"))
    publish, expiry = (field(key, optional_date, meta.get(key), options.timezone)
                       for key in ("publishDate", "expiryDate"))
    url = None if problems else zola.path_url(options.base_url, page_path) if page_path \
        else field("url", article_url, options, meta, place, title, slug, when)
    image, value = sites.cover_of(meta)
    cover_image = field(image, cover_address, options.base_url, url, place, value)
    if problems:
        raise ArticleInvalid(problems)
    assert url is not None  # made whenever nothing else failed
    return Article(
        slug=slug,
        title=title,
        date=when,
        excerpt=parse_excerpt(meta, body, title),
        url=url,
        category=category,
        tags=tags,
        cover_image=web_image(cover_image, Problem(path, image, ""), warnings),
        author=", ".join(authors) or None,
        source=text_or_none(meta.get("source")),
        path=str(path),
        authors=authors,
        aliases=aliases,
        publish_date=publish,
        expiry_date=expiry,
    )


def parse_title(value: Any) -> str:
    """One line of text, character references decoded (`&quot;` is a quote mark)."""
    if not isinstance(value, str | int | float | None):
        raise ValueError(f"must be text, not a {type(value).__name__}")
    title = plain_field(str(value)) if value is not None else ""
    if not title:
        raise ValueError("missing (every article needs a title)")
    return title


def parse_authors(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """`author: Name`, or `authors` (Zola, Hugo): a list of names or one name; a name
    may be a mapping with a `name` (Jekyll themes). What holds no name is left out."""
    value = meta.get("author") if meta.get("author") is not None else meta.get("authors")
    names = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(filter(None, map(author_name, names))))


def author_name(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("name")
    return plain_field(str(value)) if isinstance(value, str | int | float) else ""


def without_controls(value: Any) -> Any:
    """Text, and lists of text, without control characters."""
    if isinstance(value, str):
        return remove_controls(value)
    if isinstance(value, list):
        return [remove_controls(item) if isinstance(item, str) else item for item in value]
    return value


def parse_slug(value: Any, from_name: str) -> str:
    """The `slug` field, or else the file name's, which must be UTF-8 to be part of a URL."""
    slug = parse_text(value, "slug")
    if slug is None and not is_utf8(from_name):
        raise ValueError("missing, and the file name is not UTF-8 (add a slug field)")
    return slug or from_name


def is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (os.walk gives them as surrogates)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise ValueError(f"must be non-empty text, not {value!r}")
    return str(value).strip()


def parse_date(value: Any, fallback: date | None, tz: ZoneInfo) -> datetime:
    """A date, a datetime, or a string holding either; naive means the newsletter's zone.
    Years 1900 to 9000 only: `9999-12-31T23:59:59-14:00` is in the year 10000 in UTC, past
    the last datetime Python has, and a year so far out is a mistake anyway."""
    if value is None:
        if fallback is None:
            raise ValueError("missing (and the file name does not start with YYYY-MM-DD-)")
        value = fallback
    when = zoned(parse_date_text(value) if isinstance(value, str) else value, tz)
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        raise ValueError(f"{str(value)!r} is out of range (use a year from {FIRST_YEAR} "
                         f"to {LAST_YEAR})")
    return when


def zoned(value: Any, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=tz)
    raise ValueError(f"cannot read {value!r} as a date")


def parse_date_text(text: str) -> date:
    """ISO 8601 (a plain date is its midnight), `2026/11/03`, a YAML 1.1 timestamp or an
    RFC 2822 date."""
    cleaned = text.strip()
    for parse in (parse_iso_date, parse_yaml_timestamp, parsedate_to_datetime,
                  sites.month_name_date):
        try:
            return parse(cleaned)
        except (TypeError, ValueError, IndexError):
            pass
    raise ValueError(f"cannot read {text!r} as a date (use YYYY-MM-DD or an ISO 8601 date-time)")


def parse_iso_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("/", "-"))


def parse_yaml_timestamp(text: str) -> date:
    """What YAML 1.1 reads as a timestamp, such as `2026-1-4 9:30:00 +1`, which ISO 8601
    does not allow, built by PyYAML's own code: unquoted dates keep their old values."""
    if not YAML_1_1_TIMESTAMP.match(text):
        raise ValueError(text)
    return YAML_TIMESTAMPS.construct_yaml_timestamp(yaml.ScalarNode(TIMESTAMP, text))


def parse_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str | int | float) for t in value):
        raise ValueError(f"must be a list or a comma-separated string, not {value!r}")
    return tuple(dict.fromkeys(filter(None, map(plain_field, map(str, value)))))


def parse_category(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return DEFAULT_CATEGORY
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise ValueError(f"must be a name or a list of names, not {value!r}")
    return plain_field(str(value)) or DEFAULT_CATEGORY


def parse_excerpt(meta: Mapping[str, Any], body: str, title: str) -> str:
    """The excerpt, description or summary field, else the body's first paragraph."""
    for key in ("excerpt", "description", "summary"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return excerpt_from_text(value)
    return excerpt_from_markdown(body, title=title)


def text_or_none(value: Any) -> str | None:
    return str(value).strip() or None if isinstance(value, str | int | float) else None


def web_image(url: str | None, where: Problem, warnings: list[Problem] | None) -> str | None:
    """`url` if it is an http(s) address; otherwise None, with a warning saying why
    (`javascript:`, `data:`… would run or embed whatever the front matter holds)."""
    scheme = url.partition(":")[0].lower() if url else "https"  # absolute: urljoin made it
    if scheme in IMAGE_SCHEMES:
        return url
    if warnings is not None:
        warnings.append(replace(where, message=f"a {scheme}: address, not http or https: "
                                "the cover image is left out"))
    return None


def absolute(base_url: str, value: Any) -> str | None:
    """Image paths like `/images/x.jpg` are made absolute against the site."""
    text = text_or_none(value)
    try:
        return urljoin(base_url.rstrip("/") + "/", text) if text else None
    except ValueError as exc:  # `http://[::1`: Invalid IPv6 URL
        raise ValueError(f"cannot read {text!r} as an address ({exc})") from None


def optional_date(value: Any, tz: ZoneInfo) -> datetime | None:
    return None if value in (None, "") else parse_date(value, None, tz)


def cover_address(base_url: str, url: str | None, place: sites.Place, value: Any) -> str | None:
    """The cover image's absolute address (see sites.cover_url)."""
    text = text_or_none(value)
    if not text or url is None:
        return absolute(base_url, value)
    try:
        return sites.cover_url(text, base_url=base_url, url=url, place=place)
    except ValueError as exc:  # `http://[::1`: Invalid IPv6 URL
        raise ValueError(f"cannot read {text!r} as an address ({exc})") from None


def article_url(options: LoadOptions, meta: Mapping[str, Any], place: sites.Place, title: str,
                slug: str, when: datetime) -> str:
    """The generator's URL (see digest.sites); the dates in the pattern are the
    newsletter's calendar days, like its windows."""
    categories = sites.all_categories(meta, place)
    pattern = dict(options.section_patterns).get(place.section, options.url_pattern)
    needed = sites.URL_FIELDS if sites.override_of(meta) else sites.needed_fields(pattern)
    fields = sites.url_fields(base_url=options.base_url, slug=slug, title=title, meta=meta,
                              place=place, when=when.astimezone(options.timezone),
                              category=next(iter(categories), DEFAULT_CATEGORY),
                              categories=categories, needed=needed)
    return sites.page_url(pattern, meta, fields, lowercase=options.lowercase_urls)


slugify = sites.slugify
