"""Quality checks by block: a run checks each distinct block of its emails once, and each
email's head and tail, size and text part once; the findings of every segment are those of
a whole-email check (same messages, same levels, same order)."""

import shutil
import sys
from itertools import combinations
from pathlib import Path

import pytest
from helpers import busy_week, make_settings
from test_render_blocks import NOW, copy_templates

from digest import pipeline, workers
from digest.config import load_settings
from digest.quality import BlockChecks, Finding, check_email
from digest.render import Renderer
from digest.select import cadence_window
from digest.store import NewSubscriber, open_store

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CATEGORIES = ("General AI", "Work", "Research", "Tools", "Productivity", "Policy")
SAMPLES = {"-unsubscribe_url-": "https://news.example.org/unsubscribe/sample-token",
           "-preferences_url-": "https://news.example.org/preferences/sample-token"}
# Problems inside the category sections, so that findings add up over blocks: covers
# without alt, tables without a role, a relative link in each section's heading.
PROBLEMS = [
    ('alt="{{ article.title }}"', ""),
    ('<table role="presentation" class="row"', '<table class="row"'),
    ("<h2>{{ section.category }}</h2>",
     '<h2><a href="/category/{{ section.category }}">{{ section.category }}</a></h2>'),
]


def sample_site(tmp_path: Path, problems: bool = False) -> Path:
    """The repository's sample site with one reader per set of 0 to 3 categories."""
    shutil.copytree(REPO / "content", tmp_path / "content")
    shutil.copy(REPO / "digest.toml", tmp_path / "digest.toml")
    if problems:
        (tmp_path / "templates").mkdir()
        copy_templates(tmp_path / "templates", PROBLEMS)
    sets = [combo for size in range(4) for combo in combinations(SAMPLE_CATEGORIES, size)]
    with open_store(tmp_path / "digest.db") as store:
        store.insert([NewSubscriber(email=f"r{i}@example.com", name="", categories=cats,
                                    cadence="weekly", status="active")
                       for i, cats in enumerate(sets)], "cli")
    return tmp_path / "digest.toml"


def whole_checks(settings, shown) -> list[tuple[Finding, ...]]:
    """Each segment's email checked whole, as before blocks."""
    links, language = pipeline.preview_links(settings), pipeline.renderer_for(settings).language
    return [tuple(pipeline.quality_of(item.built, links.unsubscribe_url, language=language,
                                      theme=settings.theme))
            for item in shown.segments if item.built]


def preview_of(config: Path):
    settings = load_settings(config, {})
    return settings, pipeline.build_preview(settings, pipeline.load(settings).articles)


def test_the_sample_sites_segments_have_the_findings_of_whole_checks(tmp_path):
    settings, shown = preview_of(sample_site(tmp_path))
    findings = [item.findings for item in shown.segments if item.built]
    assert len(findings) == 42  # every set of 0 to 3 of the 6 categories has articles
    assert findings == whole_checks(settings, shown)


def render_in(where: str, monkeypatch) -> None:
    """Segments render in one process, or (however few) in forked or spawned workers."""
    if where != "one process":
        monkeypatch.setattr("digest.pipeline.PARALLEL_RENDER_FROM", 1)
    # as in a run, forked only with no other thread (earlier tests may leave some here)
    forked = where == "forked" and sys.platform.startswith("linux")
    monkeypatch.setattr("digest.workers.can_fork", lambda: forked)


@pytest.mark.parametrize("where", ["one process", "forked", "spawned"])
def test_segments_with_problems_in_their_blocks_have_the_findings_of_whole_checks(
        tmp_path, monkeypatch, where):
    """In one process, and in render workers (each checks its blocks once)."""
    render_in(where, monkeypatch)
    settings, shown = preview_of(sample_site(tmp_path, problems=True))
    findings = [item.findings for item in shown.segments if item.built]
    assert findings == whole_checks(settings, shown)
    both = next(item.findings for item in shown.segments if item.segment.slug == "general-ai_work")
    assert both == (
        Finding("warning", "img-alt", "The image https://fieldnotes.example.org/images/"
                'general-ai.png has no alt attribute (use alt="" for a decorative image).'),
        *(Finding("error", "link-absolute", f'The URL "/category/{name}" is not an absolute '
                  "https:// or mailto: URL, so it will not work from an inbox.")
          for name in ("General%20AI", "Work")))


@pytest.mark.parametrize("where", ["forked", "spawned"])
def test_render_workers_build_what_one_process_builds(tmp_path, monkeypatch, where):
    """The same emails, the same issues (each article the run's own object, not a copy
    sent back), the same findings, in the same order."""
    settings = load_settings(sample_site(tmp_path, problems=True), {})
    articles = pipeline.load(settings).articles
    alone = pipeline.build_preview(settings, articles)
    render_in(where, monkeypatch)
    pooled = pipeline.build_preview(settings, articles)
    assert pooled.segments == alone.segments
    shown = [article for item in pooled.segments if item.built
             for article in item.built.issue.articles]
    assert len(shown) > 100
    assert {id(article) for article in shown} <= {id(article) for article in articles}


def render_job(settings, articles, window, check=True):
    return pipeline.RenderJob(articles, "2026-W48", window, settings, pipeline.site_of(settings),
                              None, "-unsubscribe_url-", "-preferences_url-", SAMPLES, check)


