"""`digest init` on one small site per generator (tests/fixtures/sites/, written for these
tests in each generator's documented layout), then `digest preview`: the links in the email
are the ones the generator itself gives each page."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from digest import init
from digest.cli import cli
from digest.config import load_settings

SITES = Path(__file__).parent / "fixtures" / "sites"


def site_copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(SITES / name, target)
    return target


def run(root: Path, *args: str):
    """The CLI in `root`, as a user in that folder runs it."""
    cwd = Path.cwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    finally:
        os.chdir(cwd)


def preview_urls(root: Path, *init_args: str) -> list[str]:
    """init, then preview: the article links in the text part, in the email's order."""
    initialised = run(root, "init", *init_args)
    assert initialised.exit_code == 0, initialised.output
    shown = run(root, "preview")
    assert shown.exit_code == 0, shown.output
    (text,) = (root / "previews").glob("*.txt")
    return [line for line in text.read_text().splitlines()
            if line.startswith("https://") and "/unsubscribe/" not in line
            and "/preferences/" not in line and "/category/" not in line]


def test_hugo_bundle_section_permalinks_url_override_and_publish_dates(tmp_path):
    urls = preview_urls(site_copy(tmp_path, "hugo"))
    assert sorted(urls) == [
        "https://hugo.example.org/2026/11/first-light-at-the-observatory/",  # [permalinks] + slug
        "https://hugo.example.org/2026/11/hello-hugo-world/",  # :slug falls back to the title
        "https://hugo.example.org/elsewhere/moved-page/",  # front matter url
        "https://hugo.example.org/notes/a-quick-note/",  # a section without a permalink rule
        "https://hugo.example.org/notes/mixed-case-note/",  # paths in lower case
        "https://hugo.example.org/trips/lisbon-trip/",  # a page bundle: the folder's name
    ]  # not: scheduled.md (publishDate after the window), expired.md (expiryDate before)


def test_hugo_cover_images_resolve_as_hugo_resolves_them(tmp_path):
    root = site_copy(tmp_path, "hugo")
    preview_urls(root)
    settings = load_settings(root / "digest.toml")
    from digest.pipeline import load

    covers = {a.slug: a.cover_image for a in load(settings, cached=False).articles}
    assert covers["lisbon-trip"] == "https://hugo.example.org/trips/lisbon-trip/cover.png"
    assert covers["first-light-at-the-observatory"] == (
        "https://hugo.example.org/images/telescope.png")


def test_jekyll_date_permalink_categories_permalink_override_and_unpublished(tmp_path):
    urls = preview_urls(site_copy(tmp_path, "jekyll"))
    assert sorted(urls) == [
        "https://jekyll.example.org/blog/2026/11/26/liquid-notes.html",  # slug wins over :title
        "https://jekyll.example.org/blog/about-this/",  # front matter permalink
        "https://jekyll.example.org/blog/jekyll/update/2026/11/24/welcome-to-jekyll.html",
    ]  # not: published: false, nor _drafts/


def test_jekyll_categories_string_is_two_categories(tmp_path):
    root = site_copy(tmp_path, "jekyll")
    run(root, "init")
    from digest.pipeline import load

    articles = load(load_settings(root / "digest.toml"), cached=False).articles
    welcome = next(a for a in articles if a.slug == "welcome-to-jekyll")
    assert welcome.category == "jekyll"
    assert welcome.cover_image == "https://jekyll.example.org/blog/assets/img/welcome.png"


def test_eleventy_paths_below_the_input_folder_and_a_permalink(tmp_path):
    urls = preview_urls(site_copy(tmp_path, "eleventy"))
    assert sorted(urls) == [
        "https://eleventy.example.org/blog/2026/nested-post/",
        "https://eleventy.example.org/blog/first-post/",
        "https://eleventy.example.org/fixed-address/",
    ]


def test_astro_content_collection_with_its_pubdate(tmp_path):
    urls = preview_urls(site_copy(tmp_path, "astro"))
    assert urls == ["https://astro.example.org/blog/first-post/"]


def test_nextjs_blog_starter_with_the_base_url_given(tmp_path):
    urls = preview_urls(site_copy(tmp_path, "nextjs"), "--base-url", "https://next.example.org")
    assert urls == ["https://next.example.org/posts/hello-world"]


