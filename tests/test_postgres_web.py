"""The readers' pages on several gunicorn workers on two "hosts", one PostgreSQL store:
the sign-up limits are one limit, whichever worker answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from web_support import SECRET, csrf_of, write_site

from digest.location import PostgresURL
from digest.web.pages import MIN_FILL_S

START_S = 60  # workers import the app after they fork: slow on a loaded machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(root: Path, url: PostgresURL, workers: int) -> Iterator[str]:
    """`gunicorn -w N digest.web.wsgi:app` as the README shows it; yields its base URL."""
    port = free_port()
    env = {**os.environ, "DIGEST_DB": url.dsn, "DIGEST_SECRET_KEY": SECRET,
           "DIGEST_CONFIG": str(root / "digest.toml")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "digest.web.wsgi:app"], cwd=root, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:  # every worker booted and answering
            try:
                with urllib.request.urlopen(f"{base}/", timeout=START_S) as page:
                    if page.status == 200:
                        break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=START_S)


def subscribe(base: str, csrf: str, email: str) -> int:
    """One sign-up; the status code (a loaded machine may take seconds to answer)."""
    body = urllib.parse.urlencode({"csrf": csrf, "email": email}).encode()
    try:
        with urllib.request.urlopen(f"{base}/subscribe", data=body, timeout=START_S) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


def test_the_21st_sign_up_from_one_client_is_refused_whichever_worker_answers(
        tmp_path, pg_url):
    write_site(tmp_path)
    with ExitStack() as stack:
        hosts = [stack.enter_context(gunicorn(tmp_path, pg_url, workers=2)) for _ in range(2)]
        forms = [form(hosts[i % 2]) for i in range(25)]  # each form works once
        time.sleep(MIN_FILL_S + 0.2)  # a form sent faster than a person types is refused
        statuses = [subscribe(hosts[i % 2], forms[i], f"r{i}@example.com") for i in range(25)]
        replayed = subscribe(hosts[1], forms[0], "again@example.com")
    assert statuses == [200] * 20 + [429] * 5
    assert replayed == 400  # a form used on one host is used up on the other too


def form(base: str) -> str:
    with urllib.request.urlopen(f"{base}/", timeout=START_S) as page:
        return csrf_of(page.read().decode())
