import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest import __version__
from digest.cli import cli

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
SAMPLE_CONFIG = str(REPO / "digest.toml")


def run(*args):
    return CliRunner().invoke(cli, list(args))


SENDER = '[email]\nfrom = "Tiny <news@tiny.example.org>"\npostal_address = "1 Tiny Lane"\n'


def write_site(root: Path, articles: dict[str, str], config: str = SENDER) -> Path:
    (root / "digest.toml").write_text(
        '[site]\nname = "Tiny"\nbase_url = "https://tiny.example.org"\n' + config
    )
    (root / "content").mkdir()
    for name, text in articles.items():
        (root / "content" / name).write_text(text)
    return root / "digest.toml"


GOOD = "---\ntitle: Good one\ndate: '2026-11-20'\ncategory: Work\n---\nBody text.\n"
NO_TITLE = "---\ndate: '2026-11-19'\n---\nBody.\n"


def test_version():
    result = run("--version")
    assert (result.exit_code, result.output) == (0, f"digest, version {__version__}\n")


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("preview", "check"):
        assert f"  {command} " in result.output


def test_preview_of_the_sample_site(tmp_path):
    result = run("--config", SAMPLE_CONFIG, "preview", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Wrote {tmp_path}/2026-11-22..2026-11-28.html (")
    assert lines[1] == f"Wrote {tmp_path}/2026-11-22..2026-11-28.txt"
    assert lines[2] == "Subject: Field Notes: 7 new articles in General AI and Work"
    assert lines[3] == ("Selected 7 of 7 articles in the window, in 6 categories; "
                        "0 left out by the caps.")
    html = (tmp_path / "2026-11-22..2026-11-28.html").read_text()
    assert html.startswith("<!doctype html>")


def test_preview_with_now_uses_the_iso_week_as_key(tmp_path):
    result = run("--config", SAMPLE_CONFIG, "preview", "--out", str(tmp_path),
                 "--now", "2026-11-16T08:00")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "2026-W47.html").exists()
    assert (tmp_path / "2026-W47.txt").exists()


def test_preview_category_filter(tmp_path):
    result = run("--config", SAMPLE_CONFIG, "preview", "--out", str(tmp_path),
                 "--since", "2026-10-26", "--until", "2026-11-29", "--category", "policy")
    assert result.exit_code == 0, result.output
    assert "Subject: Field Notes: 3 new articles in Policy" in result.output


def test_preview_of_an_unknown_category_is_a_usage_error(tmp_path):
    result = run("--config", SAMPLE_CONFIG, "preview", "--out", str(tmp_path),
                 "--category", "Nope")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--category': no article has the category 'Nope' (the "
        "categories are: General AI, Policy, Productivity, Research, Tools, Work)\n")


def test_preview_of_an_empty_window_says_it_would_not_be_sent(tmp_path):
    result = run("--config", SAMPLE_CONFIG, "preview", "--out", str(tmp_path),
                 "--since", "2027-01-01", "--until", "2027-01-07")
    assert result.exit_code == 0, result.output
    assert "Subject: Field Notes: nothing new this time\n" in result.stdout
    assert result.stderr == (
        f"Warning: {tmp_path / '2027-01-01..2027-01-07.html'}: no articles in the window, so "
        "this issue would not be sent\n")


RELATIVE_LINK = ('The URL "/relative" is not an absolute https:// or mailto: URL, so it will '
                 "not work from an inbox.")


def site_with_a_relative_link(tmp_path: Path) -> str:
    """The sample site, with a template that adds a relative link."""
    templates = tmp_path / "templates"
    templates.mkdir()
    shipped = (REPO / "templates" / "email.mjml.j2").read_text()
    (templates / "email.mjml.j2").write_text(shipped.replace("</mj-body>", (
        '<mj-section><mj-column><mj-text><a href="/relative">x</a></mj-text></mj-column>'
        "</mj-section></mj-body>")))
    shutil.copytree(REPO / "content", tmp_path / "content")
    config = tmp_path / "digest.toml"
    config.write_text((REPO / "digest.toml").read_text())
    return str(config)


def test_check_runs_the_quality_checks_on_the_preview_too(tmp_path):
    result = run("--config", site_with_a_relative_link(tmp_path), "check")
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: rendered email: {RELATIVE_LINK}\n"
        f"Error: preview 2026-11-22..2026-11-28: {RELATIVE_LINK}\n"
        "Error: 2 problems found\n"))


def test_preview_runs_the_quality_checks_on_what_it_writes(tmp_path):
    config = site_with_a_relative_link(tmp_path)
    result = run("--config", config, "preview", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {tmp_path / 'out' / '2026-11-22..2026-11-28.html'}: {RELATIVE_LINK}\n"
        "Error: 1 problem found in the previews (see above)\n")
    index = (tmp_path / "out" / "index.html").read_text()
    assert '<li class="error">error: The URL &#34;/relative&#34; is not' in index


