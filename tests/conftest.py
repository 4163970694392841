from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the golden files in tests/golden/ from the current output.",
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's DIGEST_* or SENDGRID_* variables (the README tells users
    to export DIGEST_DB and DIGEST_SECRET_KEY); processes the tests start inherit this."""
    for name in list(os.environ):
        if name.startswith(("DIGEST_", "SENDGRID_")):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Article caches go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def golden(update_golden: bool):
    """Compare text with tests/golden/NAME, or rewrite it with --update-golden."""

    def check(name: str, actual: str) -> None:
        path = REPO / "tests" / "golden" / name
        if update_golden:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
        assert path.exists(), f"{path} missing: run pytest --update-golden once"
        assert actual == path.read_text(encoding="utf-8"), (
            f"{name} differs from the golden file: if the change is intended, "
            "run pytest --update-golden and review the diff"
        )

    return check


def chromium_path() -> str | None:
    found = os.environ.get("DIGEST_CHROMIUM") or shutil.which("chromium")
    return found or next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian Chromium through Playwright. Skips locally without it;
    under CI=true a missing browser is a failure, never a skip."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium not found (install the Debian package chromium)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=path,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"],
        )
        yield launched
        launched.close()


pytest_plugins = ("backends",)  # db, pg_url, pg_server: both backends (tests/backends.py)
