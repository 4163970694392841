"""Feeds → articles: RSS 2.0/1.0 and Atom read with feedparser, JSON Feed 1.1 read directly.

Fetching is polite (a time-out, a 10 MB cap, a User-Agent naming digest, conditional GET
with the ETag and Last-Modified kept in a cache beside the article cache, at most 5
redirects, retries with back-off on 5xx and connection errors) and safe: documents that
declare XML entities are refused (no billion laughs, no XXE), item HTML becomes plain
text, and links other than http(s) are dropped. A feed that fails gives a Problem naming
it and the reason; the other sources still load.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import time
import urllib.error
import urllib.request
import xml.parsers.expat
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from digest import __version__
from digest.content import (
    DEFAULT_CATEGORY,
    FIRST_YEAR,
    LAST_YEAR,
    Article,
    LoadResult,
    Problem,
)
from digest.errors import ConfigError, ContentError
from digest.fileio import write_atomically
from digest.text import EXCERPT_LIMIT, excerpt_and_image_from_html, remove_controls, shorten

USER_AGENT = f"digest/{__version__} (newsletter digest builder; feed reader)"
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
MAX_BYTES = 10 * 1024 * 1024
MAX_REDIRECTS = 5
HTML_SOURCE_LIMIT = 50_000  # characters of an item's HTML read for its excerpt and image
TITLE_LIMIT = 120  # an untitled item is named after the start of its text
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BROKEN_AFTER = 2  # runs in a row a feed must fail to be named by `digest check`
FEED_CACHE_FORMAT = 1
TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|mkt_tok"
                      r"|yclid|igshid|ref_src)$", re.IGNORECASE)


class FeedError(Exception):
    """Why a feed could not be read: the message is the reason shown to the user."""


class Retryable(FeedError):
    """A 5xx answer or a connection problem: worth another attempt."""


# Configuration

@dataclass(frozen=True)
class FeedSource:
    url: str  # an http(s) URL or a file path relative to the configuration's folder
    category: str | None = None  # overrides the items' own
    name: str | None = None

    @property
    def label(self) -> str:
        return f"feed {self.name!r} ({self.url})" if self.name else f"feed {self.url}"

    @property
    def remote(self) -> bool:
        return "://" in self.url


def feed_sources(value: Any) -> tuple[FeedSource, ...]:
    """`content.feeds`: strings, or tables with `url` and optional `category` and `name`.
    Raises ConfigError naming the entry and the problem."""
    if not isinstance(value, list):
        raise ConfigError(f"content.feeds must be a list of URLs or tables, not {value!r}")
    sources = tuple(one_source(entry, f"content.feeds[{i}]") for i, entry in enumerate(value))
    urls = [source.url for source in sources]
    for i, url in enumerate(urls):
        if url in urls[:i]:
            raise ConfigError(f"content.feeds[{i}]: the same feed as "
                              f"content.feeds[{urls.index(url)}] ({url})")
    return sources


def one_source(entry: Any, where: str) -> FeedSource:
    table = {"url": entry} if isinstance(entry, str) else entry
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a URL or a table with url, not {entry!r}")
    if unknown := sorted(set(table) - {"url", "category", "name"}):
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: url, category, name)")
    for key in ("url", "category", "name"):
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{where}.{key} must be non-empty text, not {table[key]!r}")
    if "url" not in table:
        raise ConfigError(f"{where}: url is required")
    url = table["url"].strip()
    if "://" in url and not is_http_url(url):
        raise ConfigError(f"{where}.url must be an http(s) URL or a local file, not {url!r}")
    return FeedSource(url, table.get("category"), table.get("name"))


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host, and nothing http.client would refuse."""
    try:
        parts = urlsplit(url)
        return (parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
                and parts.port != 0 and not re.search(r"[\s\x00-\x1f\x7f]", url))
    except ValueError:  # `http://[::1`, a port that is not a number
        return False


# Items and the cache

@dataclass(frozen=True)
class Item:
    """One entry as read, before the site's settings apply: `date` is naive when the feed
    gave no zone."""

    id: str | None
    title: str
    link: str
    date: datetime
    excerpt: str
    tags: tuple[str, ...] = ()
    author: str | None = None
    image: str | None = None


