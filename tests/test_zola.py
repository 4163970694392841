"""Zola sites (TOML front matter with `path`, `authors`, `[taxonomies]`, `aliases`) are
read, not skipped; the links are the ones Zola publishes (issue 18)."""

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import zola
from digest.content import LoadOptions, load_articles, read_article
from digest.select import Caps, dates_window, select

SITE = Path(__file__).parent / "fixtures" / "zola"
BASE_URL = "https://blog.trowel.example"  # base_url in the fixture's config.toml
BERLIN = ZoneInfo("Europe/Berlin")
OPTIONS = LoadOptions(base_url=BASE_URL, timezone=BERLIN)


@pytest.fixture(scope="module")
def loaded():
    return load_articles(SITE / "content", OPTIONS)


@pytest.fixture(scope="module")
def by_slug(loaded):
    return {article.slug: article for article in loaded.articles}


def test_every_page_loads_and_section_pages_are_not_articles(loaded):
    assert loaded.problems == []
    assert sorted(Path(article.path).name for article in loaded.articles) == [
        "Trowel-2.4.0.md", "about-the-team.md", "old-release-copy.md", "planner-notes.md"]


def test_path_gives_the_url_zola_publishes_and_the_date(by_slug):
    release = by_slug["Trowel-2.4.0"]
    assert release.url == "https://blog.trowel.example/2026/11/26/Trowel-2.4.0/"
    assert release.date == datetime(2026, 11, 26, tzinfo=BERLIN)


def test_a_dated_path_after_a_section(by_slug):
    notes = by_slug["planner-notes"]
    assert notes.url == "https://blog.trowel.example/inside-trowel/2026/11/27/planner-notes/"
    assert notes.date == datetime(2026, 11, 27, tzinfo=BERLIN)


def test_a_path_with_slashes_and_no_date_keeps_the_date_field(by_slug):
    about = by_slug["about-the-team"]
    assert about.url == "https://blog.trowel.example/about-the-team/"
    assert about.date == datetime(2026, 11, 25, tzinfo=BERLIN)


def test_authors_are_the_author_list(by_slug):
    assert by_slug["planner-notes"].authors == ("Ana Ruiz", "Kofi Mensah")
    assert by_slug["planner-notes"].author == "Ana Ruiz, Kofi Mensah"
    assert by_slug["Trowel-2.4.0"].author == "The Trowel Release Team"


@pytest.mark.parametrize(("front_matter", "authors"), [
    ('author = "Ana"\nauthors = ["Kofi"]\n', ("Ana",)),
    ('authors = "Kofi"\n', ("Kofi",)),
    ('authors = ["Ana", "Ana", "", 3]\n', ("Ana", "3")),
    ('[author]\nname = "Ana"\nurl = "https://ana.example"\n', ("Ana",)),
    ('[[authors]]\nname = "Ana"\n[[authors]]\nhandle = "kofi"\n', ("Ana",)),
])
def test_author_forms(tmp_path, front_matter, authors):
    page = tmp_path / "page.md"
    page.write_text(f'+++\ntitle = "T"\ndate = 2026-11-02\n{front_matter}+++\nText.\n')
    assert read_article(page, OPTIONS).authors == authors


def test_taxonomies_give_tags_and_category(by_slug):
    release = by_slug["Trowel-2.4.0"]
    assert release.tags == ("release", "tooling")
    assert release.category == "Releases"


def test_aliases_are_absolute_urls_of_the_same_article(by_slug):
    assert by_slug["Trowel-2.4.0"].aliases == (
        "https://blog.trowel.example/2026/11/26/Trowel-2.4.0.html",
        "https://blog.trowel.example/releases/trowel-2.4.0/",
    )


def test_the_excerpt_is_the_first_paragraph_as_plain_text(by_slug):
    assert by_slug["Trowel-2.4.0"].excerpt == (
        "The Trowel team is happy to announce a new version of Trowel, 2.4.0. Trowel helps "
        "gardeners plan beds, rotate crops and keep a planting log.")


def test_an_article_at_an_alias_of_another_is_dropped_even_when_newer(loaded):
    window = dates_window(date(2026, 11, 23), date(2026, 11, 29), BERLIN)
    issue = select(loaded.articles, key="w", window=window, caps=Caps())
    assert sorted(article.slug for article in issue.articles) == [
        "Trowel-2.4.0", "about-the-team", "planner-notes"]


def test_top_level_fields_win_over_taxonomies(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('+++\ntitle = "T"\ndate = 2026-11-02\ntags = ["a"]\n'
                    '[taxonomies]\ntags = ["b"]\ncategories = ["C"]\n+++\nText.\n')
    article = read_article(page, OPTIONS)
    assert (article.tags, article.category) == (("a",), "C")


@pytest.mark.parametrize(("path", "day"), [
    ("2024/11/28/Rust-1.83.0", date(2024, 11, 28)),
    ("inside-rust/2024/12/02/notes", date(2024, 12, 2)),
    ("a/b/2024/12/02/too-deep", None),
    ("2024/13/02/no-such-month", None),
    ("about", None),
])
def test_path_date(path, day):
    assert zola.path_date(path) == day


def problems_of(folder: Path, front_matter: str) -> list[str]:
    (folder / "page.md").write_text(f"+++\ntitle = \"T\"\n{front_matter}+++\nText.\n")
    return [str(problem) for problem in load_articles(folder, OPTIONS).problems]


def test_path_date_falls_back_from_an_impossible_date_to_the_missing_date_problem(tmp_path):
    assert problems_of(tmp_path, 'path = "2024/02/30/x"\n') == [
        f"{tmp_path / 'page.md'}: date: missing (and the file name does not start with "
        "YYYY-MM-DD-)"]


def test_an_empty_path_is_a_problem(tmp_path):
    assert problems_of(tmp_path, 'date = 2026-11-02\npath = "/"\n') == [
        f"{tmp_path / 'page.md'}: path: must be a non-empty path such as \"2024/11/28/title\", "
        "not '/'"]
