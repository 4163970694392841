"""The SendGrid v3 test double, driven by the real ``sendgrid`` client."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sendgrid_server
from python_http_client.exceptions import (
    BadRequestsError,
    HTTPError,
    InternalServerError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRequestsError,
    UnauthorizedError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sendgrid_server import (
    SendGridServer,
    count_by_address,
    read_log,
    schema_accepts_fast,
    validate_mail_send,
)

API_KEY = "SG.test-key"
SERVER_SCRIPT = Path(__file__).resolve().parent / "sendgrid_server.py"
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{22}")

RESERVED_AT_MESSAGE = "Header can not be one of the reserved keys."
RESERVED_AT_PERSONALIZATION = "Header cannot be one of the reserved keys."
TOO_MANY_RECIPIENTS = "There is a limit of 1000 total recipients (to + cc + bcc) per request."
CONTENT_ORDER = (
    "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in "
    "your email: text/plain needs to be first, followed by text/html, followed by any other "
    "content."
)

TEXT_TWICE = "If present, text/plain and text/html may only be provided once."

CHILD_SENDER = """
import json, sys
from sendgrid import SendGridAPIClient
client = SendGridAPIClient(sys.argv[1], host=sys.argv[2])
for _ in range(3):
    client.client.mail.send.post(request_body=json.loads(sys.argv[3]))
"""


def to(*emails: str) -> list[dict[str, str]]:
    return [{"email": email} for email in emails]


def message(*personalizations: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A valid mail/send body; ``fields`` override or add top-level fields."""
    body: dict[str, Any] = {
        "personalizations": list(personalizations) or [{"to": to("reader@example.com")}],
        "from": {"email": "digest@example.com", "name": "Digest"},
        "subject": "Weekly digest",
        "content": [
            {"type": "text/plain", "value": "Hello"},
            {"type": "text/html", "value": "<p>Hello</p>"},
        ],
    }
    return body | fields


def post(client: SendGridAPIClient, body: dict[str, Any]) -> Any:
    return client.client.mail.send.post(request_body=body)


def rejection(client: SendGridAPIClient, body: dict[str, Any]) -> HTTPError:
    with pytest.raises(HTTPError) as caught:
        post(client, body)
    return caught.value


def error_400(message_text: str, field: str | None) -> dict[str, Any]:
    return {"message": message_text, "field": field, "help": None}


def assert_rate_limit_headers(headers: Any) -> None:
    assert int(headers["X-RateLimit-Limit"]) > 0
    assert int(headers["X-RateLimit-Remaining"]) >= 0
    assert abs(int(headers["X-RateLimit-Reset"]) - time.time()) < 5


