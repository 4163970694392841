from datetime import datetime

from click.testing import CliRunner
from helpers import BERLIN, busy_week, make_settings

from digest.cli import cli
from digest.pipeline import build_issue, renderer_for
from digest.quality import check_email
from digest.select import cadence_window

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)
BUDGET = 90 * 1024


def build(settings):
    return build_issue(busy_week(NOW), key="2026-W48", window=cadence_window(NOW),
                       settings=settings, renderer=renderer_for(settings),
                       unsubscribe_url="https://news.example.org/unsubscribe/t")


def test_busy_week_with_default_caps_fits_the_budget_with_more_links():
    built = build(make_settings())
    assert built.email.size <= BUDGET
    assert built.trimmed == 0
    assert len(built.issue.articles) == 30
    assert len(built.issue.sections) == 13
    assert "more in Category 00 →" in built.email.html
    assert built.issue.more == 170


def test_raised_caps_are_trimmed_instead_of_clipped():
    settings = make_settings(selection__per_category=50, selection__total=200)
    built = build(settings)
    assert built.trimmed > 0
    assert len(built.issue.articles) == 200 - built.trimmed
    assert BUDGET * 0.8 < built.email.size <= BUDGET
    assert built.issue.more == built.trimmed
    sizes = [len(s.articles) for s in built.issue.sections]
    assert max(sizes) - min(sizes) <= 1  # trimming keeps the categories balanced


def test_trimmed_email_passes_the_quality_checks():
    built = build(make_settings(selection__per_category=50, selection__total=200))
    findings = check_email(built.email.html, built.email.text,
                           unsubscribe_url="https://news.example.org/unsubscribe/t",
                           article_urls=[a.url for a in built.issue.articles])
    assert [str(f) for f in findings] == []


def test_smaller_budget_trims_more():
    built = build(make_settings(email__size_budget_kb=40))
    assert built.email.size <= 40 * 1024
    assert built.trimmed > 0


def test_preview_says_when_it_trimmed(tmp_path):
    write_busy_site(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["--config", str(tmp_path / "digest.toml"), "preview", "--out", str(tmp_path / "out"),
         "--now", "2026-11-29T08:00"],
    )
    assert result.exit_code == 0, result.output
    assert "Trimmed " in result.output
    assert "articles to stay under the 90 KB size budget." in result.output


def write_busy_site(root):
    (root / "digest.toml").write_text(
        '[site]\nname = "Busy"\nbase_url = "https://busy.example.org"\n'
        'timezone = "Europe/Berlin"\n[selection]\nper_category = 50\ntotal = 200\n'
    )
    content = root / "content"
    content.mkdir()
    for article in busy_week(NOW):
        (content / f"{article.slug}.md").write_text(
            f"---\ntitle: '{article.title}'\ndate: '{article.date.isoformat()}'\n"
            f"category: {article.category}\nexcerpt: '{article.excerpt}'\n---\nBody.\n"
        )