def category_sets(articles):
    names = sorted({article.category for article in articles})
    return [combo for size in (1, 2, 3) for combo in combinations(names, size)]


def test_a_blocks_checks_run_once_for_all_the_segments_that_show_it():
    settings = make_settings(site__timezone="Europe/Berlin")
    articles, window = busy_week(NOW, count=120, categories=6), cadence_window(NOW)
    job, renderer, checks = render_job(settings, articles, window), Renderer(
        pipeline.site_of(settings)), BlockChecks()
    results = [pipeline.render_one(cats, job, renderer, checks) for cats in category_sets(articles)]
    distinct = set(renderer.blocks.html.values())
    shown = sum(len(built.email.parts()) - 2 for built, _ in results)
    assert len(results) == 41 and shown > 80
    assert checks.blocks_walked == len(distinct) < 30
    assert checks.usable and checks.verified
    frames = {(built.email.parts()[0], built.email.parts()[-1]) for built, _ in results}
    assert len(checks.frames) == len(frames)  # each distinct head and tail once
    again = [tuple(pipeline.quality_of(built, "-unsubscribe_url-", SAMPLES,
                                       renderer.language, theme=settings.theme, checks=checks))
             for built, _ in results]
    assert checks.blocks_walked == len(distinct) and len(checks.frames) == len(frames)
    alone = [pipeline.render_one(cats, job, renderer)[1] for cats in category_sets(articles)]
    assert [findings for _, findings in results] == alone == again


def test_the_run_renders_from_the_front_and_its_worker_from_the_back_until_they_meet(
        monkeypatch):
    """Each chunk once: the run's from the first on, the worker's (given two at a time
    from the last back) sent back in order, as the run would have rendered them."""
    monkeypatch.setattr("digest.workers.can_fork", lambda: sys.platform.startswith("linux"))
    settings = make_settings(site__timezone="Europe/Berlin")
    articles, window = busy_week(NOW, count=120, categories=6), cadence_window(NOW)
    job, sets = render_job(settings, articles, window), category_sets(articles)
    chunks = [sets[i:i + 5] for i in range(0, len(sets), 5)]
    with workers.process_pool(1, pipeline.start_renderer, (job,), fork=True) as pool:
        meeting = pipeline.Meeting(chunks, pool, 2)
        ours = list(meeting.front())
        theirs = [[(pipeline.unpacked(packed, job), findings) for packed, findings in results]
                  for results in meeting.back()]
    assert len(ours) + len(theirs) == len(chunks) == 9 and len(theirs) >= 2
    assert ours == chunks[:len(ours)]
    renderer, checks = Renderer(pipeline.site_of(settings)), BlockChecks()
    assert theirs == [[pipeline.render_one(cats, job, renderer, checks) for cats in chunk]
                      for chunk in chunks[len(ours):]]


def test_counts_add_up_over_the_blocks_of_an_email(tmp_path):
    """Tables without a role in several sections: one finding with their total."""
    settings = make_settings(site__timezone="Europe/Berlin")
    articles, window = busy_week(NOW, count=120, categories=6), cadence_window(NOW)
    job = render_job(settings, articles, window)
    renderer = Renderer(pipeline.site_of(settings), copy_templates(tmp_path, PROBLEMS))
    checks, sets = BlockChecks(), category_sets(articles)
    found = [pipeline.render_one(cats, job, renderer, checks)[1] for cats in sets]
    assert found == [pipeline.render_one(cats, job, renderer)[1] for cats in sets]
    assert checks.usable
    assert found[sets.index(("Category 01", "Category 02"))][-2:] == tuple(
        Finding("error", "link-absolute", f'The URL "/category/Category%20{n:02d}" is not an '
                "absolute https:// or mailto: URL, so it will not work from an inbox.")
        for n in (1, 2))
    assert Finding("warning", "table-role", '8 tables without role="presentation"; screen '
                   "readers will announce them as data tables.") in found[
        sets.index(("Category 01", "Category 02"))]


def test_an_email_not_assembled_from_blocks_is_checked_whole(tmp_path):
    folder = copy_templates(tmp_path, [("{{ block_mark }}", "")])
    renderer = Renderer(pipeline.site_of(make_settings()), folder)
    articles, window = busy_week(NOW, count=30, categories=3), cadence_window(NOW)
    built, _ = pipeline.render_one(("Category 01",), render_job(make_settings(), articles, window,
                                                              check=False), renderer)
    checks = BlockChecks()
    pipeline.quality_of(built, "-unsubscribe_url-", checks=checks)
    assert built.email.parts() == [built.email.html] and checks.blocks_walked == 0


def test_parts_that_do_not_parse_alone_mean_whole_checks_from_then_on():
    """A block cut inside an element: alone, its image is outside the <a> that holds it in
    the whole. The first email's check is compared with a whole one and they differ, so
    that email and every later one are checked whole."""
    head, tail = ('<!doctype html><html lang="en"><head><title>T</title></head><body>'
                  '<p title="', '"></p><a href="-u-">x</a></body></html>')
    parts = [head, '<img src="/a.png">', tail]
    checks = BlockChecks()
    whole = check_email("".join(parts), "-u-", unsubscribe_url="-u-", article_urls=())
    assert checks.check(parts, "-u-", unsubscribe_url="-u-", article_urls=()) == whole
    assert not checks.usable
    assert checks.check(parts, "-u-", unsubscribe_url="-u-", article_urls=()) == whole

