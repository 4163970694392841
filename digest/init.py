"""`digest init`: read a site generator's own configuration and write a `digest.toml`.

The library finds and guesses (`detect`) and writes text (`config_text`); the CLI prints.
Each value says where it came from, so the user sees what was read and what was guessed.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from digest.config import CONFIG_NAME
from digest.errors import DigestError

GUESSED_URL = "https://example.com"
HUGO_FILES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json", "config.toml", "config.yaml",
              "config.yml", "config.json")
HUGO_DEFAULT = "{base_url}/{dir}/{slug}/"
HUGO_TOKENS = {"year": "{year}", "month": "{month}", "day": "{day}", "slug": "{slug_or_title}",
               "title": "{title_slug}", "section": "{section}", "sections": "{dir}",
               "filename": "{filename}", "contentbasename": "{filename}",
               "slugorfilename": "{slug}", "slugorcontentbasename": "{slug}"}
JEKYLL_STYLES = {"date": "/:categories/:year/:month/:day/:title:output_ext",
                 "pretty": "/:categories/:year/:month/:day/:title/",
                 "none": "/:categories/:title:output_ext"}
JEKYLL_TOKENS = {"year": "{year}", "month": "{month}", "day": "{day}", "title": "{title}",
                 "slug": "{slug}", "categories": "{categories}", "output_ext": "{output_ext}",
                 "i_month": "{month}", "i_day": "{day}"}
TOKEN = re.compile(r":([a-z_]+)")
ELEVENTY_FILES = (".eleventy.js", "eleventy.config.js", "eleventy.config.mjs",
                  "eleventy.config.cjs", ".eleventy.cjs")
ASTRO_FILES = ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.mts")
NEXT_FILES = ("next.config.js", "next.config.mjs", "next.config.ts")
SKIPPED_FOLDERS = frozenset({"node_modules", "_site", "public", "previews", "dist", "build",
                             "resources", "vendor", "outbox", "_drafts", "templates"})
ARTICLE_SUFFIXES = (".md", ".markdown", ".mdx")


@dataclass(frozen=True)
class Value:
    """One setting `init` writes, and where it came from."""

    key: str
    value: str | dict[str, str]
    source: str  # "hugo.toml baseURL", or why it was guessed
    guessed: bool = False


@dataclass
class Found:
    """What `detect` read: the generator, its config file, and the settings."""

    generator: str
    config_file: str | None
    values: dict[str, Value] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what init could not carry over

    def set(self, key: str, value: str | dict[str, str], source: str, *,
            guessed: bool = False) -> None:
        self.values[key] = Value(key, value, source, guessed)

    @property
    def found(self) -> list[Value]:
        return [value for value in self.values.values() if not value.guessed]

    @property
    def guessed(self) -> list[Value]:
        return [value for value in self.values.values() if value.guessed]


def detect(root: Path, *, name: str | None = None, base_url: str | None = None,
           content: str | None = None) -> Found:
    """The site in `root`: Hugo, Zola, Jekyll, Eleventy, Astro, Next.js or a folder of markdown;
    the options, when given, win over what was read."""
    for reader in (read_hugo, read_zola, read_jekyll, read_eleventy, read_astro, read_next):
        found = reader(root)
        if found is not None:
            break
    else:
        found = read_markdown_folder(root)
    fill_defaults(found, root)
    for key, value in (("site.name", name), ("site.base_url", base_url),
                       ("content.dir", content)):
        if value is not None:
            found.set(key, value, "from the command line")
    folder = str(found.values["content.dir"].value)
    if not (root / folder).is_dir():
        found.notes.append(f"{folder}/ does not exist: set content.dir to the folder of your "
                           "markdown articles")
    return found


def fill_defaults(found: Found, root: Path) -> None:
    defaults = (("site.name", root.resolve().name or "Newsletter", "the folder's name"),
                ("site.base_url", GUESSED_URL, "no base URL found: set your site's address"),
                ("site.language", "en", "no language found"),
                ("content.dir", "content", "no articles folder found"),
                ("content.url_pattern", "{base_url}/posts/{slug}",
                 "digest's default: say where your pages live"))
    for key, value, why in defaults:
        if key not in found.values:
            found.set(key, value, why, guessed=True)


# --- Hugo -------------------------------------------------------------------------------


def read_hugo(root: Path) -> Found | None:
    folder = root / "config" / "_default"
    candidates = [root / name for name in HUGO_FILES] + [folder / name for name in HUGO_FILES]
    path = next((p for p in candidates if p.is_file() and is_hugo(p, root)), None)
    if path is None:
        return None
    data = read_data(path)
    if path.parent == folder:
        data = {**merged_folder(folder), **data}
    found = Found("Hugo", rel(path, root))
    where = rel(path, root)
    put(found, "site.name", data.get("title"), f"{where} title")
    put(found, "site.base_url", data.get("baseURL") or data.get("baseurl"), f"{where} baseURL")
    language = data.get("languageCode") or data.get("defaultContentLanguage")
    put(found, "site.language", language, f"{where} languageCode")
    put(found, "site.timezone", data.get("timeZone"), f"{where} timeZone")
    content_dir, source = hugo_content_dir(data, where)
    found.set("content.dir", content_dir, source, guessed=source.startswith("Hugo's"))
    found.set("content.static_dir", str(data.get("staticDir") or "static"),
              f"{where} staticDir" if data.get("staticDir") else "Hugo's default static/")
    hugo_pattern(found, data, where)
    if not data.get("disablePathToLower"):
        found.set("content.lowercase_urls", "true", "Hugo writes paths in lower case")
    return found


def is_hugo(path: Path, root: Path) -> bool:
    """`config.toml` is Hugo's only beside Hugo's folders or with a baseURL (Zola's has
    base_url)."""
    if path.name.startswith("hugo.") or path.parent.name == "_default":
        return True
    data = read_data(path)
    return "baseURL" in data or "baseurl" in data or (root / "archetypes").is_dir()


def merged_folder(folder: Path) -> dict[str, Any]:
    """`config/_default/`: params.toml, languages.toml, permalinks.toml… as top-level keys;
    `languages.de.toml` as the `de` entry of `languages`."""
    merged: dict[str, Any] = {}
    for path in sorted(folder.iterdir()):
        key, _, code = path.stem.partition(".")
        if key in ("hugo", "config") or path.suffix not in READERS:
            continue
        if code:
            merged.setdefault(key, {})[code] = read_data(path)
        else:
            merged[key] = {**merged.get(key, {}), **read_data(path)}
    return merged


def hugo_content_dir(data: Mapping[str, Any], where: str) -> tuple[str, str]:
    """contentDir, else the default language's own contentDir, else `content`."""
    if data.get("contentDir"):
        return str(data["contentDir"]), f"{where} contentDir"
    languages = data.get("languages") or {}
    default = data.get("defaultContentLanguage") or next(iter(languages), None)
    own = languages.get(default) if isinstance(languages, Mapping) else None
    if isinstance(own, Mapping) and own.get("contentDir"):
        return str(own["contentDir"]), f"{where} languages.{default}.contentDir"
    return "content", "Hugo's default content/"


