"""Builders shared by the tests: articles and settings without touching the disk."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from digest.config import SPEC, Settings
from digest.content import Article

BERLIN = ZoneInfo("Europe/Berlin")
BASE_URL = "https://news.example.org"


def make_article(slug: str, when: datetime | str, category: str = "Work", **fields: Any) -> Article:
    moment = datetime.fromisoformat(when) if isinstance(when, str) else when
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BERLIN)
    defaults: dict[str, Any] = {
        "title": slug.replace("-", " ").capitalize(),
        "excerpt": f"What happened with {slug.replace('-', ' ')}, in two short lines of text.",
        "url": f"{BASE_URL}/posts/{slug}",
        "source": f"https://source.example/{slug}",
        "author": "Ada Example",
    }
    return Article(slug=slug, date=moment, category=category, **{**defaults, **fields})


def make_settings(root: Path | None = None, **values: Any) -> Settings:
    """Settings with the defaults, a Berlin newsletter at BASE_URL, and `values` on top
    (keys written with `__` for `.`: `selection__total=10`)."""
    merged = {key: default for key, (_, default) in SPEC.items()}
    merged.update({
        "site.name": "Example News",
        "site.base_url": BASE_URL,
        "site.timezone": "Europe/Berlin",
        "email.postal_address": "Example News, 1 Sample Road, Testville",
    })
    merged.update({key.replace("__", "."): value for key, value in values.items()})
    return Settings(root=root or Path("/nonexistent"), values=merged)


def busy_week(now: datetime, count: int = 200, categories: int = 13) -> list[Article]:
    """A realistic heavy week: long titles, full excerpts, cover images on two in three."""
    articles = []
    for i in range(count):
        slug = f"story-{i:03d}-about-a-fairly-long-topic-name"
        articles.append(make_article(
            slug,
            now - timedelta(minutes=47 * i + 1),
            f"Category {i % categories:02d}",
            title=f"Story {i}: a headline of typical length about teams, tools and the week",
            excerpt=("A summary of the article in two sentences, as editors write them. "
                     "It gives the reader enough to decide whether to click through & read."),
            cover_image=f"{BASE_URL}/images/{slug}.jpg" if i % 3 else None,
        ))
    return articles
