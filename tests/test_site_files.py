"""`content.static_dir`: previews and `serve` show the site's own images from disk, while
the emails keep their absolute addresses."""

from __future__ import annotations

import re
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from digest.cli import cli
from digest.config import load_settings
from digest.serve import make_server
from digest.site_files import SiteFiles

SITES = Path(__file__).parent / "fixtures" / "sites"
HUGO_COVERS = {"https://hugo.example.org/trips/lisbon-trip/cover.png",
               "https://hugo.example.org/images/telescope.png"}


def hugo_site(tmp_path: Path) -> Path:
    root = tmp_path / "hugo"
    shutil.copytree(SITES / "hugo", root)
    (root / "digest.toml").write_text(
        '[site]\nbase_url = "https://hugo.example.org/"\ntimezone = "Europe/London"\n'
        '[content]\nurl_pattern = "{base_url}/{dir}/{slug}/"\nstatic_dir = "static"\n')
    return root / "digest.toml"


def image_sources(html: str) -> set[str]:
    return set(re.findall(r'<img[^>]*src="([^"]+)"', html))


def test_preview_shows_local_copies_and_the_email_keeps_the_addresses(tmp_path):
    config = hugo_site(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(config), "preview", "--eml"])
    assert result.exit_code == 0, result.output
    previews = config.parent / "previews"
    (page,) = previews.glob("*..*.html")
    shown = image_sources(page.read_text())
    assert len(shown) == 2 and all(src.startswith("site-images/") for src in shown)
    assert all((previews / src).read_bytes()[:4] == b"\x89PNG" for src in shown)
    (eml,) = previews.glob("*.eml")
    assert all(address in eml.read_text() for address in HUGO_COVERS)


def test_without_static_dir_only_page_bundle_images_are_local(tmp_path):
    config = hugo_site(tmp_path)
    config.write_text(config.read_text().replace('static_dir = "static"\n', ""))
    CliRunner().invoke(cli, ["--config", str(config), "preview"])
    (page,) = (config.parent / "previews").glob("*..*.html")
    shown = image_sources(page.read_text())
    assert "https://hugo.example.org/images/telescope.png" in shown
    assert len([src for src in shown if src.startswith("site-images/")]) == 1


def test_nothing_outside_the_static_folder_is_read(tmp_path):
    (tmp_path / "static").mkdir()
    (tmp_path / "secret.png").write_bytes(b"secret")
    files = SiteFiles.of("https://x.example/blog", tmp_path / "static", [])
    assert files.find("https://x.example/blog/../secret.png") is None
    assert files.find("https://x.example/blog/%2e%2e/secret.png") is None
    assert files.find("https://other.example/blog/secret.png") is None
    (tmp_path / "static" / "ok.png").write_bytes(b"ok")
    assert files.find("https://x.example/blog/ok.png") == (tmp_path / "static" / "ok.png")


def test_serve_shows_the_local_images_and_only_to_local_pages(tmp_path):
    config = hugo_site(tmp_path)
    server, url = make_server(load_settings(config), "127.0.0.1", 0, config=config)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        index = urllib.request.urlopen(url, timeout=5).read().decode()
        stem = re.search(r'/email/([^"]+)\.html', index)[1]
        email = urllib.request.urlopen(f"{url}email/{stem}.html", timeout=5).read().decode()
        shown = image_sources(email)
        assert len(shown) == 2 and all(src.startswith("/site-images/") for src in shown)
        with urllib.request.urlopen(url + next(iter(shown)).lstrip("/"), timeout=5) as answer:
            assert (answer.status, answer.headers["Content-Type"]) == (200, "image/png")
        request = urllib.request.Request(url + next(iter(shown)).lstrip("/"),
                                         headers={"Host": "evil.example"})
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("another host was answered")
        except urllib.error.HTTPError as error:
            assert error.code == 403
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
