"""Screenshots in real headless Chromium; remote resources are blocked, never fetched."""

import os
import re
import struct
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from helpers import BERLIN, busy_week, make_settings

from digest import screenshots
from digest.errors import DigestError
from digest.pipeline import build_issue, renderer_for
from digest.screenshots import find_chromium, take_screenshots
from digest.select import cadence_window

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=BERLIN)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The `browser` fixture's rule: under CI=true a missing Chromium fails, else skips."""
    try:
        return find_chromium()
    except DigestError:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium not found (install the Debian package chromium)")
        pytest.skip("Chromium not installed (apt-get install chromium)")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def email_html() -> str:
    settings = make_settings()
    built = build_issue(busy_week(NOW, count=12), key="2026-W48", window=cadence_window(NOW),
                        settings=settings, renderer=renderer_for(settings),
                        unsubscribe_url="https://news.example.org/unsubscribe/t")
    return built.email.html


class Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def remote() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that records every request it gets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", Recorder.hits
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.browser
def test_a_mobile_and_a_desktop_png_beside_each_file(chromium, tmp_path):
    files = [tmp_path / "2026-W48.html", tmp_path / "2026-W48--work.html"]
    html = email_html()
    for file in files:
        file.write_text(html, encoding="utf-8")
    shots = take_screenshots(files, chromium=chromium)
    assert shots == {
        "2026-W48": ["2026-W48.mobile.png", "2026-W48.desktop.png"],
        "2026-W48--work": ["2026-W48--work.mobile.png", "2026-W48--work.desktop.png"],
    }
    for stem in shots:
        mobile_width, mobile_height = png_size(tmp_path / f"{stem}.mobile.png")
        desktop_width, _ = png_size(tmp_path / f"{stem}.desktop.png")
        assert (mobile_width, desktop_width) == (375, 1280)
        assert mobile_height > screenshots.VIEWPORT_HEIGHT  # the full page, not the viewport


@pytest.mark.browser
def test_remote_resources_are_blocked_and_do_not_hang(chromium, tmp_path, remote):
    url, hits = remote
    page = tmp_path / "remote.html"
    page.write_text(f'<!doctype html><link rel="stylesheet" href="{url}/style.css">'
                    f'<p>Hello</p><img src="{url}/pixel.png" alt="pixel" width="600">')
    started = time.monotonic()
    shots = take_screenshots([page], chromium=chromium)
    assert time.monotonic() - started < 10
    assert shots == {"remote": ["remote.mobile.png", "remote.desktop.png"]}
    assert png_size(tmp_path / "remote.desktop.png")[0] == 1280
    assert hits == []


def test_without_chromium_the_error_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.delenv("DIGEST_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(screenshots, "CHROMIUM_CANDIDATES", (str(tmp_path / "chromium"),))
    with pytest.raises(DigestError) as caught:
        take_screenshots([tmp_path / "x.html"])
    assert str(caught.value) == ("--screenshots needs Chromium: install the Debian package "
                                 "chromium, or set DIGEST_CHROMIUM")


def test_digest_chromium_wins_and_a_missing_one_is_an_error(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-chromium"
    monkeypatch.setenv("DIGEST_CHROMIUM", str(missing))
    assert find_chromium() == str(missing)
    (tmp_path / "x.html").write_text("<p>x</p>")
    with pytest.raises(DigestError) as caught:
        take_screenshots([tmp_path / "x.html"])
    assert str(caught.value).startswith(f"cannot start Chromium {missing}: ")


def test_without_playwright_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import raises ImportError
    with pytest.raises(DigestError) as caught:
        take_screenshots([tmp_path / "x.html"], chromium="/usr/bin/chromium")
    assert str(caught.value) == (
        "--screenshots needs the Python package playwright: "
        "pip install '.[screenshots]' in digest's folder (or pip install playwright)")


def test_the_hint_installs_what_the_readme_says(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    with pytest.raises(DigestError) as caught:
        take_screenshots([tmp_path / "x.html"], chromium="/usr/bin/chromium")
    command = re.search(r"pip install '[^']+'", str(caught.value)).group()
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"`{command}`" in readme
