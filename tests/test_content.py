"""The article loader: one fixture file per case in tests/fixtures/content/.

Problem messages are asserted verbatim: they are what a site owner reads.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from digest import content, text
from digest.content import (
    Article,
    ArticleInvalid,
    Draft,
    LoadOptions,
    Problem,
    YamlLoader,
    load_articles,
    parse_date,
    read_article,
    yaml_1_2_loader,
)
from digest.errors import ConfigError, ContentError

FIXTURES = Path(__file__).parent / "fixtures" / "content"
BERLIN = ZoneInfo("Europe/Berlin")
OPTIONS = LoadOptions(base_url="https://example.org", timezone=BERLIN)
KNOWN = ("(known: base_url, categories, category, day, dir, filename, month, output_ext, "
         "section, slug, slug_or_title, title, title_slug, year)")
DATE_HINT = "as a date (use YYYY-MM-DD or an ISO 8601 date-time)"
YEARS = "is out of range (use a year from 1900 to 9000)"


def fixture(name: str) -> Path:
    return FIXTURES / name


def load(name: str, options: LoadOptions = OPTIONS) -> Article:
    return read_article(fixture(name), options)


def copy_fixtures(target: Path, *names: str) -> None:
    for name in names:
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fixture(Path(name).name), destination)


# --- variants that load ---------------------------------------------------------------------


def test_date_quoted_string_is_midnight_in_the_newsletter_zone():
    article = load("date_quoted_string.md")
    assert article.date == datetime(2026, 3, 4, 0, 0, tzinfo=BERLIN)
    assert article.date.utcoffset() == timedelta(hours=1)


def test_date_unquoted_yaml_date():
    article = load("date_unquoted.md")
    assert article.date == datetime(2026, 3, 5, 0, 0, tzinfo=BERLIN)
    assert article.date.utcoffset() == timedelta(hours=1)


def test_datetime_with_zone_keeps_its_offset():
    article = load("datetime_with_zone.md")
    india = timezone(timedelta(hours=5, minutes=30))
    assert article.date == datetime(2026, 3, 4, 8, 30, tzinfo=india)
    assert article.date.utcoffset() == timedelta(hours=5, minutes=30)
    assert article.date.astimezone(BERLIN) == datetime(2026, 3, 4, 4, 0, tzinfo=BERLIN)


@pytest.mark.parametrize("name", ["datetime_naive.md", "datetime_naive_string.md"])
def test_datetime_naive_takes_the_newsletter_zone(name):
    article = load(name)
    assert article.date == datetime(2026, 7, 1, 9, 15, tzinfo=BERLIN)
    assert article.date.tzinfo is BERLIN
    assert article.date.utcoffset() == timedelta(hours=2)  # summer time


def test_datetime_naive_follows_the_zone_passed_in_options():
    new_york = ZoneInfo("America/New_York")
    options = LoadOptions(base_url="https://example.org", timezone=new_york)
    article = load("datetime_naive.md", options)
    assert article.date == datetime(2026, 7, 1, 9, 15, tzinfo=new_york)
    assert article.date.utcoffset() == timedelta(hours=-4)


def test_datetime_in_a_form_only_yaml_1_1_reads():
    article = load("datetime_yaml_1_1_form.md")
    assert article.date == datetime(2026, 7, 1, 9, 15, 0, 500000,
                                    tzinfo=timezone(timedelta(hours=2)))
    assert article.date.utcoffset() == timedelta(hours=2)


UNQUOTED_DATES = [
    "2026-11-04",
    "2026-11-04 09:30:00",
    "2026-11-04T09:30:00+01:00",
    "2026-11-04T09:30:00Z",
    "2026-11-04 09:30:00 -05:30",
    "2026-11-04T09:30:00.123456789+05:30",
    "2026-7-1 9:15:00.5 +2",
    "2026-07-01t09:15:00",
    "2026-07-01  09:15:00.",
]


@pytest.mark.parametrize("text", UNQUOTED_DATES)
def test_unquoted_dates_keep_the_values_yaml_1_1_gave_them(text):
    """Dates reach parse_date as text now; PyYAML's own reading is the reference."""
    ours = yaml.load(f"date: {text}", Loader=YamlLoader)["date"]
    pyyaml = yaml.load(f"date: {text}", Loader=yaml.SafeLoader)["date"]
    assert ours == text
    expected = parse_date(pyyaml, None, BERLIN)
    actual = parse_date(ours, None, BERLIN)
    assert (actual, actual.utcoffset(), actual.tzinfo) == (
        expected, expected.utcoffset(), expected.tzinfo
    )


