"""What the desk composes for a few readers: the exact mail/send JSON the client posts and
the exact `.eml` each reader would get, pinned in golden files (compose-*.json, -*.eml),
so that a faster compose cannot change a request or an email."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from helpers import make_settings

from digest.desk import compose
from digest.render import Email
from digest.store import Addressee
from digest.transports import Recipient, list_unsubscribe_headers
from digest.transports.files import build_eml
from digest.transports.sendgrid import request_body

DATE = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
EMAIL = Email(
    subject="The week in Example News",
    preheader="Five stories",
    html='<p>Hi</p><a href="-unsubscribe_url-">Leave</a> <a href="-preferences_url-">Topics</a>',
    text="Hi\n\nLeave: -unsubscribe_url-\nTopics: -preferences_url-\n",
)
BOUNDARY = re.compile(r"===============\d+==")  # the stdlib's, random
READERS = (
    Addressee("ann@example.org", "Ann Example", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"),
    Addressee("bob+news@example.org", "", "_2lLJx9aWb0cQ5Hs8nKZrT1yXv3mE6uPd4gAoN7fBq"),
    Addressee("zoe@example.org", "Zoë Ünïcode \"Z\"", "A" * 43),
)
CASES = {
    "default": {"email__from": "Example News <news@example.org>"},
    "mailto": {"email__from": "news@example.org", "email__reply_to": "Ed <ed@example.org>",
               "unsubscribe__mailto": "leave@example.org", "web__base_url": "https://web.example/",
               "unsubscribe__url": "{web_url}/u/{token}?again={token}&home={base_url}"},
    "asm": {"email__from": "Example News <news@example.org>", "sendgrid__asm_group_id": 4242,
            "unsubscribe__mailto": "mailto:leave@example.org"},
    "spec": {"email__from": "news@example.org", "unsubscribe__url": "{base_url}/x/{token!s:>45}"},
}


def composed(case: str):
    return compose(make_settings(**CASES[case]), EMAIL, READERS, key="2026-W48",
                   segment="all", batch=3)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_request_body_is_what_it_was(case, golden):
    golden(f"compose-{case}.json", json.dumps(request_body(composed(case))) + "\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_readers_email_is_what_it_was(case, golden):
    message = composed(case)
    emls = [build_eml(message, recipient, message_id=f"<pin.{n}@example.org>", date=DATE)
            for n, recipient in enumerate(message.recipients)]
    golden(f"compose-{case}.eml", "\n--next reader--\n".join(
        BOUNDARY.sub("=BOUNDARY=", eml.decode().replace("\r\n", "\n")) for eml in emls))


def test_the_readers_are_made_recipients_when_asked_for():
    recipients = composed("mailto").recipients
    url = "https://web.example/u/{0}?again={0}&home=https://news.example.org"
    bob = Recipient(
        "bob+news@example.org", None,
        {"-unsubscribe_url-": url.format(READERS[1].token),
         "-preferences_url-": f"https://web.example/preferences/{READERS[1].token}"},
        list_unsubscribe_headers(url.format(READERS[1].token), "leave@example.org"))
    assert len(recipients) == 3
    assert recipients[1] == bob
    assert list(recipients)[1] == bob
    assert list(recipients[1:2]) == [bob]
    assert [r.name for r in recipients] == ["Ann Example", None, 'Zoë Ünïcode "Z"']


def test_under_an_asm_group_the_readers_have_no_headers_of_their_own():
    assert [dict(r.headers) for r in composed("asm").recipients] == [{}] * 3


def test_the_readers_repr_holds_no_token():
    assert repr(composed("default").recipients) == "Readers(3 rows)"
