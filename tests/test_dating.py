"""A send reads only its window's files: front matter dated surely before the window is
left unparsed (digest.dating), and everything else loads as before."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from digest import content, pipeline
from digest.config import load_settings
from digest.content import LoadOptions, load_articles
from digest.dating import latest_day, older_than
from digest.select import Caps, Window, select

OPTIONS = LoadOptions(base_url="https://example.org", timezone=ZoneInfo("Pacific/Kiritimati"))
SINCE = datetime(2026, 11, 23, tzinfo=UTC)
NOW = SINCE + timedelta(days=7)


@pytest.mark.parametrize(("front", "day"), [
    ("title: A\ndate: 2020-01-02\n", date(2020, 1, 2)),
    ("date: '2020-01-02'\n", date(2020, 1, 2)),
    ('date: "2020-01-02T10:30:00+05:30"\n', date(2020, 1, 2)),
    ("date: 2020-01-02 10:30:00 -5\n", date(2020, 1, 2)),
    ("date: 2020-01-02T23:59:59Z\r\n", date(2020, 1, 2)),
    ("date: 2020-01-02\npublishDate: 2026-11-28\n", date(2026, 11, 28)),
    ("pubDate: 2021-05-06\n", date(2021, 5, 6)),
    ("date: 2020-01-02\nsummary: |\n  date: 2026-11-28\n", date(2020, 1, 2)),
    ("tags:\n- a\n- b\ndate: 2020-01-02\n", date(2020, 1, 2)),
    ("title: 'It''s'\ntags: [a, b]\ndate: 2020-01-02\n", date(2020, 1, 2)),
])
def test_a_yaml_front_matter_is_dated_by_its_latest_date_line(front, day):
    assert latest_day(front, False, "posts/a.md") == day


@pytest.mark.parametrize("front", [
    "title: A\n",  # no date: the file is parsed (and its problem reported)
    "date: November 5, 2020\n",
    "date: 2020-01-02 # moved\n",
    "date:\n  2020-01-02\n",
    "date: 2020-02-30\n",
    "date: 1850-01-02\n",
    "date: 2020-01-02\ndate: soon\n",
    'date: 2020-01-02\n"publishDate": 2026-11-28\n',
    "date: 2020-01-02\n<<: *later\n",
    "{date: 2020-01-02}\n",
    "date: 2020-01-02\n? publishDate\n: 2026-11-28\n",
    "- date: 2020-01-02\n",
    'title: "Old\ndate: 2019-01-01\nend"\n',  # a quoted title over three lines
    "title: 'Old\ndate: 2019-01-01\nend'\n",
    "tags: [a,\ndate: 2019-01-01]\n",
    " title: A\n date: 2019-01-01\n",  # the whole mapping indented
    "title: A\rdate: 2019-01-01\n",  # line breaks YAML reads, other than \n
    "title: A\x85date: 2019-01-01\n",
    "title: A\u2028date: 2019-01-01\n",
    "date: 2019-01-01\npath: 2026/11/27/x\n",  # Zola's path
])
def test_a_yaml_front_matter_that_could_hide_a_date_is_not_dated(front):
    assert latest_day(front, False, "posts/a.md") is None


@pytest.mark.parametrize(("front", "day"), [
    ('title = "A"\ndate = 2020-01-02T10:00:00Z\n[params]\ndate = 2026-11-28\n',
     date(2020, 1, 2)),
    ("date = '2020-01-02'\npublishDate = 2020-03-04\n", date(2020, 3, 4)),
    ("date = 2019-01-01\n  publishDate = 2026-11-27\n", date(2026, 11, 27)),  # indented
])
def test_a_toml_front_matter_is_dated_by_its_top_level_date_lines(front, day):
    assert latest_day(front, True, "posts/a.md") == day


@pytest.mark.parametrize("front", [
    '[params]\ndate = 2020-01-02\n',
    'summary = """\ndate = 2020-01-02\n"""\n',
    '"date" = 2020-01-02\n',
    'tags = [\n  [1],\n]\ndate = 2019-01-01\npublishDate = 2026-11-27\n',
])
def test_a_toml_front_matter_that_could_hide_a_date_is_not_dated(front):
    assert latest_day(front, True, "posts/a.md") is None


@pytest.mark.parametrize(("file", "day"), [
    ("_posts/2020-01-02-hello.md", date(2020, 1, 2)),
    ("_posts/2020-01-02-.md", None),
    ("posts/2020-01-02-bundle/index.md", None),
    ("posts/hello.md", None),
])
def test_without_date_lines_a_jekyll_file_name_dates_the_file(file, day):
    assert latest_day("title: A\n", False, file) == day


def test_a_jekyll_file_name_later_than_the_date_lines_dates_the_file():
    assert latest_day("date: 2019-01-01\n", False, "_posts/2026-11-27-x.md") == \
        date(2026, 11, 27)
    assert latest_day('title = "A"\n  date = 2026-11-27\n', True, "_posts/2019-01-01-x.md") \
        == date(2026, 11, 27)


def test_a_file_is_older_only_two_days_before_the_window_in_any_zone():
    assert older_than(datetime(2026, 11, 23, 1, tzinfo=timezone(timedelta(hours=14)))) == \
        date(2026, 11, 20)
    assert older_than(SINCE) == date(2026, 11, 21)


def write(folder, name, front, body="Text.\n"):
    (folder / name).write_text(f"---\n{front}---\n{body}")


@pytest.fixture
def archive_with_an_old_broken_file(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    write(site, "old.md", "title: Old\ndate: 2019-03-04\n")
    write(site, "old-broken.md", "title: Old\ndate: 2019-03-04\ncategory: {a: 1}\n")
    write(site, "edge.md", "title: Edge\ndate: 2026-11-22\n")  # inside the margin
    write(site, "new.md", "title: New\ndate: 2026-11-27\n")
    write(site, "republished.md", "title: Again\ndate: 2019-01-01\npublishDate: 2026-11-25\n")
    write(site, "undated-value.md", "title: Odd\ndate: Nov 26 2026\n")
    write(site, "new-broken.md", "title: [unclosed\ndate: 2026-11-26\n")
    return site


def test_a_windowed_load_leaves_out_only_files_surely_before_it(archive_with_an_old_broken_file):
    site = archive_with_an_old_broken_file
    loaded = load_articles(site, OPTIONS, since=SINCE)
    assert sorted(a.title for a in loaded.articles) == ["Again", "Edge", "New", "Odd"]
    assert loaded.older == 2
    assert [problem.path.name for problem in loaded.problems] == ["new-broken.md"]


def test_a_windowed_load_selects_what_a_whole_load_selects(archive_with_an_old_broken_file):
    site, window = archive_with_an_old_broken_file, Window(SINCE, NOW)
    whole, windowed = load_articles(site, OPTIONS), load_articles(site, OPTIONS, since=SINCE)
    assert len(whole.problems) == 2 and whole.older == 0
    caps = Caps(per_category=5, total=20)
    assert select(windowed.articles, key="k", window=window, caps=caps) == \
        select(whole.articles, key="k", window=window, caps=caps)


def test_files_left_out_are_cached_as_such_and_parsed_when_a_load_wants_them(
        archive_with_an_old_broken_file, tmp_path):
    site, cache = archive_with_an_old_broken_file, tmp_path / "cache.pickle"
    assert load_articles(site, OPTIONS, cache=cache, since=SINCE).older == 2
    assert load_articles(site, OPTIONS, cache=cache, since=SINCE).older == 2
    earlier = load_articles(site, OPTIONS, cache=cache, since=datetime(2019, 1, 1, tzinfo=UTC))
    assert earlier.older == 0 and "Old" in {a.title for a in earlier.articles}
    whole = load_articles(site, OPTIONS, cache=cache)
    assert whole.older == 0 and len(whole.articles) == 5 and len(whole.problems) == 2


def test_a_file_parsed_whole_is_kept_whole_in_the_cache(archive_with_an_old_broken_file,
                                                       tmp_path, monkeypatch):
    site, cache = archive_with_an_old_broken_file, tmp_path / "cache.pickle"
    load_articles(site, OPTIONS, cache=cache)
    monkeypatch.setattr(content, "read_article", lambda *args: pytest.fail("parsed again"))
    again = load_articles(site, OPTIONS, cache=cache, since=SINCE)
    assert again.older == 0 and len(again.articles) == 5


def test_with_feeds_every_file_is_read_so_an_older_link_post_still_hides_its_item(tmp_path):
    (tmp_path / "content").mkdir()
    write(tmp_path / "content", "link.md",
          "title: Link\ndate: 2019-03-04\nsource: https://ext.example.org/post\n")
    write(tmp_path / "content", "new.md", "title: New\ndate: 2026-11-27\n")
    (tmp_path / "feed.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Ext</title>'
        "<link>https://ext.example.org/</link><description>d</description><item>"
        "<title>Ext post</title><link>https://ext.example.org/post</link>"
        "<pubDate>Wed, 25 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>")
    (tmp_path / "digest.toml").write_text(
        '[site]\nname = "T"\nbase_url = "https://example.org"\n'
        '[content]\ndir = "content"\nfeeds = ["feed.xml"]\n')
    settings = load_settings(tmp_path / "digest.toml")
    whole, windowed = pipeline.load(settings), pipeline.load(settings, since=SINCE)
    assert {a.title for a in windowed.articles} == {a.title for a in whole.articles} == \
        {"Link", "New"}