def hugo_pattern(found: Found, data: Mapping[str, Any], where: str) -> None:
    """Hugo's default `/section/name/` for every section, and `[permalinks]` per section;
    `uglyURLs` (for all, or per section) gives `name.html` instead of `name/`."""
    links = data.get("permalinks") or {}
    if isinstance(links.get("page"), Mapping):  # Hugo 0.120's [permalinks.page]
        links = links["page"]
    ugly = data.get("uglyURLs")
    found.set("content.url_pattern", uglified(HUGO_DEFAULT, ugly is True),
              "Hugo's default /section/name/" + (", uglyURLs" if ugly is True else ""))
    patterns = {}
    for section, permalink in links.items():
        translated = translate(str(permalink), HUGO_TOKENS)
        if translated is None:
            found.notes.append(f"permalinks.{section} {permalink!r} uses a token digest does "
                               "not know: Hugo's default pattern is used for that section")
            continue
        own = ugly.get(section) if isinstance(ugly, Mapping) else ugly
        patterns[section] = uglified("{base_url}/" + translated.lstrip("/"), own is True)
    if patterns:
        found.set("content.section_url_patterns", patterns, f"{where} permalinks")


def uglified(pattern: str, ugly: bool) -> str:
    return pattern.rstrip("/") + ".html" if ugly else pattern