def test_datetime_zulu_is_utc():
    article = load("datetime_zulu.md")
    assert article.date == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    assert article.date.utcoffset() == timedelta(0)
    assert article.date.astimezone(BERLIN) == datetime(2026, 11, 3, 9, 0, tzinfo=BERLIN)


def test_date_from_jekyll_file_name_and_slug_without_the_date():
    article = load("2026-03-04-date_from_file_name.md")
    assert article.date == datetime(2026, 3, 4, 0, 0, tzinfo=BERLIN)
    assert article.slug == "date_from_file_name"
    assert article.url == "https://example.org/posts/date_from_file_name"


def test_category_string_is_whitespace_normalised():
    assert load("category_string.md").category == "Local News"


def test_categories_list_takes_the_first():
    assert load("categories_list.md").category == "Research"


def test_no_category_is_uncategorized():
    assert load("no_category.md").category == "Uncategorized"


def test_tags_list_deduplicated_in_order_and_numbers_as_text():
    assert load("tags_list.md").tags == ("wildlife", "carpentry", "2026")


def test_tags_comma_string_split_and_trimmed():
    assert load("tags_comma_string.md").tags == ("mulch", "soil", "compost")


def test_excerpt_field_is_reduced_to_plain_text():
    assert load("excerpt_field.md").excerpt == "Borrow a ladder or a hedge trimmer for a week."


def test_description_instead_of_excerpt():
    assert load("description_instead_of_excerpt.md").excerpt == (
        "Leave a patch of nettles and a log pile, and the pollinators stay."
    )


def test_summary_instead_of_an_empty_excerpt():
    assert load("summary_instead_of_excerpt.md").excerpt == (
        "Bubble wrap on the glass keeps a small greenhouse frost-free."
    )


def test_excerpt_from_first_paragraph_skips_the_heading_and_strips_markup():
    assert load("excerpt_from_first_paragraph.md").excerpt == (
        "The sowing depth on the back of the packet matters more than the "
        "picture on the front, so read it twice."
    )


def test_long_body_excerpt_shortened_at_a_word():
    excerpt = load("long_body_excerpt_shortened.md").excerpt
    assert excerpt == (
        "Every spring the same question arrives in the inbox: when is it safe to plant out "
        "tomatoes, and does the answer change if the seedlings have already been hardened off "
        "on the balcony for a fortnight? The short answer is that night temperatures matter "
        "far more than the date on the calendar, and a…"
    )
    assert len(excerpt) <= 300


@pytest.mark.parametrize("name", ["draft.md", "published_false.md"])
def test_draft_is_skipped_by_read_article(name):
    with pytest.raises(Draft):
        load(name)


def test_toml_front_matter():
    path = fixture("toml_front_matter.md")
    assert read_article(path, OPTIONS) == Article(
        slug="toml_front_matter",
        title="Cold frames from old windows",
        date=datetime(2026, 3, 4, 10, 0, tzinfo=BERLIN),
        excerpt="An old sash window laid on a box of boards gives seedlings a head start.",
        url="https://example.org/posts/toml_front_matter",
        category="Projects",
        tags=("glass", "reuse"),
        author="Mara Lindqvist",
        authors=("Mara Lindqvist",),
        path=str(path),
    )


def test_with_bom():
    assert fixture("with_bom.md").read_bytes().startswith(b"\xef\xbb\xbf---\n")
    article = load("with_bom.md")
    assert article.title == "Saved by a Windows editor"
    assert article.date == datetime(2026, 3, 4, 0, 0, tzinfo=BERLIN)


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.md"
    path.write_bytes(
        b"---\r\ntitle: Saved on Windows\r\ndate: 2026-03-04\r\n---\r\n"
        b"First line\r\nsecond line.\r\n\r\nNext paragraph.\r\n"
    )
    article = read_article(path, OPTIONS)
    assert (article.title, article.excerpt) == ("Saved on Windows", "First line second line.")


