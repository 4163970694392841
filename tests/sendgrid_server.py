"""A local test double for SendGrid's v3 ``POST /v3/mail/send`` endpoint.

The real ``sendgrid`` client talks to it unchanged::

    with SendGridServer(api_key="SG.test-key") as server:
        client = SendGridAPIClient("SG.test-key", host=server.url)
        client.send(message)

It checks the ``Authorization: Bearer`` key, validates the body against the
schema copied into ``tests/fixtures/sendgrid`` (a body passes on fastjsonschema's
compiled check; one that fails it gets jsonschema's full error list) plus the limits
JSON Schema cannot express, and answers the way SendGrid documents (status, error body, rate-limit
headers, ``X-Message-Id``). Tests can script faults, inject random ones with a
seed, delay answers and hold requests; it records every accepted request.

It also serves the suppression lists ``digest sync`` reads, seeded by tests
(``set_suppressions``, ``set_group_suppressions``): ``GET /v3/suppression/
{unsubscribes,bounces,spam_reports,invalid_emails}`` page by ``limit`` (at most
500, SendGrid's maximum page size: a larger one is capped) and ``offset``;
``GET /v3/asm/groups/{id}/suppressions`` answers the whole list as plain
addresses, as SendGrid documents no paging for it. They check the key too, and
``fail_suppressions`` makes them answer a fault; the scripted faults, delays and
holds are for mail/send only.

It only binds to 127.0.0.1. Run it by hand with
``python tests/sendgrid_server.py --port 8025 --api-key KEY [--fault-rate 0.3]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import fastjsonschema
from jsonschema import Draft202012Validator, ValidationError

SCHEMA_PATH = Path(__file__).resolve().parent / "fixtures" / "sendgrid" / "mail_send_schema.json"
MAIL_SEND_PATH = "/v3/mail/send"
HOST = "127.0.0.1"
SUPPRESSION_LISTS = {
    "/v3/suppression/unsubscribes": "unsubscribes",
    "/v3/suppression/bounces": "bounces",
    "/v3/suppression/spam_reports": "spam_reports",
    "/v3/suppression/invalid_emails": "invalid_emails",
}
GROUP_SUPPRESSIONS = re.compile(r"/v3/asm/groups/(\d+)/suppressions")
MAX_PAGE_SIZE = 500
SUPPRESSION_CREATED = 1_764_000_000  # the `created` time of seeded entries

MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_DELAY_SECONDS = 10.0
MAX_WAIT_SECONDS = 60.0
FAULT_STATUSES = (429, 500, 502, 503)
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type",
        "Content-Transfer-Encoding", "To", "From", "Subject", "Reply-To", "CC", "BCC",
    )
)

# Messages from SendGrid's "Mail Send errors" page (twilio.com/docs/sendgrid/
# api-reference/mail-send/errors, older copy in sendgrid/docs
# content/docs/API_Reference/Web_API_v3/Mail/errors.md) unless noted.
MSG_TOO_MANY_PERSONALIZATIONS = (
    "The personalization block is limited to 1000 personalizations per API request. "
    "You have provided {n} personalizations. Please consider splitting this into "
    "multiple requests and resending your request."
)
MSG_NO_PERSONALIZATION = "You must have at least one personalization."
MSG_TOO_MANY_RECIPIENTS = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
MSG_TO_REQUIRED = "The to parameter is required for all personalization objects."
MSG_FROM_REQUIRED = (
    "The from object must be provided for every email send. It is an object that requires "
    'the email parameter, but may also contain a name parameter. e.g. {"email": '
    '"example@example.com"} or {"email": "example@example.com", "name": "Example Recipient"}'
)
MSG_FROM_INVALID = (
    "The from object must at least have an email parameter with a valid email address and "
    'may also contain a name parameter. e.g. {"email": "example@example.com"} or '
    '{"email": "example@example.com", "name": "Example Recipient"}'
)
MSG_NO_CONTENT = (
    "There must be at least one defined content block. We typically suggest both "
    "text/plain and text/html blocks are included, but only one block is required."
)
MSG_CONTENT_REQUIRED = (
    "The content param is required unless you are using a transactional template and have "
    "defined a template_ID."
)
MSG_CONTENT_VALUE = "The content value must be a string at least one character in length."
MSG_CONTENT_ORDER = (
    "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "
    "your email: text/plain needs to be first, followed by text/html, followed by any other "
    "content."
)
# Returned by the live API (quoted in drupal sendgrid_integration MR 47); not on the page.
MSG_CONTENT_TWICE = "If present, text/plain and text/html may only be provided once."
MSG_SUBJECT_REQUIRED = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
MSG_SUBJECT_EMPTY = "The subject of your email must be a string at least one character in length."
MSG_RESERVED_HEADER = "Header can not be one of the reserved keys."
MSG_RESERVED_HEADER_PERSONALIZATION = "Header cannot be one of the reserved keys."
MSG_HEADER_VALUES = "The header values must be strings."
MSG_HEADER_VALUES_PERSONALIZATION = "All values of the headers object must be strings."
MSG_CUSTOM_ARGS_VALUES = "All values of custom arguments object must be strings"
MSG_CUSTOM_ARGS_SIZE = (
    "The combined size of both global and personalization custom arguments may not exceed "
    "10,000 bytes per personalization."
)
MSG_CATEGORIES = (
    "There is a limit of 10 categories for each email that is sent. You provided {n} categories."
)
# From SendGrid support's "Validation Error(s) when Sending Emails Using the Mail Send API".
MSG_DUPLICATE_ADDRESS = (
    "Each email address in the personalization block should be unique between to, cc, and "
    "bcc. We found the first duplicate instance of [{email}] in the {field} field."
)
# Bodies observed from the live API (sendgrid/docs#5060, sendgrid-php#793, sendgrid-ruby#121).
MSG_BAD_REQUEST = "Bad Request"
MSG_BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"
MSG_NO_AUTH = "authorization required"
# The rate-limits page (api-reference/how-to-use-the-sendgrid-v3-api/rate-limits).
MSG_TOO_MANY_REQUESTS = "too many requests"
# The status table at the top of the errors page (no body is documented for these).
MSG_SERVER_ERROR = "An error occurred on a SendGrid server."
MSG_UNAVAILABLE = "The SendGrid v3 Web API is not available."

SCHEMA_MESSAGES: dict[tuple[str, str], str] = {
    ("", "required:from"): MSG_FROM_REQUIRED,
    ("", "required:personalizations"): MSG_NO_PERSONALIZATION,
    ("personalizations", "minItems"): MSG_NO_PERSONALIZATION,
    ("personalizations", "maxItems"): MSG_TOO_MANY_PERSONALIZATIONS,
    ("personalizations.*", "required:to"): MSG_TO_REQUIRED,
    ("personalizations.*.to", "minItems"): MSG_TO_REQUIRED,
    ("from", "required:email"): MSG_FROM_INVALID,
    ("from.email", "format"): MSG_FROM_INVALID,
    ("from.email", "type"): MSG_FROM_INVALID,
    ("content", "minItems"): MSG_NO_CONTENT,
    ("content.*.value", "minLength"): MSG_CONTENT_VALUE,
    ("subject", "minLength"): MSG_SUBJECT_EMPTY,
    ("personalizations.*.subject", "minLength"): MSG_SUBJECT_EMPTY,
    ("headers.*", "type"): MSG_HEADER_VALUES,
    ("personalizations.*.headers.*", "type"): MSG_HEADER_VALUES_PERSONALIZATION,
    ("custom_args.*", "type"): MSG_CUSTOM_ARGS_VALUES,
    ("personalizations.*.custom_args.*", "type"): MSG_CUSTOM_ARGS_VALUES,
    ("categories", "maxItems"): MSG_CATEGORIES,
}

Problem = dict[str, Any]


def problem(message: str, field_name: str | None) -> Problem:
    """One entry of SendGrid's 400 ``errors`` list."""
    return {"message": message, "field": field_name, "help": None}