def test_bad_article_is_skipped_with_a_warning(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD, "no-title.md": NO_TITLE})
    result = run("--config", str(config), "preview", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    bad = tmp_path / "content" / "no-title.md"
    assert f"Warning: {bad}: title: missing (every article needs a title) (skipped)\n" in (
        result.stderr)
    assert result.stdout.endswith("Skipped 1 file with problems (see the warnings above).\n")


def test_strict_makes_a_bad_article_fatal(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD, "no-title.md": NO_TITLE})
    result = run("--config", str(config), "preview", "--strict", "--out", str(tmp_path / "o"))
    bad = tmp_path / "content" / "no-title.md"
    assert result.exit_code == 1
    assert result.stderr == f"Error: {bad}: title: missing (every article needs a title)\n"
    assert not (tmp_path / "o").exists()


def test_no_config_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("preview")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no digest.toml in {tmp_path}: create one (see README) or pass --config FILE\n")


def test_missing_content_folder(tmp_path):
    config = write_site(tmp_path, {}, '[content]\ndir = "nowhere"\n')
    result = run("--config", str(config), "preview")
    assert (result.exit_code, result.stderr) == (
        1, f"Error: {tmp_path / 'nowhere'}: content folder not found\n")


def test_empty_site_has_nothing_to_preview(tmp_path):
    config = write_site(tmp_path, {})
    result = run("--config", str(config), "preview")
    assert (result.exit_code, result.stderr) == (
        1, "Error: no articles to preview: the content folder has no readable article\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2026-11-01"], "--since and --until go together"),
        (["--since", "2026-11-01", "--until", "2026-11-02", "--now", "2026-11-02T00:00"],
         "give either --since/--until or --now, not both"),
        (["--since", "2026-11-05", "--until", "2026-11-01"],
         "--until 2026-11-01 is before --since 2026-11-05"),
        (["--since", "0001-01-01", "--until", "0001-01-02"],
         "Invalid value for '--since': 0001-01-01 is out of range (years 1970 to 8999)"),
        (["--now", "9999-12-31T23:00"],
         "Invalid value for '--now': 9999-12-31 is out of range (years 1970 to 8999)"),
        (["--now", "yesterday"],
         "Invalid value for '--now': 'yesterday' is not an ISO 8601 date-time "
         "(e.g. 2026-11-29T08:00)"),
    ],
)
def test_usage_errors_exit_2(args, message):
    result = run("--config", SAMPLE_CONFIG, "preview", *args)
    assert result.exit_code == 2
    assert result.stderr.endswith(f"Error: {message}\n")


def test_check_on_the_sample_site():
    result = run("--config", SAMPLE_CONFIG, "check")
    assert (result.exit_code, result.stdout) == (
        0, "OK: 35 articles, configuration and templates are valid\n")


def test_check_warns_that_a_send_needs_a_sender_and_a_postal_address(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD}, config="")
    result = run("--config", str(config), "check")
    assert result.exit_code == 0
    assert result.stderr == (
        "Warning: email.from is not set in the configuration (the sender address); sends "
        "refuse to start without it\n"
        "Warning: email.postal_address is not set in the configuration: the footer of every "
        "issue must give the sender's postal address (CAN-SPAM); sends refuse to start "
        "without it\n")


def test_check_reports_every_problem_and_exits_1(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD, "no-title.md": NO_TITLE,
                                   "empty.md": ""})
    result = run("--config", str(config), "check")
    content = tmp_path / "content"
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {content / 'empty.md'}: empty file\n"
        f"Error: {content / 'no-title.md'}: title: missing (every article needs a title)\n"
        "Error: 2 problems found\n"
    )


def test_check_reports_a_broken_site_template(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD})
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "email.mjml.j2").write_text("<mjml><mj-body>{{ oops(")
    result = run("--config", str(config), "check")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'templates' / 'email.mjml.j2'}:1: ")


def test_python_dash_m_works(tmp_path):
    result = subprocess.run([sys.executable, "-m", "digest", "--version"],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f"digest, version {__version__}\n")


def test_check_warns_about_articles_sharing_a_slug(tmp_path):
    config = write_site(tmp_path, {"2026-11-01-same.md": GOOD, "2026-11-02-same.md": GOOD})
    result = run("--config", str(config), "check")
    content = tmp_path / "content"
    assert result.exit_code == 0
    assert result.stderr == (
        f"Warning: slug 'same' is used by 2 files ({content / '2026-11-01-same.md'}, "
        f"{content / '2026-11-02-same.md'}): an issue keeps only the newest\n")
    assert result.stdout == "OK: 2 articles, configuration and templates are valid\n"


SCRIPTED_COVER = ("---\ntitle: Scripted\ndate: '2026-11-20'\ncoverImage: 'javascript:alert(1)'\n"
                  "---\nBody text.\n")


def test_a_cover_image_that_is_not_http_is_a_warning_in_preview_and_check(tmp_path):
    config = write_site(tmp_path, {"good.md": GOOD, "scripted.md": SCRIPTED_COVER})
    warning = (f"{tmp_path / 'content' / 'scripted.md'}: coverImage: a javascript: address, "
               "not http or https: the cover image is left out")
    preview = run("--config", str(config), "preview", "--out", str(tmp_path / "out"))
    assert preview.exit_code == 0, preview.output
    assert f"Warning: {warning}\n" in preview.stderr
    assert "Selected 2 of 2 articles" in preview.stdout
    check = run("--config", str(config), "check")
    assert f"Warning: {warning}\n" in check.stderr