def test_relative_cover_image_made_absolute_and_other_fields():
    path = fixture("relative_cover_image.md")
    assert read_article(path, OPTIONS) == Article(
        slug="relative_cover_image",
        title="A year of photos from one bed",
        date=datetime(2026, 3, 4, 0, 0, tzinfo=BERLIN),
        excerpt="One photograph a week from the same spot shows the garden changing.",
        url="https://example.org/posts/relative_cover_image",
        category="Uncategorized",
        tags=(),
        cover_image="https://example.org/images/x.jpg",
        author="Tomasz Nowicki",
        authors=("Tomasz Nowicki",),
        source="https://example.net/one-bed",
        path=str(path),
    )


def test_relative_cover_image_with_trailing_slash_in_base_url():
    options = LoadOptions(base_url="https://example.org/", timezone=BERLIN)
    article = load("relative_cover_image.md", options)
    assert article.cover_image == "https://example.org/images/x.jpg"
    assert article.url == "https://example.org/posts/relative_cover_image"


def test_escaping_characters_kept_verbatim_in_the_title():
    assert load("escaping_characters.md").title == (
        'Fish & Chips <b>and</b> "peas" at 1 < 2 > 0 isn\'t it'
    )


def test_slug_field_overrides_the_file_name():
    article = load("slug_field.md")
    assert article.slug == "leaf-mould-patience"
    assert article.url == "https://example.org/posts/leaf-mould-patience"


# --- problems: exact text --------------------------------------------------------------------

# name -> [(field, message)], in the order they are reported
PROBLEMS: dict[str, list[tuple[str | None, str]]] = {
    "not_utf8.md": [(None, "not valid UTF-8 (byte 0xff at offset 67)")],
    "empty.md": [(None, "empty file")],
    "whitespace_only.md": [(None, "empty file")],
    "front_matter_list.md": [("front matter", "is not a mapping of fields (found a list)")],
    "front_matter_string.md": [("front matter", "is not a mapping of fields (found a str)")],
    "empty_front_matter.md": [("front matter", "is empty")],
    "invalid_yaml.md": [
        ("front matter", "invalid YAML: mapping values are not allowed in this context (line 4)")
    ],
    "tagged_value_yaml_cannot_read.md": [
        ("front matter", "invalid value: a tagged value (such as `!!bool maybe`) YAML cannot read")
    ],
    "invalid_toml.md": [("front matter", "invalid TOML: Invalid value (at line 3, column 7)")],
    "unclosed_front_matter.md": [("front matter", "is not closed (no second --- line)")],
    "unclosed_toml_front_matter.md": [("front matter", "is not closed (no second +++ line)")],
    "no_front_matter.md": [(None, "no front matter (expected a --- or +++ block at the top)")],
    "unparseable_date.md": [("date", f"cannot read 'next Tuesday' {DATE_HINT}")],
    "impossible_date.md": [("date", f"cannot read '2026-02-30' {DATE_HINT}")],
    "impossible_date_quoted.md": [("date", f"cannot read '2026-02-30' {DATE_HINT}")],
    "impossible_datetime.md": [("date", f"cannot read '2026-11-31 09:30:00+01:00' {DATE_HINT}")],
    "missing_title.md": [("title", "missing (every article needs a title)")],
    "blank_title.md": [("title", "missing (every article needs a title)")],
    "missing_title_and_bad_date.md": [
        ("title", "missing (every article needs a title)"),
        ("date", f"cannot read 'the day after tomorrow' {DATE_HINT}"),
    ],
    "title_wrong_type.md": [("title", "must be text, not a list")],
    "tags_wrong_type.md": [
        ("tags", "must be a list or a comma-separated string, not {'topic': 'soil'}")
    ],
    "category_wrong_type.md": [
        ("category", "must be a name or a list of names, not {'name': 'Research'}")
    ],
    "empty_slug.md": [("slug", "must be non-empty text, not ''")],
    "no_date_no_file_date.md": [
        ("date", "missing (and the file name does not start with YYYY-MM-DD-)")
    ],
    "date_out_of_range_late.md": [("date", f"'9999-12-31T23:59:59-14:00' {YEARS}")],
    "date_out_of_range_early.md": [("date", f"'0001-01-01T00:00:00+14:00' {YEARS}")],
    "cover_image_invalid_address.md": [
        ("coverImage", "cannot read 'http://[::1' as an address (Invalid IPv6 URL)")
    ],
    "image_invalid_address.md": [
        ("image", "cannot read 'https://[garden.example.org/x.jpg' as an address "
                  "(Invalid IPv6 URL)")
    ],
    "toml_nested_too_deeply.md": [("front matter", "is nested too deeply")],
}
def problem_params():
    for name in PROBLEMS:
        marks = []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(problem_params()))