@dataclass(frozen=True)
class Parsed:
    items: tuple[Item, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (which item, why)
    category: str | None = None  # the feed's own, for items without one


@dataclass(frozen=True)
class CachedFeed:
    parsed: Parsed | None = None  # None: never read
    etag: str | None = None
    last_modified: str | None = None
    fetched: datetime | None = None
    failures: int = 0  # runs in a row that failed
    failing_since: datetime | None = None
    reason: str | None = None


@dataclass
class FeedCache:
    """The feeds' last good items and validators, a pickle beside the article cache; one
    that cannot be read or written is ignored, never an error."""

    path: Path | None
    feeds: dict[str, CachedFeed] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path | None) -> FeedCache:
        if path is None or not path.is_file():
            return cls(path)
        try:
            stored_format, feeds = pickle.loads(path.read_bytes())
        except Exception:  # a corrupt or foreign cache is simply rebuilt
            return cls(path)
        return cls(path, feeds if stored_format == (FEED_CACHE_FORMAT, __version__) else {})

    def save(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                data = pickle.dumps(((FEED_CACHE_FORMAT, __version__), self.feeds))
                write_atomically(self.path, data)


def feed_cache_path(article_cache: Path) -> Path:
    """`feeds-<hash>.pickle` beside `articles-<hash>.pickle`."""
    return article_cache.with_name(article_cache.name.replace("articles-", "feeds-", 1))


# Fetching

@dataclass(frozen=True)
class FetchPolicy:
    timeout: float = 15.0  # seconds to connect and between bytes
    deadline: float = 60.0  # seconds for a whole download
    attempts: int = 3
    backoff: float = 1.0  # seconds before the 2nd attempt, doubled each time
    max_bytes: int = MAX_BYTES
    workers: int = 8
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Fetched:
    body: bytes | None  # None: 304 Not Modified
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""
    url: str = ""


class LimitedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS
    max_repeats = MAX_REDIRECTS

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        target = urljoin(req.full_url, headers.get("Location") or headers.get("URI") or "")
        if not is_http_url(target):
            fp.close()
            raise FeedError(f"redirected to {target!r}, which is not an http(s) URL")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


OPENER = urllib.request.build_opener(LimitedRedirects)


def fetch(url: str, cached: CachedFeed | None, policy: FetchPolicy) -> Fetched:
    """The feed, or `Fetched(None)` when the cached copy is still current; retries 5xx
    answers and connection errors with back-off. Raises FeedError."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fetch_once(url, cached, policy)
        except Retryable as exc:
            if attempt == policy.attempts:
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise FeedError(f"{exc}{tries}") from None
            policy.sleep(policy.backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def fetch_once(url: str, cached: CachedFeed | None, policy: FetchPolicy) -> Fetched:
    request = urllib.request.Request(url, headers=request_headers(cached))
    started = time.monotonic()
    try:
        with OPENER.open(request, timeout=policy.timeout) as response:
            body = read_capped(response, policy, started)
            headers = response.headers
            return Fetched(body, headers.get("ETag"), headers.get("Last-Modified"),
                           headers.get("Content-Type", ""), response.geturl())
    except urllib.error.HTTPError as exc:
        raise http_problem(exc) from None
    except urllib.error.URLError as exc:
        raise connection_problem("cannot connect", exc.reason, policy) from None
    except (TimeoutError, ConnectionError, HTTPException, OSError) as exc:
        raise connection_problem("connection failed", exc, policy) from None
    except ValueError as exc:  # a redirect to an address http.client cannot use
        raise FeedError(f"cannot fetch: {exc}") from None


def request_headers(cached: CachedFeed | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Encoding": "gzip"}
    if cached is not None and cached.parsed is not None:
        if cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
    return headers


def http_problem(exc: urllib.error.HTTPError) -> FeedError:
    """304 is no problem (NotModified); 5xx and 429 are worth a retry; the rest are final."""
    with contextlib.suppress(Exception):
        exc.close()
    if exc.code == 304:
        return NotModified()
    if 300 <= exc.code < 400 and "infinite loop" in str(exc.msg):
        return FeedError(f"more than {MAX_REDIRECTS} redirects")
    message = f"HTTP {exc.code} {exc.reason}".strip()
    return Retryable(message) if exc.code in RETRY_STATUSES else FeedError(message)


class NotModified(FeedError):
    """The server answered 304: the cached copy is current."""


def connection_problem(what: str, exc: Any, policy: FetchPolicy) -> Retryable:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return Retryable(f"timed out (no answer within {policy.timeout:g} s)")
    return Retryable(f"{what}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}")


def read_capped(response: Any, policy: FetchPolicy, started: float) -> bytes:
    """The body, gzip-decoded, refused past `policy.max_bytes` (sent or decoded) or
    `policy.deadline` seconds."""
    length = response.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > policy.max_bytes:
        raise too_large(policy)
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise FeedError(f"unknown Content-Encoding {encoding!r}")
    gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding != "identity" else None
    chunks, total = [], 0
    while chunk := response.read(65536):
        if gunzip is not None:
            chunk = inflate(gunzip, chunk, policy.max_bytes - total)
        total += len(chunk)
        if total > policy.max_bytes:
            raise too_large(policy)
        if time.monotonic() - started > policy.deadline:
            raise Retryable(f"timed out (the download took over {policy.deadline:g} s)")
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(gunzip: Any, chunk: bytes, room: int) -> bytes:
    """At most `room` + 1 decoded bytes of `chunk`: a gzip bomb stops at the cap."""
    try:
        return bytes(gunzip.decompress(chunk, room + 1))
    except zlib.error as exc:
        raise FeedError(f"invalid gzip data: {exc}") from None


def too_large(policy: FetchPolicy) -> FeedError:
    size = policy.max_bytes / 1024 / 1024
    return FeedError(f"larger than {size:g} MB" if size >= 1 else
                     f"larger than {policy.max_bytes} bytes")


def read_local(path: Path, policy: FetchPolicy) -> bytes:
    """A feed file; a FIFO or device is refused before it is opened (it may never end)."""
    if path.exists() and not path.is_file():
        raise FeedError(f"{path}: not a regular file")
    try:
        with path.open("rb") as file:
            body = file.read(policy.max_bytes + 1)
    except OSError as exc:
        raise FeedError(f"cannot read: {exc.strerror or exc}") from None
    if len(body) > policy.max_bytes:
        raise too_large(policy)
    return body


# Parsing

def parse_feed(body: bytes, base_url: str, content_type: str = "") -> Parsed:
    """A JSON Feed, else RSS or Atom. Raises FeedError when it is neither."""
    try:
        if "json" in content_type or body.lstrip()[:1] == b"{":
            return parse_json_feed(body)
        refuse_entities(body)
        return parse_xml_feed(body, base_url)
    except FeedError:
        raise
    except RecursionError:
        raise FeedError("cannot read: nested too deeply") from None
    except Exception as exc:  # what a parser raises on hostile input is the feed's problem
        raise FeedError(f"cannot read: {type(exc).__name__}: {exc}") from None


class EntityDeclared(Exception):
    pass


class PrologRead(Exception):
    pass


def refuse_entities(body: bytes) -> None:
    """Refuse a document that declares entities (billion laughs, XXE), reading only up
    to its first element with expat; what expat cannot read is left to feedparser."""
    parser = xml.parsers.expat.ParserCreate()

    def declared(*_args: Any) -> None:
        raise EntityDeclared

    def root(*_args: Any) -> None:
        raise PrologRead

    parser.EntityDeclHandler = declared
    parser.ExternalEntityRefHandler = declared  # type: ignore[assignment]
    parser.StartElementHandler = root
    try:
        parser.Parse(body, True)
    except EntityDeclared:
        raise entities_refused() from None
    except PrologRead:
        return
    except Exception:  # a malformed prolog, an encoding expat lacks (`shift_jis`): bytes
        if ENTITY_DECLARATION.search(body.replace(b"\x00", b"")):  # also UTF-16 and -32
            raise entities_refused() from None


ENTITY_DECLARATION = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)


def entities_refused() -> FeedError:
    return FeedError("refused: the document declares XML entities (entity expansion and "
                     "external entities are not allowed)")


def parse_xml_feed(body: bytes, base_url: str) -> Parsed:
    import feedparser  # imported here: 0.1 s, and only sites with feeds need it

    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": base_url},
                              sanitize_html=False, resolve_relative_uris=False)
    if not parsed.get("version") and not parsed.entries:
        raise FeedError("not an RSS, Atom or JSON feed")
    feed_author = text_or_none(parsed.feed.get("author"))  # Atom entries inherit it
    found = collect_items(parsed.entries, lambda entry: entry_item(entry, feed_author))
    return replace(found, category=next(iter(terms(parsed.feed)), None))


def collect_items(entries: Iterable[Any], build: Callable[[Any], Item]) -> Parsed:
    items, skipped = [], []
    for number, entry in enumerate(entries, 1):
        try:
            items.append(build(entry))
        except ValueError as exc:
            skipped.append((item_name(entry, number), str(exc)))
    return Parsed(tuple(items), tuple(skipped))


def item_name(entry: Any, number: int) -> str:
    title = entry.get("title") if isinstance(entry, Mapping) else None
    text = clean(title) if isinstance(title, str) else ""
    return f"item {number} ({shorten(text, 60)!r})" if text else f"item {number}"


def entry_item(entry: Any, feed_author: str | None = None) -> Item:
    """A feedparser entry. Raises ValueError when it has no usable link or date."""
    html = entry_html(entry)
    text, first_img = html_text_and_image(html)
    link = checked_link(entry.get("link"))
    return Item(
        id=text_or_none(entry.get("id")),
        title=title_of(entry_title(entry), text),
        link=link,
        date=entry_date(entry),
        excerpt=shorten(text, EXCERPT_LIMIT),
        tags=terms(entry),
        author=text_or_none(entry.get("author")) or feed_author,
        image=entry_image(entry, first_img, link),
    )


def terms(holder: Any) -> tuple[str, ...]:
    """The category terms of a feedparser entry or feed, once each."""
    found = (clean(tag.get("term")) for tag in holder.get("tags") or ())
    return tuple(dict.fromkeys(term for term in found if term))


def entry_title(entry: Any) -> str | None:
    """The title as text: feedparser gives RSS titles as text, Atom's as their type says."""
    title = entry.get("title")
    if not isinstance(title, str):
        return None
    kind = (entry.get("title_detail") or {}).get("type", "text/plain")
    return html_to_text(title) if kind in ("text/html", "application/xhtml+xml") else title


def entry_html(entry: Any) -> str:
    """The summary, else the first content."""
    if summary := entry.get("summary"):
        return str(summary)
    contents = entry.get("content") or []
    return str(contents[0].get("value", "")) if contents else ""


def entry_date(entry: Any) -> datetime:
    for key in ("published", "updated", "created"):
        if raw := entry.get(key):
            return parse_when(str(raw), entry.get(f"{key}_parsed"))
    raise ValueError("no date (neither published nor updated)")


def entry_image(entry: Any, first_img: str | None, link: str) -> str | None:
    candidates = [m.get("url") for m in entry.get("media_thumbnail") or ()]
    candidates += [m.get("url") for m in entry.get("media_content") or () if is_image(m)]
    candidates += [e.get("href") for e in entry.get("enclosures") or () if is_image(e)]
    return first_http_url([*candidates, first_img], link)


def is_image(media: Mapping[str, Any]) -> bool:
    return media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")


def parse_json_feed(body: bytes) -> Parsed:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"not valid JSON: {exc}") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith("https://jsonfeed.org/version/"):
        raise FeedError("not a JSON Feed (no https://jsonfeed.org/version/ version)")
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedError("not a JSON Feed (items is not a list)")
    feed_author = json_author(document)
    return collect_items(items, lambda entry: json_item(entry, feed_author))


