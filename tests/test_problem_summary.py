"""When most files of a folder fail for the same reason, preview and check say so once,
with the likely cause and what fixes it (issue 18: 751 lines of the same warning)."""

from pathlib import Path

from click.testing import CliRunner

from digest.cli import cli
from digest.content import Problem
from digest.problem_summary import summarize

SITE = '[site]\nname = "Trowel"\nbase_url = "https://blog.trowel.example"\n'
GOOD = "---\ntitle: Dated\ndate: '2026-11-20'\n---\nBody text.\n"
UNDATED = "+++\ntitle = \"Release {n}\"\n[extra]\nteam = \"release\"\n+++\nBody {n}.\n"
NO_DATE = "missing (and the file name does not start with YYYY-MM-DD-)"
HINT = ("likely cause: the site keeps its dates outside the front matter; add a `date` field, "
        "name the files YYYY-MM-DD-slug.md, or (Zola) give each page a `path` starting "
        "YYYY/MM/DD/")


def site(root: Path, undated: int) -> Path:
    (root / "digest.toml").write_text(SITE)
    posts = root / "content" / "posts"
    posts.mkdir(parents=True)
    (posts / "dated.md").write_text(GOOD)
    for n in range(undated):
        (posts / f"release-{n:02d}.md").write_text(UNDATED.format(n=n))
    return root / "digest.toml"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_preview_says_it_once_with_the_cause_and_the_fix(tmp_path):
    config = site(tmp_path, undated=12)
    result = run("--config", str(config), "preview", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    posts = tmp_path / "content" / "posts"
    assert [line for line in result.stderr.splitlines() if line.startswith("Warning")] == [
        f"Warning: {posts}: 12 of 13 files have no date and were skipped, such as "
        f"{posts / 'release-00.md'}: date: {NO_DATE}; {HINT}"]
    assert result.stdout.endswith("Skipped 12 files with problems (see the warnings above).\n")


def test_check_says_it_once_too(tmp_path):
    config = site(tmp_path, undated=12)
    result = run("--config", str(config), "check")
    posts = tmp_path / "content" / "posts"
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {posts}: 12 of 13 files have no date and were skipped, such as "
        f"{posts / 'release-00.md'}: date: {NO_DATE}; {HINT}")
    assert result.stderr.count("release-") == 1


def test_a_few_failing_files_are_listed_one_by_one(tmp_path):
    config = site(tmp_path, undated=2)
    result = run("--config", str(config), "preview", "--out", str(tmp_path / "out"))
    posts = tmp_path / "content" / "posts"
    assert [line for line in result.stderr.splitlines() if line.startswith("Warning")] == [
        f"Warning: {posts / f'release-{n:02d}.md'}: date: {NO_DATE} (skipped)" for n in (0, 1)]


def problems(folder: str, count: int, field: str | None, message: str) -> list[Problem]:
    return [Problem(Path(folder, f"f{n}.md"), field, message) for n in range(count)]


def test_page_bundles_count_as_files_of_the_folder_holding_them(tmp_path):
    config = site(tmp_path, undated=0)
    posts = tmp_path / "content" / "posts"
    for n in range(6):
        (posts / f"bundle-{n}").mkdir()
        (posts / f"bundle-{n}" / "index.md").write_text(UNDATED.format(n=n))
    result = run("--config", str(config), "check")
    assert result.stderr.splitlines()[0] == (
        f"Error: {posts}: 6 of 7 files have no date and were skipped, such as "
        f"{posts / 'bundle-0' / 'index.md'}: date: {NO_DATE}; {HINT}")


def test_values_in_the_message_do_not_split_a_pattern():
    found = [Problem(Path("c", f"f{n}.md"), "date", f"cannot read '{n}x' as a date (use "
                     "YYYY-MM-DD or an ISO 8601 date-time)") for n in range(6)]
    patterns, rest = summarize(found, {"c": 6})
    assert [(p.files, p.total) for p in patterns] == [(6, 6)]
    assert rest == []
    assert str(patterns[0]).startswith("c: 6 of 6 files have a date digest cannot read and "
                                       "were skipped, such as c/f0.md: date: cannot read '0x'")


def test_a_pattern_needs_over_half_of_the_folder_and_counts_each_folder_apart():
    found = problems("a", 5, "title", "missing (every article needs a title)") + \
        problems("b", 6, "title", "missing (every article needs a title)")
    patterns, rest = summarize(found, {"a": 10, "b": 7})
    assert [(p.folder, p.files, p.total) for p in patterns] == [("b", 6, 7)]
    assert rest == found[:5]


def test_an_unknown_pattern_is_still_one_line_without_a_hint():
    found = problems("c", 5, "tags", "must be a list or a comma-separated string, not 3")
    patterns, _ = summarize(found, {"c": 5})
    assert str(patterns[0]) == (
        "c: 5 of 5 files fail the same way and were skipped, such as c/f0.md: tags: must be "
        "a list or a comma-separated string, not 3")