def test_problem_exact_text(name):
    path = fixture(name)
    with pytest.raises(ArticleInvalid) as caught:
        read_article(path, OPTIONS)
    expected = [Problem(path, field, message) for field, message in PROBLEMS[name]]
    assert caught.value.problems == expected
    texts = [
        f"{path}: {field}: {msg}" if field else f"{path}: {msg}" for field, msg in PROBLEMS[name]
    ]
    assert [str(problem) for problem in caught.value.problems] == texts
    assert str(caught.value) == "; ".join(texts)


def test_invalid_yaml_names_the_yaml_problem():
    path = fixture("invalid_yaml.md")
    with pytest.raises(ArticleInvalid) as caught:
        read_article(path, OPTIONS)
    assert str(caught.value).startswith(
        f"{path}: front matter: invalid YAML: mapping values are not allowed in this context (line "
    )


def test_not_utf8_offset_is_the_byte_offset_of_the_bad_byte():
    assert fixture("not_utf8.md").read_bytes().index(b"\xff") == 67


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_bad_content_raises_only_article_invalid(name):
    with pytest.raises(ArticleInvalid) as caught:
        load(name)
    assert caught.value.problems
    assert all(problem.path == fixture(name) for problem in caught.value.problems)


# --- load_articles ---------------------------------------------------------------------------


def test_load_articles_over_a_mixed_folder(tmp_path):
    copy_fixtures(
        tmp_path,
        "toml_front_matter.md",
        "date_unquoted.md",
        "markdown_extension.markdown",
        "sub/slug_field.md",
        "draft.md",
        "published_false.md",
        "missing_title_and_bad_date.md",
        "empty.md",
        "not_utf8.md",
    )
    result = load_articles(tmp_path, OPTIONS)
    assert [Path(article.path) for article in result.articles] == [
        tmp_path / "date_unquoted.md",
        tmp_path / "markdown_extension.markdown",
        tmp_path / "sub" / "slug_field.md",
        tmp_path / "toml_front_matter.md",
    ]
    assert [article.slug for article in result.articles] == [
        "date_unquoted",
        "markdown_extension",
        "leaf-mould-patience",
        "toml_front_matter",
    ]
    both = tmp_path / "missing_title_and_bad_date.md"
    assert [str(problem) for problem in result.problems] == [
        f"{tmp_path / 'empty.md'}: empty file",
        f"{both}: title: missing (every article needs a title)",
        f"{both}: date: cannot read 'the day after tomorrow' {DATE_HINT}",
        f"{tmp_path / 'not_utf8.md'}: not valid UTF-8 (byte 0xff at offset 67)",
    ]
    assert result.skipped_files == 3
    assert result.drafts == 2


def test_load_articles_sorted_by_path_not_by_date_or_creation(tmp_path):
    for name, day in [("c.md", "01"), ("a.md", "03"), ("b/z.md", "02"), ("b.markdown", "04")]:
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"---\ntitle: Item {name}\ndate: 2026-03-{day}\n---\nText.\n")
    result = load_articles(tmp_path, OPTIONS)
    # Plain string order of the paths: "b.markdown" sorts before the folder "b/".
    assert [Path(a.path).relative_to(tmp_path).as_posix() for a in result.articles] == [
        "a.md",
        "b.markdown",
        "b/z.md",
        "c.md",
    ]


