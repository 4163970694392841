"""A live preview server for template authors: save a template, an article or the config,
and the page in the browser shows the new render by itself.

Standard library only (`http.server`), and bound to 127.0.0.1 only. Before answering, each
request compares a cheap fingerprint of the watched files, (path, mtime_ns, size) of each,
with the one taken before the last render; if it differs, the site is rendered again, once,
under a lock. A render that fails (template syntax, bad config) becomes an error on the
page, and the next change renders again.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2

from digest import pipeline
from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.preview import variant_stem
from digest.quality import Finding
from digest.render import template_problem
from digest.site_files import FOLDER, SiteFiles

HOST = "127.0.0.1"
VIEWS = {"mobile": "Mobile (375 px)", "desktop": "Desktop (1280 px, at half size)"}
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
    """One email to look at: the whole issue, or one segment's."""

    stem: str  # as `digest preview` names the files: `<key>` or `<key>--<segment>`
    name: str
    label: str
    subscribers: int | None
    built: pipeline.Built | None  # None: the segment has no articles this time
    findings: tuple[Finding, ...] = ()

    @property
    def checks(self) -> str:
        if self.built is None:
            return ""
        levels = [finding.level for finding in self.findings]
        counts = [f"{levels.count(level)} {level}{'' if levels.count(level) == 1 else 's'}"
                  for level in ("error", "warning") if level in levels]
        return ", ".join(counts) or "OK"


@dataclass(frozen=True)
class Snapshot:
    """Everything one render produced, or the error that stopped it."""

    key: str = ""
    variants: tuple[Variant, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str | None = None
    site: SiteFiles | None = None  # the site's images, shown from disk

    @cached_property
    def version(self) -> str:
        """A short token that changes whenever anything shown changes."""
        parts = [self.key, self.error or "", *self.warnings]
        for v in self.variants:
            email = v.built.email if v.built else None
            parts += [v.stem, email.html if email else "", email.text if email else "",
                      *(str(finding) for finding in v.findings)]
        return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:12]

    def variant(self, stem: str) -> Variant | None:
        return next((v for v in self.variants if v.stem == stem), None)


def render_site(settings: Settings, *, period: Period | None = None) -> Snapshot:
    """The whole issue, and one variant per segment of the store's active weekly readers."""
    loaded = pipeline.load(settings)
    period = period or Period()
    shown = pipeline.build_preview(settings, loaded.articles, since=period.since,
                                   until=period.until, now=period.now, cadence=period.cadence)
    key = shown.whole.issue.key
    whole = Variant(variant_stem(key), "(whole issue)", "every category", None, shown.whole,
                    shown.findings)
    segments = segment_variants(shown.segments, key)
    return Snapshot(key, (whole, *segments), tuple(str(p) for p in loaded.problems),
                    site=pipeline.site_files(settings, loaded.articles))


def segment_variants(items: Sequence[pipeline.SegmentBuild], key: str) -> list[Variant]:
    """One variant per segment, named as `digest preview` names its files."""
    return [Variant(variant_stem(key, item.segment.slug), item.segment.slug,
                    item.segment.label, len(item.segment.recipients), item.built,
                    item.findings)
            for item in items]


def describe(exc: Exception) -> str:
    """The error's message; the renderer already names the template file and line, and
    anything else is worded the same way (with the template line if it passed one)."""
    return str(exc) if isinstance(exc, DigestError) else template_problem(exc)


def fingerprint(paths: Iterable[Path]) -> Stamp:
    """(path, mtime_ns, size) of every file at or under `paths`; missing ones are left out."""
    entries = []
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            try:
                info = file.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                entries.append((str(file), info.st_mtime_ns, info.st_size))
    return tuple(entries)