def test_init_prints_what_it_read_and_what_it_guessed(tmp_path):
    result = run(site_copy(tmp_path, "hugo"), "init")
    assert result.exit_code == 0
    assert result.output == (
        "Found Hugo (hugo.toml).\n"
        "Read:\n"
        "  site.name = Hugo Field Notes  (hugo.toml title)\n"
        "  site.base_url = https://hugo.example.org/  (hugo.toml baseURL)\n"
        "  site.language = en-gb  (hugo.toml languageCode)\n"
        "  site.timezone = Europe/London  (hugo.toml timeZone)\n"
        "  content.static_dir = static  (Hugo's default static/)\n"
        "  content.url_pattern = {base_url}/{dir}/{slug}/  (Hugo's default /section/name/)\n"
        "  content.section_url_patterns = posts: {base_url}/{year}/{month}/{slug_or_title}/"
        "  (hugo.toml permalinks)\n"
        "  content.lowercase_urls = true  (Hugo writes paths in lower case)\n"
        "Guessed:\n"
        "  content.dir = content  (Hugo's default content/)\n"
        f"Wrote {Path('digest.toml')}: check it, then run `digest preview`.\n")


def test_a_plain_folder_says_what_it_guessed(tmp_path):
    result = run(site_copy(tmp_path, "markdown"), "init", "--name", "My Notes")
    assert result.output.splitlines()[:3] == [
        "Found a folder of markdown.",
        "Read:",
        "  site.name = My Notes  (from the command line)",
    ]
    assert "  site.base_url = https://example.com  (no base URL found: set your site's " \
        "address)" in result.output.splitlines()


def test_options_win_over_what_was_read(tmp_path):
    root = site_copy(tmp_path, "hugo")
    run(root, "init", "--name", "Weekly", "--base-url", "https://news.example.net",
        "--content", "content/posts")
    settings = load_settings(root / "digest.toml")
    assert (settings.site_name, settings.base_url, settings["content.dir"]) == (
        "Weekly", "https://news.example.net", "content/posts")


def test_init_never_overwrites(tmp_path):
    root = site_copy(tmp_path, "markdown")
    (root / "digest.toml").write_text("# mine\n")
    result = run(root, "init")
    assert result.exit_code == 1
    assert result.output == (f"Error: {Path('digest.toml')} exists already: init never "
                             "overwrites it (remove it or edit it)\n")
    assert (root / "digest.toml").read_text() == "# mine\n"


def test_hugo_config_folder_language_content_dir_and_ugly_urls(tmp_path):
    (tmp_path / "config" / "_default").mkdir(parents=True)
    (tmp_path / "config" / "_default" / "hugo.toml").write_text(
        'baseURL = "https://multi.example.org/"\ndefaultContentLanguage = "de"\n'
        "uglyURLs = true\n")
    (tmp_path / "config" / "_default" / "languages.de.toml").write_text(
        'contentDir = "content/de"\n')
    (tmp_path / "config" / "_default" / "languages.en.toml").write_text(
        'contentDir = "content/en"\n')
    (tmp_path / "config" / "_default" / "permalinks.toml").write_text(
        'posts = "/:sections/:filename/"\nnews = "/:weekday/:slug/"\n')
    (tmp_path / "content" / "de").mkdir(parents=True)
    found = init.detect(tmp_path)
    assert found.generator == "Hugo"
    assert found.config_file == "config/_default/hugo.toml"
    assert found.values["content.dir"].value == "content/de"
    assert found.values["content.url_pattern"].value == "{base_url}/{dir}/{slug}.html"
    assert found.values["content.section_url_patterns"].value == {
        "posts": "{base_url}/{dir}/{filename}.html"}
    assert found.notes == ["permalinks.news '/:weekday/:slug/' uses a token digest does not "
                           "know: Hugo's default pattern is used for that section"]
    init.write_config(tmp_path, found)
    assert load_settings(tmp_path / "digest.toml").language == "de"


def test_zola_config_toml_is_not_taken_for_hugo(tmp_path):
    (tmp_path / "config.toml").write_text('base_url = "https://zola.example.org"\n')
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "a.md").write_text("+++\ntitle = 'A'\ndate = 2026-11-01\n+++\n")
    assert init.detect(tmp_path).generator == "Zola"