def test_hidden_files_section_pages_and_readmes_are_not_articles(tmp_path):
    for name in (".git/x.md", ".draft.md", "_index.md", "README.md", "ok.md"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("---\ntitle: T\ndate: 2026-03-01\n---\nText.\n")
    result = load_articles(tmp_path, OPTIONS)
    assert [Path(a.path).name for a in result.articles] == ["ok.md"]
    assert result.problems == []
    assert result.skipped_files == 0


def test_load_articles_empty_folder(tmp_path):
    result = load_articles(tmp_path, OPTIONS)
    assert (result.articles, result.problems, result.drafts, result.skipped_files) == ([], [], 0, 0)


def test_strict_raises_with_the_first_bad_files_problems(tmp_path):
    copy_fixtures(tmp_path, "date_unquoted.md", "missing_title_and_bad_date.md", "not_utf8.md")
    with pytest.raises(ContentError) as caught:
        load_articles(tmp_path, OPTIONS, strict=True)
    both = tmp_path / "missing_title_and_bad_date.md"
    assert str(caught.value) == (
        f"{both}: title: missing (every article needs a title); "
        f"{both}: date: cannot read 'the day after tomorrow' {DATE_HINT}"
    )


def test_strict_loads_a_clean_folder_and_still_skips_drafts(tmp_path):
    copy_fixtures(tmp_path, "date_unquoted.md", "draft.md")
    result = load_articles(tmp_path, OPTIONS, strict=True)
    assert [a.slug for a in result.articles] == ["date_unquoted"]
    assert result.drafts == 1


def test_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ContentError) as caught:
        load_articles(missing, OPTIONS)
    assert str(caught.value) == f"{missing}: content folder not found"


def test_a_file_is_not_a_content_folder():
    path = fixture("date_unquoted.md")
    with pytest.raises(ContentError) as caught:
        load_articles(path, OPTIONS)
    assert str(caught.value) == f"{path}: content folder not found"


def test_url_pattern_placeholders(tmp_path):
    (tmp_path / "2026-03-04-spring-seeds.md").write_text(
        "---\ntitle: Spring seeds\ncategory: Seeds & Bulbs 2026\n---\nText.\n"
    )
    options = LoadOptions(
        base_url="https://example.org/",
        timezone=BERLIN,
        url_pattern="{base_url}/{category}/{year}/{month}/{day}/{slug}.html",
    )
    [article] = load_articles(tmp_path, options).articles
    assert article.url == "https://example.org/seeds-bulbs-2026/2026/03/04/spring-seeds.html"


def test_default_url_pattern():
    assert load("date_unquoted.md").url == "https://example.org/posts/date_unquoted"


def test_unknown_url_placeholder(tmp_path):
    options = LoadOptions(
        base_url="https://example.org", timezone=BERLIN, url_pattern="{base_url}/{zone}/{author}"
    )
    with pytest.raises(ConfigError) as caught:
        load_articles(tmp_path, options)
    assert str(caught.value) == f"content.url_pattern: unknown placeholder {{author}} {KNOWN}"


def test_positional_url_placeholder(tmp_path):
    options = LoadOptions(base_url="https://example.org", timezone=BERLIN, url_pattern="{}/{slug}")
    with pytest.raises(ConfigError) as caught:
        load_articles(tmp_path, options)
    assert str(caught.value) == f"content.url_pattern: unknown placeholder {{}} {KNOWN}"


@pytest.mark.parametrize(
    "pattern", ["{base_url}/posts/{slug", "{base_url}/posts}/{slug}", "{slug!x}", "{year:d}"]
)
def test_malformed_url_pattern_is_a_config_error(tmp_path, pattern):
    copy_fixtures(tmp_path, "date_unquoted.md")
    options = LoadOptions(base_url="https://example.org", timezone=BERLIN, url_pattern=pattern)
    with pytest.raises(ConfigError, match=r"^content\.url_pattern: "):
        load_articles(tmp_path, options)


# --- the whole fixture folder and the remaining bugs -----------------------------------------

LOADS = {
    "date_quoted_string.md",
    "date_unquoted.md",
    "datetime_with_zone.md",
    "datetime_naive.md",
    "datetime_naive_string.md",
    "datetime_zulu.md",
    "2026-03-04-date_from_file_name.md",
    "category_string.md",
    "categories_list.md",
    "no_category.md",
    "tags_list.md",
    "tags_comma_string.md",
    "excerpt_field.md",
    "description_instead_of_excerpt.md",
    "summary_instead_of_excerpt.md",
    "excerpt_from_first_paragraph.md",
    "long_body_excerpt_shortened.md",
    "toml_front_matter.md",
    "with_bom.md",
    "relative_cover_image.md",
    "escaping_characters.md",
    "slug_field.md",
    "markdown_extension.markdown",
    "title_yes_no_boolean.md",
    "slug_with_spaces.md",
    "excerpt_intraword_underscores.md",
    "excerpt_angle_brackets.md",
    "excerpt_text_under_heading.md",
    "datetime_yaml_1_1_form.md",
    "title_looks_like_a_date.md",
    "control_characters_in_fields.md",
    "control_characters_in_body.md",
    "control_characters_toml.md",
    "control_characters_toml_literal.md",
    "excerpt_long_paragraph_of_asterisks.md",
    "bidi_and_c1_controls_in_fields.md",
    "cover_image_javascript.md",
    "cover_image_data.md",
}
DRAFTS = {"draft.md", "published_false.md"}


