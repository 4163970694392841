"""Segments: subscribers grouped by chosen categories, each with its own issue."""

from datetime import UTC, datetime, timedelta

import pytest

from digest.content import Article
from digest.segments import plan_segments, segment_slug
from digest.select import Caps, cadence_window
from digest.store import Subscriber

NOW = datetime(2026, 2, 23, 8, 0, tzinfo=UTC)
WINDOW = cadence_window(NOW, "weekly")


def article(slug: str, category: str, days_ago: float) -> Article:
    return Article(slug=slug, title=slug, date=NOW - timedelta(days=days_ago), excerpt="",
                   url=f"https://example.org/{slug}", category=category)


def subscriber(id_: int, *categories: str, cadence: str = "weekly",
               status: str = "active") -> Subscriber:
    return Subscriber(id_, f"reader{id_}@example.com", "", categories, cadence, status, NOW)


ARTICLES = [
    article("ai-1", "General AI", 1), article("ai-2", "General AI", 2),
    article("ai-3", "General AI", 3), article("tools-1", "Tools", 1),
    article("tools-2", "Tools", 2), article("research-1", "Research", 4),
    article("policy-old", "Policy", 30),
]


DEFAULT_CAPS = Caps(per_category=5, total=30)


def plan(subscribers, caps=DEFAULT_CAPS, cadence="weekly"):
    return plan_segments(subscribers, ARTICLES, cadence=cadence, key="2026-W09", window=WINDOW,
                         caps=caps)


def test_active_subscribers_of_the_cadence_are_grouped_by_their_categories():
    segments = plan([
        subscriber(1), subscriber(2, "Tools"), subscriber(3, "General AI", "Tools"),
        subscriber(4, "Tools", "General AI"), subscriber(5, "Tools", cadence="daily"),
        subscriber(6, status="unsubscribed"), subscriber(7, status="pending"),
    ]).segments
    assert [(s.slug, s.categories, [r.id for r in s.recipients]) for s in segments] == [
        ("all", (), [1]),
        ("tools", ("Tools",), [2]),
        ("general-ai_tools", ("General AI", "Tools"), [3, 4]),
    ]


def test_categories_match_whatever_their_case():
    segments = plan([subscriber(1, "general ai"), subscriber(2, "GENERAL AI"),
                     subscriber(3, "General AI", "general ai")]).segments
    assert len(segments) == 1
    assert (segments[0].slug, segments[0].categories) == ("general-ai", ("General AI",))
    assert [a.slug for a in segments[0].issue.articles] == ["ai-1", "ai-2", "ai-3"]


def test_each_segment_gets_only_its_categories():
    segments = plan([subscriber(1), subscriber(2, "Tools", "Research")]).segments
    issues = {s.slug: [a.slug for a in s.issue.articles] for s in segments}
    assert issues == {
        "all": ["ai-1", "ai-2", "ai-3", "tools-1", "tools-2", "research-1"],
        "research_tools": ["tools-1", "tools-2", "research-1"],
    }


def test_a_segment_with_nothing_in_the_window_is_reported_to_be_skipped():
    segment_plan = plan([subscriber(1, "Policy"), subscriber(2, "policy"),
                         subscriber(3, "Crypto"), subscriber(4, "Tools")])
    assert [s.slug for s in segment_plan.ready] == ["tools"]
    assert segment_plan.report() == [
        "segment crypto (1 recipient): no articles in Crypto in this window; skipped",
        "segment policy (2 recipients): no articles in Policy in this window; skipped",
    ]


def test_the_caps_apply_to_each_segment_selected_afresh():
    segments = plan([subscriber(1), subscriber(2, "Tools"), subscriber(3, "Research")],
                    caps=Caps(per_category=2, total=3)).segments
    issues = {s.slug: [a.slug for a in s.issue.articles] for s in segments}
    assert issues == {
        "all": ["ai-1", "tools-1", "research-1"],
        "research": ["research-1"],
        "tools": ["tools-1", "tools-2"],
    }
    assert all(s.issue.caps == Caps(2, 3) for s in segments)


def test_daily_subscribers_get_their_own_segments():
    segments = plan([subscriber(1, "Tools"), subscriber(2, "Tools", cadence="daily")],
                    cadence="daily").segments
    assert [(s.slug, [r.id for r in s.recipients]) for s in segments] == [("tools", [2])]


def test_no_subscribers_means_no_segments():
    assert plan([]).segments == ()


@pytest.mark.parametrize(("categories", "slug"), [
    ((), "all"),
    (("Tools",), "tools"),
    (("tools", "General AI"), "general-ai_tools"),
    (("General AI", "TOOLS"), "general-ai_tools"),
    (("General-AI",), "general-ai-4a7931c614"),
    (("C++",), "c-cedb1bac7e"),
    (("All",), "all-5ef5ef0364"),
    (("Café",), "caf-850f7dc439"),
])
def test_a_segment_slug_is_readable_stable_and_never_ambiguous(categories, slug):
    assert segment_slug(categories) == slug


def test_a_long_slug_is_shortened_with_a_hash():
    categories = [f"Category number {n}" for n in range(6)]
    slug = segment_slug(categories)
    assert len(slug) == 60
    assert slug.startswith("category-number-0_category-number-1_")
    assert slug != segment_slug([*categories[:5], "Category number 7"])
