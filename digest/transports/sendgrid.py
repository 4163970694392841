"""Send a Message as one request to SendGrid's v3 mail/send, with the official client.

Retries (README, Sending, "Retries" and "Once, whatever happens"): 429 waits for `X-RateLimit-Reset`
(at most 60 s), 5xx and failures to connect back off exponentially; a time-out or
a broken connection after the request was sent is "unknown" and never retried,
since SendGrid may have accepted it. The API key never leaves the client: not in
a reason, an exception, a log record or a repr.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from digest.config import Settings
from digest.errors import DeliveryError
from digest.transports import (
    Attempts,
    Message,
    Outcome,
    Recipient,
    check_message,
    recipient_fields,
)

log = logging.getLogger(__name__)

RATE_LIMIT_WAIT_MIN = 1.0
RATE_LIMIT_WAIT_MAX = 60.0
BACKOFF_BASE = 1.0
BACKOFF_MAX = 8.0
MISSING_KEY = 'SENDGRID_API_KEY is not set: export it, or use delivery.transport = "files"'
BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+")


@dataclass(frozen=True)
class Retry:
    """A retryable attempt: why it failed and how long to wait before the next one."""

    reason: str
    wait: float


# ---------------------------------------------------------------- request body


def request_body(message: Message) -> dict[str, Any]:
    """The mail/send JSON for one Message: one personalization per recipient."""
    check_message(message)
    body: dict[str, Any] = {
        "personalizations": personalizations(message.recipients,
                                             own_headers=message.asm_group_id is None),
        "from": address(message.from_email, message.from_name),
        "subject": message.subject,
        "content": content(message),
    }
    return body | optional_fields(message)


def personalizations(recipients: Sequence[Recipient], *, own_headers: bool
                     ) -> list[dict[str, Any]]:
    """Each recipient's `to`, then their substitutions and headers when they have any
    (no headers of their own under an ASM group), in one pass over `Readers`."""
    blocks = []
    for email, name, substitutions, headers in recipient_fields(recipients):
        block: dict[str, Any] = {"to": [{"email": email, "name": name} if name
                                        else {"email": email}]}
        if substitutions:
            block["substitutions"] = substitutions
        if own_headers and headers:
            block["headers"] = headers
        blocks.append(block)
    return blocks


def address(email: str, name: str | None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def content(message: Message) -> list[dict[str, str]]:
    """text/plain first, then text/html (SendGrid refuses the other order); empty parts out."""
    parts = [("text/plain", message.text), ("text/html", message.html)]
    return [{"type": kind, "value": value} for kind, value in parts if value]


def optional_fields(message: Message) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if message.reply_to:
        name, email = parseaddr(message.reply_to)
        fields["reply_to"] = address(email or message.reply_to, name or None)
    if message.categories:
        fields["categories"] = list(message.categories)
    if message.custom_args:
        fields["custom_args"] = dict(message.custom_args)
    if message.asm_group_id is not None:
        fields["asm"] = {"group_id": message.asm_group_id}
    return fields


# ---------------------------------------------------------------- waits and reasons


def backoff(attempt: int, base: float = BACKOFF_BASE) -> float:
    """1, 2, 4, 8, 8, … seconds after the first, second, third … failed attempt."""
    return min(base * 2.0 ** (attempt - 1), BACKOFF_MAX)


def rate_limit_wait(headers: Mapping[str, str] | None, now: float, attempt: int,
                    base: float = BACKOFF_BASE) -> float:
    """Until `X-RateLimit-Reset` (Unix seconds), between 1 and 60 s; backoff without it."""
    try:
        reset = float((headers or {}).get("X-RateLimit-Reset", ""))
    except ValueError:
        return backoff(attempt, base)
    return min(max(reset - now, RATE_LIMIT_WAIT_MIN), RATE_LIMIT_WAIT_MAX)


def error_detail(status: int, body: bytes | None) -> str:
    """SendGrid's own error messages as sentences, or the status phrase for a non-JSON body."""
    try:
        messages = [str(e["message"]) for e in json.loads(body or b"")["errors"]]
    except (ValueError, TypeError, KeyError):
        messages = []
    if not messages:
        messages = [http.client.responses.get(status, "Unknown error")]
    return " ".join(sentence(m.strip()) for m in messages)


def sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def os_error_text(error: BaseException | str) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


# ---------------------------------------------------------------- transport