# ---------------------------------------------------------------- validation


def validate_mail_send(body: Any) -> list[Problem]:
    """Every problem SendGrid would report for this mail/send body, in a stable order."""
    if not isinstance(body, dict):
        return [problem(MSG_BAD_REQUEST, None)]
    found = [*_schema_problems(body), *_limit_problems(body)]
    return list({(p["field"], p["message"]): p for p in found}.values())


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


@functools.cache
def _fast_check() -> Callable[[Any], Any]:
    """The schema compiled to Python by fastjsonschema: about ten times faster than
    jsonschema on a 1,000-recipient body (12 ms against 140 ms), and at least as strict.
    The schema uses only keywords that draft 7 shares with 2020-12, and its email
    format is a stricter regex than jsonschema's "contains @". jsonschema still
    writes every error list, so SendGrid's 400 bodies do not depend on it."""
    return fastjsonschema.compile(_schema())


def schema_accepts_fast(body: Any) -> bool:
    """True only if the body is valid; False sends it on to jsonschema, which decides."""
    try:
        _fast_check()(body)
    except Exception:  # any doubt goes to the full validator
        return False
    return True


def _schema_problems(body: dict[str, Any]) -> list[Problem]:
    if schema_accepts_fast(body):
        return []
    errors = sorted(_validator().iter_errors(body), key=_error_sort_key)
    return [entry for error in errors for entry in _describe(error)]