def json_item(entry: Any, feed_author: str | None) -> Item:
    """A JSON Feed 1.1 (or 1.0) item. Raises ValueError when it has no usable link or date."""
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    plain = entry.get("summary") or entry.get("content_text")  # plain text in JSON Feed
    if isinstance(plain, str) and plain.strip():
        text, first_img = clean(plain), None
    else:
        text, first_img = html_text_and_image(str(entry.get("content_html") or ""))
    link = checked_link(entry.get("url") or entry.get("external_url"))
    raw = entry.get("date_published") or entry.get("date_modified")
    if not raw:
        raise ValueError("no date (neither date_published nor date_modified)")
    tags: list[Any] = entry["tags"] if isinstance(entry.get("tags"), list) else []
    return Item(
        id=text_or_none(entry.get("id")),
        title=title_of(entry.get("title"), text),
        link=link,
        date=parse_when(str(raw), None),
        excerpt=shorten(text, EXCERPT_LIMIT),
        tags=tuple(dict.fromkeys(clean(t) for t in tags if isinstance(t, str) and clean(t))),
        author=json_author(entry) or feed_author,
        image=first_http_url([entry.get("image"), entry.get("banner_image"), first_img], link),
    )


def json_author(holder: Mapping[str, Any]) -> str | None:
    """`authors[0].name` (1.1), else `author.name` (1.0)."""
    authors = holder.get("authors")
    first = authors[0] if isinstance(authors, list) and authors else holder.get("author")
    return text_or_none(first.get("name")) if isinstance(first, dict) else None


