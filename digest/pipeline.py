"""Glue between the pure stages: settings → load → select → render within the size budget."""

from __future__ import annotations

import functools
import math
import os
import pickle
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.cache import cache_path
from digest.config import Settings, sender_problems
from digest.content import Article, LoadOptions, LoadResult, load_articles
from digest.errors import DigestError, TemplateError, WindowError
from digest.feeds import FeedLoad, combine, feed_cache_path, feed_sources, load_feeds
from digest.i18n import Language, html_lang, language_findings
from digest.problem_summary import problem_lines
from digest.quality import BlockChecks, Finding
from digest.render import Email, Renderer, Site
from digest.segments import Member, Segment, plan_segments
from digest.select import (
    Caps,
    Issue,
    Section,
    Selector,
    Window,
    cadence_window,
    dates_window,
    issue_key,
    manual_key,
    select,
    within,
)
from digest.site_files import SiteFiles
from digest.store import as_cadence, open_store
from digest.theme import Theme, contrast_pairs
from digest.workers import process_pool

MAX_TRIM_ROUNDS = 8


@dataclass(frozen=True)
class Built:
    issue: Issue
    email: Email
    trimmed: int = 0  # articles dropped to stay under the size budget


def load_options(settings: Settings) -> LoadOptions:
    return LoadOptions(
        base_url=settings.base_url,
        timezone=settings.timezone,
        url_pattern=settings.text("content.url_pattern"),
        section_patterns=tuple(sorted(settings["content.section_url_patterns"].items())),
        lowercase_urls=settings["content.lowercase_urls"] is True,
    )


OFFLINE = "run.offline"  # set by `digest --offline`: feeds are read from their cache only


def load(settings: Settings, *, strict: bool = False, cached: bool = True,
         since: datetime | None = None) -> LoadResult:
    """The markdown articles and the feeds' items, each article once; with `since`, the
    files surely dated before it are left out unread (a send's window starts then)."""
    return combine(*load_sources(settings, strict=strict, cached=cached, since=since))


def load_sources(settings: Settings, *, strict: bool = False, cached: bool = True,
                 since: datetime | None = None) -> tuple[LoadResult, FeedLoad]:
    """The markdown folder's articles (none when content.dir is empty) and the feeds'.
    With feeds, every file is read: a feed item whose URL an older article has (as its own
    or its `source`) is left out (`feeds.combine`), which an unread file could not say."""
    cache = cache_path(settings.content_dir) if cached else None
    sources = feed_sources(settings.values.get("content.feeds") or [])
    local = LoadResult([], []) if not settings["content.dir"] else load_articles(
        settings.content_dir, load_options(settings), strict=strict, cache=cache,
        since=None if sources else since)
    if not sources:
        return local, FeedLoad([], [], [])
    return local, load_feeds(sources, timezone=settings.timezone, root=settings.root,
                             cache=cache and feed_cache_path(cache), strict=strict,
                             offline=bool(settings.values.get(OFFLINE)))


def site_of(settings: Settings) -> Site:
    return Site(
        name=settings.site_name,
        base_url=settings.base_url,
        language=settings.language,
        timezone=settings.timezone,
        postal_address=settings.text("email.postal_address"),
        category_url_pattern=settings.text("content.category_url_pattern"),
        theme=settings.theme,
        archive_url=settings.archive_url,
    )


def site_files(settings: Settings, articles: Sequence[Article]) -> SiteFiles:
    """The site's images on disk, for previews (content.static_dir and page bundles)."""
    return SiteFiles.of(settings.base_url, settings.static_dir, articles)


def renderer_for(settings: Settings) -> Renderer:
    return Renderer(site_of(settings), settings.templates_dir)


@dataclass(frozen=True)
class Preview:
    """What `digest preview` writes and `digest serve` shows: the whole issue, and one
    build per segment of the store's active readers (none without a store), each with
    its quality findings."""

    whole: Built
    segments: list[SegmentBuild]
    findings: tuple[Finding, ...]  # the whole issue's