def raw_post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST without the sendgrid client: (status, parsed JSON body)."""
    request = urllib.request.Request(url + "/v3/mail/send", data=data, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    with caught.value as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server() -> Iterator[SendGridServer]:
    with SendGridServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def client(server: SendGridServer) -> SendGridAPIClient:
    return SendGridAPIClient(API_KEY, host=server.url)


# ---------------------------------------------------------------- accepted


def test_valid_message_is_accepted_with_a_message_id(server, client):
    mail = Mail(
        from_email="digest@example.com",
        to_emails="Reader@Example.com",
        subject="Weekly digest",
        plain_text_content="Hello",
        html_content="<p>Hello</p>",
    )
    response = client.send(mail)
    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert MESSAGE_ID.fullmatch(message_id)
    assert_rate_limit_headers(response.headers)
    assert [(a.message_id, a.body) for a in server.accepted] == [(message_id, mail.get())]
    assert server.accepted_count_by_address() == {"reader@example.com": 1}


def test_counts_add_up_across_two_clients(server):
    first = SendGridAPIClient(API_KEY, host=server.url)
    second = SendGridAPIClient(API_KEY, host=server.url)
    post(first, message({"to": to("Ann@Example.com")}, {"to": to("bob@example.com")}))
    post(second, message({"to": to("ann@example.com"), "cc": to("cy@example.com")}))
    assert server.accepted_count_by_address() == {
        "ann@example.com": 2,
        "bob@example.com": 1,
        "cy@example.com": 1,
    }
    assert len(server.accepted) == 2


def test_log_path_keeps_accepted_requests_across_restarts(tmp_path):
    log = tmp_path / "accepted.jsonl"
    for _ in range(2):
        with SendGridServer(API_KEY, log_path=log) as running:
            post(SendGridAPIClient(API_KEY, host=running.url), message())
            assert running.accepted_count_by_address() == {"reader@example.com": 1}
    records = read_log(log)
    assert [r.body for r in records] == [message(), message()]
    assert count_by_address(r.body for r in records) == {"reader@example.com": 2}


# ---------------------------------------------------------------- 400


def test_1001_personalizations_are_rejected_with_sendgrid_body(server, client):
    people = [{"to": to(f"reader{n}@example.com")} for n in range(1001)]
    error = rejection(client, message(*people))
    assert isinstance(error, BadRequestsError)
    assert json.loads(error.body) == {
        "errors": [
            error_400(
                "The personalization block is limited to 1000 personalizations per API "
                "request. You have provided 1001 personalizations. Please consider splitting "
                "this into multiple requests and resending your request.",
                "personalizations",
            ),
            error_400(TOO_MANY_RECIPIENTS, "personalizations"),
        ]
    }
    assert_rate_limit_headers(error.headers)
    assert server.accepted == []


def test_1001_recipients_in_two_personalizations_are_rejected(server, client):
    first = {"to": to(*(f"to{n}@example.com" for n in range(501)))}
    second = {"to": to("x@example.com"), "cc": to(*(f"cc{n}@example.com" for n in range(499)))}
    error = rejection(client, message(first, second))
    assert error.status_code == 400
    expected = [error_400(TOO_MANY_RECIPIENTS, "personalizations")]
    assert json.loads(error.body) == {"errors": expected}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            message(headers={"reply-to": "boss@example.com"}),
            error_400(RESERVED_AT_MESSAGE, "headers"),
        ),
        (
            message({"to": to("reader@example.com"), "headers": {"X-SG-ID": "1"}}),
            error_400(RESERVED_AT_PERSONALIZATION, "personalizations.0.headers"),
        ),
    ],
    ids=["message-level", "personalization-level"],
)
def test_reserved_header_is_rejected(client, body, expected):
    error = rejection(client, body)
    assert error.status_code == 400
    assert json.loads(error.body) == {"errors": [expected]}


def test_html_before_text_is_rejected(client):
    content = [{"type": "text/html", "value": "<p>Hi</p>"}, {"type": "text/plain", "value": "Hi"}]
    error = rejection(client, message(content=content))
    assert error.status_code == 400
    assert json.loads(error.body) == {"errors": [error_400(CONTENT_ORDER, "content")]}


def test_schema_violation_names_the_field(client):
    body = message()
    del body["from"]
    error = rejection(client, body)
    assert error.status_code == 400
    assert json.loads(error.body) == {
        "errors": [
            error_400(
                "The from object must be provided for every email send. It is an object that "
                "requires the email parameter, but may also contain a name parameter. e.g. "
                '{"email": "example@example.com"} or {"email": "example@example.com", '
                '"name": "Example Recipient"}',
                "from",
            )
        ]
    }


def test_merged_custom_args_over_10000_bytes_are_rejected(client):
    person = {"to": to("reader@example.com"), "custom_args": {"b": "y" * 4000}}
    error = rejection(client, message(person, custom_args={"a": "x" * 6000}))
    assert json.loads(error.body) == {
        "errors": [
            error_400(
                "The combined size of both global and personalization custom arguments may not "
                "exceed 10,000 bytes per personalization.",
                "personalizations.0.custom_args",
            )
        ]
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (message(), []),
        (message(custom_args={"a": "x" * 9000}), []),
        (
            message({"to": to("a@example.com"), "bcc": to("A@example.com")}),
            [
                error_400(
                    "Each email address in the personalization block should be unique between "
                    "to, cc, and bcc. We found the first duplicate instance of [A@example.com] "
                    "in the personalizations.0.bcc field.",
                    "personalizations.0",
                )
            ],
        ),
        (
            message(content=[{"type": "text/plain", "value": "a"}] * 2),
            [error_400(TEXT_TWICE, "content")],
        ),
        (
            message(personalizations=[]),
            [error_400("You must have at least one personalization.", "personalizations")],
        ),
        (
            {k: v for k, v in message().items() if k not in ("content", "subject")},
            [
                error_400(
                    "The content param is required unless you are using a transactional "
                    "template and have defined a template_ID.",
                    "content",
                ),
                error_400(
                    "The subject is required. You can get around this requirement if you use a "
                    "template with a subject defined or if every personalization has a subject "
                    "defined.",
                    "subject",
                ),
            ],
        ),
        ({k: v for k, v in message(template_id="d-1").items() if k != "content"}, []),
    ],
    ids=["valid", "custom-args-9000", "duplicate", "text-twice", "no-personalization",
         "no-content-subject", "template"],
)
def test_validate_mail_send(body, expected):
    assert validate_mail_send(body) == expected


def rich_body() -> dict[str, Any]:
    """A body with every field digest sends, and a few it does not."""
    person = {"to": [{"email": "ada@example.com", "name": "Ada"}],
              "substitutions": {"-unsubscribe_url-": "https://example.com/u/abc"},
              "headers": {"List-Unsubscribe": "<https://example.com/u/abc>",
                          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
              "custom_args": {"issue": "2026-W48"}}
    return message(person, {"to": to("bob@example.com"), "cc": to("cy@example.com")},
                   reply_to={"email": "editor@example.com"}, categories=["digest", "2026-W48"],
                   custom_args={"issue": "2026-W48"}, asm={"group_id": 7},
                   tracking_settings={"click_tracking": {"enable": False}})


def mutations(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path in the body, each to be replaced by each bad value."""
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, child in children:
        yield from mutations(child, (*path, key))


def replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[path[0]] = replaced(body[path[0]], path[1:], value)
    return copy


BAD_VALUES = [None, 1, 2.5, True, "", "no-at-sign", "x" * 10_001, [], [1, 1], {}, {"x": 1}]


def test_the_fast_schema_check_never_accepts_what_jsonschema_rejects():
    body = rich_body()
    assert schema_accepts_fast(body) and sendgrid_server._validator().is_valid(body)
    verdicts = []
    for path in mutations(body):
        for value in BAD_VALUES:
            bad = replaced(body, path, value)
            fast, full = schema_accepts_fast(bad), sendgrid_server._validator().is_valid(bad)
            assert full or not fast, (path, value)
            verdicts.append((fast, full))
    assert {(False, False), (True, True)} <= set(verdicts)  # both kinds were seen
    assert len(verdicts) > 400


def test_body_that_is_not_json_gets_bad_request(server):
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    status, body = raw_post(server.url, b"{not json", headers)
    assert (status, body) == (400, {"errors": [error_400("Bad Request", None)]})


def test_body_over_30_mb_gets_413(server, client):
    attachment = {"content": "A" * (30 * 1024 * 1024), "filename": "big.txt"}
    error = rejection(client, message(attachments=[attachment]))
    assert isinstance(error, PayloadTooLargeError)
    assert error.headers["Content-Type"] == "text/html"
    assert b"<title>413 Request Entity Too Large</title>" in error.body
    assert server.accepted == []


# ---------------------------------------------------------------- 401


def test_wrong_key_gets_401(server):
    error = rejection(SendGridAPIClient("SG.wrong", host=server.url), message())
    assert isinstance(error, UnauthorizedError)
    expected = "The provided authorization grant is invalid, expired, or revoked"
    assert json.loads(error.body) == {"errors": [error_400(expected, None)]}
    assert server.accepted == []


def test_missing_key_gets_401(server):
    status, body = raw_post(server.url, b"{}", {"Content-Type": "application/json"})
    assert status == 401
    assert body == {"errors": [{"field": None, "message": "authorization required"}]}


# ---------------------------------------------------------------- faults


def test_scripted_429_carries_rate_limit_headers(server, client):
    server.script(429)
    before = int(time.time())
    error = rejection(client, message())
    assert isinstance(error, TooManyRequestsError)
    assert json.loads(error.body) == {"errors": [{"field": None, "message": "too many requests"}]}
    assert error.headers["X-RateLimit-Remaining"] == "0"
    assert before + 1 <= int(error.headers["X-RateLimit-Reset"]) <= int(time.time()) + 1
    assert int(error.headers["X-RateLimit-Limit"]) > 0
    assert post(client, message()).status_code == 202
    assert len(server.accepted) == 1


def test_scripted_5xx_answers_are_not_accepted(server, client):
    server.script(500, 502, 503)
    errors = [rejection(client, message()) for _ in range(3)]
    assert [type(e) for e in errors] == [InternalServerError, HTTPError, ServiceUnavailableError]
    assert json.loads(errors[0].body) == {
        "errors": [{"field": None, "message": "An error occurred on a SendGrid server."}]
    }
    assert b"<title>502 Bad Gateway</title>" in errors[1].body
    assert server.statuses == [500, 502, 503]
    assert server.accepted == []


def test_script_refuses_statuses_it_cannot_fake(server):
    with pytest.raises(ValueError, match=r"scripted statuses must be among .* got \[404\]"):
        server.script(404)


def _statuses_with_faults(seed: int) -> tuple[list[int], int]:
    with SendGridServer(API_KEY, fault_rate=0.5, seed=seed) as running:
        client = SendGridAPIClient(API_KEY, host=running.url)
        for _ in range(12):
            with contextlib.suppress(HTTPError):
                post(client, message())
        return running.statuses, len(running.accepted)