def test_every_fixture_file_is_a_case():
    on_disk = {path.name for path in FIXTURES.iterdir()}
    assert on_disk == LOADS | DRAFTS | set(PROBLEMS)


def test_load_articles_over_all_fixtures():
    result = load_articles(FIXTURES, OPTIONS)
    assert {Path(article.path).name for article in result.articles} == LOADS
    assert {problem.path.name for problem in result.problems} == set(PROBLEMS)
    assert result.skipped_files == len(PROBLEMS)
    assert result.drafts == len(DRAFTS)


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_yaml_is_read_by_libyaml_when_installed():
    assert issubclass(YamlLoader, yaml.CSafeLoader)


def test_pure_python_yaml_fallback_reads_every_fixture_the_same(monkeypatch):
    """Only the wording of a YAML syntax error differs between libyaml and PyYAML."""
    expected = load_articles(FIXTURES, OPTIONS)
    monkeypatch.setattr(content, "YamlLoader", yaml_1_2_loader(yaml.SafeLoader))
    result = load_articles(FIXTURES, OPTIONS)
    assert result.articles == expected.articles
    assert [(p.path, p.field) for p in result.problems] == [
        (p.path, p.field) for p in expected.problems
    ]
    assert result.drafts == expected.drafts


def test_yes_no_words_are_kept_as_written():
    article = load("title_yes_no_boolean.md")
    assert (article.title, article.category, article.tags) == ("No", "Off", ("yes", "on"))


class PyYamlBuilt(YamlLoader):
    """The same loader with PyYAML's general constructor: the reference for the fast one."""

    construct_document = yaml.constructor.BaseConstructor.construct_document


def yaml_outcome(text, loader):
    try:
        return yaml.load(text, Loader=loader)
    except Exception as exc:  # compared, type and text, with PyYAML's own
        return type(exc), str(exc)


@pytest.mark.parametrize(
    "text",
    [
        "title: T\ntags: [a, 'b']\ndraft: false\nweight: 3\nratio: 1.5\nimage:\nx: ~",
        "title: first\ntitle: second",
        "tags: &t [a]\nkeywords: *t",
        "title: T\nnested: {a: 1}",
        "title: T\ntags: [a, 1]",
        "<<: {a: 1}\nb: 2",
        "a: !!int ten\n<<: x",
        "tags: !!seq x\ntitle: T",
        "a: !!int ten\nb: {c: !!float x}",
        "!!int 3: x",
        "tags: !!set {a}",
        "date: !!timestamp 2026-02-30",
        "- a\n- b",
    ],
)
def test_plain_front_matter_is_built_as_pyyaml_builds_it(text):
    assert yaml_outcome(text, YamlLoader) == yaml_outcome(text, PyYamlBuilt)


def test_aliases_of_a_list_are_one_list_as_in_pyyaml():
    fields = yaml.load("tags: &t [a]\nkeywords: *t", Loader=YamlLoader)
    assert fields["tags"] is fields["keywords"]


def test_plain_front_matter_skips_pyyamls_general_constructor(monkeypatch):
    def general(loader, node):
        raise AssertionError("the general constructor was used")

    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", general)
    assert load("relative_cover_image.md").title == "A year of photos from one bed"


def test_a_title_that_looks_like_a_date_is_kept_as_written():
    article = load("title_looks_like_a_date.md")
    assert (article.title, article.date) == ("2026-11-04", datetime(2026, 11, 4, tzinfo=BERLIN))


def test_slug_with_spaces_gives_a_valid_url():
    assert " " not in load("slug_with_spaces.md").url


def test_excerpt_keeps_intraword_underscores_and_lone_asterisks():
    assert load("excerpt_intraword_underscores.md").excerpt == (
        "Name the log file soil_moisture_north.csv and multiply 2 * 3 * 4 for the total."
    )


def test_excerpt_keeps_comparison_signs():
    assert load("excerpt_angle_brackets.md").excerpt == (
        "Water when moisture < 30% and stop when it is > 60% again."
    )


