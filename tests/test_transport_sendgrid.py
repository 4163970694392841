"""SendGridTransport against the local SendGrid double, with the real `sendgrid` client."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sendgrid_server import SendGridServer

from digest.config import Settings
from digest.errors import DeliveryError
from digest.transports import Message, Outcome, Recipient, list_unsubscribe_headers
from digest.transports.sendgrid import (
    SendGridTransport,
    backoff,
    rate_limit_wait,
    request_body,
)

API_KEY = "SG.transport-test-key.a1b2c3"
TAG = "-unsubscribe_url-"
FIVE_ATTEMPTS_503 = (
    "SendGrid answered 503: The SendGrid v3 Web API is not available. "
    "Gave up after 5 attempts."
)


def recipient(n: int, **extra: object) -> Recipient:
    url = f"https://site.example/unsubscribe/token{n}"
    fields: dict[str, object] = {
        "email": f"reader{n}@example.com",
        "name": f"Reader {n}",
        "substitutions": {TAG: url},
        "headers": list_unsubscribe_headers(url, None),
    }
    return Recipient(**(fields | extra))  # type: ignore[arg-type]


def message(count: int = 2, **extra: object) -> Message:
    fields: dict[str, object] = {
        "subject": "The week in AI",
        "html": f'<p>Hello</p><a href="{TAG}">Unsubscribe</a>',
        "text": f"Hello\n\nUnsubscribe: {TAG}\n",
        "from_email": "digest@site.example",
        "from_name": "Site Digest",
        "reply_to": "editor@site.example",
        "recipients": tuple(recipient(n) for n in range(count)),
        "categories": ("digest", "2026-W48"),
        "custom_args": {"issue": "2026-W48", "segment": "all"},
    }
    return Message(**(fields | extra))  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[SendGridServer]:
    with SendGridServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def transport(server: SendGridServer, waits: list[float]) -> SendGridTransport:
    return SendGridTransport(API_KEY, server.url, timeout=5, sleep=waits.append)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- request body


def test_request_body_has_one_personalization_per_recipient_and_text_first():
    assert request_body(message()) == {
        "personalizations": [
            {
                "to": [{"email": f"reader{n}@example.com", "name": f"Reader {n}"}],
                "substitutions": {TAG: f"https://site.example/unsubscribe/token{n}"},
                "headers": {
                    "List-Unsubscribe": f"<https://site.example/unsubscribe/token{n}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            }
            for n in range(2)
        ],
        "from": {"email": "digest@site.example", "name": "Site Digest"},
        "subject": "The week in AI",
        "content": [
            {"type": "text/plain", "value": f"Hello\n\nUnsubscribe: {TAG}\n"},
            {"type": "text/html", "value": f'<p>Hello</p><a href="{TAG}">Unsubscribe</a>'},
        ],
        "reply_to": {"email": "editor@site.example"},
        "categories": ["digest", "2026-W48"],
        "custom_args": {"issue": "2026-W48", "segment": "all"},
    }


def test_asm_group_replaces_the_own_unsubscribe_headers():
    body = request_body(message(asm_group_id=4242))
    assert body["asm"] == {"group_id": 4242}
    assert [sorted(p) for p in body["personalizations"]] == [["substitutions", "to"]] * 2


def test_optional_fields_are_left_out():
    bare = message(1, from_name=None, reply_to=None, categories=(), custom_args={},
                   recipients=(Recipient("ann@example.com", None, {}, {}),))
    assert request_body(bare) == {
        "personalizations": [{"to": [{"email": "ann@example.com"}]}],
        "from": {"email": "digest@site.example"},
        "subject": "The week in AI",
        "content": request_body(message())["content"],
    }


def test_reply_to_with_a_name_is_split():
    body = request_body(message(reply_to="The Editor <editor@site.example>"))
    assert body["reply_to"] == {"email": "editor@site.example", "name": "The Editor"}


def test_more_than_1000_recipients_are_refused_locally():
    with pytest.raises(DeliveryError) as caught:
        request_body(message(1001))
    assert str(caught.value) == (
        "a message has at most 1000 recipients (one SendGrid request), got 1001: "
        "split the segment into batches"
    )


def test_more_than_10_categories_are_refused_locally():
    with pytest.raises(DeliveryError) as caught:
        request_body(message(categories=tuple(f"c{n}" for n in range(11))))
    assert str(caught.value) == "a message has at most 10 categories, got 11"


def test_list_unsubscribe_headers_offer_mailto_only_when_configured():
    url = "https://site.example/unsubscribe/t"
    assert list_unsubscribe_headers(url, "leave@site.example") == {
        "List-Unsubscribe": "<https://site.example/unsubscribe/t>, <mailto:leave@site.example>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert list_unsubscribe_headers(url, None)["List-Unsubscribe"] == f"<{url}>"


# ---------------------------------------------------------------- accepted


def test_accepted_with_the_message_id_and_the_body_sendgrid_received(server, transport):
    outcome = transport.send(message(3))
    [accepted] = server.accepted
    assert outcome == Outcome("accepted", message_id=accepted.message_id)
    assert accepted.body == request_body(message(3))
    assert server.accepted_count_by_address() == {f"reader{n}@example.com": 1 for n in range(3)}


def test_asm_message_is_accepted(server, transport):
    assert transport.send(message(asm_group_id=7)).status == "accepted"
    assert server.accepted[0].body["asm"] == {"group_id": 7}


def test_api_url_with_a_trailing_slash_works(server, waits):
    transport = SendGridTransport(API_KEY, server.url + "/", sleep=waits.append)
    assert transport.send(message()).status == "accepted"


# ---------------------------------------------------------------- retried


def test_429_waits_until_the_rate_limit_resets(server, waits):
    transport = SendGridTransport(API_KEY, server.url, sleep=waits.append,
                                  clock=lambda: time.time() - 10)
    server.script(429)
    assert transport.send(message()).status == "accepted"
    assert server.statuses == [429, 202]
    [wait] = waits
    assert 10 < wait <= 11  # X-RateLimit-Reset is the next second; the clock is 10 s behind


def test_429_wait_is_capped_at_60_seconds(server, waits):
    transport = SendGridTransport(API_KEY, server.url, sleep=waits.append,
                                  clock=lambda: time.time() - 3600)
    server.script(429, 429)
    assert transport.send(message()).status == "accepted"
    assert waits == [60.0, 60.0]


@pytest.mark.parametrize(
    ("headers", "now", "expected"),
    [
        ({"X-RateLimit-Reset": "1000"}, 990.5, 9.5),
        ({"X-RateLimit-Reset": "1000"}, 1000.0, 1.0),
        ({"X-RateLimit-Reset": "5000"}, 1000.0, 60.0),
        ({}, 1000.0, 4.0),
        ({"X-RateLimit-Reset": "soon"}, 1000.0, 4.0),
        (None, 1000.0, 4.0),
    ],
    ids=["until-reset", "at-least-1s", "at-most-60s", "missing", "unreadable", "no-headers"],
)
def test_rate_limit_wait(headers, now, expected):
    assert rate_limit_wait(headers, now, attempt=3) == expected


def test_backoff_doubles_up_to_8_seconds():
    assert [backoff(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_5xx_answers_are_retried_with_backoff_then_accepted(server, transport, waits):
    server.script(500, 502, 503)
    outcome = transport.send(message())
    assert outcome == Outcome("accepted", message_id=server.accepted[0].message_id)
    assert server.statuses == [500, 502, 503, 202]
    assert waits == [1, 2, 4]
    assert len(server.accepted) == 1


def test_exhausted_retries_fail_with_the_last_reason(server, transport, waits):
    server.script(429, 500, 502, 500, 503)
    outcome = transport.send(message())
    assert outcome == Outcome("failed", reason=FIVE_ATTEMPTS_503)
    assert waits == [1, 2, 4, 8]
    assert server.accepted == []


def test_502_from_the_proxy_is_described_by_its_status(server, waits):
    transport = SendGridTransport(API_KEY, server.url, max_attempts=1, sleep=waits.append)
    server.script(502)
    assert transport.send(message()).reason == (
        "SendGrid answered 502: Bad Gateway. Gave up after 1 attempts."
    )


def test_connection_refused_is_retried_then_fails(waits):
    url = f"http://127.0.0.1:{closed_port()}"
    outcome = SendGridTransport(API_KEY, url, sleep=waits.append).send(message())
    assert outcome == Outcome(
        "failed",
        reason=f"Could not connect to SendGrid at {url} (Connection refused). "
        "Gave up after 5 attempts.",
    )
    assert waits == [1, 2, 4, 8]


# ---------------------------------------------------------------- not retried


def test_read_time_out_is_unknown_not_retried_and_sendgrid_accepted_it(server, waits):
    transport = SendGridTransport(API_KEY, server.url, timeout=0.2, sleep=waits.append)
    server.set_delay(1.0)
    started = time.monotonic()
    outcome = transport.send(message())
    assert time.monotonic() - started < 0.9
    assert outcome == Outcome(
        "unknown",
        reason="SendGrid did not answer within 0.2 s after the request was sent; "
        "it may have accepted it, so it is not retried.",
    )
    assert waits == []
    server.wait_accepted(1, timeout=3)
    assert server.accepted_count_by_address() == {"reader0@example.com": 1,
                                                  "reader1@example.com": 1}


def test_connection_dropped_after_sending_is_unknown_and_not_retried(server, transport, waits):
    server.hold_after(0)
    outcomes: list[Outcome] = []
    sender = threading.Thread(target=lambda: outcomes.append(transport.send(message())))
    sender.start()
    server.wait_held(1, timeout=5)
    server.stop()  # the request was read; the connection closes unanswered
    sender.join(timeout=5)
    assert outcomes == [
        Outcome(
            "unknown",
            reason="The connection to SendGrid broke after the request was sent (Remote end "
            "closed connection without response); it may have accepted it, so it is not retried.",
        )
    ]
    assert waits == []


def test_reserved_header_is_refused_quoting_sendgrid(server, transport, waits):
    bad = message(1, recipients=(recipient(0, headers={"X-SG-ID": "1"}),))
    outcome = transport.send(bad)
    assert outcome == Outcome(
        "failed",
        reason="SendGrid refused the request (400): Header cannot be one of the reserved keys.",
    )
    assert (server.statuses, waits) == ([400], [])


def test_1001_personalizations_are_refused_by_sendgrid_with_every_message(server, transport):
    body = request_body(message(1000))
    body["personalizations"].append({"to": [{"email": "one-too-many@example.com"}]})
    outcome = transport.deliver(body)
    assert outcome == Outcome(
        "failed",
        reason="SendGrid refused the request (400): The personalization block is limited to "
        "1000 personalizations per API request. You have provided 1001 personalizations. "
        "Please consider splitting this into multiple requests and resending your request. "
        "There is a limit of 1000 total recipients (to + cc + bcc) per request.",
    )
    assert server.statuses == [400]


def test_wrong_key_is_refused_with_401(server, waits):
    transport = SendGridTransport("SG.wrong-key", server.url, sleep=waits.append)
    assert transport.send(message()) == Outcome(
        "failed",
        reason="SendGrid refused the request (401): "
        "The provided authorization grant is invalid, expired, or revoked.",
    )
    assert (server.statuses, waits) == ([401], [])


# ---------------------------------------------------------------- the key


def test_the_api_key_never_leaks(server, waits, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    transport = SendGridTransport(API_KEY, server.url, timeout=5, sleep=waits.append)
    impatient = SendGridTransport(API_KEY, server.url, timeout=0.2, sleep=waits.append)
    texts = [repr(transport), str(transport), repr(impatient)]
    server.script(429, 500)
    outcomes = [transport.send(message())]
    outcomes.append(transport.send(message(1, recipients=(recipient(0, headers={"To": "x"}),))))
    server.set_delay(1.0)
    outcomes.append(impatient.send(message()))
    outcomes.append(SendGridTransport(API_KEY, f"http://127.0.0.1:{closed_port()}",
                                      max_attempts=2, sleep=waits.append).send(message()))
    assert [o.status for o in outcomes] == ["accepted", "failed", "unknown", "failed"]
    with pytest.raises(DeliveryError) as caught:
        transport.send(message(1001))
    texts += [repr(o) for o in outcomes] + [str(caught.value), repr(caught.value)]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [repr(r.__dict__) for r in caplog.records]
    assert any("HEADERS" in r.getMessage() for r in caplog.records)  # the client's debug log
    assert "Bearer [redacted]" in caplog.text
    assert [t for t in texts if API_KEY in t] == []


def test_repr_names_the_url_but_not_the_key(server):
    transport = SendGridTransport(API_KEY, server.url)
    assert repr(transport) == (
        f"SendGridTransport(api_url='{server.url}', timeout=30, max_attempts=5)"
    )


# ---------------------------------------------------------------- from_environment


def settings(api_url: str) -> Settings:
    return Settings(root=Path("."), values={"sendgrid.api_url": api_url, "sendgrid.timeout": 30})


def test_from_environment_needs_the_key():
    with pytest.raises(DeliveryError) as caught:
        SendGridTransport.from_environment(settings("https://api.sendgrid.com"), environ={})
    assert str(caught.value) == (
        'SENDGRID_API_KEY is not set: export it, or use delivery.transport = "files"'
    )


def test_from_environment_reads_the_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    transport = SendGridTransport.from_environment(settings(server.url))
    assert (transport.api_url, transport.timeout) == (server.url, 30)
    assert transport.send(message()).status == "accepted"


def test_an_empty_key_is_refused_rather_than_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    with pytest.raises(DeliveryError, match=r"^the SendGrid API key is empty$"):
        SendGridTransport("", "https://api.sendgrid.com")


# ---------------------------------------------------------------- under faults


def test_under_random_faults_every_reader_is_sent_exactly_once(waits):
    with SendGridServer(api_key=API_KEY, fault_rate=0.3, seed=20261124) as server:
        transport = SendGridTransport(API_KEY, server.url, timeout=5, sleep=waits.append)
        messages = [
            message(recipients=tuple(recipient(m * 20 + n) for n in range(20)))
            for m in range(50)
        ]
        outcomes = [transport.send(m) for m in messages]
        assert [o.status for o in outcomes] == ["accepted"] * 50
        assert len({o.message_id for o in outcomes}) == 50
        assert server.accepted_count_by_address() == {
            f"reader{n}@example.com": 1 for n in range(1000)
        }
        assert {429, 500, 502, 503} <= set(server.statuses)
        assert len(waits) == len(server.statuses) - 50
