"""A live preview server for template authors: save a template, an article or the config,
and the page in the browser shows the new render by itself.

Standard library only (`http.server`), and bound to 127.0.0.1 only. Before answering, each
request compares a cheap fingerprint of the watched files, (path, mtime_ns, size) of each,
with the one taken before. A change to the articles, the config or the store plans the
issue again: its segments are selected, which is cheap, and nothing is rendered. A change
to the templates keeps that plan. Either way a variant is rendered when a page asks for it
(the page's live reload asks for the one on screen, so it comes first and alone), once
per plan and templates, under a lock. A render that fails (template syntax, bad config)
becomes an error on the page, and the next change renders again.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import os
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jinja2

from digest import pipeline
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.location import Location
from digest.preview import variant_stem
from digest.quality import Finding
from digest.render import Renderer, template_problem
from digest.segments import Member, Segment
from digest.site_files import FOLDER, SiteFiles

HOST = "127.0.0.1"
VIEWS = {"mobile": "Mobile (375 px)", "desktop": "Desktop (1280 px, at half size)"}
POLL_MS = 250  # how often the page asks whether what it shows changed
SLOW_CHECK_S = 0.5  # the articles, config and store are looked at no more often than this
Stamp = tuple[tuple[str, int, int], ...]
Reply = tuple[HTTPStatus, str, str]  # status, content type, body


@dataclass(frozen=True)
class Period:
    """The window to preview: --since/--until, the week ending --now, or (neither given)
    the 7 days ending at the newest article, as `digest preview` chooses it; and whose
    segments to show (`cadence`)."""

    since: date | None = None
    until: date | None = None
    now: datetime | None = None
    cadence: str = "weekly"


@dataclass(frozen=True)
class Variant:
    """One email to look at, as planned: the whole issue, or one segment's."""

    stem: str  # as `digest preview` names the files: `<key>` or `<key>--<segment>`
    name: str
    label: str
    subscribers: int | None
    categories: tuple[str, ...]  # () for every category
    articles: int  # as selected, before trimming to the size budget; 0: skipped


@dataclass(frozen=True)
class Rendered:
    """A variant's email and its quality findings, or the error that stopped its render;
    neither when the variant has no articles this time."""

    built: pipeline.Built | None = None
    findings: tuple[Finding, ...] = ()
    error: str | None = None

    @property
    def checks(self) -> str:
        if self.built is None:
            return "render error" if self.error else ""
        levels = [finding.level for finding in self.findings]
        counts = [f"{levels.count(level)} {level}{'' if levels.count(level) == 1 else 's'}"
                  for level in ("error", "warning") if level in levels]
        return ", ".join(counts) or "OK"

    def parts(self) -> list[str]:
        email = self.built.email if self.built else None
        return [self.error or "", email.html if email else "", email.text if email else "",
                *(str(finding) for finding in self.findings)]