def checked_link(value: Any) -> str:
    link = text_or_none(value)
    if link is None:
        raise ValueError("no link")
    if urlsplit(link).scheme.lower() not in ("http", "https"):
        raise ValueError(f"link {link!r} is not an http(s) URL")
    return link


def title_of(value: Any, text: str) -> str:
    title = clean(value) if isinstance(value, str) else ""
    if not title and not text:
        raise ValueError("no title and no text")
    return title or shorten(text, TITLE_LIMIT)


def parse_when(raw: str, parsed: Any) -> datetime:
    """RFC 822 or ISO 8601 with the feed's zone kept (naive when it gives none), else
    what feedparser read (in UTC). Raises ValueError naming the text."""
    when = rfc822_or_iso(raw.strip())
    if when is None and parsed is not None:
        year, month, day, hour, minute, second = parsed[:6]
        when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    if when is None:
        raise ValueError(f"cannot read {raw!r} as a date")
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        raise ValueError(f"{raw!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")
    return when


def rfc822_or_iso(text: str) -> datetime | None:
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return parsedate_to_datetime(text)
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text)
    return None


def first_http_url(candidates: Iterable[Any], base: str) -> str | None:
    for candidate in candidates:
        if text := text_or_none(candidate):
            with contextlib.suppress(ValueError):
                url = urljoin(base, text)
                if urlsplit(url).scheme.lower() in ("http", "https"):
                    return url
    return None


