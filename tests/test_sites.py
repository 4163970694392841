"""The generators' own rules (digest/sites.py), one case each, through the loader and
selection: URL overrides and placeholders, page bundles, Jekyll categories, Hugo's
publishDate and expiryDate, and the cover image fields."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest.content import LoadOptions, load_articles
from digest.select import Caps, Window, select, within
from digest.sites import urlize

BERLIN = ZoneInfo("Europe/Berlin")


def load_one(tmp_path: Path, name: str, text: str, pattern: str = "{base_url}/posts/{slug}",
             base_url: str = "https://site.example", **options):
    file = tmp_path / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    loaded = load_articles(tmp_path, LoadOptions(base_url=base_url, timezone=BERLIN,
                                                 url_pattern=pattern, **options))
    return loaded.articles[0] if loaded.articles else loaded.problems


POST = "---\ntitle: {title}\ndate: 2026-11-24T10:00:00+01:00\n{extra}\n---\nText.\n"


def post(extra: str = "", title: str = "A Post") -> str:
    return POST.format(title=title, extra=extra)


@pytest.mark.parametrize(("extra", "url"), [
    ("url: /custom/path/", "https://site.example/custom/path/"),
    ("url: custom/path/", "https://site.example/custom/path/"),
    ("permalink: /:year/:month/:title/", "https://site.example/2026/11/a-post/"),
    ("url: https://elsewhere.example/page", "https://elsewhere.example/page"),
    ("slug: other-name", "https://site.example/posts/other-name"),
])
def test_front_matter_overrides_the_pattern(tmp_path, extra, url):
    assert load_one(tmp_path, "a-post.md", post(extra)).url == url


def test_a_relative_override_keeps_the_base_urls_own_path(tmp_path):
    article = load_one(tmp_path, "a-post.md", post("permalink: /about/"),
                       base_url="https://site.example/blog/")
    assert article.url == "https://site.example/blog/about/"


def test_a_bad_url_field_is_named(tmp_path):
    (problem,) = load_one(tmp_path, "a-post.md", post("url: 5"))
    assert (problem.field, problem.message) == ("url", "must be a path or an address, not 5")


def test_jekyll_placeholders_and_an_empty_categories_folder(tmp_path):
    pattern = "{base_url}/{categories}/{year}/{month}/{day}/{title}{output_ext}"
    article = load_one(tmp_path, "_posts/2026-11-24-a-post.md", post(), pattern)
    assert article.url == "https://site.example/2026/11/24/a-post.html"


def test_jekyll_categories_string_is_two_categories_only_in_posts(tmp_path):
    pattern = "{base_url}/{categories}/{slug}/"
    jekyll = load_one(tmp_path / "j", "_posts/2026-11-24-x.md", post("categories: Jekyll update"),
                      pattern)
    assert (jekyll.category, jekyll.url) == ("Jekyll", "https://site.example/jekyll/update/x/")
    other = load_one(tmp_path / "o", "x.md", post("categories: Local news"), pattern)
    assert (other.category, other.url) == ("Local news", "https://site.example/local%20news/x/")


def test_section_dir_filename_and_a_section_pattern(tmp_path):
    article = load_one(tmp_path, "notes/2026/deep-dive.md", post("slug: dd"),
                       "{base_url}/{section}/{dir}/{filename}/{slug}",
                       section_patterns=(("posts", "{base_url}/p/{slug}"),))
    assert article.url == "https://site.example/notes/notes/2026/deep-dive/dd"
    posted = load_one(tmp_path / "b", "posts/x.md", post(), "{base_url}/{slug}",
                      section_patterns=(("posts", "{base_url}/p/{slug}"),))
    assert posted.url == "https://site.example/p/x"


def test_lowercase_urls_lowers_the_path_but_not_the_base_or_an_override(tmp_path):
    article = load_one(tmp_path / "a", "Notes/My-Post.md", post(), "{base_url}/{dir}/{slug}/",
                       base_url="https://Site.example/Blog", lowercase_urls=True)
    assert article.url == "https://Site.example/Blog/notes/my-post/"
    moved = load_one(tmp_path / "b", "x.md", post("url: /Kept/As-Is/"), lowercase_urls=True)
    assert moved.url == "https://site.example/Kept/As-Is/"


def test_a_page_bundle_is_named_after_its_folder(tmp_path):
    article = load_one(tmp_path, "posts/my-trip/index.md", post("cover:\n  image: pic.jpg"),
                       "{base_url}/{dir}/{slug}/")
    assert article.slug == "my-trip"
    assert article.url == "https://site.example/posts/my-trip/"
    assert article.cover_image == "https://site.example/posts/my-trip/pic.jpg"


def test_hugo_slug_falls_back_to_the_title_made_a_path():
    assert urlize("Hello, Hugo World! Ça va?") == "hello-hugo-world-%C3%A7a-va"


@pytest.mark.parametrize(("extra", "image"), [
    ("coverImage: /a.jpg", "https://site.example/a.jpg"),
    ("image: /b.jpg", "https://site.example/b.jpg"),
    ("image:\n  path: /b2.jpg", "https://site.example/b2.jpg"),
    ("featured_image: /c.jpg", "https://site.example/c.jpg"),
    ("cover:\n  image: /d.jpg", "https://site.example/d.jpg"),
    ("images: [/e.jpg, /f.jpg]", "https://site.example/e.jpg"),
    ("thumbnail: https://cdn.example/g.jpg", "https://cdn.example/g.jpg"),
    ("heroImage: /h.jpg", "https://site.example/h.jpg"),
])
def test_cover_image_fields(tmp_path, extra, image):
    assert load_one(tmp_path, "a-post.md", post(extra)).cover_image == image


def test_astro_pubdate_with_a_month_name(tmp_path):
    article = load_one(tmp_path, "a.md", "---\ntitle: A\npubDate: 'Nov 25 2026'\n---\nText.\n")
    assert article.date == datetime(2026, 11, 25, tzinfo=BERLIN)


WEEK = Window(datetime(2026, 11, 22, tzinfo=BERLIN), datetime(2026, 11, 29, tzinfo=BERLIN))


@pytest.mark.parametrize(("extra", "chosen"), [
    ("", True),
    ("publishDate: 2026-12-01", False),  # not published by the end of the window
    ("publishDate: 2026-11-26", True),
    ("expiryDate: 2026-11-28", False),  # expired before the issue goes out
    ("expiryDate: 2026-12-30", True),
])
def test_hugo_publish_and_expiry_dates(tmp_path, extra, chosen):
    article = load_one(tmp_path, "a.md", post(extra))
    issue = select([article], key="k", window=WEEK, caps=Caps())
    assert bool(issue.articles) is chosen


def test_a_later_publish_date_moves_the_article_to_that_weeks_issue(tmp_path):
    article = load_one(tmp_path, "a.md", post("publishDate: 2026-12-02"))
    later = Window(WEEK.start + timedelta(days=7), WEEK.end + timedelta(days=7))
    assert select([article], key="k", window=later, caps=Caps()).articles == [article]
    assert within([article], later) == [article]  # the run's prefilter agrees
    assert within([article], WEEK) == []


def test_an_index_md_directly_in_the_content_folder_is_not_a_bundle(tmp_path):
    assert load_one(tmp_path, "index.md", post()).slug == "index"
