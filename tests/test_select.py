from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from helpers import BERLIN, make_article

from digest.select import (
    Caps,
    Selector,
    Window,
    cadence_window,
    dates_window,
    issue_key,
    manual_key,
    select,
)

UTC = ZoneInfo("UTC")
DEFAULT_CAPS = Caps()
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
WEEK = cadence_window(NOW)


def slugs(issue):
    return [article.slug for article in issue.articles]


def pick(articles, caps=DEFAULT_CAPS, window=WEEK, **options):
    return select(articles, key="k", window=window, caps=caps, **options)


def test_weekly_window_is_the_seven_days_ending_at_now():
    assert Window(NOW - timedelta(days=7), NOW) == WEEK
    assert NOW in WEEK
    assert NOW - timedelta(days=7) not in WEEK
    assert NOW - timedelta(days=7) + timedelta(seconds=1) in WEEK
    assert NOW + timedelta(seconds=1) not in WEEK


def test_daily_window_is_one_day():
    assert cadence_window(NOW, "daily") == Window(NOW - timedelta(days=1), NOW)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (datetime(2026, 11, 28, 23, 30, tzinfo=BERLIN), True),  # last day, 23:30 local
        (datetime(2026, 11, 29, 0, 30, tzinfo=BERLIN), False),  # next day, 00:30 local
        (datetime(2026, 11, 29, 0, 0, tzinfo=BERLIN), False),
        (datetime(2026, 11, 22, 0, 0, tzinfo=BERLIN), True),  # first day, midnight
        (datetime(2026, 11, 21, 23, 59, tzinfo=BERLIN), False),
        (datetime(2026, 11, 28, 22, 30, tzinfo=UTC), True),  # = 23:30 Berlin
        (datetime(2026, 11, 28, 23, 30, tzinfo=UTC), False),  # = 00:30 Berlin next day
    ],
)
def test_dates_window_is_inclusive_in_the_newsletter_time_zone(moment, inside):
    window = dates_window(date(2026, 11, 22), date(2026, 11, 28), BERLIN)
    assert (moment in window) is inside
    issue = pick([make_article("edge", moment)], window=window)
    assert slugs(issue) == (["edge"] if inside else [])


def test_dates_window_refuses_until_before_since():
    with pytest.raises(ValueError, match=r"^--until 2026-11-01 is before --since 2026-11-02$"):
        dates_window(date(2026, 11, 2), date(2026, 11, 1), BERLIN)


def test_issue_keys():
    assert issue_key("weekly", NOW, BERLIN) == "2026-W48"
    # Sunday 23:30 UTC is already Monday in Berlin: the next ISO week.
    assert issue_key("weekly", datetime(2026, 11, 29, 23, 30, tzinfo=UTC), BERLIN) == "2026-W49"
    assert issue_key("daily", datetime(2026, 11, 29, 23, 30, tzinfo=UTC), BERLIN) == "2026-11-30"
    assert issue_key("weekly", datetime(2027, 1, 1, tzinfo=BERLIN), BERLIN) == "2026-W53"
    assert manual_key(date(2026, 11, 1), date(2026, 11, 7)) == "2026-11-01..2026-11-07"
    assert manual_key(date(2026, 11, 1), date(2026, 11, 7), "daily") == (
        "2026-11-01..2026-11-07-daily")


def test_newest_first_within_a_category():
    articles = [make_article(f"a{day}", datetime(2026, 11, day, 9)) for day in (23, 27, 25)]
    assert slugs(pick(articles)) == ["a27", "a25", "a23"]


def test_categories_in_configured_order_then_by_count_then_name():
    articles = [
        make_article("t1", "2026-11-24T09:00", "Tools"),
        make_article("w1", "2026-11-24T09:00", "Work"),
        make_article("w2", "2026-11-25T09:00", "Work"),
        make_article("b1", "2026-11-24T09:00", "Beta"),
        make_article("p1", "2026-11-24T09:00", "Policy"),
    ]
    issue = pick(articles, category_order=["policy"])
    assert [s.category for s in issue.sections] == ["Policy", "Work", "Beta", "Tools"]


def test_category_filter_is_case_insensitive_and_groups_spellings():
    articles = [
        make_article("w1", "2026-11-24T09:00", "Work"),
        make_article("w2", "2026-11-25T09:00", "work"),
        make_article("t1", "2026-11-24T09:00", "Tools"),
    ]
    issue = pick(articles, categories=["WORK"])
    assert [(s.category, len(s.articles)) for s in issue.sections] == [("work", 2)]