def test_zola_paths_sections_and_taxonomies(tmp_path):
    """tests/fixtures/zola (written for the Zola reader's tests): a `path` is the URL Zola
    serves, a page without one is at section/slug/; categories come from [taxonomies]."""
    root = tmp_path / "zola"
    shutil.copytree(Path(__file__).parent / "fixtures" / "zola", root)
    (root / "content" / "inside-trowel" / "2026-11-28-garden-diary.md").write_text(
        "+++\ntitle = \"A garden diary\"\n+++\nNo path: Zola serves it at section/slug/.\n")
    found = init.detect(root)
    assert (found.generator, found.config_file, found.notes) == ("Zola", "config.toml", [])
    assert {v.key: v.value for v in found.found} == {
        "site.name": "Trowel Blog", "site.base_url": "https://blog.trowel.example",
        "content.dir": "content", "content.static_dir": "static",
        "content.url_pattern": "{base_url}/{dir}/{slug}/"}
    urls = preview_urls(root, "--base-url", "https://blog.trowel.example")
    assert "https://blog.trowel.example/2026/11/26/Trowel-2.4.0/" in urls
    assert "https://blog.trowel.example/inside-trowel/2026/11/27/planner-notes/" in urls
    assert "https://blog.trowel.example/about-the-team/" in urls
    assert "https://blog.trowel.example/inside-trowel/garden-diary/" in urls


def test_a_site_config_that_does_not_parse_is_named(tmp_path):
    (tmp_path / "hugo.toml").write_text("baseURL = \n")
    result = run(tmp_path, "init")
    assert result.exit_code == 1
    assert result.output == ("Error: hugo.toml: cannot read the site's configuration: "
                             "Invalid value (at line 1, column 11)\n")


def test_templates_copy_copies_each_template_once(tmp_path):
    first = run(tmp_path, "templates", "copy")
    names = ["email.mjml.j2", "email.txt.j2", "preheader.txt.j2", "subject.txt.j2"]
    assert first.output.splitlines()[:4] == [
        f"Copied {Path('templates') / name}" for name in names]
    (tmp_path / "templates" / "subject.txt.j2").write_text("mine")
    again = run(tmp_path, "templates", "copy")
    assert f"Kept (exists) {Path('templates') / 'subject.txt.j2'}" in again.output
    assert (tmp_path / "templates" / "subject.txt.j2").read_text() == "mine"


def test_previews_go_beside_the_config_not_into_the_current_folder(tmp_path):
    root = site_copy(tmp_path, "markdown")
    run(root, "init")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(elsewhere, "--config", str(root / "digest.toml"), "preview")
    assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []
    assert (root / "previews" / "index.html").is_file()


def test_a_newcomers_path_init_then_preview_in_real_processes(tmp_path):
    """What the README's first steps do, as separate `digest` processes in a folder of
    markdown files. (The package is the one this suite runs: a fresh venv and pip install
    would take minutes and need the network; the installed entry point is what they give.)"""
    for number in range(3):
        (tmp_path / f"note-{number}.md").write_text(
            f"---\ntitle: Note {number}\ndate: 2026-11-2{number}\n---\nText {number}.\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "SENDGRID_"))}
    command = [sys.executable, "-m", "digest"]
    made = subprocess.run([*command, "init", "--base-url", "https://notes.example.org"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    shown = subprocess.run([*command, "preview"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    assert "Selected 3 of 3 articles in the window" in shown.stdout
    html = (tmp_path / "previews" / "2026-11-16..2026-11-22.html").read_text()
    assert 'href="https://notes.example.org/posts/note-0"' in html


def test_an_empty_folder_gets_a_config_that_says_what_to_set(tmp_path):
    (tmp_path / "package.json").write_text('{"dependencies": {"next": "15"}}')
    result = run(tmp_path, "init")
    assert result.exit_code == 0
    assert result.output.splitlines()[-2:] == [
        "Note: content/ does not exist: set content.dir to the folder of your markdown articles",
        f"Wrote {Path('digest.toml')}: check it, then run `digest preview`."]
    assert load_settings(tmp_path / "digest.toml")["content.dir"] == "content"
