"""`digest preview --eml` and `--screenshots`: what a person opens or looks at."""

import email
import email.policy
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import chromium_path

from digest.cli import cli

REPO = Path(__file__).resolve().parent.parent
STEM = "2026-11-22..2026-11-28"


def preview(tmp_path: Path, *flags: str):
    shutil.copytree(REPO / "content", tmp_path / "content")
    shutil.copy(REPO / "digest.toml", tmp_path / "digest.toml")
    return CliRunner().invoke(cli, ["--config", str(tmp_path / "digest.toml"), "preview",
                                    "--out", str(tmp_path / "out"), *flags])


def test_eml_is_the_message_a_reader_would_get(tmp_path):
    result = preview(tmp_path, "--eml")
    assert result.exit_code == 0, result.output
    assert f"Wrote {tmp_path / 'out' / STEM}.eml\n" in result.output
    raw = (tmp_path / "out" / f"{STEM}.eml").read_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == "Field Notes <digest@fieldnotes.example.org>"
    assert message["Subject"] == "Field Notes: 7 new articles in General AI and Work"
    assert message["List-Unsubscribe"] == (
        "<https://fieldnotes.example.org/unsubscribe/preview>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.browser
def test_screenshots_are_written_and_shown_in_the_index(tmp_path, browser):
    assert chromium_path()
    result = preview(tmp_path, "--screenshots")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    for size, width in (("mobile", 375), ("desktop", 1280)):
        png = (out / f"{STEM}.{size}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(png[16:20], "big") == width
    index = (out / "index.html").read_text()
    assert f'<img src="{STEM}.mobile.png"' in index
    assert f'<img src="{STEM}.desktop.png"' in index
