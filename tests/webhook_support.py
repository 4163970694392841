"""Signing and serving SendGrid's event webhook, for test_webhook, test_stats and
benchmarks/bench_webhook.py."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from werkzeug.serving import make_server

from digest.config import Settings
from digest.store import utc_now
from digest.transports.files import FilesTransport
from digest.web import create_app

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Signer:
    """An ECDSA P-256 key pair, signing as SendGrid does: base64 DER over timestamp+body."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(Encoding.DER,
                                                     PublicFormat.SubjectPublicKeyInfo)
        self.public = base64.b64encode(der).decode()

    def headers(self, raw: bytes, at: float | None = None) -> dict[str, str]:
        stamp = str(int(time.time() if at is None else at))
        signature = self.private.sign(stamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp,
                "Content-Type": "application/json"}


def make_hooks_app(settings: Settings, clock: Callable[[], datetime] = utc_now) -> Flask:
    """The readers' app, which serves the webhook, with `clock` (given a secret and a
    sender if `settings` lack them; confirmation emails would go to files)."""
    for key, value in (("web.secret_key", "webhook-test-secret-0123456789"),
                       ("email.from", "Example News <news@example.org>")):
        if not settings.text(key):
            settings = settings.override(key, value)
    return create_app(settings, clock=clock, transport=FilesTransport(settings.root / "out"))


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """The app on a free 127.0.0.1 port, in a thread; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
