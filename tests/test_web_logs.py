"""Reader tokens never reach a log: the README's gunicorn and uvicorn commands, run as
documented, and the app's own error log (issue 10). Also: the WSGI entry without a
configuration says so in one line."""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web_support import SECRET, WAIT_S, Clock, add_reader, http, site_settings

from digest.web import create_app
from digest.web.logs import UVICORN_LOG_CONFIG, redact

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADA = "ada@example.com"


def documented(server: str) -> list[str]:
    """The README's command line that starts `server`, as argv (after the variables)."""
    text = (REPO / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    [line] = [line for line in text.splitlines()
              if line.startswith("$ DIGEST_CONFIG=") and f" {server} " in line]
    words = shlex.split(line.removeprefix("$ "))
    return words[words.index(server):]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not start: {process.communicate(timeout=5)}")


def run_documented(server: str, tmp_path: Path) -> tuple[str, str]:
    """Start the README's command for `server` on a free port, visit a reader's pages,
    break the database and visit again (a 500), stop it; (token, everything it logged)."""
    config = site_settings(tmp_path).root / "digest.toml"
    token = add_reader(tmp_path, ADA)
    port = free_port()
    argv = documented(server)
    argv[0] = str(BIN / server)
    argv = [w.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("8080", str(port))
            for w in argv]
    argv = [str(UVICORN_LOG_CONFIG) if w == "$(python -m digest.web.logs uvicorn)" else w
            for w in argv]
    env = {**os.environ, "DIGEST_CONFIG": str(config), "DIGEST_SECRET_KEY": SECRET,
           "HOME": str(tmp_path)}
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   cwd=tmp_path)
        try:
            wait_for(port, process)
            base = f"http://127.0.0.1:{port}"
            assert http("GET", f"{base}/preferences/{token}").status == 200
            assert http("GET", f"{base}/pr%65ferences/{token}?saved=1").status == 200
            assert http("POST", f"{base}/unsubscribe/{token}",
                        form={"List-Unsubscribe": "One-Click"}).status == 200
            for name in ("digest.db", "digest.db-wal", "digest.db-shm"):
                (tmp_path / name).unlink(missing_ok=True)
            (tmp_path / "digest.db").write_bytes(b"not a database " * 100)
            assert http("GET", f"{base}/unsubscribe/{token}").status == 500
        finally:
            process.terminate()
            process.wait(timeout=WAIT_S * 2)
    return token, log.read_text()


def test_the_documented_gunicorn_command_logs_no_token(tmp_path):
    token, log = run_documented("gunicorn", tmp_path)
    assert '"GET /preferences/… HTTP/1.1" 200' in log
    assert '"GET /preferences/…?saved=1 HTTP/1.1" 200' in log  # %65 is an e
    assert '"POST /unsubscribe/… HTTP/1.1" 200' in log
    assert "Exception on /unsubscribe/… [GET]" in log
    assert "file is not a database" in log
    assert token not in log


def test_the_documented_uvicorn_command_logs_no_token(tmp_path):
    token, log = run_documented("uvicorn", tmp_path)
    assert '"GET /preferences/… HTTP/1.1" 200' in log
    assert '"POST /unsubscribe/… HTTP/1.1" 200' in log
    assert "Exception on /unsubscribe/… [GET]" in log
    assert token not in log


def test_the_uvicorn_log_config_path_is_printed():
    result = subprocess.run([sys.executable, "-m", "digest.web.logs", "uvicorn"],
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, f"{UVICORN_LOG_CONFIG}\n")
    assert UVICORN_LOG_CONFIG.is_file()


def test_a_500_under_a_token_path_is_logged_without_the_token(tmp_path, caplog):
    app = create_app(site_settings(tmp_path), clock=Clock())
    token = add_reader(tmp_path, ADA)
    (tmp_path / "digest.db").unlink()
    (tmp_path / "digest.db").mkdir()  # the store cannot be opened: a 500
    with caplog.at_level(logging.ERROR):
        assert app.test_client().get(f"/preferences/{token}").status_code == 500
    assert "Exception on /preferences/… [GET]" in caplog.text
    assert token not in caplog.text
    assert all(token not in (r.exc_text or "") for r in caplog.records)


def test_redact_catches_escaped_and_repeated_slashes():
    token = "k9QpdyIowVX0tKxTge3l99hIemGxuoRgoeSEhwpOWlY"
    assert redact(f'"GET /unsubscribe//{token} HTTP/1.1"') == '"GET /unsubscribe//… HTTP/1.1"'
    assert redact(f"/pr%65ferences/{token}?saved=1") == "/preferences/…?saved=1"
    assert redact(f"/somewhere/{token}") == "/somewhere/…"


@pytest.mark.parametrize("server", ["gunicorn"])
def test_the_wsgi_entry_without_a_configuration_says_so_in_one_line(tmp_path, server):
    env = {**os.environ, "HOME": str(tmp_path), "DIGEST_SECRET_KEY": SECRET}
    result = subprocess.run(
        [str(BIN / server), "-b", f"127.0.0.1:{free_port()}", "digest.web.wsgi:app"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    ours = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert ours == [
        f"Error: no digest.toml in {tmp_path} and DIGEST_CONFIG is not set: start the "
        "server in the newsletter's folder or set DIGEST_CONFIG=/path/to/digest.toml"]
    assert "Traceback" not in result.stderr
    assert result.returncode != 0
    assert re.search(r"App failed to load", result.stderr)