def translate(permalink: str, tokens: Mapping[str, str]) -> str | None:
    """A generator's `:token` pattern in digest's `{field}` words; None on an unknown token."""
    unknown = [name for name in TOKEN.findall(permalink) if name not in tokens]
    if unknown or "{" in permalink:
        return None
    return TOKEN.sub(lambda match: tokens[match[1]], permalink)


# --- Jekyll -----------------------------------------------------------------------------


# --- Zola -------------------------------------------------------------------------------


def read_zola(root: Path) -> Found | None:
    """Zola's `config.toml` has `base_url` (Hugo's has baseURL). A page is served at
    base_url/section/slug/ unless its `path` says otherwise, which digest reads per page."""
    path = root / "config.toml"
    if not path.is_file():
        return None
    data = read_data(path)
    if "base_url" not in data:
        return None
    found = Found("Zola", "config.toml")
    put(found, "site.name", data.get("title"), "config.toml title")
    put(found, "site.base_url", data.get("base_url"), "config.toml base_url")
    put(found, "site.language", data.get("default_language"), "config.toml default_language")
    found.set("content.dir", "content", "Zola's content folder")
    found.set("content.static_dir", "static", "Zola's static folder")
    found.set("content.url_pattern", "{base_url}/{dir}/{slug}/",
              "Zola's default: section/slug/ (a page's `path` wins)")
    taxonomies = {str(t.get("name")) for t in data.get("taxonomies") or []
                  if isinstance(t, Mapping)}
    if "categories" not in taxonomies:
        found.notes.append("config.toml has no `categories` taxonomy: digest takes a page's "
                           "category from `[taxonomies] categories`, else its `category`")
    return found


def read_jekyll(root: Path) -> Found | None:
    path = root / "_config.yml"
    if not path.is_file():
        return None
    data = read_data(path)
    found = Found("Jekyll", "_config.yml")
    put(found, "site.name", data.get("title"), "_config.yml title")
    url = str(data.get("url") or "").rstrip("/")
    if url:
        put(found, "site.base_url", url + str(data.get("baseurl") or "").rstrip("/"),
            "_config.yml url and baseurl")
    put(found, "site.language", data.get("lang") or data.get("locale"), "_config.yml lang")
    put(found, "site.timezone", data.get("timezone"), "_config.yml timezone")
    found.set("content.dir", "_posts", "Jekyll's posts folder")
    found.set("content.static_dir", ".", "Jekyll copies the site's other files as they are")
    jekyll_pattern(found, data)
    return found


def jekyll_pattern(found: Found, data: Mapping[str, Any]) -> None:
    collections = data.get("collections") or {}
    posts = collections.get("posts") if isinstance(collections, Mapping) else None
    permalink, source = "date", "Jekyll's default permalink: date"
    if isinstance(posts, Mapping) and posts.get("permalink"):
        permalink, source = str(posts["permalink"]), "_config.yml collections.posts.permalink"
    elif data.get("permalink"):
        permalink, source = str(data["permalink"]), "_config.yml permalink"
    translated = translate(JEKYLL_STYLES.get(permalink, permalink), JEKYLL_TOKENS)
    if translated is None:
        found.notes.append(f"permalink {permalink!r} uses a token digest does not know: "
                           "Jekyll's default (date) is used instead")
        translated = translate(JEKYLL_STYLES["date"], JEKYLL_TOKENS)
    found.set("content.url_pattern", "{base_url}/" + str(translated).lstrip("/"), source)


# --- Eleventy, Astro, Next.js -------------------------------------------------------------


def read_eleventy(root: Path) -> Found | None:
    path = next((root / n for n in ELEVENTY_FILES if (root / n).is_file()), None)
    if path is None and not depends_on(root, "@11ty/eleventy"):
        return None
    found = Found("Eleventy", rel(path, root) if path else "package.json")
    source = path.read_text(encoding="utf-8", errors="replace") if path else ""
    match = re.search(r"input\s*:\s*['\"]([^'\"]+)['\"]", source)
    input_dir = match[1].strip("./") if match else ""
    site_data(found, root / input_dir / "_data")
    js_pattern(found, root, input_dir, ("posts", "blog"), "Eleventy writes /path/name/")
    found.set("content.static_dir", input_dir or ".",
              "passthrough copies keep their paths below the input folder", guessed=True)
    return found


