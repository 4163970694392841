"""SendGrid's signed event webhook: `POST /hooks/sendgrid`.

Contract with the app that registers `blueprint`: `app.config["DIGEST_SETTINGS"]` holds
the newsletter's `Settings`; each request reads `sendgrid.webhook_public_key` (the
verification key SendGrid shows for the signed event webhook: base64 DER, PEM armour
allowed), `sendgrid.asm_group_id` and the store path from it.

A request must carry SendGrid's ECDSA signature over timestamp + raw body
(`X-Twilio-Email-Event-Webhook-Signature` and `-Timestamp`), checked with the
`sendgrid` package's `EventWebhook`, and a timestamp within MAX_SKEW of now, which
`EventWebhook` does not check. Anything else gets 403 and changes nothing; without a
usable public key every request gets 503 (SendGrid retries for a day) and an error
is logged. An accepted batch is applied by `feedback.apply_events` and answered
with its counts as JSON (no address in them).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from flask import Blueprint, Response, current_app, jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from digest import feedback
from digest.store import open_store

log = logging.getLogger("digest.web.hooks")
blueprint = Blueprint("hooks", __name__)

MAX_SKEW_S = 600  # ten minutes, either way
MAX_BODY_BYTES = 32 * 1024 * 1024  # 10,000 events are about 4 MB
MAX_TIMESTAMP_DIGITS = 12
clock: Callable[[], float] = time.time  # tests may replace it


@blueprint.post("/hooks/sendgrid")
def sendgrid_events() -> Response | tuple[Response | str, int]:
    settings = current_app.config["DIGEST_SETTINGS"]
    key = public_key(settings["sendgrid.webhook_public_key"])
    if key is None:
        log.error("SendGrid event webhook refused: sendgrid.webhook_public_key is not set "
                  "or is not an ECDSA public key")
        return "the event webhook is not configured", 503
    raw = request_body()
    if raw is None:
        return "request too large", 413
    problem = signature_problem(raw, request.headers.get(EventWebhookHeader.SIGNATURE),
                                request.headers.get(EventWebhookHeader.TIMESTAMP), key, clock())
    if problem is not None:
        log.warning("SendGrid event webhook refused: %s", problem)
        return problem, 403
    events = parse(raw)
    if events is None:
        return "the body is not a JSON array of events", 400
    with open_store(settings.store_path) as store:
        applied = feedback.apply_events(store, events,
                                        group_id=settings["sendgrid.asm_group_id"])
    log.info("SendGrid event webhook: %s", applied.as_dict())
    return jsonify(applied.as_dict())


def request_body() -> bytes | None:
    """The raw body, up to MAX_BODY_BYTES whatever the app's MAX_CONTENT_LENGTH (Flask
    3.1 lets a view set its own); None if it is larger."""
    with contextlib.suppress(AttributeError):  # Flask 3.0: the app's limit applies
        request.max_content_length = MAX_BODY_BYTES
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return None
    raw = request.get_data(cache=False)
    return raw if len(raw) <= MAX_BODY_BYTES else None


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


def signature_problem(raw: bytes, signature: str | None, stamp: str | None,
                      key: EllipticCurvePublicKey, now: float) -> str | None:
    """Why the request is not SendGrid's, fresh; None if it is."""
    if not signature or not stamp:
        return "missing signature"
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        return "bad timestamp"
    if abs(now - int(stamp)) > MAX_SKEW_S:
        return "stale timestamp"
    try:
        payload = raw.decode("utf-8")
        valid = EventWebhook().verify_signature(payload, signature, stamp, key)
    except ValueError:  # not UTF-8, not base64, not a DER signature
        valid = False
    return None if valid else "invalid signature"


def parse(raw: bytes) -> list[Any] | None:
    try:
        events = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        return None
    return events if isinstance(events, list) else None
