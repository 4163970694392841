import shutil
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html

from digest import pipeline
from digest.cli import cli
from digest.config import load_settings
from digest.errors import WindowError
from digest.select import Window
from digest.store import NewSubscriber, open_store

REPO = Path(__file__).resolve().parent.parent


def sample_site(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "content", tmp_path / "content")
    shutil.copy(REPO / "digest.toml", tmp_path / "digest.toml")
    return tmp_path / "digest.toml"


def add_readers(db: Path, *readers: tuple[str, tuple[str, ...]]) -> None:
    with open_store(db) as store:
        store.insert([NewSubscriber(email=email, name="", categories=cats, cadence="weekly",
                                    status="active") for email, cats in readers], "cli")


def preview(config: Path, out: Path):
    return CliRunner().invoke(cli, ["--config", str(config), "preview", "--out", str(out)])


def test_without_a_store_only_the_issue_and_the_index_are_written(tmp_path):
    config = sample_site(tmp_path)
    result = preview(config, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "2026-11-22..2026-11-28.html", "2026-11-22..2026-11-28.txt", "index.html"]
    assert not (tmp_path / "digest.db").exists()


def test_one_preview_per_segment_and_an_index(tmp_path):
    config = sample_site(tmp_path)
    add_readers(tmp_path / "digest.db", ("a@example.com", ()), ("b@example.com", ("work",)),
                ("c@example.com", ("Work",)), ("d@example.com", ("Gardening",)))
    out = tmp_path / "out"
    result = preview(config, out)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-6].startswith(f"Wrote {out}/2026-11-22..2026-11-28--all.html (")
    assert lines[-6].endswith("): segment all, 1 subscriber, 7 articles")
    assert lines[-5] == f"Wrote {out}/2026-11-22..2026-11-28--all.txt"
    assert lines[-4] == ("Segment gardening (1 subscriber): no articles in Gardening this time; "
                         "it would be skipped")
    assert lines[-3].endswith("): segment work, 2 subscribers, 1 article")
    assert lines[-2] == f"Wrote {out}/2026-11-22..2026-11-28--work.txt"
    assert lines[-1] == f"Wrote {out}/index.html"
    work = (out / "2026-11-22..2026-11-28--work.txt").read_text()
    assert "== Work ==" in work and "== General AI ==" not in work
    rows = lxml_html.parse(str(out / "index.html")).findall(".//tr")
    cells = [[td.text_content().strip() for td in tr.findall("td")] for tr in rows[1:]]
    assert [(c[0], c[2], c[3], c[6]) for c in cells] == [
        ("(whole issue) (text)", "", "7", "OK"), ("all (text)", "1", "7", "OK"),
        ("gardening", "1", "0", ""), ("work (text)", "2", "1", "OK"),
    ]


def test_many_segments_render_in_parallel_with_the_same_result(tmp_path, monkeypatch):
    config = sample_site(tmp_path)
    add_readers(tmp_path / "digest.db", ("a@example.com", ()), ("b@example.com", ("work",)),
                ("c@example.com", ("Tools", "Policy")), ("d@example.com", ("Research",)))
    assert preview(config, tmp_path / "serial").exit_code == 0
    monkeypatch.setattr("digest.pipeline.PARALLEL_RENDER_FROM", 1)
    assert preview(config, tmp_path / "parallel").exit_code == 0
    for path in (tmp_path / "serial").iterdir():
        assert path.read_bytes() == (tmp_path / "parallel" / path.name).read_bytes()


BERLIN = ZoneInfo("Europe/Berlin")


def test_build_preview_chooses_the_newest_week_and_the_store_segments(tmp_path):
    settings = load_settings(sample_site(tmp_path))
    add_readers(tmp_path / "digest.db", ("a@example.com", ()), ("b@example.com", ("work",)),
                ("d@example.com", ("Gardening",)))
    shown = pipeline.build_preview(settings, pipeline.load(settings).articles)
    issue = shown.whole.issue
    assert (issue.key, issue.window, len(issue.articles)) == (
        "2026-11-22..2026-11-28",
        Window(datetime(2026, 11, 21, 23, 59, 59, 999999, tzinfo=BERLIN),
               datetime(2026, 11, 28, 23, 59, 59, 999999, tzinfo=BERLIN)), 7)
    assert [(item.segment.slug, item.built and (item.built.issue.key,
                                                len(item.built.issue.articles)))
            for item in shown.segments] == [
        ("all", ("2026-11-22..2026-11-28", 7)), ("gardening", None),
        ("work", ("2026-11-22..2026-11-28", 1))]


def test_build_preview_takes_the_dates_the_categories_and_the_cadence(tmp_path):
    settings = load_settings(sample_site(tmp_path))
    add_readers(tmp_path / "digest.db", ("a@example.com", ()))
    articles = pipeline.load(settings).articles
    shown = pipeline.build_preview(settings, articles, since=date(2026, 11, 1),
                                   until=date(2026, 11, 30), categories=("work",),
                                   cadence="daily")
    issue = shown.whole.issue
    assert (issue.key, [article.category for article in issue.articles], shown.segments) == (
        "2026-11-01..2026-11-30", ["Work"] * 5, [])
    week = pipeline.build_preview(settings, articles, now=datetime(2026, 11, 29, 8, 0))
    assert (week.whole.issue.key, week.whole.issue.window) == (
        "2026-W48", Window(datetime(2026, 11, 22, 8, 0, tzinfo=BERLIN),
                           datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)))


def test_build_preview_refuses_until_before_since(tmp_path):
    settings = load_settings(sample_site(tmp_path))
    with pytest.raises(WindowError) as caught:
        pipeline.build_preview(settings, pipeline.load(settings).articles,
                               since=date(2026, 11, 7), until=date(2026, 11, 1))
    assert str(caught.value) == "--until 2026-11-01 is before --since 2026-11-07"