def test_excerpt_from_text_directly_under_a_heading():
    assert load("excerpt_text_under_heading.md").excerpt == (
        "The sentence right under the heading is the real opening."
    )


def test_url_dates_are_the_newsletters_calendar_days(tmp_path):
    (tmp_path / "late.md").write_text(
        "---\ntitle: Late\ndate: '2026-11-03T23:30:00Z'\n---\nText.\n")
    options = LoadOptions(base_url="https://example.org", timezone=ZoneInfo("Europe/Berlin"),
                          url_pattern="{base_url}/{year}/{month}/{day}/{slug}")
    [article] = load_articles(tmp_path, options).articles
    assert article.url == "https://example.org/2026/11/04/late"  # 00:30 on the 4th in Berlin


# --- one article cannot stop the load -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fallback", "shown"),
    [
        ("1899-12-31", None, "'1899-12-31'"),
        ("9001-01-01T00:00:00Z", None, "'9001-01-01T00:00:00Z'"),
        # TOML gives built datetimes; the file name gives a date
        (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), None,
         "'0001-01-01 00:00:00+14:00'"),
        (None, date(1, 1, 1), "'0001-01-01'"),
    ],
)
def test_dates_outside_the_years_1900_to_9000_are_out_of_range(value, fallback, shown):
    with pytest.raises(ValueError) as caught:
        parse_date(value, fallback, BERLIN)
    assert str(caught.value) == f"{shown} {YEARS}"


@pytest.mark.parametrize(
    ("text", "in_berlin"),
    [
        ("1900-01-01T00:00:00+14:00", datetime(1899, 12, 31, 11, 0, tzinfo=BERLIN)),
        ("9000-12-31T23:59:59-14:00", datetime(9001, 1, 1, 14, 59, 59, tzinfo=BERLIN)),
    ],
)
def test_dates_at_the_ends_of_the_range_have_a_day_in_the_newsletters_zone(text, in_berlin):
    when = parse_date(text, None, BERLIN).astimezone(BERLIN)
    assert (when, when.utcoffset()) == (in_berlin, timedelta(hours=1))


def test_control_characters_in_fields_are_removed():
    """One in a title made the MJML parser reject every issue, naming no article."""
    path = fixture("control_characters_in_fields.md")
    assert read_article(path, OPTIONS) == Article(
        slug="control_characters_in_fields",
        title="Bell rings twice",
        date=datetime(2026, 3, 4, 0, 0, tzinfo=BERLIN),
        excerpt="Form feed and vertical tab, gone.",
        url="https://example.org/posts/control_characters_in_fields",
        category="Local News",
        tags=("soil", "compost"),
        cover_image="https://example.org/images/x.jpg",
        author="Ann Lee",
        authors=("Ann Lee",),
        source="https://example.net/x",
        path=str(path),
    )


def test_bidi_and_c1_controls_in_fields_are_removed():
    """U+202E shows `Invoice exe.pdf`: reordered text has no place in a title or a name."""
    article = load("bidi_and_c1_controls_in_fields.md")
    assert (article.title, article.excerpt, article.author, article.category, article.tags) == (
        "Invoice fdp.exe for the allotment fees", "Next line and a hidden embedding.",
        "Ann Lee", "LocalNews", ("soil", "compost"))


@pytest.mark.parametrize(("name", "field", "scheme"), [
    ("cover_image_javascript.md", "coverImage", "javascript"),
    ("cover_image_data.md", "image", "data"),
])
def test_a_cover_image_that_is_not_http_is_dropped_with_a_warning(tmp_path, name, field, scheme):
    copy_fixtures(tmp_path, name)
    result = load_articles(tmp_path, OPTIONS)
    assert [article.cover_image for article in result.articles] == [None]
    assert [str(warning) for warning in result.warnings] == [
        f"{tmp_path / name}: {field}: a {scheme}: address, not http or https: "
        "the cover image is left out"]
    assert result.problems == []


def test_a_dropped_cover_image_fails_a_strict_load(tmp_path):
    copy_fixtures(tmp_path, "cover_image_javascript.md")
    with pytest.raises(ContentError, match="coverImage: a javascript: address"):
        load_articles(tmp_path, OPTIONS, strict=True)