def _error_sort_key(error: ValidationError) -> tuple[list[tuple[int, Any]], str]:
    path = [(0, p) if isinstance(p, int) else (1, p) for p in error.absolute_path]
    return path, str(error.validator)


def _describe(error: ValidationError) -> Iterator[Problem]:
    path = list(error.absolute_path)
    if error.validator != "required":
        yield problem(_message(path, str(error.validator), error), _dotted(path) or None)
        return
    for name in error.validator_value:
        if isinstance(error.instance, dict) and name not in error.instance:
            yield problem(_message(path, f"required:{name}", error), _dotted([*path, name]))


def _message(path: list[Any], kind: str, error: ValidationError) -> str:
    template = SCHEMA_MESSAGES.get((_generic(path), kind))
    if template is None:
        return error.message
    size = len(error.instance) if isinstance(error.instance, list) else 0
    return template.replace("{n}", str(size))


def _generic(path: list[Any]) -> str:
    """The path with array indexes and free-form keys (headers, custom_args) as ``*``."""
    parts = []
    for index, part in enumerate(path):
        free_key = index > 0 and path[index - 1] in ("headers", "custom_args")
        parts.append("*" if isinstance(part, int) or free_key else str(part))
    return ".".join(parts)


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _limit_problems(body: dict[str, Any]) -> list[Problem]:
    people = _personalizations(body)
    return [
        *_recipient_total_problems(people),
        *_duplicate_address_problems(people),
        *_required_without_template(body, people),
        *_content_problems(body),
        *_reserved_header_problems(body, people),
        *_custom_args_problems(body, people),
    ]