def read_astro(root: Path) -> Found | None:
    path = next((root / n for n in ASTRO_FILES if (root / n).is_file()), None)
    if path is None:
        return None
    found = Found("Astro", rel(path, root))
    match = re.search(r"\bsite\s*:\s*['\"]([^'\"]+)['\"]", path.read_text(encoding="utf-8",
                                                                           errors="replace"))
    if match:
        found.set("site.base_url", match[1].rstrip("/"), f"{rel(path, root)} site")
    collections = root / "src" / "content"
    folder = largest_folder(collections) if collections.is_dir() else None
    if folder is not None:
        found.set("content.dir", rel(folder, root), "Astro's content collection")
        found.set("content.url_pattern", f"{{base_url}}/{folder.name}/{{filename}}/",
                  f"the blog template's /{folder.name}/name/", guessed=True)
    else:
        js_pattern(found, root, "src/pages", ("posts", "blog"), "Astro pages: /path/name/")
    found.set("content.static_dir", "public", "Astro's public/ folder")
    return found


def read_next(root: Path) -> Found | None:
    path = next((root / n for n in NEXT_FILES if (root / n).is_file()), None)
    if path is None and not depends_on(root, "next"):
        return None
    found = Found("Next.js", rel(path, root) if path else "package.json")
    folder = next((root / name for name in ("_posts", "posts", "content/posts", "data/blog",
                                            "content/blog", "content", "blog")
                   if has_articles(root / name)), None)
    if folder is not None:
        route = "blog" if "blog" in rel(folder, root) else "posts"
        found.set("content.dir", rel(folder, root), "Next.js content folder")
        found.set("content.url_pattern", f"{{base_url}}/{route}/{{filename}}",
                  f"the usual pages/{route}/[slug] route", guessed=True)
    found.set("content.static_dir", "public", "Next.js's public/ folder")
    return found


def js_pattern(found: Found, root: Path, input_dir: str, names: tuple[str, ...],
               why: str) -> None:
    base = root / input_dir
    folder = next((base / n for n in names if has_articles(base / n)), None)
    folder = folder or largest_folder(base)
    if folder is None:
        return
    url_path = rel(folder, base) if folder != base else ""
    found.set("content.dir", rel(folder, root), f"the folder with the most articles ({why})",
              guessed=folder.name not in names)
    found.set("content.url_pattern", "{base_url}/" + f"{url_path}/{{dir}}/{{filename}}/"
              .lstrip("/"), why)


def site_data(found: Found, folder: Path) -> None:
    """`_data/metadata.json` or `_data/site.json`: title, url, language (eleventy-base-blog)."""
    for name in ("metadata.json", "site.json"):
        path = folder / name
        if path.is_file():
            data = read_data(path)
            where = f"_data/{name}"
            put(found, "site.name", data.get("title") or data.get("name"), f"{where} title")
            put(found, "site.base_url", data.get("url"), f"{where} url")
            put(found, "site.language", data.get("language"), f"{where} language")


def depends_on(root: Path, package: str) -> bool:
    data = read_data(root / "package.json") if (root / "package.json").is_file() else {}
    return any(package in (data.get(key) or {}) for key in ("dependencies", "devDependencies"))


# --- a folder of markdown -----------------------------------------------------------------


def read_markdown_folder(root: Path) -> Found:
    found = Found("a folder of markdown", None)
    folder = largest_folder(root) or root
    found.set("content.dir", rel(folder, root) if folder != root else ".",
              "the folder with the most markdown files", guessed=True)
    found.set("content.url_pattern", "{base_url}/posts/{slug}",
              "digest's default: say where your pages live", guessed=True)
    return found


def largest_folder(root: Path, depth: int = 3) -> Path | None:
    """The folder below `root` (itself included) holding the most articles directly."""
    counts: dict[Path, int] = {}

    def walk(folder: Path, level: int) -> None:
        try:
            entries = list(folder.iterdir())
        except OSError:
            return
        count = sum(1 for e in entries if e.suffix in ARTICLE_SUFFIXES and e.is_file()
                    and e.name.lower() not in ("readme.md", "changelog.md"))
        if count:
            counts[folder] = count
        for entry in entries:
            if level < depth and entry.is_dir() and not entry.name.startswith((".", "_")) \
                    and entry.name not in SKIPPED_FOLDERS:
                walk(entry, level + 1)

    walk(root, 0)
    return max(counts, key=lambda f: (counts[f], -len(f.parts))) if counts else None