def test_seeded_fault_rate_is_reproducible():
    statuses, accepted = _statuses_with_faults(seed=1)
    assert (statuses, accepted) == _statuses_with_faults(seed=1)
    assert set(statuses) - {202} and 202 in statuses
    assert set(statuses) <= {202, 429, 500, 502, 503}
    assert accepted == statuses.count(202)


def test_delay_makes_the_client_time_out_after_acceptance(server, client):
    server.set_delay(2.0)
    client.client.timeout = 0.2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        post(client, message())
    assert time.monotonic() - started < 1.5
    server.wait_accepted(1, timeout=1)


def test_delay_is_bounded(server):
    expected = "delay must be between 0 and 10.0 seconds, got 11"
    with pytest.raises(ValueError, match=re.escape(expected)):
        server.set_delay(11)


# ---------------------------------------------------------------- hold


def test_hold_blocks_after_k_accepted_until_released(server, client):
    server.hold_after(2)
    statuses: list[int] = []
    sender = threading.Thread(
        target=lambda: statuses.extend(post(client, message()).status_code for _ in range(3))
    )
    sender.start()
    server.wait_accepted(2, timeout=5)
    server.wait_held(1, timeout=5)
    assert len(server.accepted) == 2
    server.release()
    sender.join(timeout=5)
    assert statuses == [202, 202, 202]
    assert len(server.accepted) == 3


def test_wait_accepted_times_out_with_the_count(server):
    with pytest.raises(TimeoutError, match=re.escape("0 of 1 requests accepted after 0.05 s")):
        server.wait_accepted(1, timeout=0.05)


def test_hold_time_out_answers_503(server, client):
    server.hold_after(0, timeout=0.1)
    assert isinstance(rejection(client, message()), ServiceUnavailableError)
    assert server.accepted == []


def test_stop_drops_held_requests(server, client):
    server.hold_after(0)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            post(client, message())
        except Exception as error:  # the connection closes unanswered
            failures.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    server.wait_held(1, timeout=5)
    server.stop()
    sender.join(timeout=5)
    assert [type(f).__name__ for f in failures] == ["RemoteDisconnected"]
    assert server.accepted == []


def test_sigkilled_client_mid_send_leaves_k_accepted(server):
    server.hold_after(2)
    args = [sys.executable, "-c", CHILD_SENDER, API_KEY, server.url, json.dumps(message())]
    with subprocess.Popen(args) as child:
        try:
            server.wait_held(1, timeout=10)  # its third request is mid-send
        finally:
            child.kill()  # SIGKILL
            child.wait(timeout=5)
    assert child.returncode == -signal.SIGKILL
    assert server.accepted_count_by_address() == {"reader@example.com": 2}
    server.release()  # SendGrid may still deliver what a dead client sent
    server.wait_accepted(3, timeout=5)


# ---------------------------------------------------------------- script


def test_runs_as_a_script_and_prints_its_url():
    args = [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--api-key", API_KEY]
    with subprocess.Popen([*args, "--duration", "10"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            assert post(SendGridAPIClient(API_KEY, host=url), message()).status_code == 202
        finally:
            proc.terminate()
            proc.wait(timeout=5)


def test_without_schema_checks_the_limits_still_hold():
    with SendGridServer(api_key=API_KEY, schema=False) as lean:
        client = SendGridAPIClient(API_KEY, host=lean.url)
        people = [{"to": to(f"reader{n}@example.com")} for n in range(1001)]
        error = rejection(client, message(*people))
        assert isinstance(error, BadRequestsError)
        no_from = message({"to": to("ada@example.com")})
        del no_from["from"]
        assert post(client, no_from).status_code == 202  # the schema would refuse it


def test_a_deferred_server_answers_first_and_checks_when_its_records_are_read():
    with SendGridServer(api_key=API_KEY, deferred=True) as deferred:
        client = SendGridAPIClient(API_KEY, host=deferred.url)
        people = [{"to": to(f"reader{n}@example.com")} for n in range(1001)]
        assert post(client, message(*people)).status_code == 202  # not checked yet
        assert deferred.problems == []
        assert deferred.accepted_count_by_address()["reader1000@example.com"] == 1
        assert [p["message"] for p in deferred.problems] == [
            "The personalization block is limited to 1000 personalizations per API "
            "request. You have provided 1001 personalizations. Please consider splitting "
            "this into multiple requests and resending your request.",
            "There is a limit of 1000 total recipients (to + cc + bcc) per request."]