def text_or_none(value: Any) -> str | None:
    return clean(value) or None if isinstance(value, str | int | float) else None


def clean(value: Any) -> str:
    return " ".join(remove_controls(str(value)).split()) if value is not None else ""


# HTML to text: digest.text's, with no-break spaces made spaces as in every feed field

def html_text_and_image(html: str) -> tuple[str, str | None]:
    """The whole text of `html` (see text.excerpt_from_html) and the `src` of its first
    `<img>`, from its first HTML_SOURCE_LIMIT characters."""
    text, image = excerpt_and_image_from_html(html, HTML_SOURCE_LIMIT,
                                              source_limit=HTML_SOURCE_LIMIT)
    return clean(text), image


def html_to_text(html: str) -> str:
    return html_text_and_image(html)[0]


# Loading

@dataclass(frozen=True)
class FeedLoad:
    articles: list[Article]
    problems: list[Problem]
    broken: list[str]  # feeds that failed on BROKEN_AFTER or more runs in a row


def load_feeds(
    sources: Sequence[FeedSource],
    *,
    timezone: ZoneInfo,
    root: Path,
    cache: Path | None = None,
    offline: bool = False,
    strict: bool = False,
    policy: FetchPolicy | None = None,
    now: datetime | None = None,
) -> FeedLoad:
    """Every feed's items as articles, deduplicated across feeds by normalised URL, then
    guid or id. With `strict`, the first problem raises ContentError."""
    store, policy = FeedCache.open(cache), policy or FetchPolicy()
    moment = now or datetime.now(UTC)

    def read(source: FeedSource) -> tuple[CachedFeed, list[Problem]]:
        return read_source(source, store.feeds.get(source.url), offline=offline,
                           root=root, policy=policy, now=moment)

    with ThreadPoolExecutor(max(1, min(policy.workers, len(sources)))) as pool:
        outcomes = list(pool.map(read, sources))
    problems, pairs = [], []
    for source, (state, found) in zip(sources, outcomes, strict=True):
        store.feeds[source.url] = state
        problems += found
        if state.parsed is not None:
            pairs += [(item, article_of(item, source, timezone, state.parsed.category))
                      for item in state.parsed.items]
    store.feeds = {source.url: store.feeds[source.url] for source in sources}  # no stale ones
    store.save()
    if strict and problems:
        raise ContentError(str(problems[0]))
    return FeedLoad(unique(pairs), problems, broken_feeds(sources, store))


