"""Glue between the pure stages: settings → load → select → render within the size budget."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from digest.cache import cache_path
from digest.config import Settings, sender_problems
from digest.content import Article, LoadOptions, LoadResult, load_articles
from digest.errors import DigestError, TemplateError, WindowError
from digest.quality import Finding, check_email
from digest.render import Email, Renderer, Site
from digest.segments import Segment, plan_segments
from digest.select import (
    Caps,
    Issue,
    Window,
    cadence_window,
    dates_window,
    issue_key,
    manual_key,
    select,
)
from digest.store import Subscriber, open_store

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
        url_pattern=settings["content.url_pattern"],
    )


def load(settings: Settings, *, strict: bool = False, cached: bool = True) -> LoadResult:
    cache = cache_path(settings.content_dir) if cached else None
    return load_articles(settings.content_dir, load_options(settings), strict=strict, cache=cache)


def site_of(settings: Settings) -> Site:
    return Site(
        name=settings.site_name,
        base_url=settings.base_url,
        language=settings.language,
        timezone=settings.timezone,
        postal_address=settings["email.postal_address"],
        category_url_pattern=settings["content.category_url_pattern"],
    )


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
                        renderer=renderer, categories=categories, **links)
    return Preview(whole, store_segments(settings, articles, whole, renderer, cadence),
                   tuple(quality_of(whole, links["unsubscribe_url"])))


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


def preview_links(settings: Settings) -> dict[str, str]:
    """Previews show what a reader's links look like, with a placeholder token."""
    return {"unsubscribe_url": settings.unsubscribe_url("preview"),
            "preferences_url": settings.preferences_url("preview")}


def store_segments(settings: Settings, articles: Sequence[Article], whole: Built,
                   renderer: Renderer, cadence: str = "weekly") -> list[SegmentBuild]:
    """A preview per segment of the store's active readers, with its quality findings;
    none (and no file) without a store."""
    location = settings.store_path
    if isinstance(location, Path) and not location.exists():
        return []
    with open_store(location) as store:
        readers = store.subscribers(status="active", cadence=cadence)
    return build_segments(readers, articles, cadence=cadence, key=whole.issue.key,
                          window=whole.issue.window, settings=settings, renderer=renderer,
                          check=True, **preview_links(settings))


def caps_of(settings: Settings) -> Caps:
    return Caps(settings["selection.per_category"], settings["selection.total"])


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
) -> Built:
    """Select and render; while the HTML is over budget, lower the total cap and retry.

    Lowering the total keeps the round-robin fair: every category loses its
    lowest-ranked articles first, and the email links to "N more in …".
    """
    budget = settings["email.size_budget_kb"] * 1024
    caps = caps_of(settings)
    order = settings["selection.category_order"]
    issue = select(articles, key=key, window=window, caps=caps, categories=categories,
                   category_order=order)
    wanted = len(issue.articles)
    links = {"unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url}
    email = renderer.render(issue, **links)
    for _ in range(MAX_TRIM_ROUNDS):
        if email.size <= budget or len(issue.articles) <= 1:
            break
        caps = replace(caps, total=smaller_total(len(issue.articles), email.size, budget))
        issue = select(articles, key=key, window=window, caps=caps, categories=categories,
                       category_order=order)
        email = renderer.render(issue, **links)
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
    """Every problem in the content, then a test render of all articles."""
    loaded = load(settings)
    report = CheckReport(len(loaded.articles), [str(p) for p in loaded.problems],
                         duplicate_slugs(loaded.articles))
    report.warnings.extend(f"{problem}; sends refuse to start without it"
                           for problem in sender_problems(settings))
    if not loaded.articles:
        report.problems.append(f"{settings.content_dir}: no readable article")
        return report
    try:
        built = build_issue(
            loaded.articles, key="check", window=span(loaded.articles), settings=settings,
            renderer=renderer_for(settings), unsubscribe_url=settings.unsubscribe_url("check"),
        )
    except TemplateError as exc:
        report.problems.append(str(exc))
        return report
    if built.trimmed:
        report.warnings.append(f"rendering all articles at once trimmed {built.trimmed} of them "
                               "to stay under the size budget")
    add_findings(report, "rendered email", quality_of(built, settings.unsubscribe_url("check")))
    check_preview(settings, loaded.articles, report)
    return report


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
               samples: Mapping[str, str] | None = None) -> list[Finding]:
    """The quality findings; `samples` fills substitution tags with URLs of the shape each
    reader's will have, so those links are checked too."""
    html, text = built.email.html, built.email.text
    for tag, url in (samples or {}).items():
        html, text = html.replace(tag, url), text.replace(tag, url)
    unsubscribe_url = (samples or {}).get(unsubscribe_url, unsubscribe_url)
    return check_email(html, text, unsubscribe_url=unsubscribe_url,
                       article_urls=[article.url for article in built.issue.articles])


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


PARALLEL_RENDER_FROM = 24  # segments before rendering moves to a process per core
_job: dict[str, Any] = {}  # what forked render workers inherit


def build_segments(
    subscribers: Iterable[Subscriber],
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
) -> list[SegmentBuild]:
    """One render per segment (set of chosen categories), each within the size budget;
    with `check`, each email's quality findings too. Many segments render on every core."""
    plan = plan_segments(subscribers, articles, cadence=cadence, key=key, window=window,
                         caps=caps_of(settings),
                         category_order=settings["selection.category_order"])
    todo = [segment.categories for segment in plan.segments if not segment.empty]
    job = {"articles": articles, "key": key, "window": window, "settings": settings,
           "renderer": renderer, "unsubscribe_url": unsubscribe_url,
           "preferences_url": preferences_url, "samples": samples, "check": check}
    results = iter(render_many(todo, job))
    return [SegmentBuild(segment, None) if segment.empty else SegmentBuild(segment, *next(results))
            for segment in plan.segments]


def render_many(category_sets: Sequence[tuple[str, ...]], job: dict[str, Any]
                ) -> list[tuple[Built, tuple[Finding, ...]]]:
    workers = min(os.cpu_count() or 1, 4)
    if len(category_sets) < PARALLEL_RENDER_FROM or workers < 2:
        return [render_one(categories, job) for categories in category_sets]
    _job.update(job)  # inherited by the forked workers, never pickled
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            return list(pool.map(render_one, category_sets, chunksize=4))
    finally:
        _job.clear()


def render_one(categories: tuple[str, ...], job: dict[str, Any] | None = None
               ) -> tuple[Built, tuple[Finding, ...]]:
    job = job or _job
    built = build_issue(job["articles"], key=job["key"], window=job["window"],
                        settings=job["settings"], renderer=job["renderer"],
                        unsubscribe_url=job["unsubscribe_url"], categories=categories,
                        preferences_url=job.get("preferences_url"))
    findings = quality_of(built, job["unsubscribe_url"], job.get("samples")) \
        if job["check"] else []
    return built, tuple(findings)
