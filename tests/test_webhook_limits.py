"""The event webhook under attack: headers are judged before the body is read, and the
body is capped (`sendgrid.webhook_max_mb`) and read in pieces."""

from __future__ import annotations

import json
import socket
import time

import pytest
from helpers import make_settings
from webhook_support import SIGNATURE, TIMESTAMP, Signer, make_hooks_app, serving

from digest.config import Settings

HUGE = 31 * 1024 * 1024


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def site(tmp_path, signer) -> Settings:
    return make_settings(tmp_path, sendgrid__webhook_public_key=signer.public)


def headers_only(url: str, headers: dict[str, str], length: int) -> bytes:
    """Send a POST's head announcing `length` bytes, none of them, and read the answer:
    a server that waits for the body answers nothing within the timeout."""
    host, port = url.removeprefix("http://").split(":")
    lines = ["POST /hooks/sendgrid HTTP/1.1", f"Host: {host}",
             "Content-Type: application/json", f"Content-Length: {length}",
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port)), timeout=3) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return answer(conn)


def answer(conn: socket.socket) -> bytes:
    """What the server says until it closes the connection (bounded by the timeout)."""
    received = b""
    try:
        for _ in range(100):
            piece = conn.recv(65536)
            if not piece:
                break
            received += piece
    except TimeoutError:
        pass
    return received or b"(no answer: the server is waiting for the body)"


def junk_headers(at: float) -> dict[str, dict[str, str]]:
    fresh = str(int(at))
    return {
        "missing signature": {},
        "bad timestamp": {SIGNATURE: "MEUCIQ" + "A" * 90, TIMESTAMP: "soon"},
        "stale timestamp": {SIGNATURE: "MEUCIQ" + "A" * 90, TIMESTAMP: str(int(at) - 601)},
        "malformed signature": {SIGNATURE: "not*base64", TIMESTAMP: fresh},
    }


@pytest.mark.parametrize("problem", list(junk_headers(0)))
def test_bad_headers_are_refused_before_the_body_is_read(site, problem):
    with serving(make_hooks_app(site)) as url:
        reply = headers_only(url, junk_headers(time.time())[problem], HUGE)
    status, _, body = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 403 FORBIDDEN", reply
    assert body.endswith(b"\r\n\r\n" + problem.encode())


def test_a_signature_too_long_to_be_ecdsa_is_malformed(site, signer):
    client = make_hooks_app(site).test_client()
    raw = b"[]"
    headers = signer.headers(raw) | {SIGNATURE: "A" * 100}
    response = client.post("/hooks/sendgrid", data=raw, headers=headers)
    assert (response.status_code, response.text) == (403, "malformed signature")


def test_a_fresh_signed_body_over_the_cap_gets_413_before_it_is_read(site, signer):
    with serving(make_hooks_app(site)) as url:
        reply = headers_only(url, signer.headers(b"x"), 5 * 1024 * 1024 + 1)
    assert reply.startswith(b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE"), reply
    assert reply.endswith(b"request too large")


def padded_batch(size: int) -> bytes:
    """A JSON array of one ignored event, padded with spaces to `size` bytes."""
    raw = json.dumps([{"event": "processed", "email": "a@example.com",
                       "sg_event_id": "pad", "timestamp": 1}]).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"]"


def test_the_cap_is_5_mb_by_default_and_configurable(site, signer):
    client = make_hooks_app(site).test_client()
    under = padded_batch(5 * 1024 * 1024)
    assert client.post("/hooks/sendgrid", data=under,
                       headers=signer.headers(under)).status_code == 200
    over = padded_batch(5 * 1024 * 1024 + 1)
    response = client.post("/hooks/sendgrid", data=over, headers=signer.headers(over))
    assert (response.status_code, response.text) == (413, "request too large")
    small = make_hooks_app(site.override("sendgrid.webhook_max_mb", 1)).test_client()
    two = padded_batch(2 * 1024 * 1024)
    response = small.post("/hooks/sendgrid", data=two, headers=signer.headers(two))
    assert (response.status_code, response.text) == (413, "request too large")


def post_chunked(url: str, raw: bytes, headers: dict[str, str]) -> bytes:
    """POST `raw` with Transfer-Encoding: chunked (no Content-Length to refuse it on)."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST /hooks/sendgrid HTTP/1.1\r\nHost: {host}\r\n{head}"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        for start in range(0, len(raw), 65536):
            piece = raw[start:start + 65536]
            conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")
        return answer(conn)


def test_a_chunked_body_is_read_up_to_the_cap(site, signer):
    app = make_hooks_app(site.override("sendgrid.webhook_max_mb", 1))
    over, under = padded_batch(1024 * 1024 + 10), padded_batch(200_000)
    with serving(app) as url:
        refused = post_chunked(url, over, signer.headers(over))
        applied = post_chunked(url, under, signer.headers(under))
    assert refused.startswith(b"HTTP/1.1 413 REQUEST ENTITY TOO LARGE"), refused
    assert applied.startswith(b"HTTP/1.1 200 OK"), applied


def test_the_configured_cap_is_bounded(tmp_path):
    from digest.config import load_settings
    from digest.errors import ConfigError

    (tmp_path / "digest.toml").write_text(
        '[site]\nbase_url = "https://x.example.org"\n[sendgrid]\nwebhook_max_mb = 100\n')
    with pytest.raises(ConfigError, match=r"sendgrid\.webhook_max_mb must be at most 64, not 100"):
        load_settings(tmp_path / "digest.toml", environ={})


def test_digest_web_discards_an_unread_body_64_kb_at_a_time():
    """Werkzeug drains what the app left unread with read(10_000_000): 160 MB at once for
    sixteen refused uploads. digest web's handler hands out 64 KB per read instead."""
    from digest.web import DISCARD_CHUNK, SmallReads

    asked = []

    class Connection:
        def read(self, size):
            asked.append(size)
            return b"x" * size

        def readline(self, size):
            return b"GET / HTTP/1.1\r\n"

    reads = SmallReads(Connection())
    assert len(reads.read(10_000_000)) == DISCARD_CHUNK == 64 * 1024
    assert reads.read(100) == b"x" * 100
    assert asked == [65536, 100]
    assert reads.readline(65537) == b"GET / HTTP/1.1\r\n"  # everything else passes through