def build_preview(
    settings: Settings,
    articles: Sequence[Article],
    *,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
    categories: Sequence[str] = (),
    cadence: str = "weekly",
) -> Preview:
    """The issue in the window `preview_window` chooses, limited to `categories`, with the
    preview links, and the segments of the store's `cadence` readers in the same window.
    Raises WindowError when `until` is before `since`."""
    key, window = preview_window(settings, articles, since=since, until=until, now=now)
    renderer, links = renderer_for(settings), preview_links(settings)
    whole = build_issue(articles, key=key, window=window, settings=settings,
                        renderer=renderer, categories=categories,
                        unsubscribe_url=links.unsubscribe_url,
                        preferences_url=links.preferences_url)
    return Preview(whole, store_segments(settings, articles, whole, renderer, cadence),
                   tuple(quality_of(whole, links.unsubscribe_url, language=renderer.language,
                                    theme=settings.theme)))


def preview_window(
    settings: Settings,
    articles: Sequence[Article],
    *,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> tuple[str, Window]:
    """The issue to preview: `since`..`until` (whole days), else the week ending `now`,
    else the 7 days ending at the newest article, so a first run always shows something.
    Raises WindowError when `until` is before `since`."""
    tz = settings.timezone
    if since is not None and until is not None:
        return manual_key(since, until), days_window(since, until, tz)
    if now is None:
        last = newest(articles).astimezone(tz).date()
        first = last - timedelta(days=6)
        return manual_key(first, last), dates_window(first, last, tz)
    now = now if now.tzinfo else now.replace(tzinfo=tz)
    return issue_key("weekly", now, tz), cadence_window(now, "weekly")


def days_window(since: date, until: date, tz: ZoneInfo) -> Window:
    try:
        return dates_window(since, until, tz)
    except ValueError as exc:
        raise WindowError(str(exc)) from None


def newest(articles: Sequence[Article]) -> datetime:
    if not articles:
        raise DigestError("no articles to preview: the content folder has no readable article")
    return max(article.date for article in articles)


@dataclass(frozen=True)
class Links:
    """A reader's two links in an email: unsubscribe and preferences."""

    unsubscribe_url: str
    preferences_url: str | None = None


def preview_links(settings: Settings) -> Links:
    """Previews show what a reader's links look like, with a placeholder token."""
    return Links(settings.unsubscribe_url("preview"), settings.preferences_url("preview"))


def store_segments(settings: Settings, articles: Sequence[Article], whole: Built,
                   renderer: Renderer, cadence: str = "weekly") -> list[SegmentBuild]:
    """A preview per segment of the store's active readers, with its quality findings;
    none (and no file) without a store."""
    subscribers = active_readers(settings, cadence)
    if not subscribers:
        return []
    links = preview_links(settings)
    return list(each_segment(subscribers, articles, cadence=cadence, key=whole.issue.key,
                             window=whole.issue.window, settings=settings, renderer=renderer,
                             check=True, unsubscribe_url=links.unsubscribe_url,
                             preferences_url=links.preferences_url))


def active_readers(settings: Settings, cadence: str) -> Sequence[Member]:
    """The store's active `cadence` readers; none (and no file made) without a store."""
    location = settings.store_path
    if isinstance(location, Path) and not location.exists():
        return []
    with open_store(location) as store:
        return store.members("active", as_cadence(cadence))


@dataclass(frozen=True)
class PreviewPlan:
    """What `digest serve` lists before it renders anything: the issue and the segments
    of the store's `cadence` readers, selected (cheap) but not rendered (not cheap), and
    the job that renders any of them with its quality findings (`render_one`)."""

    whole: Issue
    segments: tuple[Segment, ...]
    job: RenderJob


def plan_preview(settings: Settings, articles: Sequence[Article], *,
                 since: date | None = None, until: date | None = None,
                 now: datetime | None = None, cadence: str = "weekly",
                 readers: Sequence[Member] | None = None) -> PreviewPlan:
    """The issue `build_preview` would build and its segments, selected from the window's
    articles once; `readers` are the store's active `cadence` readers, read when not
    given. Raises WindowError when `until` is before `since`."""
    key, window = preview_window(settings, articles, since=since, until=until, now=now)
    articles = within(articles, window)
    caps, order = caps_of(settings), settings.names("selection.category_order")
    whole = select(articles, key=key, window=window, caps=caps, category_order=order)
    readers = active_readers(settings, cadence) if readers is None else readers
    plan = plan_segments(readers, articles, cadence=cadence,
                         key=key, window=window, caps=caps, category_order=order)
    links = preview_links(settings)
    job = RenderJob(articles=articles, key=key, window=window, settings=settings,
                    site=site_of(settings), templates_dir=settings.templates_dir,
                    unsubscribe_url=links.unsubscribe_url,
                    preferences_url=links.preferences_url, check=True)
    return PreviewPlan(whole, plan.segments, job)


def caps_of(settings: Settings) -> Caps:
    return Caps(settings.integer("selection.per_category"), settings.integer("selection.total"))


def build_issue(
    articles: Sequence[Article],
    *,
    key: str,
    window: Window,
    settings: Settings,
    renderer: Renderer,
    unsubscribe_url: str,
    categories: Sequence[str] = (),
    preferences_url: str | None = None,
    selector: Selector | None = None,
) -> Built:
    """Select (through `selector`, made from `articles` and `window`, when a run selects
    many segments) and render; while the HTML is over budget, lower the total cap and
    retry.

    Lowering the total keeps the round-robin fair: every category loses its
    lowest-ranked articles first, and the email links to "N more in …".
    """
    budget = settings.integer("email.size_budget_kb") * 1024
    caps = caps_of(settings)
    order = settings.names("selection.category_order")
    pick = selector or Selector(articles, window)
    issue = pick.select(key=key, caps=caps, categories=categories, category_order=order)
    wanted = len(issue.articles)
    email = renderer.render(issue, unsubscribe_url=unsubscribe_url,
                            preferences_url=preferences_url)
    for _ in range(MAX_TRIM_ROUNDS):
        if email.size <= budget or len(issue.articles) <= 1:
            break
        caps = replace(caps, total=smaller_total(len(issue.articles), email.size, budget))
        issue = pick.select(key=key, caps=caps, categories=categories, category_order=order)
        email = renderer.render(issue, unsubscribe_url=unsubscribe_url,
                                preferences_url=preferences_url)
    return Built(issue, email, wanted - len(issue.articles))


def smaller_total(count: int, size: int, budget: int) -> int:
    """A total that should fit, assuming the size grows with the article count."""
    return max(1, min(count - 1, math.floor(count * budget / size * 0.97)))


@dataclass
class CheckReport:
    articles: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return len(self.problems)

    def lines(self) -> list[str]:
        lines = [f"Error: {p}" for p in self.problems] + [f"Warning: {w}" for w in self.warnings]
        if not self.problems:
            lines.append(f"OK: {self.articles} articles, configuration and templates are valid")
        return lines


def check_site(settings: Settings) -> CheckReport:
    """Every problem in the content, then a test render of all articles. Feeds that cannot
    be read now, or have failed on several runs, are warnings: the issue still goes out."""
    local, fed = load_sources(settings)
    loaded = combine(local, fed)
    report = CheckReport(len(loaded.articles),
                         problem_lines(local.problems, local.folder_files),
                         [*map(str, local.warnings), *duplicate_slugs(loaded.articles)])
    report.warnings.extend([*map(str, fed.problems), *fed.broken])
    report.warnings.extend(f"{problem}; sends refuse to start without it"
                           for problem in sender_problems(settings))
    if not loaded.articles:
        report.problems.append(f"{settings.content_dir}: no readable article")
        return report
    try:
        renderer = renderer_for(settings)
        built = build_issue(
            loaded.articles, key="check", window=span(loaded.articles), settings=settings,
            renderer=renderer, unsubscribe_url=settings.unsubscribe_url("check"),
        )
    except TemplateError as exc:
        report.problems.append(str(exc))
        return report
    if built.trimmed:
        report.warnings.append(f"rendering all articles at once trimmed {built.trimmed} of them "
                               "to stay under the size budget")
    add_findings(report, "rendered email", quality_of(built, settings.unsubscribe_url("check"),
                                                      language=renderer.language,
                                                      theme=settings.theme))
    report.warnings.extend(view_link_problems(settings, built))
    check_preview(settings, loaded.articles, report)
    return report


def view_link_problems(settings: Settings, built: Built) -> list[str]:
    """With archive.url set, each part of the email must link to the issue's archive page
    (a site's own template may predate the link)."""
    url = site_of(settings).view_url(built.issue.key)
    parts = (("HTML", built.email.html), ("text part", built.email.text))
    return [f"rendered email: the {part} has no \"View in browser\" link ({{{{ view_url }}}}), "
            "though archive.url is set" for part, body in parts if url and url not in body]


def check_preview(settings: Settings, articles: Sequence[Article], report: CheckReport) -> None:
    """The checks on what `digest preview` would write: the issue and each segment."""
    try:
        shown = build_preview(settings, articles)
    except TemplateError as exc:  # e.g. only a segment's articles break the template
        report.problems.append(f"preview: {exc}")
        return
    add_findings(report, f"preview {shown.whole.issue.key}", shown.findings)
    for item in shown.segments:
        add_findings(report, f"preview segment {item.segment.slug}", item.findings)


def add_findings(report: CheckReport, label: str, findings: Sequence[Finding]) -> None:
    for finding in findings:
        target = report.problems if finding.level == "error" else report.warnings
        target.append(f"{label}: {finding.message}")


def quality_of(built: Built, unsubscribe_url: str,
               samples: Mapping[str, str] | None = None,
               language: Language | None = None, *, theme: Theme | None = None,
               checks: BlockChecks | None = None) -> list[Finding]:
    """The quality findings; `samples` fills substitution tags with URLs of the shape each
    reader's will have, so those links are checked too; with `language`, the site
    language's warnings (digest.i18n.language_findings) come last; the `theme`'s colours
    are checked for contrast, light and dark. With the run's `checks`, each distinct block
    of the email is checked once per run (the findings are the same)."""
    parts, text = (built.email.parts() if checks else [built.email.html]), built.email.text
    for tag, url in (samples or {}).items():
        parts, text = [part.replace(tag, url) for part in parts], text.replace(tag, url)
    unsubscribe_url = (samples or {}).get(unsubscribe_url, unsubscribe_url)
    findings = (checks or BlockChecks()).check(
        parts, text, unsubscribe_url=unsubscribe_url,
        article_urls=[article.url for article in built.issue.articles],
        colours=theme_colours(theme) if theme else ())
    if language is not None:
        findings += language_findings(language, html_lang("".join(parts)))
    return findings


@functools.lru_cache(maxsize=16)
def theme_colours(theme: Theme) -> tuple[tuple[str, str, str], ...]:
    """The colour pairs to check for contrast: the same for every email of a run."""
    return tuple(contrast_pairs(theme.palette))


def duplicate_slugs(articles: Sequence[Article]) -> list[str]:
    """Articles that would share a URL: an issue keeps only the newest of them."""
    paths: dict[str, list[str]] = {}
    for article in articles:
        paths.setdefault(article.slug, []).append(str(article.path))
    return [f"slug {slug!r} is used by {len(files)} files ({', '.join(files)}): "
            "an issue keeps only the newest" for slug, files in paths.items() if len(files) > 1]


def span(articles: Sequence[Article]) -> Window:
    dates = [article.date for article in articles]
    return Window(min(dates) - timedelta(seconds=1), max(dates))


@dataclass(frozen=True)
class SegmentBuild:
    segment: Segment
    built: Built | None  # None: nothing in the segment's categories this time
    findings: tuple[Finding, ...] = ()  # quality checks of its email, when asked for


# Segments from which the run renders on every core (see render_each). Measured on 2
# cores otherwise idle (benchmarks/bench_render_pool.py, medians of 3): a forked worker
# starts in milliseconds but fills its own block caches and sends its builds back to
# the run; one process against the pool, wall (CPU): 24 segments 0.14 s (0.14) against
# 0.20 s (0.21); 100: 0.36 (0.36) against 0.31 (0.49); 200: 0.58 (0.58) against 0.43
# (0.77); 1,000: 2.65 (2.65) against 1.61 (2.89). From 200 the pool saves 26% and more;
# below, 0.05 s at most for a third more CPU. With no idle core (others' work) the pool is
# slower at any size: 2.93 s against 2.40 s for 1,000. A spawned worker (no fork) costs
# 0.5 s more: 0.94 s for 200 segments, 2.17 s for 1,000.
PARALLEL_RENDER_FROM = 200
CHUNK = 20  # segments a worker renders at a time: neighbours, which share more blocks
# (10, 20, 40 or 80 made no difference beyond the noise: 2.07-2.22 s for the plan of
# the 100,000-reader benchmark's 1,093 segments)
AHEAD = 2  # chunks queued for each worker, so that none waits for the next


@dataclass(frozen=True)
class RenderJob:
    """What every segment's render shares. Render workers (workers.py) are forked on
    Linux: each inherits this job and the articles, and uses no lock file and no
    database connection of the run's; elsewhere they are spawned and get it pickled once.
    Either way each builds its own renderer, and sends each build back `packed`."""

    articles: Sequence[Article]
    key: str
    window: Window
    settings: Settings
    site: Site
    templates_dir: Path | None
    unsubscribe_url: str
    preferences_url: str | None = None
    samples: Mapping[str, str] | None = None
    check: bool = False

    def renderer(self) -> Renderer:
        return Renderer(self.site, self.templates_dir)

    @functools.cached_property
    def selector(self) -> Selector:
        """The window's articles grouped once for every segment this job renders."""
        return Selector(self.articles, self.window)


def each_segment(
    subscribers: Iterable[Member],
    articles: Sequence[Article],
    *,
    cadence: str,
    key: str,
    window: Window,
    settings: Settings,
    renderer: Renderer,
    unsubscribe_url: str,
    preferences_url: str | None = None,
    samples: Mapping[str, str] | None = None,
    check: bool = False,
) -> Generator[SegmentBuild, None, None]:
    """One render per segment (set of chosen categories), each within the size budget,
    with `check` its quality findings too: each build as it is rendered, in the plan's
    order, so a caller can let each email go before the next (very many segments render
    on every core)."""
    articles = within(articles, window)  # once, not once per segment and per render
    plan = plan_segments(subscribers, articles, cadence=cadence, key=key, window=window,
                         caps=caps_of(settings),
                         category_order=settings.names("selection.category_order"))
    todo = [segment.categories for segment in plan.segments if not segment.empty]
    job = RenderJob(articles, key, window, settings, renderer.site, renderer.templates_dir,
                    unsubscribe_url, preferences_url, samples, check)
    results = render_each(todo, job, renderer)
    try:
        for segment in plan.segments:
            yield SegmentBuild(segment, None) if segment.empty else \
                SegmentBuild(segment, *next(results))
    finally:
        results.close()  # the render workers, if any, end here, even on an error


def render_many(category_sets: Sequence[tuple[str, ...]], job: RenderJob,
                renderer: Renderer) -> list[tuple[Built, tuple[Finding, ...]]]:
    return list(render_each(category_sets, job, renderer))


def render_each(category_sets: Sequence[tuple[str, ...]], job: RenderJob,
                renderer: Renderer) -> Generator[tuple[Built, tuple[Finding, ...]], None, None]:
    """Each set's build and findings, in order. With many sets, this process renders from
    the first on while one worker per further core renders from the last back, until
    they meet: this process keeps its warm caches and its builds are not sent anywhere."""
    workers = min(os.cpu_count() or 1, 4)
    checks = BlockChecks()
    if len(category_sets) < PARALLEL_RENDER_FROM or workers < 2:
        yield from (render_one(categories, job, renderer, checks)
                    for categories in category_sets)
        return
    chunks = [category_sets[i:i + CHUNK] for i in range(0, len(category_sets), CHUNK)]
    with process_pool(workers - 1, start_renderer, (job,), fork=True) as pool:
        shared = Meeting(chunks, pool, AHEAD * (workers - 1))
        for chunk in shared.front():
            yield from (render_one(categories, job, renderer, checks) for categories in chunk)
        for results in shared.back():
            yield from ((unpacked(packed, job), findings) for packed, findings in results)


Rendered = list[tuple["Packed", tuple[Finding, ...]]]


class Meeting:
    """Chunks of segments shared between this process, which takes them from the front,
    and its workers, which are given them from the back, a few at a time, until the two
    meet. Only this process's thread moves the meeting point."""

    def __init__(self, chunks: list[Sequence[tuple[str, ...]]], pool: Executor,
                 ahead: int) -> None:
        self.chunks, self.pool, self.ahead = chunks, pool, ahead
        self.first, self.last = 0, len(chunks)  # chunks[first:last] are nobody's yet
        self.given: dict[int, Future[Rendered]] = {}

    def give(self) -> None:
        """Keep `ahead` chunks queued or rendering in the workers."""
        while self.first < self.last and \
                sum(not given.done() for given in self.given.values()) < self.ahead:
            self.last -= 1
            self.given[self.last] = self.pool.submit(render_chunk, self.chunks[self.last])

    def front(self) -> Iterator[Sequence[tuple[str, ...]]]:
        """This process's chunks, in order, until it meets the workers'."""
        self.give()
        while self.first < self.last:
            self.first += 1
            yield self.chunks[self.first - 1]
            self.give()

    def back(self) -> Iterator[Rendered]:
        """The workers' chunks, in order, each when done."""
        for index in sorted(self.given):
            yield self.given.pop(index).result()


@dataclass
class Worker:
    """A render worker's own job and renderer, set once by `start_worker`, and where each
    of the job's articles is in `job.articles`."""

    job: RenderJob
    renderer: Renderer
    checks: BlockChecks
    places: dict[int, int]


_worker: list[Worker] = []  # in a render worker process only


def start_renderer(job: RenderJob) -> None:
    """In a new render worker (see workers.py): keep the job and its renderer."""
    places = {id(article): i for i, article in enumerate(job.articles)}
    _worker.append(Worker(job, job.renderer(), BlockChecks(), places))


def render_chunk(chunk: Sequence[tuple[str, ...]]) -> Rendered:
    """In a render worker: each set's build, packed to be sent back, and findings."""
    worker, rendered = _worker[0], []
    for categories in chunk:
        built, findings = render_one(categories, worker.job, worker.renderer, worker.checks)
        rendered.append((packed(built, worker.places), findings))
    return rendered


@dataclass(frozen=True)
class Packed:
    """A Built as a render worker sends it back: each article as its place in the job's
    articles (the parent has them), so only the email and a few numbers are pickled."""

    key: str
    window: Window
    caps: Caps
    sections: tuple[tuple[str, tuple[int | Article, ...], int], ...]  # category, articles, more
    email: bytes  # the Email pickled and compressed: the worker's builds wait in the run
    trimmed: int  # until it reaches them, about 80 KB each as text, a sixth of that so


def packed(built: Built, places: Mapping[int, int]) -> Packed:
    issue = built.issue
    sections = tuple((section.category, tuple(places.get(id(a), a) for a in section.articles),
                      section.more) for section in issue.sections)
    email = zlib.compress(pickle.dumps(built.email, pickle.HIGHEST_PROTOCOL), 1)
    return Packed(issue.key, issue.window, issue.caps, sections, email, built.trimmed)


def unpacked(packed: Packed, job: RenderJob) -> Built:
    """The Built that `packed` was made from, with the job's own articles."""
    articles = job.articles
    sections = tuple(Section(category, tuple(articles[a] if isinstance(a, int) else a
                                             for a in items), more)
                     for category, items, more in packed.sections)
    email: Email = pickle.loads(zlib.decompress(packed.email))
    return Built(Issue(packed.key, packed.window, sections, packed.caps), email, packed.trimmed)


def render_one(categories: tuple[str, ...], job: RenderJob, renderer: Renderer,
               checks: BlockChecks | None = None) -> tuple[Built, tuple[Finding, ...]]:
    built = build_issue(job.articles, key=job.key, window=job.window, settings=job.settings,
                        renderer=renderer, unsubscribe_url=job.unsubscribe_url,
                        categories=categories, preferences_url=job.preferences_url,
                        selector=job.selector)
    findings = quality_of(built, job.unsubscribe_url, job.samples,
                          language=renderer.language,
                          theme=job.settings.theme, checks=checks) if job.check else []
    return built, tuple(findings)