def _personalizations(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("personalizations")
    if not isinstance(items, list):
        return []
    return [p if isinstance(p, dict) else {} for p in items]


def _addresses(personalization: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(kind, email) for each recipient of one personalization, in to, cc, bcc order."""
    for kind in ("to", "cc", "bcc"):
        entries = personalization.get(kind)
        for entry in entries if isinstance(entries, list) else []:
            email = entry.get("email") if isinstance(entry, dict) else None
            if isinstance(email, str):
                yield kind, email


def _recipient_total_problems(people: list[dict[str, Any]]) -> list[Problem]:
    total = sum(1 for p in people for _ in _addresses(p))
    if total > MAX_RECIPIENTS:
        return [problem(MSG_TOO_MANY_RECIPIENTS, "personalizations")]
    return []


def _duplicate_address_problems(people: list[dict[str, Any]]) -> list[Problem]:
    found = []
    for index, personalization in enumerate(people):
        seen: set[str] = set()
        for kind, email in _addresses(personalization):
            if email.lower() in seen:
                where = f"personalizations.{index}.{kind}"
                message = MSG_DUPLICATE_ADDRESS.format(email=email, field=where)
                found.append(problem(message, f"personalizations.{index}"))
                break
            seen.add(email.lower())
    return found


def _required_without_template(
    body: dict[str, Any], people: list[dict[str, Any]]
) -> list[Problem]:
    """content and subject, which a template_id (or a subject in every personalization) waives."""
    if "template_id" in body:
        return []
    found = []
    if "content" not in body:
        found.append(problem(MSG_CONTENT_REQUIRED, "content"))
    if "subject" not in body and not (people and all("subject" in p for p in people)):
        found.append(problem(MSG_SUBJECT_REQUIRED, "subject"))
    return found


def _content_problems(body: dict[str, Any]) -> list[Problem]:
    content = body.get("content")
    if not isinstance(content, list):
        return []
    types = [str(c.get("type", "")).lower() for c in content if isinstance(c, dict)]
    if types.count("text/plain") > 1 or types.count("text/html") > 1:
        return [problem(MSG_CONTENT_TWICE, "content")]
    expected = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected)] != expected:
        return [problem(MSG_CONTENT_ORDER, "content")]
    return []


def _reserved_header_problems(
    body: dict[str, Any], people: list[dict[str, Any]]
) -> list[Problem]:
    found = []
    if _has_reserved_header(body.get("headers")):
        found.append(problem(MSG_RESERVED_HEADER, "headers"))
    for index, personalization in enumerate(people):
        if _has_reserved_header(personalization.get("headers")):
            field_name = f"personalizations.{index}.headers"
            found.append(problem(MSG_RESERVED_HEADER_PERSONALIZATION, field_name))
    return found


def _has_reserved_header(headers: Any) -> bool:
    return isinstance(headers, dict) and any(
        str(name).lower() in RESERVED_HEADERS for name in headers
    )


def _custom_args_problems(body: dict[str, Any], people: list[dict[str, Any]]) -> list[Problem]:
    """Message-level and personalization custom_args, merged per personalization.

    The size is that of the merged object as compact UTF-8 JSON.
    """
    shared = body.get("custom_args") if isinstance(body.get("custom_args"), dict) else {}
    found = []
    for index, personalization in enumerate(people):
        own = personalization.get("custom_args")
        merged = {**shared, **(own if isinstance(own, dict) else {})}
        encoded = json.dumps(merged, separators=(",", ":"), ensure_ascii=False).encode()
        if len(encoded) > MAX_CUSTOM_ARGS_BYTES:
            field_name = f"personalizations.{index}.custom_args"
            found.append(problem(MSG_CUSTOM_ARGS_SIZE, field_name))
    return found


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Accepted:
    """One request the server answered 202."""

    message_id: str
    body: dict[str, Any]  # in a deferred server, the bytes until `accepted` is first read


def count_by_address(bodies: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Lower-cased email -> number of personalizations addressed to it (to, cc or bcc)."""
    counts: Counter[str] = Counter()
    for body in bodies:
        for personalization in _personalizations(body):
            counts.update({email.lower() for _, email in _addresses(personalization)})
    return dict(counts)


def read_log(path: str | os.PathLike[str]) -> list[Accepted]:
    """The accepted requests that a server with ``log_path=path`` appended, oldest first."""
    lines = Path(path).read_text(encoding="utf-8").splitlines() if Path(path).exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    return [Accepted(r["message_id"], r["body"]) for r in records]


def new_message_id() -> str:
    """A random 22-character URL-safe id, the shape of SendGrid's X-Message-Id."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


# ---------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, body and extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, errors: list[dict[str, Any]]) -> Reply:
    return Reply(status, json.dumps({"errors": errors}).encode("utf-8"))


def nginx_reply(status: int, reason: str) -> Reply:
    """The HTML page SendGrid's nginx front answers with (413: sendgrid-nodejs#370)."""
    title = f"{status} {reason}"
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode("ascii"), "text/html")


def fault_reply(status: int) -> Reply:
    """The answer for an injected fault status (one of FAULT_STATUSES)."""
    if status == 429:
        return json_reply(429, [{"field": None, "message": MSG_TOO_MANY_REQUESTS}])
    if status == 502:
        return nginx_reply(502, "Bad Gateway")
    message = MSG_SERVER_ERROR if status == 500 else MSG_UNAVAILABLE
    return json_reply(status, [{"field": None, "message": message}])


def _bounded(seconds: float, limit: float, what: str) -> float:
    if not 0 <= seconds <= limit:
        raise ValueError(f"{what} must be between 0 and {limit} seconds, got {seconds}")
    return float(seconds)


# ---------------------------------------------------------------- suppression lists


def suppression_entry(kind: str, email: str, created: int = SUPPRESSION_CREATED
                      ) -> dict[str, Any]:
    """One entry of a suppression list, in the shape SendGrid's API reference gives."""
    entry: dict[str, Any] = {"created": created, "email": email}
    if kind == "bounces":
        entry |= {"reason": "550 5.1.1 The email account that you tried to reach does "
                            "not exist.", "status": "5.1.1"}
    elif kind == "spam_reports":
        entry["ip"] = "10.63.202.100"
    elif kind == "invalid_emails":
        entry["reason"] = "Mail domain mentioned in email address is unknown"
    return entry


def page_window(query: str) -> tuple[int, int] | Reply:
    """(limit, offset) from a query string, the limit capped at 500; 400 if not numbers."""
    params = parse_qs(query)
    try:
        limit = int(params.get("limit", [MAX_PAGE_SIZE])[-1])
        offset = int(params.get("offset", [0])[-1])
    except ValueError:
        return json_reply(400, [problem("limit and offset must be integers", None)])
    if limit < 1 or offset < 0:
        return json_reply(400, [problem("limit must be at least 1 and offset at least 0",
                                        None)])
    return min(limit, MAX_PAGE_SIZE), offset


# ---------------------------------------------------------------- server


class SendGridServer:
    """SendGrid v3 mail/send on 127.0.0.1, in a daemon thread. See the module docstring."""

    def __init__(
        self,
        api_key: str = "SG.test-key",
        *,
        port: int = 0,
        fault_rate: float = 0.0,
        seed: int | None = None,
        delay: float = 0.0,
        log_path: str | os.PathLike[str] | None = None,
        rate_limit: int = 10_000,
        verbose: bool = False,
        schema: bool = True,
        deferred: bool = False,
    ) -> None:
        if not 0 <= fault_rate <= 1:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        self.api_key = api_key
        self.fault_rate = fault_rate
        self.rate_limit = rate_limit
        self.log_path = Path(log_path) if log_path is not None else None
        self.verbose = verbose
        self.schema = schema  # False: only the checks JSON Schema cannot express (benchmarks)
        # True: each body is recorded unread, then parsed and checked when the records
        # are first read (benchmarks: like the floor's do-nothing server, this one then
        # takes no CPU from the run it measures); what the checks find is in `problems`.
        self.deferred = deferred
        if deferred and log_path is not None:
            raise ValueError("a deferred server keeps no log")
        self.problems: list[Problem] = []
        self._requested_port = port
        self._delay = _bounded(delay, MAX_DELAY_SECONDS, "delay")
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._script: deque[int] = deque()
        self._accepted: list[Accepted] = []
        self._statuses: list[int] = []
        self._in_flight = self._peak_in_flight = 0
        self._hold_after: int | None = None
        self._hold_timeout = 10.0
        self._held = 0
        self._window = (0, 0)
        self._suppressions: dict[str, list[dict[str, Any]]] = {}
        self._groups: dict[int, list[str]] = {}
        self._suppression_fault: int | None = None
        self._suppression_requests: list[str] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> SendGridServer:
        """Bind and serve; a server starts once (make a new one to model a restart)."""
        if self._httpd is not None:
            raise RuntimeError("the server was already started")
        self._httpd = _HTTPServer((HOST, self._requested_port), _Handler)
        self._httpd.double = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"sendgrid-double-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; held and delayed requests are dropped without an answer."""
        with self._cond:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to pass as ``SendGridAPIClient(key, host=server.url)``."""
        return f"http://{HOST}:{self.port}"

    # -- fault injection (thread-safe)

    def script(self, *statuses: int) -> None:
        """Answer the next requests, one each, with these fault statuses, before any check
        of the body (after the size and key checks)."""
        unknown = [s for s in statuses if s not in FAULT_STATUSES]
        if unknown:
            raise ValueError(f"scripted statuses must be among {FAULT_STATUSES}, got {unknown}")
        with self._cond:
            self._script.extend(statuses)

    def set_delay(self, seconds: float) -> None:
        """Wait this long before writing each answer (the request is processed first)."""
        delay = _bounded(seconds, MAX_DELAY_SECONDS, "delay")
        with self._cond:
            self._delay = delay

    def hold_after(self, count: int, timeout: float = 10.0) -> None:
        """Once ``count`` requests are accepted, hold valid requests before accepting them
        until :meth:`release`, :meth:`stop` (dropped) or ``timeout`` s (answered 503)."""
        with self._cond:
            self._hold_after = count
            self._hold_timeout = _bounded(timeout, MAX_WAIT_SECONDS, "hold timeout")
            self._cond.notify_all()

    def release(self) -> None:
        """End hold mode: held requests go on and are accepted."""
        with self._cond:
            self._hold_after = None
            self._cond.notify_all()

    def wait_accepted(self, count: int, timeout: float) -> None:
        """Block until ``count`` requests were accepted; TimeoutError after ``timeout`` s."""
        self._wait(lambda: len(self._accepted) >= count, timeout,
                   lambda: f"{len(self._accepted)} of {count} requests accepted")

    def wait_held(self, count: int, timeout: float) -> None:
        """Block until ``count`` requests are being held; TimeoutError after ``timeout`` s."""
        self._wait(lambda: self._held >= count, timeout,
                   lambda: f"{self._held} of {count} requests held")

    def _wait(self, ready: Callable[[], bool], timeout: float, state: Callable[[], str]) -> None:
        seconds = _bounded(timeout, MAX_WAIT_SECONDS, "timeout")
        with self._cond:
            if not self._cond.wait_for(ready, timeout=seconds):
                raise TimeoutError(f"{state()} after {seconds} s")

    # -- suppression lists (thread-safe)

    def set_suppressions(self, kind: str, emails: Iterable[str],
                         created: int = SUPPRESSION_CREATED) -> None:
        """Seed one list: ``unsubscribes``, ``bounces``, ``spam_reports`` or
        ``invalid_emails``; answered in this order; each listed at ``created``."""
        if kind not in SUPPRESSION_LISTS.values():
            raise ValueError(f"unknown suppression list {kind!r}")
        with self._cond:
            self._suppressions[kind] = [suppression_entry(kind, e, created) for e in emails]

    def set_group_suppressions(self, group_id: int, emails: Iterable[str]) -> None:
        """Seed the addresses that unsubscribed from unsubscribe group ``group_id``."""
        with self._cond:
            self._groups[group_id] = list(emails)

    def fail_suppressions(self, status: int | None) -> None:
        """Answer every suppression request with this fault status (None: stop)."""
        if status is not None and status not in FAULT_STATUSES:
            raise ValueError(f"the status must be among {FAULT_STATUSES}, got {status}")
        with self._cond:
            self._suppression_fault = status

    @property
    def suppression_requests(self) -> list[str]:
        """The path and query of every suppression request answered, in order."""
        with self._cond:
            return list(self._suppression_requests)

    # -- records (thread-safe snapshots)

    @property
    def accepted(self) -> list[Accepted]:
        """Every request accepted (202) since start, oldest first, including any whose
        answer the client never read (it timed out during a delay, or died while held)."""
        with self._cond:
            self._accepted = [self._checked(a) if isinstance(a.body, bytes) else a
                              for a in self._accepted]
            return list(self._accepted)

    def _checked(self, record: Accepted) -> Accepted:
        """A deferred record, parsed and checked now (what is wrong goes to `problems`)."""
        try:
            body = json.loads(record.body)
        except ValueError:
            self.problems.append(problem(MSG_BAD_REQUEST, None))
            return Accepted(record.message_id, {})
        self.problems += validate_mail_send(body) if self.schema else _limit_problems(body)
        return Accepted(record.message_id, body)

    @property
    def statuses(self) -> list[int]:
        """The status of every answer written, in order."""
        with self._cond:
            return list(self._statuses)

    @property
    def held(self) -> int:
        """How many requests are being held right now."""
        with self._cond:
            return self._held

    def accepted_count_by_address(self) -> dict[str, int]:
        """Lower-cased email -> accepted personalizations addressed to it since start."""
        return count_by_address(a.body for a in self.accepted)

    # -- request handling (called from handler threads)

    def respond_get(self, path: str, authorization: str | None) -> tuple[Reply, bool]:
        """The answer to one GET, and whether it is a suppression list's (not recorded
        in ``statuses``, which counts mail/send answers)."""
        route, _, query = path.partition("?")
        route = route.rstrip("/")
        kind, group = SUPPRESSION_LISTS.get(route), GROUP_SUPPRESSIONS.fullmatch(route)
        if kind is None and group is None:
            found = route == MAIL_SEND_PATH
            status, message = (405, "method not allowed") if found else (404, "not found")
            return json_reply(status, [{"field": None, "message": message}]), False
        if not authorization:
            return json_reply(401, [{"field": None, "message": MSG_NO_AUTH}]), True
        if authorization != f"Bearer {self.api_key}":
            return json_reply(401, [problem(MSG_BAD_KEY, None)]), True
        with self._cond:
            self._suppression_requests.append(path)
            fault = self._suppression_fault
            entries: list[Any] = (list(self._groups.get(int(group[1]), [])) if group
                                  else list(self._suppressions.get(kind or "", [])))
        if fault is not None:
            return fault_reply(fault), True
        if group:  # no paging documented: the whole list
            return Reply(200, json.dumps(entries).encode("utf-8")), True
        window = page_window(query)
        if isinstance(window, Reply):
            return window, True
        limit, offset = window
        return Reply(200, json.dumps(entries[offset:offset + limit]).encode("utf-8")), True

    def respond(self, path: str, authorization: str | None, raw: bytes | None) -> Reply | None:
        """The answer to one POST, or None to drop the connection (server stopping)."""
        with self._cond:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return self._respond(path, authorization, raw)
        finally:
            with self._cond:
                self._in_flight -= 1

    @property
    def peak_in_flight(self) -> int:
        """The most POSTs being answered at once so far (a client's concurrency)."""
        with self._cond:
            return self._peak_in_flight

    def _respond(self, path: str, authorization: str | None, raw: bytes | None) -> Reply | None:
        reply = self._precheck(path, authorization, raw)
        if reply is None:
            fault = self._next_fault()
            reply = fault_reply(fault) if fault is not None else self._process(raw or b"")
        if reply is None or not self._pause():
            return None
        return reply

    def _precheck(self, path: str, authorization: str | None, raw: bytes | None) -> Reply | None:
        if path.split("?", 1)[0].rstrip("/") != MAIL_SEND_PATH:
            return json_reply(404, [{"field": None, "message": "not found"}])
        if raw is None:
            return nginx_reply(413, "Request Entity Too Large")
        if not authorization:
            return json_reply(401, [{"field": None, "message": MSG_NO_AUTH}])
        if authorization != f"Bearer {self.api_key}":
            return json_reply(401, [problem(MSG_BAD_KEY, None)])
        return None

    def _next_fault(self) -> int | None:
        with self._cond:
            if self._script:
                return self._script.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(FAULT_STATUSES)
        return None

    def _process(self, raw: bytes) -> Reply | None:
        if self.deferred:
            return self._accept(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return json_reply(400, [problem(MSG_BAD_REQUEST, None)])
        errors = validate_mail_send(body) if self.schema else _limit_problems(body)
        if errors:
            return json_reply(400, errors)
        return self._accept(body)

    def _accept(self, body: dict[str, Any] | bytes) -> Reply | None:
        with self._cond:
            gate = self._pass_hold()
            if gate is not True:
                return None if gate is None else fault_reply(503)
            record = Accepted(new_message_id(), body)
            self._accepted.append(record)
            self._append_log(record)
            self._cond.notify_all()
        return Reply(202, content_type="text/plain; charset=utf-8",
                     headers={"X-Message-Id": record.message_id})

    def _pass_hold(self) -> bool | None:
        """With the lock held: True to accept, False if the hold timed out, None if stopping."""
        def open_() -> bool:
            return self._hold_after is None or len(self._accepted) < self._hold_after

        if open_():
            return True
        self._held += 1
        self._cond.notify_all()
        try:
            passed = self._cond.wait_for(
                lambda: self._stopping.is_set() or open_(), timeout=self._hold_timeout
            )
        finally:
            self._held -= 1
        return None if self._stopping.is_set() else passed

    def _append_log(self, record: Accepted) -> None:
        if self.log_path is None:
            return
        line = json.dumps({"message_id": record.message_id, "body": record.body})
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _pause(self) -> bool:
        """Apply the configured delay; False if the server stopped meanwhile."""
        with self._cond:
            delay = self._delay
        return not self._stopping.wait(delay) if delay else not self._stopping.is_set()

    def answer_headers(self, status: int, record: bool = True) -> dict[str, str]:
        """Record one answer (unless ``record`` is False); its X-RateLimit-* headers
        (fixed one-second window, 0 on 429)."""
        now = int(time.time())
        with self._cond:
            if record:
                self._statuses.append(status)
            window, used = self._window
            used = used + 1 if window == now else 1
            self._window = (now, used)
        remaining = 0 if status == 429 else max(self.rate_limit - used, 0)
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(now + 1),
        }


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    double: SendGridServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (time-out, kill) is expected: stay quiet about those only."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 10

    def do_POST(self) -> None:
        authorization = self.headers.get("Authorization")
        reply = self.server.double.respond(self.path, authorization, self._read_body())
        if reply is None:
            self.close_connection = True
            return
        self._write(reply)

    def do_GET(self) -> None:
        reply, suppressions = self.server.double.respond_get(
            self.path, self.headers.get("Authorization"))
        self._write(reply, record=not suppressions)

    def _read_body(self) -> bytes | None:
        """The request body, or None (after draining it) when it is over 30 MB."""
        length = self._content_length()
        if length <= MAX_BODY_BYTES:
            return self.rfile.read(length)
        while length > 0:
            chunk = self.rfile.read(min(1 << 20, length))
            if not chunk:
                break
            length -= len(chunk)
        return None

    def _content_length(self) -> int:
        try:
            return max(int(self.headers.get("Content-Length") or 0), 0)
        except ValueError:
            return 0

    def _write(self, reply: Reply, record: bool = True) -> None:
        self.send_response(reply.status)
        headers = {"Content-Type": reply.content_type, "Content-Length": str(len(reply.body))}
        headers |= self.server.double.answer_headers(reply.status, record) | reply.headers
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def version_string(self) -> str:
        return "nginx"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.double.verbose:
            super().log_message(format, *args)


# ---------------------------------------------------------------- script


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local SendGrid v3 mail/send test double.")
    parser.add_argument("--port", type=int, default=8025, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--api-key", default="SG.test-key", help="the accepted API key")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of 429/5xx answers")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault choice")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--log-path", default=None, help="append accepted requests here (JSONL)")
    parser.add_argument("--duration", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    server = SendGridServer(
        api_key=args.api_key, port=args.port, fault_rate=args.fault_rate, seed=args.seed,
        delay=args.delay, log_path=args.log_path, verbose=args.verbose,
    )
    with server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.duration)
    print(f"accepted {len(server.accepted)} requests", flush=True)


if __name__ == "__main__":
    main()