def test_control_characters_in_the_body_are_removed_from_the_excerpt():
    assert "\x07" in fixture("control_characters_in_body.md").read_text()
    assert load("control_characters_in_body.md").excerpt == (
        "The [1mbold[0m word rang the bell and fed a page then stopped."
    )


def test_control_characters_escaped_in_toml_are_removed():
    article = load("control_characters_toml.md")
    assert (article.title, article.author, article.tags) == ("Bell rings", "Ann Lee", ("soil",))


def test_noncharacters_written_as_is_in_toml_are_removed():
    assert load("control_characters_toml_literal.md").title == "Bad title"


def test_lone_surrogates_from_the_pure_python_yaml_reader_are_removed(tmp_path, monkeypatch):
    """libyaml refuses `\\ud83d` alone; PyYAML's own reader builds it, and UTF-8 cannot
    encode it."""
    monkeypatch.setattr(content, "YamlLoader", yaml_1_2_loader(yaml.SafeLoader))
    path = tmp_path / "surrogate.md"
    path.write_text('---\ntitle: "Half a pair\\ud83d of emoji"\ndate: 2026-03-04\n---\nText.\n')
    assert read_article(path, OPTIONS).title == "Half a pair of emoji"


def test_no_loaded_text_holds_a_character_the_email_cannot():
    for article in load_articles(FIXTURES, OPTIONS).articles:
        texts = [article.title, article.excerpt, article.url, article.category, *article.tags,
                 article.cover_image or "", article.author or "", article.source or ""]
        assert not [text for text in texts if content.CONTROL_CHARACTERS.search(text)]


def test_excerpt_reads_a_bounded_start_of_a_long_paragraph(monkeypatch):
    """150 KB of `*a ` (no closing `*`) kept the old emphasis pattern busy for over a minute."""
    seen = []
    without_templates = text.without_templates
    monkeypatch.setattr(text, "without_templates", lambda source: seen.append(len(source)) or
                        without_templates(source))
    assert fixture("excerpt_long_paragraph_of_asterisks.md").stat().st_size > 150_000
    assert load("excerpt_long_paragraph_of_asterisks.md").excerpt == " ".join(["*a"] * 99) + "…"
    assert seen == [text.EXCERPT_SOURCE_LIMIT] == [2000]


def test_excerpt_of_a_long_paragraph_with_markup_is_read_to_the_limit():
    sentence = "Read [the *seed* guide](https://example.org/guides/seeds) and `sow` <em>thin</em>. "
    paragraph = sentence * 100
    assert len(paragraph) > 4 * text.EXCERPT_SOURCE_LIMIT
    assert text.excerpt_from_markdown(paragraph) == text.shorten(
        "Read the seed guide and sow thin. " * 10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_skipped_with_a_warning_not_waited_for(tmp_path):
    copy_fixtures(tmp_path, "date_unquoted.md")
    pipe = tmp_path / "2026-11-20-f.md"
    os.mkfifo(pipe)
    result = load_articles(tmp_path, OPTIONS)
    assert [article.slug for article in result.articles] == ["date_unquoted"]
    assert [str(problem) for problem in result.problems] == [f"{pipe}: not a regular file"]


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="no /dev/null here")
def test_a_link_to_a_device_is_not_read(tmp_path):
    link = tmp_path / "null.md"
    link.symlink_to("/dev/null")
    with pytest.raises(ArticleInvalid) as caught:
        read_article(link, OPTIONS)
    assert [str(problem) for problem in caught.value.problems] == [f"{link}: not a regular file"]


def test_a_file_name_that_is_not_utf8_needs_a_slug_field(tmp_path):
    """os.walk gives the bytes as surrogates, which a URL cannot quote."""
    cafe, the = (tmp_path / os.fsdecode(name) for name in (b"2026-03-04-caf\xe9.md",
                                                          b"2026-03-05-th\xe9.md"))
    try:
        cafe.write_text("---\ntitle: T\n---\nText.\n")
        the.write_text("---\ntitle: T\nslug: the\n---\nText.\n")
    except OSError:
        pytest.skip("this file system takes only UTF-8 names")
    result = load_articles(tmp_path, OPTIONS)
    assert [article.url for article in result.articles] == ["https://example.org/posts/the"]
    assert result.problems == [
        Problem(cafe, "slug", "missing, and the file name is not UTF-8 (add a slug field)")
    ]