class SendGridTransport:
    """`send(message)`: one mail/send request, retried as the module docstring says."""

    separable = True  # a run may send through a copy in its courier process (courier.py)

    def __init__(
        self,
        api_key: str,
        api_url: str,
        *,
        timeout: float = 30,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key.strip():
            raise DeliveryError("the SendGrid API key is empty")
        if max_attempts < 1 or timeout <= 0:
            raise ValueError("max_attempts must be at least 1 and timeout above 0")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._sleep, self._clock = sleep, clock
        self.backoff_base = BACKOFF_BASE  # read now: a copy in the courier keeps it
        self._client = SendGridAPIClient(api_key, host=self.api_url)
        self._client.client.timeout = timeout  # urllib's default is to wait forever
        redact_client_logs()

    @classmethod
    def from_environment(
        cls, settings: Settings, environ: Mapping[str, str] | None = None
    ) -> SendGridTransport:
        """The key from SENDGRID_API_KEY only; the URL from `sendgrid.api_url`."""
        key = (os.environ if environ is None else environ).get("SENDGRID_API_KEY", "")
        if not key.strip():
            raise DeliveryError(MISSING_KEY)
        return cls(key.strip(), settings.text("sendgrid.api_url"),
                   timeout=settings.integer("sendgrid.timeout"))

    def __repr__(self) -> str:
        return (
            f"SendGridTransport(api_url={self.api_url!r}, timeout={self.timeout!r}, "
            f"max_attempts={self.max_attempts!r})"
        )

    def send(self, message: Message, attempts: Attempts | None = None) -> Outcome:
        return self.deliver(request_body(message), attempts)

    def deliver(self, body: Mapping[str, Any], attempts: Attempts | None = None) -> Outcome:
        """Post a ready mail/send body (no local checks), retrying what may be retried;
        `attempts` hears of each attempt and each wait."""
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            if attempts is not None:
                attempts.attempting(attempt)
            result = self._attempt(body, attempt)
            if isinstance(result, Outcome):
                return self._redacted(result)
            reason = result.reason
            if attempt < self.max_attempts:
                log.warning("%s Retrying in %.1f s (attempt %d of %d).",
                            self._redact(reason), result.wait, attempt + 1, self.max_attempts)
                if attempts is not None:
                    attempts.waiting(self._redact(reason), result.wait)
                self._sleep(result.wait)
        final = f"{reason} Gave up after {self.max_attempts} attempts."
        return self._redacted(Outcome("failed", reason=final))

    def _attempt(self, body: Mapping[str, Any], attempt: int) -> Outcome | Retry:
        try:
            response = self._client.client.mail.send.post(request_body=body)
        except HTTPError as error:
            return self._answered(error, attempt)
        except urllib.error.URLError as error:  # while connecting or writing: not sent
            reason = os_error_text(error.reason)
            return Retry(f"Could not connect to SendGrid at {self.api_url} ({reason}).",
                         backoff(attempt, self.backoff_base))
        except (OSError, http.client.HTTPException) as error:  # after it was sent
            return Outcome("unknown", reason=self._unknown_reason(error))
        if not 200 <= response.status_code < 300:
            return Outcome("failed", reason=f"SendGrid answered {response.status_code} "
                                            "instead of 202 Accepted.")
        return Outcome("accepted", message_id=response.headers.get("X-Message-Id"))

    def _answered(self, error: HTTPError, attempt: int) -> Outcome | Retry:
        status = int(error.status_code)
        detail = error_detail(status, error.body)
        if status == 429:
            wait = rate_limit_wait(error.headers, self._clock(), attempt, self.backoff_base)
            return Retry(f"SendGrid answered 429: {detail}", wait)
        if status >= 500:
            return Retry(f"SendGrid answered {status}: {detail}",
                         backoff(attempt, self.backoff_base))
        return Outcome("failed", reason=f"SendGrid refused the request ({status}): {detail}")

    def _unknown_reason(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError):
            what = f"SendGrid did not answer within {self.timeout:g} s after the request was sent"
        else:
            what = (f"The connection to SendGrid broke after the request was sent "
                    f"({os_error_text(error)})")
        return f"{what}; it may have accepted it, so it is not retried."

    def _redact(self, text: str) -> str:
        key = self._client.api_key
        return text.replace(key, "[redacted]") if key else text

    def _redacted(self, outcome: Outcome) -> Outcome:
        if outcome.reason is None:
            return outcome
        return Outcome(outcome.status, outcome.message_id, self._redact(outcome.reason))


# ---------------------------------------------------------------- the client's logging


class RedactAuthorization(logging.Filter):
    """python_http_client logs the request headers, Authorization included, at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg, record.args = BEARER.sub(r"\1[redacted]", message), ()
        return True


REDACT_AUTHORIZATION = RedactAuthorization()


def redact_client_logs() -> None:
    """Install the filter on the client's logger once (addFilter ignores a repeat)."""
    logging.getLogger("python_http_client.client").addFilter(REDACT_AUTHORIZATION)