def has_articles(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix in ARTICLE_SUFFIXES for p in folder.rglob("*"))


# --- reading and writing ------------------------------------------------------------------


READERS: dict[str, Callable[[str], Any]] = {".toml": tomllib.loads, ".json": json.loads,
                                            ".yaml": yaml.safe_load, ".yml": yaml.safe_load}


def read_data(path: Path) -> dict[str, Any]:
    """A TOML, YAML or JSON file as a mapping; a file that does not parse is an error."""
    try:
        data = READERS[path.suffix](path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise DigestError(f"{path}: cannot read the site's configuration: {exc}") from None
    return data if isinstance(data, dict) else {}


def put(found: Found, key: str, value: Any, source: str) -> None:
    if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip():
        found.set(key, str(value).strip(), source)


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


CONFIG_TEMPLATE = """\
# digest.toml, written by `digest init` for {generator} ({config}).
# Every key is documented in the README; paths are relative to this file.

[site]
name = {site.name}
base_url = {site.base_url}    # article links are built on it
language = {site.language}
timezone = {site.timezone}    # windows, issue keys and dates without a zone

[content]
dir = {content.dir}
url_pattern = {content.url_pattern}
{static_line}{lowercase}{sections}
[email]
# from = "Your Name <you@example.com>"        # weekly, daily and send need it
# postal_address = "Street 1, 12345 Town"     # the footer's address (CAN-SPAM)

# [theme]                                     # your brand, without editing templates
# logo = "https://example.com/logo.png"       # https only
# logo_width = 160
# accent = "#0b57d0"                          # links and headings (4.5:1 on background)
# background = "#ffffff"
# text = "#1f2328"

[delivery]
transport = "files"    # write .eml files into outbox/; "sendgrid" to send
"""


def config_text(found: Found) -> str:
    """The commented `digest.toml` for what `detect` found."""
    values = {key: toml_string(value.value) for key, value in found.values.items()
              if isinstance(value.value, str)}
    values.setdefault("site.timezone", toml_string("UTC"))
    static = values.get("content.static_dir")
    static_line = f"static_dir = {static}    # previews show its images\n" if static else ""
    return CONFIG_TEMPLATE.format_map({
        "generator": found.generator, "config": found.config_file or "no generator's config",
        "static_line": static_line, "sections": sections_table(found),
        "lowercase": "lowercase_urls = true\n" if "content.lowercase_urls" in found.values
        else "",
        "site": Dotted(values, "site"), "content": Dotted(values, "content")})


def sections_table(found: Found) -> str:
    """`[content.section_url_patterns]`: a section's own pattern (Hugo's [permalinks])."""
    table = found.values.get("content.section_url_patterns")
    if table is None or not isinstance(table.value, dict):
        return ""
    lines = [f"{toml_string(k)} = {toml_string(v)}" for k, v in table.value.items()]
    return "\n[content.section_url_patterns]    # a section's own URL pattern\n" + \
        "\n".join(lines) + "\n"


class Dotted:
    """`{site.name}` in CONFIG_TEMPLATE."""

    def __init__(self, values: Mapping[str, str], prefix: str) -> None:
        self.values, self.prefix = values, prefix

    def __getattr__(self, name: str) -> str:
        return self.values[f"{self.prefix}.{name}"]


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def write_config(root: Path, found: Found) -> Path:
    """`root/digest.toml`; an existing one is never overwritten."""
    path = root / CONFIG_NAME
    try:
        with path.open("x", encoding="utf-8") as file:
            file.write(config_text(found))
    except FileExistsError:
        raise DigestError(f"{path} exists already: init never overwrites it "
                          "(remove it or edit it)") from None
    except OSError as exc:
        raise DigestError(f"cannot write {path}: {exc.strerror}") from None
    return path


def copy_templates(target: Path) -> list[tuple[Path, bool]]:
    """The shipped templates copied into `target` for editing: (path, copied); a file that
    is there already is left alone (copied False)."""
    from digest.render import default_templates_dir

    done = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(default_templates_dir().glob("*.j2")):
            path = target / source.name
            existed = path.exists()
            if not existed:
                path.write_bytes(source.read_bytes())
            done.append((path, not existed))
    except OSError as exc:
        raise DigestError(f"cannot copy the templates to {target}: {exc.strerror}") from None
    return done
