"""SendGrid's signed event webhook: `POST /hooks/sendgrid`.

Registered by `create_app`: each request reads the app's state (`digest.web.state`): its
`Settings` (`sendgrid.webhook_public_key`, the verification key SendGrid shows for the
signed event webhook: base64 DER, PEM armour allowed; `sendgrid.asm_group_id`; the
store path) and its clock, which both dates the events and judges the timestamp.

A request must carry SendGrid's ECDSA signature over timestamp + raw body
(`X-Twilio-Email-Event-Webhook-Signature` and `-Timestamp`) and a timestamp within
MAX_SKEW of now. Missing, malformed or stale headers are refused (403) before a byte
of the body is read; the body is then read in CHUNKs, hashed as it comes, up to
`sendgrid.webhook_max_mb` (5 MB; SendGrid's batches are far smaller: 413 past it), and
the signature checked over that hash (until then no more than 256 KB of it is held in
memory: the rest waits in a temporary file). Anything else gets 403 and changes nothing;
without a usable public key every request gets 503 (SendGrid retries for a day) and
an error is logged. An accepted batch is applied by `feedback.apply_events` and answered
with its counts as JSON (no address in them).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import tempfile
from typing import IO, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from flask import Blueprint, Response, jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from digest import feedback
from digest.config import Settings
from digest.web.state import request_store, web_state

log = logging.getLogger("digest.web.hooks")
blueprint = Blueprint("hooks", __name__)

MAX_SKEW_S = 600  # ten minutes, either way
MAX_TIMESTAMP_DIGITS = 12
CHUNK = 64 * 1024
SPOOL_BYTES = 256 * 1024  # an unverified body past this waits in a temporary file
# A DER ECDSA P-256 signature is 8 to 72 bytes (base64: at most 96 characters).
MIN_SIGNATURE_BYTES, MAX_SIGNATURE_BYTES, MAX_SIGNATURE_CHARS = 8, 72, 96
SIGNATURE = EventWebhookHeader.SIGNATURE
TIMESTAMP = EventWebhookHeader.TIMESTAMP


@blueprint.post("/hooks/sendgrid")
def sendgrid_events() -> Response | tuple[Response | str, int]:
    state = web_state()
    settings = state.settings
    key = public_key(settings.text("sendgrid.webhook_public_key"))
    if key is None:
        log.error("SendGrid event webhook refused: sendgrid.webhook_public_key is not set "
                  "or is not an ECDSA public key")
        return "the event webhook is not configured", 503
    signature, stamp = request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
    now = state.clock().timestamp()
    problem = header_problem(signature, stamp, now)  # before a byte of the body
    if problem is None:
        assert signature is not None and stamp is not None
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as spool:
            limit = settings.integer("sendgrid.webhook_max_mb") * 1024 * 1024
            digest = read_signed(stamp, limit, spool)
            if digest is None:
                return "request too large", 413
            if verified(key, signature, digest):
                spool.seek(0)
                return apply(settings, spool.read())
        problem = "invalid signature"
    log.warning("SendGrid event webhook refused: %s", problem)
    return problem, 403


def apply(settings: Settings, raw: bytes) -> Response | tuple[str, int]:
    events = parse(raw)
    if events is None:
        return "the body is not a JSON array of events", 400
    applied = feedback.apply_events(  # the request's store, on the app's clock
        request_store(), events, group_id=settings.optional_integer("sendgrid.asm_group_id"))
    log.info("SendGrid event webhook: %s", applied.as_dict())
    return jsonify(applied.as_dict())


def header_problem(signature: str | None, stamp: str | None, now: float) -> str | None:
    """Why the headers alone show the request is not SendGrid's, fresh; None if they may."""
    if not signature or not stamp:
        return "missing signature"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        return "bad timestamp"
    if abs(now - int(stamp)) > MAX_SKEW_S:
        return "stale timestamp"
    if der_signature(signature) is None:
        return "malformed signature"
    return None


def der_signature(signature: str) -> bytes | None:
    """The base64 DER signature's bytes, if it is shaped like an ECDSA P-256 one."""
    if len(signature) > MAX_SIGNATURE_CHARS:
        return None
    try:
        der = base64.b64decode(signature, validate=True)
    except ValueError:
        return None
    return der if MIN_SIGNATURE_BYTES <= len(der) <= MAX_SIGNATURE_BYTES else None


def read_signed(stamp: str, limit: int, spool: IO[bytes]) -> bytes | None:
    """Copy the body into `spool`, CHUNK bytes at a time, and return the SHA-256 of
    timestamp + body that SendGrid signed; None as soon as it is over `limit` bytes (at
    once if its Content-Length says so). The spool keeps at most SPOOL_BYTES in memory
    (the rest goes to a temporary file), so a body is held whole only once its
    signature is good."""
    if (request.content_length or 0) > limit:
        return None
    with contextlib.suppress(AttributeError):  # Flask 3.1: this request's own limit
        request.max_content_length = limit
    sha = hashes.Hash(hashes.SHA256())
    sha.update(stamp.encode())
    size = 0
    while chunk := request.stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        spool.write(chunk)
        sha.update(chunk)
    return sha.finalize()


def verified(key: EllipticCurvePublicKey, signature: str, digest: bytes) -> bool:
    der = der_signature(signature)
    try:
        key.verify(der or b"", digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=4)
def public_key(text: str) -> EllipticCurvePublicKey | None:
    """The verification key from the setting, or None if it is empty or not an EC key."""
    body = "".join(line.strip() for line in text.strip().splitlines()
                   if not line.strip().startswith("-----"))
    if not body:
        return None
    try:
        key = EventWebhook().convert_public_key_to_ecdsa(body)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key if isinstance(key, EllipticCurvePublicKey) else None


def parse(raw: bytes) -> list[Any] | None:
    try:
        events = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return None
    return events if isinstance(events, list) else None