def test_same_slug_or_same_source_appears_once_keeping_the_newest():
    articles = [
        make_article("x", "2026-11-24T09:00", source="https://s.example/1", title="old"),
        make_article("x", "2026-11-26T09:00", source="https://s.example/2", title="new"),
        make_article("y", "2026-11-27T09:00", source="https://s.example/3"),
        make_article("z", "2026-11-23T09:00", source="https://s.example/3"),
    ]
    issue = pick(articles)
    assert [(a.slug, a.title) for a in issue.articles] == [("y", "Y"), ("x", "new")]


def test_per_category_cap_counts_what_it_leaves_out():
    articles = [make_article(f"w{i}", NOW - timedelta(hours=i + 1)) for i in range(8)]
    issue = pick(articles, caps=Caps(per_category=3, total=30))
    assert slugs(issue) == ["w0", "w1", "w2"]
    assert issue.sections[0].more == 5
    assert (issue.more, issue.in_window) == (5, 8)


def test_total_cap_is_shared_round_robin_across_categories():
    articles = [
        make_article(f"{cat}{i}", NOW - timedelta(hours=i + 1), cat)
        for cat in ("A", "B", "C")
        for i in range(5 if cat == "A" else 2)
    ]
    issue = pick(articles, caps=Caps(per_category=5, total=5))
    assert [(s.category, len(s.articles), s.more) for s in issue.sections] == [
        ("A", 2, 3), ("B", 2, 0), ("C", 1, 1),
    ]


def test_a_category_left_with_no_room_is_still_counted():
    articles = [make_article(f"{c}", NOW - timedelta(hours=1), c) for c in "ABC"]
    issue = pick(articles, caps=Caps(per_category=5, total=2))
    assert [(s.category, len(s.articles), s.more) for s in issue.sections] == [
        ("A", 1, 0), ("B", 1, 0), ("C", 0, 1),
    ]


def test_busy_week_with_default_caps_is_readable_and_fair():
    articles = [
        make_article(f"c{c}-{i}", NOW - timedelta(minutes=50 * (i * 13 + c) + 1), f"Cat {c:02d}")
        for c in range(13)
        for i in range(200 // 13 + (1 if c < 200 % 13 else 0))
    ]
    assert len(articles) == 200
    issue = pick(articles)
    assert len(issue.articles) == 30
    assert issue.in_window == 200
    assert all(2 <= len(s.articles) <= 3 for s in issue.sections)


def test_articles_outside_the_window_are_ignored():
    articles = [
        make_article("old", NOW - timedelta(days=8)),
        make_article("future", NOW + timedelta(hours=1)),
        make_article("in", NOW - timedelta(days=1)),
    ]
    assert slugs(pick(articles)) == ["in"]


def busy_week(duplicate: dict | None = None):
    """60 articles over 9 days in 7 categories (two spellings of one), ties included."""
    names = ["Work", "work", "Tools", "Policy", "Research", "Security", "Open Source", "AI"]
    articles = [make_article(f"a{i}", NOW - timedelta(hours=3 * i + (i % 4)), names[i % 8])
                for i in range(60)]
    return articles + ([make_article(when=NOW - timedelta(hours=5), **duplicate)]
                       if duplicate else [])


CHOICES = [(), ("Work",), ("WORK", "tools"), ("AI", "Policy", "Security"),
           ("Research", "Open Source", "ai", "Tools"), ("Missing",), ("missing", "Policy")]


@pytest.mark.parametrize("duplicate", [
    None,  # the fast path
    {"slug": "a3", "category": "Tools"},  # a repeated slug: which one is kept depends on
    {"slug": "dup", "category": "AI", "source": "https://source.example/a5"},  # the choice
    {"slug": "moved", "category": "AI", "aliases": ("/posts/a1",)},
], ids=["distinct", "same-slug", "same-source", "aliases"])
@pytest.mark.parametrize("caps", [DEFAULT_CAPS, Caps(per_category=2, total=7)])
def test_a_selector_selects_what_select_does_for_every_choice(duplicate, caps):
    articles = busy_week(duplicate)
    selector = Selector(articles, WEEK)
    assert selector.exact is (duplicate is None)
    for categories in CHOICES:
        for order in [(), ("Security", "work")]:
            assert selector.select(key="k", caps=caps, categories=categories,
                                   category_order=order) == pick(
                articles, caps=caps, categories=categories, category_order=order)
