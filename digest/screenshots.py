"""Screenshots of rendered emails in headless Chromium, with every network request blocked.

The email must lay out from its own bytes: a remote image is aborted, never fetched, so a
screenshot shows what a reader with images off sees and never waits on the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digest.errors import DigestError

CHROMIUM_CANDIDATES = ("/usr/bin/chromium",)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
WIDTHS = {"mobile": 375, "desktop": 1280}
VIEWPORT_HEIGHT = 800
TIMEOUT_MS = 15_000  # per page action: nothing is fetched, so this is only a safety net


def find_chromium() -> str:
    """`$DIGEST_CHROMIUM`, else `chromium` on the PATH, else the Debian package's path."""
    found = os.environ.get("DIGEST_CHROMIUM") or shutil.which("chromium")
    found = found or next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)
    if found is None:
        raise DigestError("--screenshots needs Chromium: install the Debian package chromium, "
                          "or set DIGEST_CHROMIUM")
    return found


def take_screenshots(
    html_files: Sequence[Path], *, chromium: str | None = None
) -> dict[str, list[str]]:
    """`<stem>.mobile.png` (375 px wide) and `<stem>.desktop.png` (1280 px), full page,
    beside each file; returns {stem: [png file names]}. One browser for all the files.

    Playwright's sync API refuses to run where an asyncio loop (or another sync Playwright)
    is running, so the work gets a thread of its own: callable from anywhere."""
    executable = chromium or find_chromium()
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(shoot_all, html_files, executable).result()


def shoot_all(html_files: Sequence[Path], executable: str) -> dict[str, list[str]]:
    shots: dict[str, list[str]] = {}
    with launched(executable) as browser:
        for html_file in html_files:
            html = html_file.read_text(encoding="utf-8")
            shots[html_file.stem] = [
                shoot(browser, html, width, html_file.with_name(f"{html_file.stem}.{name}.png"))
                for name, width in WIDTHS.items()
            ]
    return shots


@contextmanager
def launched(executable: str) -> Iterator[Any]:
    """A headless Chromium through Playwright, closed on the way out."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        raise DigestError(
            "--screenshots needs the Python package playwright: "
            "pip install '.[screenshots]' in digest's folder (or pip install playwright)"
        ) from None
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Error as exc:
            first_line = str(exc).strip().splitlines()[0]
            raise DigestError(f"cannot start Chromium {executable}: {first_line}") from None
        try:
            yield browser
        finally:
            browser.close()


def shoot(browser: Any, html: str, width: int, path: Path) -> str:
    """Lay `html` out `width` px wide, all requests aborted; write the full page to `path`."""
    page = browser.new_page(viewport={"width": width, "height": VIEWPORT_HEIGHT})
    try:
        page.set_default_timeout(TIMEOUT_MS)
        page.route("**/*", lambda route: route.abort())
        page.set_content(html, wait_until="load")
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.close()
    return path.name
