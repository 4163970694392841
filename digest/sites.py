"""The site generators' own rules for an article's URL, name, categories and cover image.

Pure: front matter and a path in, text out. `content.build_article` calls these so that
an article's link in the email is the one Hugo or Jekyll gives the page:

- front matter `url` (Hugo) or `permalink` (Jekyll, which may hold `:placeholders`)
  replaces the pattern; a relative one is joined to `site.base_url`;
- `dir/index.md` is a page bundle named after its folder (Hugo, Zola);
- `content.url_pattern` may use `{year}` `{month}` `{day}` `{slug}` `{title}`
  `{filename}` `{title_slug}` `{slug_or_title}` `{category}` `{categories}` `{section}`
  `{dir}` `{output_ext}`;
- a post under a `_posts` folder reads `categories: a b` as two categories (Jekyll);
- the cover image comes from the first of COVER_FIELDS that is set.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

URL_FIELDS = ("base_url", "slug", "title", "filename", "title_slug", "slug_or_title", "year",
              "month", "day", "category", "categories", "section", "dir", "output_ext")
BUNDLE_NAMES = frozenset({"index.md", "index.markdown"})
JEKYLL_NAME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")  # a post's file name, less .md
OVERRIDES = ("url", "permalink")  # Hugo's, then Jekyll's
COVER_FIELDS = ("coverImage", "image", "featured_image", "cover", "images", "thumbnail",
                "heroImage")
DATE_FIELDS = ("date", "publishDate", "pubDate")  # Hugo's fallback, then Astro's
JEKYLL_TOKEN = re.compile(r":(year|month|day|title|slug|categories|output_ext|i_month|"
                          r"i_day|short_year)\b")
JEKYLL_FIELDS = {"year": "year", "month": "month", "day": "day", "title": "title",
                 "slug": "slug", "categories": "categories", "output_ext": "output_ext",
                 "i_month": "month", "i_day": "day", "short_year": "year"}
REPEATED_SLASHES = re.compile(r"(?<!:)/{2,}")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")  # what urlsplit reads as a scheme


@dataclass(frozen=True)
class Place:
    """Where an article's file sits below the content folder."""

    name: str  # the file name without its extension; a bundle's folder name
    section: str  # the first folder below the content folder ("" at the top)
    folder: str  # the folders below the content folder, a bundle's own left out
    bundle: bool
    jekyll_post: bool  # under a `_posts` folder: Jekyll's rules for categories


def place_of(path: PurePath, root: str | None) -> Place:
    """The article's name and folders; `root` is the content folder (None: unknown). An
    `index.md` directly in the content folder is a page of its own, not a bundle. String
    operations, not pathlib's: this runs for every file of a 15,000-article site."""
    folder, name = os.path.split(os.fspath(path))
    top = (root or "").rstrip(os.sep)
    bundle = name.lower() in BUNDLE_NAMES and bool(os.path.basename(folder)) and folder != top
    page_folder, page_name = os.path.split(folder) if bundle else (folder, name)
    below = page_folder[len(top) + 1:] if top and page_folder.startswith(top + os.sep) else ""
    parts = below.split(os.sep) if below else []
    return Place(page_name if bundle else os.path.splitext(name)[0],
                 parts[0] if parts else "", "/".join(parts), bundle,
                 f"{os.sep}_posts{os.sep}" in f"{os.sep}{folder}{os.sep}")


def categories_of(meta: Mapping[str, Any], place: Place) -> Any:
    """`category`, else `categories`; in a Jekyll post `categories: a b` is two of them."""
    if "category" in meta:
        return meta["category"]
    value = meta.get("categories")
    if place.jekyll_post and isinstance(value, str):
        return value.split()
    return value


def all_categories(meta: Mapping[str, Any], place: Place) -> list[str]:
    value = categories_of(meta, place)
    items = value if isinstance(value, list) else [] if value is None else [value]
    return [" ".join(str(item).split()) for item in items if isinstance(item, str | int | float)]


@lru_cache(maxsize=64)
def needed_fields(pattern: str) -> frozenset[str]:
    """The placeholders `pattern` uses, and `base_url`, which page_url always needs."""
    names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name}
    return frozenset(names | {"base_url"})


def url_fields(*, base_url: str, slug: str, title: str, meta: Mapping[str, Any], place: Place,
               when: datetime, category: str, categories: list[str],
               needed: Collection[str] = URL_FIELDS) -> dict[str, str]:
    """What each `needed` placeholder of `content.url_pattern` stands for (only those are
    made: this runs for every article); `when` is local."""
    own_slug = meta.get("slug")
    makers: dict[str, Callable[[], str]] = {
        "base_url": lambda: base_url.rstrip("/"), "slug": lambda: quote(slug),
        "title": lambda: quote(slug),
        "filename": lambda: quote(place.name, errors="surrogateescape"),
        "title_slug": lambda: urlize(title),
        "slug_or_title": lambda: quote(str(own_slug).strip()) if own_slug else urlize(title),
        "year": lambda: f"{when.year:04d}", "month": lambda: f"{when.month:02d}",
        "day": lambda: f"{when.day:02d}", "category": lambda: slugify(category),
        "categories": lambda: "/".join(quote(c.lower()) for c in dict.fromkeys(categories)),
        "section": lambda: quote(place.section, errors="surrogateescape"),
        "dir": lambda: quote(place.folder, errors="surrogateescape"),
        "output_ext": lambda: ".html",
    }
    return {name: makers[name]() for name in needed}