@dataclass
class Snapshot:
    """One plan of the variants, or the error that stopped it, and the variants rendered
    from it so far (`rendered`), each when first asked for."""

    key: str = ""
    variants: tuple[Variant, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    site: SiteFiles | None = None  # the site's images, shown from disk
    job: pipeline.RenderJob | None = None
    rendered: dict[str, Rendered] = field(default_factory=dict)
    renderer: Renderer | None = None

    @cached_property
    def listing(self) -> str:
        """A short token that changes whenever the plan shown changes."""
        parts = [self.key, self.error or "", *self.warnings]
        for v in self.variants:
            parts += [v.stem, v.label, str(v.subscribers), str(v.articles)]
        return token(parts)

    def variant(self, stem: str) -> Variant | None:
        return next((v for v in self.variants if v.stem == stem), None)

    def chosen(self, stem: str) -> Variant | None:
        """The variant named `stem`, else the first (the whole issue)."""
        return self.variant(stem) or next(iter(self.variants), None)

    def unrendered(self) -> Snapshot:
        """The same plan with nothing rendered: for new templates."""
        return replace(self, rendered={}, renderer=None)

    def render(self, variant: Variant) -> Rendered:
        """`variant`'s email, rendered once per snapshot."""
        if variant.stem not in self.rendered:
            self.rendered[variant.stem] = self.render_now(variant)
        return self.rendered[variant.stem]

    def render_now(self, variant: Variant) -> Rendered:
        if self.job is None or not variant.articles:
            return Rendered()
        try:
            self.renderer = self.renderer or self.job.renderer()
            return Rendered(*pipeline.render_one(variant.categories, self.job, self.renderer))
        except Exception as exc:  # a template can raise anything: the author must see it
            return Rendered(error=describe(exc))


@dataclass(frozen=True)
class View:
    """What a page shows: the plan, the chosen variant and its render."""

    snapshot: Snapshot
    chosen: Variant | None = None
    rendered: Rendered = Rendered()

    @property
    def error(self) -> str | None:
        return self.snapshot.error or self.rendered.error

    @property
    def version(self) -> str:
        """A short token that changes whenever anything this view shows changes."""
        return token([self.snapshot.listing, self.chosen.stem if self.chosen else "",
                      *self.rendered.parts()])


def token(parts: Iterable[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:12]


def plan_site(settings: Settings, *, period: Period | None = None,
              readers: Sequence[Member] | None = None) -> Snapshot:
    """The whole issue, and one variant per segment of the store's active readers of the
    period's cadence (`readers`, else read from the store), selected and not rendered."""
    loaded = pipeline.load(settings)
    period = period or Period()
    plan = pipeline.plan_preview(settings, loaded.articles, since=period.since,
                                 until=period.until, now=period.now, cadence=period.cadence,
                                 readers=readers)
    key = plan.whole.key
    whole = Variant(variant_stem(key), "(whole issue)", "every category", None, (),
                    len(plan.whole.articles))
    return Snapshot(key, (whole, *segment_variants(plan.segments, key)),
                    tuple(str(p) for p in loaded.problems),
                    site=pipeline.site_files(settings, loaded.articles), job=plan.job)


def segment_variants(segments: Iterable[Segment], key: str) -> list[Variant]:
    """One variant per segment, named as `digest preview` names its files."""
    return [Variant(variant_stem(key, segment.slug), segment.slug, segment.label,
                    len(segment.recipients), segment.categories, len(segment.issue.articles))
            for segment in segments]


def describe(exc: Exception) -> str:
    """The error's message; the renderer already names the template file and line, and
    anything else is worded the same way (with the template line if it passed one)."""
    return str(exc) if isinstance(exc, DigestError) else template_problem(exc)


def fingerprint(paths: Iterable[Path]) -> Stamp:
    """(path, mtime_ns, size) of every file at or under `paths`; missing ones are left out.
    Symbolic links to folders are not followed (as `Path.rglob` does not)."""
    return tuple(sorted(entry for path in paths for entry in files_at(str(path))))


def files_at(path: str) -> Iterator[tuple[str, int, int]]:
    try:
        info = os.stat(path)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode):
        yield from files_under(path)
    elif stat.S_ISREG(info.st_mode):
        yield path, info.st_mtime_ns, info.st_size


def files_under(folder: str) -> Iterator[tuple[str, int, int]]:
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in list(entries):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    yield from files_under(entry.path)
                    continue
                info = entry.stat()
                if stat.S_ISREG(info.st_mode):
                    yield entry.path, info.st_mtime_ns, info.st_size


class LiveSite:
    """The latest plan, redone when a watched file changed since it was made, and its
    variants, each rendered when first asked for and again after a template changed.

    With `config`, that file is watched too and read again on a change; the values in which
    `settings` differs from it (command-line options such as --content) keep winning.
    `renders` lists the stem of every render, in order.
    """

    def __init__(self, settings: Settings, *, config: Path | None = None,
                 period: Period | None = None) -> None:
        self.settings, self.config, self.period = settings, config, period
        self.overrides = overrides_of(settings, config)
        self.lock = threading.Lock()
        self.stamp: Stamp | None = None  # of the articles, the config and the store
        self.templates: Stamp | None = None
        self.checked = -SLOW_CHECK_S  # when `stamp` was last compared (time.monotonic)
        self.snapshot = Snapshot()
        self.renders: list[str] = []
        self.read: tuple[tuple[str, str, Stamp], Sequence[Member]] = (("", "", ()), [])

    def current(self) -> Snapshot:
        with self.lock:
            return self.refreshed()

    def view(self, stem: str = "", *, exact: bool = False) -> View:
        """The variant `stem` (else, unless `exact`, the whole issue), rendered if it is
        not yet."""
        with self.lock:
            snapshot = self.refreshed()
            chosen = snapshot.variant(stem) if exact else snapshot.chosen(stem)
            if chosen is None:
                return View(snapshot)
            if chosen.articles and chosen.stem not in snapshot.rendered:
                self.renders.append(chosen.stem)
            return View(snapshot, chosen, snapshot.render(chosen))

    def refreshed(self) -> Snapshot:
        """Planned again after the articles, config or store changed; unrendered after
        the templates did. Stamps are taken first: a save during a render shows next time."""
        if not self.replanned():
            templates = fingerprint([self.settings.templates_dir])
            if templates != self.templates:
                self.templates, self.snapshot = templates, self.snapshot.unrendered()
        return self.snapshot

    def replanned(self) -> bool:
        """Whether the articles, config or store changed (looked at once a SLOW_CHECK_S at
        most: on a large archive that takes a while), and so the site was planned again."""
        now = time.monotonic()
        if now - self.checked < SLOW_CHECK_S:
            return False
        self.checked, stamp = now, fingerprint(self.watched())
        if stamp == self.stamp:
            return False
        self.stamp, self.templates = stamp, fingerprint([self.settings.templates_dir])
        self.snapshot = self.plan()
        return True

    def watched(self) -> list[Path]:
        """What the plan is made of: the articles, the store and the config file."""
        paths = [self.settings.content_dir, *store_files(self.settings.store_path)]
        return paths + ([self.config] if self.config else [])

    def plan(self) -> Snapshot:
        try:
            if self.config is not None:
                self.settings = reloaded(self.config, self.overrides)
            return plan_site(self.settings, period=self.period, readers=self.readers())
        except Exception as exc:  # the author must see whatever stopped it
            return Snapshot(error=describe(exc))

    def readers(self) -> Sequence[Member]:
        """The store's readers of the period's cadence, read again only when the store's
        files changed (each time from PostgreSQL): an article's save keeps them."""
        store, cadence = self.settings.store_path, (self.period or Period()).cadence
        source = (str(store), cadence, fingerprint(store_files(store)))
        if not isinstance(store, Path) or source != self.read[0]:
            self.read = source, pipeline.active_readers(self.settings, cadence)
        return self.read[1]


def store_files(store: Location) -> list[Path]:
    """The SQLite store's files; none for a PostgreSQL store (read again on each plan)."""
    return [store, store.with_name(f"{store.name}-wal")] if isinstance(store, Path) else []


def overrides_of(settings: Settings, config: Path | None) -> dict[str, Any]:
    if config is None:
        return {}
    in_file = load_settings(config).values
    return {key: value for key, value in settings.values.items() if in_file.get(key) != value}


def reloaded(config: Path, overrides: Mapping[str, Any]) -> Settings:
    settings = load_settings(config)
    for key, value in overrides.items():
        settings = settings.override(key, value)
    return settings


PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""\
<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 80rem; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .6rem; }
tr + tr { border-top: 1px solid #ddd; } tr.chosen { background: #eef4ff; }
td.n { text-align: right; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; max-width: 60rem; }
pre.error, .error { color: #a00000; } .warning { color: #7a5300; }
.frame iframe { border: 1px solid #ccc; background: #fff; }
.mobile iframe { width: 375px; height: 1100px; }
.desktop { width: 640px; height: 1100px; overflow: hidden; }
.desktop iframe { width: 1280px; height: 2200px; transform: scale(.5); transform-origin: 0 0; }
</style></head><body>
<h1>{{ title }}</h1>
{%- if error %}
<h2 class="error">Render error</h2>
<pre class="error">{{ error }}</pre>
<p>Fix it and save: this page reloads by itself.</p>
{%- endif %}
{%- for warning in warnings %}
<p class="warning">Warning: {{ warning }} (skipped)</p>
{%- endfor %}
{%- if variants %}
<table>
<tr><th>Variant</th><th>Categories</th><th>Subscribers</th><th>Articles</th><th>Size</th>
<th>Subject</th><th>Checks</th></tr>
{%- for v in variants %}
{%- set done = rendered.get(v.stem) %}
<tr{% if chosen and v.stem == chosen.stem %} class="chosen"{% endif %}>
<td>{% if v.articles -%}
<a href="/?variant={{ v.stem|urlencode }}&amp;view={{ view }}">{{ v.name }}</a>
{%- else %}{{ v.name }}{% endif %}</td><td>{{ v.label }}</td>
<td class="n">{{ v.subscribers if v.subscribers is not none else "" }}</td>
{%- if done and done.built %}
<td class="n">{{ done.built.issue.articles|length }}</td>
<td class="n">{{ "%.1f KB"|format(done.built.email.size / 1024) }}</td>
<td>{{ done.built.email.subject }}</td><td>{{ done.checks }}</td></tr>
{%- elif v.articles %}
<td class="n">{{ v.articles }}</td><td></td>
<td>{{ "render error" if done else "rendered when opened" }}</td><td></td></tr>
{%- else %}
<td class="n">0</td><td></td><td>nothing this time: skipped</td><td></td></tr>
{%- endif %}
{%- endfor %}
</table>
{%- endif %}
{%- if chosen and shown.built %}
<h2>{{ chosen.name }}: {{ shown.built.email.subject }}</h2>
<p>{% for name, label in views.items() %}{% if name == view %}<strong>{{ label }}</strong>
{%- else %}<a href="/?variant={{ chosen.stem|urlencode }}&amp;view={{ name }}">{{ label }}</a>
{%- endif %} · {% endfor %}<a href="/email/{{ chosen.stem|urlencode }}.html">HTML</a> ·
<a href="/email/{{ chosen.stem|urlencode }}.txt">text</a></p>
<div class="frame {{ view }}"><iframe src="/email/{{ chosen.stem|urlencode }}.html"
title="{{ chosen.name }}" sandbox="allow-popups allow-popups-to-escape-sandbox"></iframe></div>
<h3>Checks</h3>
{%- if shown.findings %}
<ul>
{%- for finding in shown.findings %}
<li class="{{ finding.level }}"><strong>{{ finding.level }}</strong>: {{ finding.message }}</li>
{%- endfor %}
</ul>
{%- else %}
<p>No problems found.</p>
{%- endif %}
<h3>Text part</h3>
<pre>{{ shown.built.email.text }}</pre>
{%- endif %}
<script>
const version = {{ version|tojson }}, asked = {{ poll|tojson }};
setInterval(async () => {
  try {
    const answer = await fetch(asked, {cache: "no-store"});
    if (answer.ok && (await answer.text()) !== version) location.reload();
  } catch (error) {}
}, {{ poll_ms }});
</script>
</body></html>
""")


def index_page(view: View, query: Mapping[str, list[str]]) -> str:
    """The variants, the chosen one (default: the whole issue) in a frame, its checks and
    its text part; `?variant=STEM&view=mobile|desktop` pick. Only the chosen variant
    needs to be rendered; the others show what the plan knows until they are."""
    snapshot, chosen = view.snapshot, view.chosen
    shape = query.get("view", ["mobile"])[0]
    title = f"Previews of {snapshot.key}" if snapshot.key else "Previews"
    poll = f"/version?variant={quote(chosen.stem)}" if chosen else "/version"
    return PAGE.render(title=title, error=view.error, warnings=snapshot.warnings,
                       variants=snapshot.variants, rendered=snapshot.rendered, chosen=chosen,
                       shown=view.rendered, views=VIEWS,
                       view=shape if shape in VIEWS else "mobile", version=view.version,
                       poll=poll, poll_ms=POLL_MS)


def email_part(view: View, name: str) -> Reply:
    """`<stem>.html` or `<stem>.txt` of a variant that has an email."""
    stem, _, extension = name.rpartition(".")
    built, site = view.rendered.built, view.snapshot.site
    if view.chosen is None or view.chosen.stem != stem or built is None \
            or extension not in ("html", "txt"):
        return HTTPStatus.NOT_FOUND, "text/plain", f"no email {name} in this render\n"
    if extension == "html":
        html = built.email.html
        return HTTPStatus.OK, "text/html", site.localise(html, f"/{FOLDER}/") if site else html
    return HTTPStatus.OK, "text/plain", built.email.text


def chosen(query: Mapping[str, list[str]]) -> str:
    return query.get("variant", [""])[0]


class PreviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, live: LiveSite) -> None:
        super().__init__((HOST, port), PreviewHandler)
        self.live = live

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_port}/"


class PreviewHandler(BaseHTTPRequestHandler):
    server: PreviewServer

    def do_GET(self) -> None:
        if self.path.startswith(f"/{FOLDER}/") and self.local_host() and self.site_image():
            return
        status, content_type, body = self.answer()
        with contextlib.suppress(ConnectionError):  # the browser left: a reload, another page
            self.reply(status, content_type, body.encode("utf-8"))

    def reply(self, status: HTTPStatus, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.path.startswith("/email/"):
            self.send_header("Content-Security-Policy", "script-src 'none'")
        self.end_headers()
        self.wfile.write(data)

    def site_image(self) -> bool:
        """One of the site's images the current render's emails show, from disk."""
        site = self.server.live.snapshot.site
        file = site.named.get(self.path.removeprefix(f"/{FOLDER}/")) if site else None
        if file is None:
            return False
        kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        with contextlib.suppress(OSError):
            data = file.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        return True

    def local_host(self) -> bool:
        port = self.server.server_port
        return self.headers.get("Host") in (f"{HOST}:{port}", f"localhost:{port}")

    def answer(self) -> Reply:
        if not self.local_host():
            return HTTPStatus.FORBIDDEN, "text/plain", "digest serve answers local pages only\n"
        url = urlsplit(self.path)
        query, live = parse_qs(url.query), self.server.live
        if url.path == "/":
            return HTTPStatus.OK, "text/html", index_page(live.view(chosen(query)), query)
        if url.path == "/version":
            return HTTPStatus.OK, "text/plain", live.view(chosen(query)).version
        if url.path.startswith("/email/"):
            name = unquote(url.path.removeprefix("/email/"))
            return email_part(live.view(name.rpartition(".")[0], exact=True), name)
        return HTTPStatus.NOT_FOUND, "text/plain", f"no page {url.path}\n"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Quiet: the index asks for /version every second. Errors are still logged."""


def make_server(settings: Settings, host: str = HOST, port: int = 0, *,
                config: Path | None = None, period: Period | None = None
                ) -> tuple[PreviewServer, str]:
    """A server for `settings` on 127.0.0.1:`port` (0: a free port), not yet serving;
    call `serve_forever()`, and `shutdown()` from another thread to stop it."""
    if host != HOST:
        raise DigestError(f"digest serve listens on {HOST} only, not {host}: "
                          "the previews are for this machine")
    live = LiveSite(settings, config=config, period=period)
    try:
        server = PreviewServer(port, live)
    except OSError as exc:
        raise DigestError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from None
    return server, server.url