def read_source(source: FeedSource, cached: CachedFeed | None, *, offline: bool, root: Path,
                policy: FetchPolicy, now: datetime) -> tuple[CachedFeed, list[Problem]]:
    """The feed's new cache entry, and its problems (the feed's, or its skipped items')."""
    state = cached or CachedFeed()
    if offline and source.remote:
        if state.parsed is None:
            return state, [Problem(source.label, None, "not in the cache (--offline)")]
        return state, item_problems(source, state.parsed)
    try:
        state = fresh_state(source, state, root, policy, now)
    except FeedError as exc:
        return failed(source, state, str(exc), now)
    return state, item_problems(source, state.parsed)


def fresh_state(source: FeedSource, state: CachedFeed, root: Path, policy: FetchPolicy,
                now: datetime) -> CachedFeed:
    if not source.remote:
        path = root / source.url
        parsed = parse_feed(read_local(path, policy), path.resolve().as_uri())
        return CachedFeed(parsed, fetched=now)
    try:
        got = fetch(source.url, state, policy)
    except NotModified:
        return replace(state, fetched=now, failures=0, failing_since=None, reason=None)
    assert got.body is not None
    parsed = parse_feed(got.body, got.url or source.url, got.content_type)
    return CachedFeed(parsed, got.etag, got.last_modified, now)


def failed(source: FeedSource, state: CachedFeed, reason: str,
           now: datetime) -> tuple[CachedFeed, list[Problem]]:
    state = replace(state, failures=state.failures + 1, reason=reason,
                    failing_since=state.failing_since or now)
    if state.parsed is not None and state.fetched is not None:
        reason += f"; using the copy read on {state.fetched:%Y-%m-%d %H:%M} UTC"
    return state, [Problem(source.label, None, reason)]


def item_problems(source: FeedSource, parsed: Parsed | None) -> list[Problem]:
    return [Problem(source.label, which, why) for which, why in (parsed.skipped if parsed else ())]


def broken_feeds(sources: Sequence[FeedSource], store: FeedCache) -> list[str]:
    lines = []
    for source in sources:
        state = store.feeds.get(source.url)
        if state and state.failures >= BROKEN_AFTER and state.failing_since:
            lines.append(f"{source.label} has failed on the last {state.failures} runs "
                         f"(since {state.failing_since:%Y-%m-%d %H:%M} UTC): {state.reason}")
    return lines


def article_of(item: Item, source: FeedSource, timezone: ZoneInfo,
               feed_category: str | None = None) -> Article:
    """The entry's `category` first, then the item's first, then the feed's own."""
    when = item.date if item.date.tzinfo else item.date.replace(tzinfo=timezone)
    category = source.category or (item.tags[0] if item.tags else None) or feed_category \
        or DEFAULT_CATEGORY
    return Article(slug=item_slug(item), title=item.title, date=when, excerpt=item.excerpt,
                   url=item.link, category=" ".join(category.split()), tags=item.tags,
                   cover_image=item.image, author=item.author)


def item_slug(item: Item) -> str:
    """Readable and unique: the link's last segment and a hash of its normalised form."""
    last = urlsplit(item.link).path.rstrip("/").rsplit("/", 1)[-1]
    digest = hashlib.sha256(normalize_url(item.link).encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-z0-9]+", "-", last.lower()).strip("-")[:60]
    return f"{readable}-{digest}" if readable else digest


def unique(pairs: Iterable[tuple[Item, Article]]) -> list[Article]:
    """The first of each normalised URL, then of each guid or id."""
    seen: set[str] = set()
    kept = []
    for item, article in pairs:
        keys = {f"url:{normalize_url(item.link)}"} | ({f"id:{item.id}"} if item.id else set())
        if keys.isdisjoint(seen):
            kept.append(article)
        seen |= keys
    return kept


def normalize_url(url: str) -> str:
    """One spelling per page: https, lower-case host without the default port, no
    trailing slash, no fragment, no tracking parameters (`utm_*`, `fbclid`, …)."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not TRACKING.match(k)])
    scheme = "https" if scheme in ("http", "https") else scheme
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), query, ""))


def combine(local: LoadResult, fed: FeedLoad) -> LoadResult:
    """The markdown articles, then the feed items whose URL none of them has (as its own
    URL or its `source`)."""
    if not fed.articles and not fed.problems:
        return local
    known = {normalize_url(u) for a in local.articles for u in (a.url, a.source) if u}
    extra = [article for article in fed.articles if normalize_url(article.url) not in known]
    return replace(local, articles=[*local.articles, *extra],
                   problems=[*local.problems, *fed.problems])
