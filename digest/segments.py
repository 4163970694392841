"""Segments: the active subscribers of one cadence, grouped by the categories they chose.

Pure. Categories match case-insensitively, and choosing none means every category.
Each segment's issue is selected afresh from the window's articles restricted to its
categories, with the same caps and order as the full issue, so it is rendered once
for all its recipients. A segment whose slice is empty is reported, to be skipped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from digest.content import Article
from digest.select import Caps, Issue, Selector, Window

ALL = "all"
MAX_SLUG = 60
HASH_LENGTH = 10
PLAIN_CATEGORY = re.compile(r"[a-z0-9]+(?: [a-z0-9]+)*")


class Member(Protocol):
    """What a segment needs of a subscriber (a Subscriber, or the store's lighter
    Member)."""

    @property
    def id(self) -> int: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def status(self) -> str: ...
    @property
    def cadence(self) -> str: ...


@dataclass(frozen=True)
class Segment:
    slug: str  # stable, for file names: `all`, `productivity_tools`, …
    categories: tuple[str, ...]  # in the site's spelling, sorted; () means every category
    recipients: tuple[Member, ...]
    issue: Issue

    @property
    def empty(self) -> bool:
        return not self.issue.articles

    @property
    def label(self) -> str:
        return ", ".join(self.categories) if self.categories else "all categories"


@dataclass(frozen=True)
class SegmentPlan:
    segments: tuple[Segment, ...]

    @property
    def ready(self) -> tuple[Segment, ...]:
        return tuple(segment for segment in self.segments if not segment.empty)

    @property
    def empty(self) -> tuple[Segment, ...]:
        return tuple(segment for segment in self.segments if segment.empty)

    def report(self) -> list[str]:
        """One line per segment that has nothing to send."""
        return [
            f"segment {s.slug} ({len(s.recipients)} "
            f"{'recipient' if len(s.recipients) == 1 else 'recipients'}): no articles in "
            f"{s.label} in this window; skipped"
            for s in self.empty
        ]


def plan_segments(
    subscribers: Iterable[Member],
    articles: Sequence[Article],
    *,
    cadence: str,
    key: str,
    window: Window,
    caps: Caps,
    category_order: Sequence[str] = (),
) -> SegmentPlan:
    """A segment for each distinct set of categories the active `cadence` subscribers chose."""
    groups = group_subscribers(subscribers, cadence)
    names = spellings(articles, groups.values())
    selector = Selector(articles, window)
    segments = [
        Segment(
            segment_slug(folded),
            tuple(sorted((names[name] for name in folded), key=str.casefold)),
            tuple(members),
            selector.select(key=key, caps=caps, categories=folded,
                            category_order=category_order),
        )
        for folded, members in groups.items()
    ]
    return SegmentPlan(tuple(sorted(segments, key=lambda s: (len(s.categories), s.slug))))


def group_subscribers(subscribers: Iterable[Member], cadence: str
                      ) -> dict[frozenset[str], list[Member]]:
    """Active subscribers of `cadence` by their casefolded set of chosen categories
    (each distinct choice is folded once), in the order given."""
    groups: dict[frozenset[str], list[Member]] = {}
    folded: dict[tuple[str, ...], list[Member]] = {}
    for subscriber in subscribers:
        if subscriber.status == "active" and subscriber.cadence == cadence:
            choice = tuple(subscriber.categories)
            members = folded.get(choice)
            if members is None:
                members = groups.setdefault(frozenset(n.casefold() for n in choice), [])
                folded[choice] = members
            members.append(subscriber)
    return groups


def spellings(articles: Iterable[Article], groups: Iterable[list[Member]]
              ) -> dict[str, str]:
    """casefolded name → how to show it: the site's spelling, else a subscriber's."""
    names: dict[str, str] = {}
    for article in articles:
        names.setdefault(article.category.casefold(), article.category)
    choices = {tuple(s.categories) for members in groups for s in members}
    chosen = sorted({name for choice in choices for name in choice})
    for name in chosen:
        names.setdefault(name.casefold(), name)
    return names


def segment_slug(categories: Iterable[str]) -> str:
    """`all`, or the sorted category slugs joined by `_`. A hash is appended when the
    slug would be long or could stand for another set (`Tools & Tips`, `C++`)."""
    folded = sorted({name.casefold() for name in categories})
    if not folded:
        return ALL
    readable = "_".join(re.sub(r"[^a-z0-9]+", "-", name).strip("-") for name in folded)
    exact = all(PLAIN_CATEGORY.fullmatch(name) for name in folded) and readable != ALL
    if exact and len(readable) <= MAX_SLUG:
        return readable
    digest = hashlib.sha256("\n".join(folded).encode()).hexdigest()[:HASH_LENGTH]
    return f"{readable[: MAX_SLUG - HASH_LENGTH - 1].strip('-_')}-{digest}".lstrip("-")
