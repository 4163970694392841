"""The web archive of sent issues: one page per issue, an index and an Atom feed.

The pure part takes data and returns strings: `issue_page` wraps an issue's email in a
web page, `index_pages` lists the issues newest first (PAGE_SIZE a page), `atom_feed`
writes the feed, and `archive_files` puts them at their paths. The edges read the
ledger (`entries`) and write only the files whose bytes changed (`write_changed`), so a
rerun changes nothing and a static host's deploy diff stays small.

What an archive page shows is the whole issue (every category, as the preview does),
rendered once and frozen in the ledger when the issue is first published. It never holds
a reader's token: a reader's unsubscribe and preferences links are kept as the
substitution tags, and a page turns them into the sign-up and "manage your
subscription" links.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from digest import pipeline
from digest.config import Settings
from digest.content import Article
from digest.errors import DigestError
from digest.fileio import write_atomically
from digest.i18n import Language, load_language
from digest.ledger import IssueRow, Ledger
from digest.quality import Finding, check_email
from digest.render import (
    PREFERENCES_TAG,
    UNSUBSCRIBE_TAG,
    Email,
    Renderer,
    archive_slug,
    issue_page_url,
)
from digest.store import Store, open_store

PAGE_SIZE = 50  # issues on one index page, and in the feed
FEED = "feed.xml"
ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the feed's `updated` before any issue
PAGE_CHECKS = frozenset({"doctype", "viewport", "lang", "title", "img-alt", "table-role",
                         "forbidden-tag", "mjml-leftover"})
TEMPLATES_DIR = Path(__file__).parent / "archive_templates"


@functools.lru_cache(maxsize=8)
def templates(words: Language) -> jinja2.Environment:
    """The archive's templates in the site's language: `{% trans %}` and `gettext()` use
    its catalog (the site's own over the shipped one), `number` its digits."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             extensions=["jinja2.ext.i18n"])
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(words.translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["number"] = words.number
    return env


@dataclass(frozen=True)
class ArchiveSite:
    """What every page of the archive needs to know about the newsletter."""

    name: str
    language: str
    timezone: ZoneInfo
    url: str  # archive.url, without a trailing slash
    signup_url: str
    manage_url: str
    templates_dir: Path | None = None  # the site's own catalog (templates/LANG.po), if any

    @property
    def words(self) -> Language:
        """The site's language: the archive's words, dates, `lang` and `dir`."""
        return load_language(self.language, self.templates_dir)

    def page_url(self, key: str) -> str:
        return issue_page_url(self.url, key)

    @property
    def feed_url(self) -> str:
        return f"{self.url}/{FEED}"


@dataclass(frozen=True)
class Variant:
    """One segment's version of an issue: what readers of `label` were sent."""

    slug: str
    label: str
    email: Email


@dataclass(frozen=True)
class Entry:
    """One archived issue. `sent` is None while it is being sent (its page exists,
    but the index and the feed list only issues that were sent)."""

    key: str
    email: Email  # the whole issue, with the substitution tags in its links
    sent: datetime | None
    variants: tuple[Variant, ...] = ()


# ---------------------------------------------------------------- pure: pages


def site_of(settings: Settings) -> ArchiveSite:
    """The archive's site; a DigestError naming archive.url when it is not set."""
    if not settings.archive_url:
        raise DigestError("archive.url is not set in the configuration: the archive's pages, "
                          "index and feed need the absolute URL they are published at")
    home = f"{settings.web_url}/"
    return ArchiveSite(settings.site_name, settings.language, settings.timezone,
                       settings.archive_url, settings["archive.signup_url"] or home,
                       settings["archive.manage_url"] or home, settings.templates_dir)


def public_email(email: Email, site: ArchiveSite) -> Email:
    """`email` with a reader's own links turned into the sign-up and "manage your
    subscription" ones, in both parts: nothing in it is personal. The links are found by
    their substitution tags, never by their words (which are the site's language), and
    read "Subscribe" and "Manage your subscription" in that language."""
    html, text, words = email.html, email.text, site.words
    for tag, url, label, line_text in (
            (UNSUBSCRIBE_TAG, site.signup_url, words.gettext("Subscribe"),
             words.gettext("Subscribe: %(url)s", url=site.signup_url)),
            (PREFERENCES_TAG, site.manage_url, words.gettext("Manage your subscription"),
             words.gettext("Manage your subscription: %(url)s", url=site.manage_url))):
        html = relink(html, tag, url, label)
        text = "\n".join(line_text if tag in line else line for line in text.split("\n"))
    return replace(email, html=html, text=text)


def relink(html: str, tag: str, url: str, label: str) -> str:
    """Each link to `tag` goes to `url` and reads `label`; any other use of the tag
    becomes `url` too."""
    anchor = re.compile(rf'(<a\b[^>]*?\bhref=")({re.escape(tag)})("[^>]*>).*?(</a>)',
                        re.DOTALL | re.IGNORECASE)
    attribute = html_lib.escape(url)
    html = anchor.sub(lambda m: f"{m[1]}{attribute}{m[3]}{html_lib.escape(label)}{m[4]}", html)
    return html.replace(tag, attribute)


def issue_page(entry: Entry, site: ArchiveSite, variant: Variant | None = None) -> str:
    """The issue's email (or one segment's) as a web page: a title, a description, the
    og: tags, a canonical link, and a bar linking to the archive and the sign-up page."""
    email = variant_email(entry, site, variant) if variant else public_email(entry.email, site)
    url = site.page_url(entry.key) + (f"{archive_slug(variant.slug)}/" if variant else "")
    context = {"site": site, "words": site.words, "subject": email.subject, "url": url,
               "description": entry.email.preheader or email.subject,
               "label": variant.label if variant else None,
               "home": "../../" if variant else "../", "sent": display_date(entry, site)}
    head = templates(site.words).get_template("head.html.j2").render(context)
    bar = templates(site.words).get_template("bar.html.j2").render(context)
    return wrap(email.html, head, bar)


def variant_email(entry: Entry, site: ArchiveSite, variant: Variant) -> Email:
    """A segment's email as sent, public, its "View in browser" link (which pointed to
    the whole issue's page) now reading as the link to that page it is."""
    email = public_email(variant.email, site)
    label = site.words.gettext("Every category of this issue")
    return replace(email, html=relink(email.html, site.page_url(entry.key), "../", label))


def wrap(email_html: str, head: str, bar: str) -> str:
    """`head` in place of the email's <title> (or before </head>), `bar` first in <body>."""
    title = re.compile(r"<title\b[^>]*>.*?</title>", re.DOTALL | re.IGNORECASE)
    if title.search(email_html):
        page = title.sub(lambda _: head, email_html, count=1)
    else:
        page = re.sub(r"</head>", lambda _: f"{head}</head>", email_html, count=1, flags=re.I)
    body = re.search(r"<body\b[^>]*>", page, re.IGNORECASE)
    if body is None:
        return f"{page}{bar}"
    return f"{page[:body.end()]}{bar}{page[body.end():]}"


def display_date(entry: Entry, site: ArchiveSite) -> str:
    if entry.sent is None:
        return ""
    return site.words.day(entry.sent.astimezone(site.timezone).date())


def index_pages(entries: Sequence[Entry], site: ArchiveSite) -> dict[str, str]:
    """`index.html`, then `page/2/index.html`…: the sent issues, newest first."""
    listed = newest_first(entries)
    count = max(1, -(-len(listed) // PAGE_SIZE))
    return {index_path(number): render_index(listed[(number - 1) * PAGE_SIZE:
                                                     number * PAGE_SIZE],
                                             site, number, count)
            for number in range(1, count + 1)}


def index_path(number: int) -> str:
    return "index.html" if number == 1 else f"page/{number}/index.html"


def render_index(entries: Sequence[Entry], site: ArchiveSite, number: int, count: int) -> str:
    root = "" if number == 1 else "../../"
    rows = [{"href": f"{root}{archive_slug(e.key)}/", "subject": e.email.subject,
             "preheader": e.email.preheader, "date": display_date(e, site),
             "datetime": rfc3339(e.sent)} for e in entries]
    path = "" if number == 1 else f"page/{number}/"
    return templates(site.words).get_template("index.html.j2").render(
        site=site, words=site.words, rows=rows, number=number, count=count,
        url=f"{site.url}/{path}",
        newer=index_link(root, number - 1, count), older=index_link(root, number + 1, count))


def index_link(root: str, number: int, count: int) -> str | None:
    """The relative link to index page `number`, or None when there is no such page."""
    if not 1 <= number <= count:
        return None
    return (root or "./") if number == 1 else f"{root}page/{number}/"


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    sent = [entry for entry in entries if entry.sent is not None]
    return sorted(sent, key=lambda e: (e.sent, e.key), reverse=True)


def atom_feed(entries: Sequence[Entry], site: ArchiveSite) -> str:
    """An Atom feed (RFC 4287) of the newest PAGE_SIZE sent issues; each entry's id is
    its page's URL, which never changes."""
    listed = newest_first(entries)[:PAGE_SIZE]
    feed = ET.Element("feed", {"xmlns": ATOM, XML_LANG: site.words.tag})
    text(feed, "id", f"{site.url}/")
    text(feed, "title", site.name)
    text(feed, "updated", rfc3339(listed[0].sent if listed else EPOCH))
    ET.SubElement(feed, "link", rel="self", type="application/atom+xml", href=site.feed_url)
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=f"{site.url}/")
    text(ET.SubElement(feed, "author"), "name", site.name)
    for entry in listed:
        feed.append(feed_entry(entry, site))
    ET.indent(feed)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"


def feed_entry(entry: Entry, site: ArchiveSite) -> ET.Element:
    element = ET.Element("entry")
    url = site.page_url(entry.key)
    text(element, "id", url)
    text(element, "title", entry.email.subject)
    text(element, "updated", rfc3339(entry.sent))
    text(element, "published", rfc3339(entry.sent))
    ET.SubElement(element, "link", rel="alternate", type="text/html", href=url)
    text(element, "summary", entry.email.preheader or entry.email.subject)
    return element


def text(parent: ET.Element, tag: str, value: str) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = value
    return child


def rfc3339(moment: datetime | None) -> str:
    """`2026-11-29T08:00:00Z`: UTC, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def archive_files(entries: Sequence[Entry], site: ArchiveSite, *,
                  keys: Iterable[str] | None = None, listings: bool = True) -> dict[str, str]:
    """Relative path → text: the pages of the issues in `keys` (all by default), with
    their segments' variants, then (with `listings`) the index pages and the feed."""
    wanted = None if keys is None else set(keys)
    files: dict[str, str] = {}
    for entry in entries:
        if wanted is not None and entry.key not in wanted:
            continue
        folder = archive_slug(entry.key)
        files[Written.page(entry.key)] = issue_page(entry, site)
        for variant in entry.variants:
            files[f"{folder}/{archive_slug(variant.slug)}/index.html"] = issue_page(
                entry, site, variant)
    if listings:
        files.update(index_pages(entries, site))
        files[FEED] = atom_feed(entries, site)
    return files


def page_findings(html: str) -> list[Finding]:
    """The quality checks that apply to a web page (not size, preheader or the
    unsubscribe link, which only an email needs)."""
    return [finding for finding in check_email(html, "", unsubscribe_url="", article_urls=())
            if finding.code in PAGE_CHECKS]


# ---------------------------------------------------------------- edges: ledger and files


@dataclass
class Written:
    """What a publish did, by relative path (findings: of the pages it wrote)."""

    out: Path
    changed: list[str]
    unchanged: list[str]
    findings: dict[str, list[Finding]]

    @staticmethod
    def page(key: str) -> str:
        """Where issue `key`'s page is, relative to the archive folder."""
        return f"{archive_slug(key)}/index.html"


def publish(settings: Settings, out: Path | None = None, *, segments: bool = False,
            keys: Iterable[str] | None = None) -> Written:
    """Write the archive of every issue (or those in `keys`) into `out` (default
    archive.dir); only files whose bytes changed are written."""
    folder = out or settings.archive_dir
    if folder is None:
        raise DigestError("archive.dir is not set in the configuration: give --out DIR")
    site = site_of(settings)
    with open_store(settings.store_path) as store:
        found = entries(settings, store, segments=segments)
    return write_changed(folder, archive_files(found, site, keys=keys))


def publish_page(settings: Settings, store: Store, key: str) -> Written | None:
    """Write issue `key`'s page into archive.dir once its plan is frozen, before its
    first email goes out: their "View in browser" links point there. None (nothing
    done) when archive.dir is not set; a DigestError names a path it could not write."""
    return publish_issue(settings, store, key, listings=False)


def publish_issue(settings: Settings, store: Store, key: str, *,
                  listings: bool = True) -> Written | None:
    """Write issue `key`'s page, and the index and the feed, into archive.dir; None
    (nothing done) when archive.dir is not set."""
    if settings.archive_dir is None:
        return None
    found = entries(settings, store, also=(key,), only=None if listings else (key,))
    files = archive_files(found, site_of(settings), keys=(key,), listings=listings)
    return write_changed(settings.archive_dir, files)


def publish_after_send(settings: Settings, store: Store, key: str) -> str | None:
    """`publish_issue` once an issue is sent: a problem is returned as a warning, since
    the send itself went well (`digest archive` can be run again)."""
    try:
        publish_issue(settings, store, key)
    except (DigestError, OSError, sqlite3.Error) as exc:
        return f"the archive was not updated: {exc} (run digest archive to retry)"
    return None


def entries(settings: Settings, store: Store, *, segments: bool = False,
            also: Iterable[str] = (), only: Iterable[str] | None = None) -> list[Entry]:
    """Every sent issue, any issue frozen already (being sent) and those in `also`; or
    only those in `only`. Each has its frozen whole-issue email (frozen now, from the
    content, if it was not yet)."""
    ledger, articles = Ledger(store), Articles(settings)
    words = load_language(settings.language, settings.templates_dir)
    rows = chosen(ledger, set(also), None if only is None else set(only))
    return [Entry(issue.key, frozen_email(settings, ledger, issue, articles),
                  sent_at(issue), variants(ledger, issue.key, words) if segments else ())
            for issue in rows]


def chosen(ledger: Ledger, also: set[str], only: set[str] | None) -> list[IssueRow]:
    if only is not None:
        return [issue for issue in ledger.issues() if issue.key in only]
    return [issue for issue in ledger.issues() if issue.status == "done"
            or issue.key in also or ledger.archived(issue.key) is not None]


def sent_at(issue: IssueRow) -> datetime | None:
    if issue.status != "done" or not issue.finished_at:
        return None
    return datetime.fromisoformat(issue.finished_at)


def variants(ledger: Ledger, key: str, words: Language) -> tuple[Variant, ...]:
    return tuple(Variant(slug, words.join(categories) or words.gettext("all categories"), email)
                 for slug, categories, _, email in ledger.segments(key) if email is not None)


class Articles:
    """The content's articles, loaded the first time an issue must be rendered. Feeds are
    read from their cache only: a page frozen during a send shows the items the plan read
    moments before, and `digest archive` never fetches a feed (nor counts a failure)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loaded: list[Article] | None = None

    def get(self) -> list[Article]:
        if self.loaded is None:
            self.loaded = pipeline.load(self.settings.override(pipeline.OFFLINE, True)).articles
        return self.loaded


def frozen_email(settings: Settings, ledger: Ledger, issue: IssueRow,
                 articles: Articles) -> Email:
    """The whole issue as the archive shows it: frozen in the ledger, or rendered from
    the content now (every category, the reader's links left as tags) and frozen."""
    email = ledger.archived(issue.key)
    if email is None:
        email = render_whole(settings, issue, articles.get())
        ledger.archive(issue.key, email)
    return email


def render_whole(settings: Settings, issue: IssueRow, articles: Sequence[Article]) -> Email:
    """Without the "View in browser" link: the page is the browser's view."""
    site = replace(pipeline.site_of(settings), archive_url="")
    built = pipeline.build_issue(articles, key=issue.key, window=issue.window,
                                 settings=settings,
                                 renderer=Renderer(site, settings.templates_dir),
                                 unsubscribe_url=UNSUBSCRIBE_TAG,
                                 preferences_url=PREFERENCES_TAG)
    return built.email


def write_changed(out: Path, files: Mapping[str, str]) -> Written:
    """Write each file whose bytes differ from what is on disk, with the quality findings
    of each page written; a DigestError names a path that cannot be read or written."""
    written = Written(out, [], [], {})
    for relative, content in files.items():
        path, data = out / relative, content.encode("utf-8")
        if current_bytes(path) == data:
            written.unchanged.append(relative)
            continue
        if relative.endswith(".html"):
            written.findings[relative] = page_findings(content)
        try:
            write_atomically(path, data)
        except OSError as exc:
            raise DigestError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.changed.append(relative)
    return written


def current_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if isinstance(exc, NotADirectoryError | IsADirectoryError):
            return None  # writing it fails next, naming the path
        raise DigestError(f"cannot read {path}: {exc.strerror or exc}") from None