def page_url(pattern: str, meta: Mapping[str, Any], fields: Mapping[str, str], *,
             lowercase: bool = False) -> str:
    """The front matter's `url` or `permalink`, else `pattern` filled in (its path below
    `base_url` in lower case with `lowercase`, as Hugo does); repeated slashes left by an
    empty placeholder (`/{categories}/` with none) become one, as Jekyll does."""
    override = override_of(meta)
    if override is None:
        url = tidy(pattern.format(**fields))
        base = fields["base_url"]
        return base + url[len(base):].lower() if lowercase and url.startswith(base) else url
    expanded = JEKYLL_TOKEN.sub(lambda m: fields[JEKYLL_FIELDS[m[1]]], override)
    return tidy(joined(fields["base_url"], expanded))


def override_of(meta: Mapping[str, Any]) -> str | None:
    for key in OVERRIDES:
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise FieldError(key, f"must be a path or an address, not {value!r}")
        return value.strip()
    return None


class FieldError(ValueError):
    """A bad value in one named front-matter field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def joined(base_url: str, value: str) -> str:
    """An absolute address as is; a path (with or without its leading slash) below
    `base_url`, whose own path is kept (`https://x.org/blog` + `/a/` → `…/blog/a/`)."""
    if urlsplit(value).scheme in ("http", "https"):
        return value
    return f"{base_url.rstrip('/')}/{value.lstrip('/')}"


def tidy(url: str) -> str:
    return REPEATED_SLASHES.sub("/", url)


def date_of(meta: Mapping[str, Any]) -> Any:
    """`date`, else Hugo's `publishDate`, else Astro's `pubDate` (None: none of them)."""
    return next((meta[key] for key in DATE_FIELDS if meta.get(key) is not None), None)


def split_file_name(stem: str) -> tuple[date | None, str]:
    """`2021-03-04-slug` → (2021-03-04, "slug"); `slug` → (None, "slug")."""
    match = JEKYLL_NAME.match(stem)
    if not match:
        return None, stem
    try:
        return date(int(match[1]), int(match[2]), int(match[3])), match[4]
    except ValueError:
        return None, stem


def month_name_date(text: str) -> datetime:
    """`Nov 25 2026` or `November 25, 2026`, as Astro's blog template writes `pubDate`."""
    for pattern in ("%b %d %Y", "%B %d %Y", "%b %d, %Y", "%B %d, %Y"):
        try:
            return datetime.strptime(" ".join(text.split()), pattern)
        except ValueError:
            pass
    raise ValueError(text)


def cover_of(meta: Mapping[str, Any]) -> tuple[str, Any]:
    """(field, value) of the first cover image field that is set: `coverImage`, `image`
    (or its `path`), `featured_image`, `cover.image`, `images[0]`, `thumbnail`."""
    for key in COVER_FIELDS:
        value = meta.get(key)
        if isinstance(value, Mapping):
            value = value.get("image" if key == "cover" else "path")
        elif isinstance(value, list) and key == "images":
            value = value[0] if value else None
        if value not in (None, ""):
            return key, value
    return "coverImage", None


def cover_url(value: str, *, base_url: str, url: str, place: Place) -> str:
    """A relative image of a page bundle sits beside the page (Hugo's page resources); in a
    Jekyll post it is below `site.base_url` (url and baseurl); any other is joined to
    `site.base_url` as a browser would (`/images/x.jpg` from the host, as Hugo's absURL)."""
    relative = not SCHEME.match(value) and not value.startswith("//")
    if place.bundle and relative and not value.startswith("/"):
        return urljoin(url if url.endswith("/") else f"{url}/", value)
    if place.jekyll_post and relative:  # Jekyll's absolute_url: below url + baseurl
        return joined(base_url, value)
    return urljoin(base_url.rstrip("/") + "/", value)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "category"


def urlize(text: str) -> str:
    """A title as Hugo's `urlize` makes it a path: lower case, spaces to hyphens, letters,
    digits, `-`, `_` and `.` kept (accented letters too), anything else dropped."""
    lowered = unicodedata.normalize("NFC", text).lower()
    kept = "".join(c if c.isalnum() or c in "-_." else " " if c.isspace() else "" for c in lowered)
    return quote("-".join(kept.split()))