class LiveSite:
    """The latest render, redone when a watched file changed since it was made.

    With `config`, that file is watched too and read again on a change; the values in which
    `settings` differs from it (command-line options such as --content) keep winning.
    """

    def __init__(self, settings: Settings, *, config: Path | None = None,
                 period: Period | None = None) -> None:
        self.settings, self.config, self.period = settings, config, period
        self.overrides = overrides_of(settings, config)
        self.lock = threading.Lock()
        self.stamp: Stamp | None = None
        self.snapshot = Snapshot()

    def current(self) -> Snapshot:
        with self.lock:
            stamp = fingerprint(self.watched())
            if stamp != self.stamp:
                self.stamp = stamp  # taken first: a save during the render shows next time
                self.snapshot = self.render()
            return self.snapshot

    def watched(self) -> list[Path]:
        store = self.settings.store_path
        paths = [self.settings.templates_dir, self.settings.content_dir]
        if isinstance(store, Path):  # a PostgreSQL store is read again on each render
            paths += [store, store.with_name(f"{store.name}-wal")]
        return paths + ([self.config] if self.config else [])

    def render(self) -> Snapshot:
        try:
            if self.config is not None:
                self.settings = reloaded(self.config, self.overrides)
            return render_site(self.settings, period=self.period)
        except Exception as exc:  # a template can raise anything: the author must see it
            return Snapshot(error=describe(exc))


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
<tr{% if v.stem == chosen.stem %} class="chosen"{% endif %}>
<td>{% if v.built %}<a href="/?variant={{ v.stem|urlencode }}&amp;view={{ view }}">{{ v.name }}</a>
{%- else %}{{ v.name }}{% endif %}</td><td>{{ v.label }}</td>
<td class="n">{{ v.subscribers if v.subscribers is not none else "" }}</td>
{%- if v.built %}
<td class="n">{{ v.built.issue.articles|length }}</td>
<td class="n">{{ "%.1f KB"|format(v.built.email.size / 1024) }}</td>
<td>{{ v.built.email.subject }}</td><td>{{ v.checks }}</td></tr>
{%- else %}
<td class="n">0</td><td></td><td>nothing this time: skipped</td><td></td></tr>
{%- endif %}
{%- endfor %}
</table>
{%- endif %}
{%- if chosen and chosen.built %}
<h2>{{ chosen.name }}: {{ chosen.built.email.subject }}</h2>
<p>{% for name, label in views.items() %}{% if name == view %}<strong>{{ label }}</strong>
{%- else %}<a href="/?variant={{ chosen.stem|urlencode }}&amp;view={{ name }}">{{ label }}</a>
{%- endif %} · {% endfor %}<a href="/email/{{ chosen.stem|urlencode }}.html">HTML</a> ·
<a href="/email/{{ chosen.stem|urlencode }}.txt">text</a></p>
<div class="frame {{ view }}"><iframe src="/email/{{ chosen.stem|urlencode }}.html"
title="{{ chosen.name }}" sandbox="allow-popups allow-popups-to-escape-sandbox"></iframe></div>
<h3>Checks</h3>
{%- if chosen.findings %}
<ul>
{%- for finding in chosen.findings %}
<li class="{{ finding.level }}"><strong>{{ finding.level }}</strong>: {{ finding.message }}</li>
{%- endfor %}
</ul>
{%- else %}
<p>No problems found.</p>
{%- endif %}
<h3>Text part</h3>
<pre>{{ chosen.built.email.text }}</pre>
{%- endif %}
<script>
const version = {{ version|tojson }};
setInterval(async () => {
  try {
    const answer = await fetch("/version", {cache: "no-store"});
    if (answer.ok && (await answer.text()) !== version) location.reload();
  } catch (error) {}
}, 1000);
</script>
</body></html>
""")


def index_page(snapshot: Snapshot, query: Mapping[str, list[str]]) -> str:
    """The variants, the chosen one (default: the whole issue) in a frame, its checks and
    its text part; `?variant=STEM&view=mobile|desktop` pick."""
    chosen = snapshot.variant(query.get("variant", [""])[0])
    if chosen is None and snapshot.variants:
        chosen = snapshot.variants[0]
    view = query.get("view", ["mobile"])[0]
    title = f"Previews of {snapshot.key}" if snapshot.key else "Previews"
    return PAGE.render(title=title, error=snapshot.error, warnings=snapshot.warnings,
                       variants=snapshot.variants, chosen=chosen, views=VIEWS,
                       view=view if view in VIEWS else "mobile", version=snapshot.version)


def email_part(snapshot: Snapshot, name: str) -> Reply:
    """`<stem>.html` or `<stem>.txt` of a variant that has an email."""
    stem, _, extension = name.rpartition(".")
    found = snapshot.variant(stem)
    if found is None or found.built is None or extension not in ("html", "txt"):
        return HTTPStatus.NOT_FOUND, "text/plain", f"no email {name} in this render\n"
    if extension == "html":
        html = found.built.email.html
        return HTTPStatus.OK, "text/html", \
            snapshot.site.localise(html, f"/{FOLDER}/") if snapshot.site else html
    return HTTPStatus.OK, "text/plain", found.built.email.text


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
        snapshot = self.server.live.current()
        if url.path == "/":
            return HTTPStatus.OK, "text/html", index_page(snapshot, parse_qs(url.query))
        if url.path == "/version":
            return HTTPStatus.OK, "text/plain", snapshot.version
        if url.path.startswith("/email/"):
            return email_part(snapshot, unquote(url.path.removeprefix("/email/")))
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
