"""Generate a site of N articles in the real front-matter format, for benchmarks.

One year at 200 a week ending at END, then older ones further back.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

END = datetime(2026, 11, 29, 8, 0)
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
]
ARTICLE = """---
title: >-
  {title}
date: '{date}'
{excerpt}{cover}author: {author}
tags:
  - {tag1}
  - {tag2}
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
    title = sentence(rng, 10)[:-1]
    slug = f"{when:%Y-%m-%d}-{index:05d}-" + "-".join(title.lower().split()[:6])
    cover = (
        f"coverImage: >-\n  https://img.example.org/{slug}.jpg?w=400&h=200\n" if index % 3 else ""
    )
    text = ARTICLE.format(
        title=title,
        date=when.strftime("%Y-%m-%d"),
        excerpt="" if body_excerpts else f"excerpt: >-\n  {sentence(rng, 30)}\n",
        cover=cover,
        author=rng.choice(["Desk", "A. Writer", "B. Editor"]),
        tag1=rng.choice(WORDS).title(),
        tag2=rng.choice(WORDS).title(),
        category=rng.choice(CATEGORIES),
        year=when.year,
        slug=slug,
        body="\n\n".join([f"# {title}", *(body_paragraph(rng) for _ in range(6))]
                           if body_excerpts else [sentence(rng, 40) for _ in range(6)]),
    )
    return slug, text


def generate(directory: Path, count: int, per_week: int = 200, seed: int = 1,
             body_excerpts: bool = False) -> None:
    """Write `count` articles: the newest at `per_week` a week, ending at END; with
    `body_excerpts`, without an excerpt field, so excerpts come from the markdown."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    step = timedelta(days=7) / per_week
    for index in range(count):
        slug, text = article_text(rng, index, END - step * index, body_excerpts)
        (directory / f"{slug}.md").write_text(text, encoding="utf-8")
