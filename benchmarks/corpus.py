"""Generate a site that looks like a real news blog's archive, for benchmarks.

The shape is that of the seed site (an AI news blog): YAML front matter with a folded
title, a quoted date, a scraped excerpt, a cover image on most posts, an author, tags,
one category of 13 and a source URL. The numbers follow its real archive:

- `count` articles (12,000 and more by default in the benchmarks) spread over the three
  years before END, the site growing busier over time;
- exactly `per_week` (200) of them in the benchmark week, the 7 days ending at END;
- categories of skewed popularity (a few big desks, a long tail);
- titles of 6 to 16 words, excerpts of 25 to 55 words, cover images on four posts in five.

Subscribers choose 0 to 4 of the 13 categories, popular ones more often (`choices`):
100,000 of them make over 1,000 distinct category sets, as on the real site.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

END = datetime(2026, 11, 29, 8, 0)
YEARS = 3
CATEGORIES = [
    "General AI",
    "Work",
    "Productivity",
    "Research",
    "Policy",
    "Tools",
    "Security",
    "Education",
    "Health",
    "Finance",
    "Open Source",
    "Hardware",
    "Culture",
]
POPULARITY = [1 / (rank + 1) ** 0.6 for rank in range(len(CATEGORIES))]
WORDS = [
    "model",
    "agent",
    "team",
    "tool",
    "data",
    "policy",
    "lab",
    "study",
    "workflow",
    "inbox",
    "meeting",
    "prompt",
    "chip",
    "benchmark",
    "office",
    "release",
    "review",
    "teacher",
    "budget",
    "audit",
    "startup",
    "assistant",
    "regulator",
    "hospital",
    "newsroom",
    "library",
    "contract",
    "pilot",
    "survey",
    "rollout",
    "training",
    "summary",
]
AUTHORS = ["AIVibe Desk", "A. Writer", "B. Editor", "C. Reporter", "D. Analyst"]
ARTICLE = """---
title: >-
  {title}
date: '{date}'
{excerpt}{cover}author: {author}
tags:
{tags}
category: {category}
source: >-
  https://source.example.net/{year}/{slug}/
---
{body}
"""


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def body_paragraph(rng: random.Random) -> str:
    """Prose with the markdown of a real post: a link, emphasis, a code span, an escape."""
    words = sentence(rng, 40).split()
    words[3] = f"[{words[3]}](https://source.example.net/{words[3]})"
    words[9], words[15] = f"*{words[9]}*", f"`{words[15]}`"
    words[21] = words[21] + r"\_x"
    return " ".join(words)


def article_text(rng: random.Random, index: int, when: datetime,
                 body_excerpts: bool = False) -> tuple[str, str]:
    title = sentence(rng, rng.randint(6, 16))[:-1]
    slug = f"{when:%Y-%m-%d}-{index:05d}-" + "-".join(title.lower().split()[:6])
    cover = (
        f"coverImage: >-\n  https://img.example.org/{slug}.jpg?w=400&h=200&fit=crop\n"
        if rng.random() < 0.8
        else ""
    )
    tags = "\n".join(f"  - {rng.choice(WORDS).title()}" for _ in range(rng.randint(1, 4)))
    text = ARTICLE.format(
        title=title,
        date=when.strftime("%Y-%m-%dT%H:%M:%S") if index % 2 else when.strftime("%Y-%m-%d"),
        excerpt=("" if body_excerpts
                 else f"excerpt: >-\n  {sentence(rng, rng.randint(25, 55))[:300]}\n"),
        cover=cover,
        author=rng.choice(AUTHORS),
        tags=tags,
        category=rng.choices(CATEGORIES, POPULARITY)[0],
        year=when.year,
        slug=slug,
        body="\n\n".join([f"# {title}", *(body_paragraph(rng) for _ in range(6))]
                         if body_excerpts
                         else [sentence(rng, rng.randint(20, 60))
                               for _ in range(rng.randint(3, 9))]),
    )
    return slug, text


def dates(rng: random.Random, count: int, per_week: int) -> list[datetime]:
    """`per_week` in the week ending at END, the rest over the YEARS before it, more of
    them recent (the site grew)."""
    week = timedelta(days=7)
    recent = [END - week * (i + 0.5) / per_week for i in range(min(count, per_week))]
    span = timedelta(days=365 * YEARS) - week
    older = [END - week - span * (1 - rng.random() ** 0.5) for _ in range(count - len(recent))]
    return recent + older


def generate(directory: Path, count: int, per_week: int = 200, seed: int = 1,
             body_excerpts: bool = False) -> None:
    """Write `count` articles, `per_week` of them in the week ending at END; with
    `body_excerpts`, without an excerpt field, so excerpts come from the markdown."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for index, when in enumerate(dates(rng, count, per_week)):
        slug, text = article_text(rng, index, when, body_excerpts)
        (directory / f"{slug}.md").write_text(text, encoding="utf-8")


def choices(rng: random.Random) -> tuple[str, ...]:
    """What one subscriber chose: nothing (every category) for one in ten, else 1 to 4
    categories, popular ones more often."""
    if rng.random() < 0.1:
        return ()
    picked: set[str] = set()
    wanted = rng.choice([1, 2, 2, 3, 3, 4, 4])
    while len(picked) < wanted:
        picked.add(rng.choices(CATEGORIES, POPULARITY)[0])
    return tuple(sorted(picked))
