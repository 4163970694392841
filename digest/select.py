"""Choose an issue's articles. Pure: no clock, no files; `now` is always passed in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the courier imports Window without the loader
    from digest.content import Article

CADENCE_DAYS = {"weekly": 7, "daily": 1}


@dataclass(frozen=True)
class Window:
    """Articles with `start < date <= end` belong to the window."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start < moment <= self.end


@dataclass(frozen=True)
class Caps:
    per_category: int = 5
    total: int = 30


@dataclass(frozen=True)
class Section:
    category: str
    articles: tuple[Article, ...]
    more: int = 0  # articles of this category in the window left out by the caps


@dataclass(frozen=True)
class Issue:
    key: str
    window: Window
    sections: tuple[Section, ...]
    caps: Caps = field(default_factory=Caps)

    @property
    def articles(self) -> list[Article]:
        return [article for section in self.sections for article in section.articles]

    @property
    def more(self) -> int:
        return sum(section.more for section in self.sections)

    @property
    def in_window(self) -> int:
        return len(self.articles) + self.more


def cadence_window(now: datetime, cadence: str = "weekly") -> Window:
    """The `cadence`'s span ending at `now` (weekly: the 7 days before it)."""
    return Window(now - timedelta(days=CADENCE_DAYS[cadence]), now)


def dates_window(since: date, until: date, tz: ZoneInfo) -> Window:
    """`since` to `until`, both days included, in the newsletter's time zone."""
    if until < since:
        raise ValueError(f"--until {until} is before --since {since}")
    start = datetime.combine(since, time(0), tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz)
    return Window(start - timedelta(microseconds=1), end - timedelta(microseconds=1))


def issue_key(cadence: str, now: datetime, tz: ZoneInfo) -> str:
    """weekly → ISO week (`2026-W09`), daily → the date, both in the newsletter's zone."""
    local = now.astimezone(tz)
    if cadence == "daily":
        return local.date().isoformat()
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


def manual_key(since: date, until: date, cadence: str = "weekly") -> str:
    """`2026-11-16..2026-11-22`; daily readers' issue of the same days is another issue,
    `2026-11-16..2026-11-22-daily`, so sending one never marks the other as sent."""
    suffix = "" if cadence == "weekly" else f"-{cadence}"
    return f"{since.isoformat()}..{until.isoformat()}{suffix}"


def within(articles: Iterable[Article], window: Window) -> list[Article]:
    """The articles of `window`, newest first: filter a large archive once per run, then
    select each segment from this short list (the result of `select` is the same)."""
    return sorted((article for article in articles if in_window(article, window)),
                  key=newest_first)


def select(
    articles: Iterable[Article],
    *,
    key: str,
    window: Window,
    caps: Caps,
    categories: Iterable[str] = (),
    category_order: Sequence[str] = (),
) -> Issue:
    """The issue for `window`: filtered, deduplicated, grouped, ordered and capped."""
    wanted = {name.casefold() for name in categories}
    chosen = [
        article
        for article in articles
        if in_window(article, window) and (not wanted or article.category.casefold() in wanted)
    ]
    groups = group_by_category(dedupe(chosen))
    ordered = order_categories(groups, category_order)
    return Issue(key, window, apply_caps(ordered, caps), caps)


class Selector:
    """`select` for many sets of categories from one window's articles: the window is
    filtered, deduplicated and grouped once, so each further selection costs
    microseconds. When dropping duplicates could depend on which categories are chosen
    (aliases, or a repeated slug or source), each selection falls back to `select`."""

    def __init__(self, articles: Iterable[Article], window: Window) -> None:
        self.articles, self.window = within(articles, window), window
        self.exact = not any(a.aliases for a in self.articles) and \
            len(dedupe(self.articles)) == len(self.articles)
        self.groups = {name.casefold(): (name, items)
                       for name, items in group_by_category(self.articles).items()}

    def select(self, *, key: str, caps: Caps, categories: Iterable[str] = (),
               category_order: Sequence[str] = ()) -> Issue:
        """What `select(articles, ...)` returns for the same arguments."""
        if not self.exact:
            return select(self.articles, key=key, window=self.window, caps=caps,
                          categories=categories, category_order=category_order)
        wanted = {name.casefold() for name in categories} or self.groups.keys()
        groups = dict(self.groups[name] for name in wanted if name in self.groups)
        ordered = order_categories(groups, category_order)
        return Issue(key, self.window, apply_caps(ordered, caps), caps)


def in_window(article: Article, window: Window) -> bool:
    """Whether the article is new in `window`: a publishDate later than its date (Hugo) is
    when it appears, and an expiryDate at or before the window's end keeps it out."""
    shown = max(article.date, article.publish_date or article.date)
    return shown in window and (article.expiry_date is None or window.end < article.expiry_date)


def dedupe(articles: Iterable[Article]) -> list[Article]:
    """Newest first; an article whose slug or source URL was already seen is dropped, and
    so is one published at an address another article lists among its `aliases`."""
    articles = list(articles)
    moved = {url_key(alias): article.url for article in articles for alias in article.aliases}
    seen: set[str] = set()
    kept = []
    for article in sorted(articles, key=newest_first):
        if moved.get(url_key(article.url), article.url) != article.url:
            continue
        keys = {f"slug:{article.slug}"}
        if article.source:
            keys.add(f"source:{article.source}")
        if keys.isdisjoint(seen):
            kept.append(article)
        seen |= keys
    return kept


def url_key(url: str) -> str:
    """An address compared without its trailing slash: Zola serves `x/` for `x`."""
    return url.rstrip("/")


def newest_first(article: Article) -> tuple[float, str]:
    return (-article.date.timestamp(), article.slug)


def group_by_category(articles: Iterable[Article]) -> dict[str, list[Article]]:
    """Grouped case-insensitively; a group shows the spelling of its newest article."""
    groups: dict[str, list[Article]] = {}
    names: dict[str, str] = {}
    for article in articles:
        folded = article.category.casefold()
        names.setdefault(folded, article.category)
        groups.setdefault(names[folded], []).append(article)
    return groups


def order_categories(
    groups: dict[str, list[Article]], category_order: Sequence[str]
) -> list[tuple[str, list[Article]]]:
    """Configured categories first, in that order; the rest by size, then name."""
    rank = {name.casefold(): index for index, name in enumerate(category_order)}

    def sort_key(name: str) -> tuple[int, int, str]:
        return (rank.get(name.casefold(), len(rank)), -len(groups[name]), name.casefold())

    return [(name, groups[name]) for name in sorted(groups, key=sort_key)]


def apply_caps(groups: list[tuple[str, list[Article]]], caps: Caps) -> tuple[Section, ...]:
    """Fill round-robin, one article per category per round, so the total cap is shared
    fairly instead of going to the first categories; what is left out is counted."""
    taken = dict.fromkeys((name for name, _ in groups), 0)
    budget = caps.total
    for round_ in range(caps.per_category):
        for name, items in groups:
            if budget and taken[name] == round_ and round_ < len(items):
                taken[name] += 1
                budget -= 1
    return tuple(
        Section(name, tuple(items[: taken[name]]), len(items) - taken[name])
        for name, items in groups
    )

