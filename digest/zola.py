"""Front matter the way Zola writes it (https://www.getzola.org/documentation/content/page/).

`path = "2024/11/28/Rust-1.83.0"` is where the page is published (`base_url/path/`), and,
on sites that put the date in the path, its date; `authors = [...]`; `[taxonomies]`
holding `tags` and `categories`; `aliases`, the old addresses of the same page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import quote, urljoin

# An optional section (`inside-rust/`), then the date: `inside-rust/2024/11/28/title`.
DATED_PATH = re.compile(r"^(?:[^/]+/)?(\d{4})/(\d{2})/(\d{2})/")


def page_path(value: Any) -> str | None:
    """The `path` key without its outer slashes (Zola removes a leading one)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip("/ "):
        raise ValueError(f"must be a non-empty path such as \"2024/11/28/title\", not {value!r}")
    return value.strip().strip("/")


def path_url(base_url: str, path: str) -> str:
    """Where Zola publishes a page with this path: the base URL, the path, a slash."""
    return f"{base_url.rstrip('/')}/{quote(path)}/"


def path_date(path: str | None) -> date | None:
    """The date of `YYYY/MM/DD/…`, after an optional section; None when there is none."""
    found = DATED_PATH.match(path or "")
    if not found:
        return None
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None


def path_slug(path: str) -> str:
    """The last part of the path: `2024/11/28/Rust-1.83.0` → `Rust-1.83.0`."""
    return path.rsplit("/", 1)[-1]


def with_taxonomies(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """`[taxonomies]` tags and categories as top-level fields, which win when both are set."""
    taxonomies = meta.get("taxonomies")
    if not isinstance(taxonomies, Mapping):
        return meta
    found = {key: taxonomies[key] for key in ("tags", "categories") if key in taxonomies}
    return {**found, **meta} if found else meta


def alias_urls(base_url: str, value: Any) -> tuple[str, ...]:
    """Each alias as an absolute URL against the site: `/old.html` → `base_url/old.html`."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"must be a list of paths, not {value!r}")
    base = base_url.rstrip("/") + "/"
    return tuple(dict.fromkeys(urljoin(base, item.strip().lstrip("/"))
                               for item in value if item.strip()))
