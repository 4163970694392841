"""FilesTransport: the `.eml` each reader would get, parsed back with the stdlib."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from digest.errors import DeliveryError
from digest.transports import Message, Outcome, Recipient, list_unsubscribe_headers
from digest.transports.files import FilesTransport, build_eml

TAG = "-unsubscribe_url-"
NOW = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)
LONG_TOKEN = "Zk3q9-mR2xT7_vW4yB8nC1dF6gH0jK5pL2sA7eU9iO3"


def recipient(email: str, token: str, name: str | None = None) -> Recipient:
    url = f"https://site.example/unsubscribe/{token}"
    return Recipient(email, name, {TAG: url}, list_unsubscribe_headers(url, "leave@site.example"))


def message(*recipients: Recipient, **extra: object) -> Message:
    fields: dict[str, object] = {
        "subject": "Zoë's week: 3 articles",
        "html": f'<p>Hello</p><a href="{TAG}">Unsubscribe</a>',
        "text": f"Hello\n\nUnsubscribe: {TAG}\n",
        "from_email": "digest@site.example",
        "from_name": "Site Digest",
        "reply_to": "editor@site.example",
        "recipients": recipients or (recipient("ann@example.com", "t-ann", "Ann Example"),),
        "categories": ("digest", "2026-W48"),
        "custom_args": {"issue": "2026-W48", "segment": "ai"},
    }
    return Message(**(fields | extra))  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts(eml: EmailMessage) -> list[tuple[str, str]]:
    """(type, content) of each part, with the file's CRLF line ends read as newlines."""
    return [(p.get_content_type(), p.get_content().replace("\r\n", "\n")) for p in eml.iter_parts()]


@pytest.fixture
def transport(tmp_path: Path) -> FilesTransport:
    return FilesTransport(tmp_path / "outbox", clock=lambda: NOW)


def test_one_file_per_recipient_named_after_issue_index_and_address(transport):
    readers = (recipient("ann@example.com", "a"), recipient("O'Brien+news@Example.COM", "b"))
    outcome = transport.send(message(*readers))
    assert outcome.status == "accepted" and outcome.message_id
    assert sorted(p.name for p in transport.folder.iterdir()) == [
        "2026-W48--0000--ann@example.com.eml",
        "2026-W48--0001--o_brien+news@example.com.eml",
    ]


def test_without_an_issue_the_files_are_called_message(transport):
    transport.send(message(custom_args={}))
    assert [p.name for p in transport.folder.iterdir()] == [
        "message--0000--ann@example.com.eml"
    ]


def test_the_eml_is_what_that_reader_gets(transport):
    outcome = transport.send(message())
    eml = parse((transport.folder / "2026-W48--0000--ann@example.com.eml").read_bytes())
    url = "https://site.example/unsubscribe/t-ann"
    assert eml.get_content_type() == "multipart/alternative"
    assert parts(eml) == [
        ("text/plain", f"Hello\n\nUnsubscribe: {url}\n"),
        ("text/html", f'<p>Hello</p><a href="{url}">Unsubscribe</a>\n'),
    ]
    assert {name: str(value) for name, value in eml.items()} == {
        "From": "Site Digest <digest@site.example>",
        "To": "Ann Example <ann@example.com>",
        "Subject": "Zoë's week: 3 articles",
        "Date": "Tue, 24 Nov 2026 07:30:00 +0000",
        "Message-ID": f"<{outcome.message_id}.0@site.example>",
        "Reply-To": "editor@site.example",
        "List-Unsubscribe": f"<{url}>, <mailto:leave@site.example>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Digest-Categories": "digest, 2026-W48",
        "X-Digest-Args": '{"issue": "2026-W48", "segment": "ai"}',
        "MIME-Version": "1.0",
        "Content-Type": eml["Content-Type"],
    }


def test_each_reader_gets_their_own_substitutions(transport):
    readers = (recipient("ann@example.com", "t-ann"), recipient("bob@example.com", "t-bob"))
    transport.send(message(*readers, subject=f"Unsubscribe any time: {TAG}"))
    for path, token in zip(sorted(transport.folder.iterdir()), ("t-ann", "t-bob"), strict=True):
        eml = parse(path.read_bytes())
        url = f"https://site.example/unsubscribe/{token}"
        assert eml["Subject"] == f"Unsubscribe any time: {url}"
        assert [url in body and TAG not in body for _, body in parts(eml)] == [True, True]
        assert eml["List-Unsubscribe"] == f"<{url}>, <mailto:leave@site.example>"


def test_a_long_list_unsubscribe_url_stays_readable_in_the_raw_bytes():
    reader = recipient("ann@example.com", LONG_TOKEN)
    data = build_eml(message(reader), reader, message_id="<id@site.example>", date=NOW)
    header = (
        f"List-Unsubscribe: <https://site.example/unsubscribe/{LONG_TOKEN}>, "
        "<mailto:leave@site.example>\r\n"
    ).encode()
    assert header in data
    assert b"=?utf-8?" not in data.split(b"\r\n\r\n", 1)[0].replace(b"Subject: =?utf-8?", b"")


def test_build_eml_writes_crlf_lines_and_a_text_part_first():
    reader = recipient("ann@example.com", "t")
    data = build_eml(message(reader), reader, message_id="<x@site.example>", date=NOW)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert data.index(b"text/plain") < data.index(b"text/html")
    assert parse(data)["Message-ID"] == "<x@site.example>"


def test_asm_group_leaves_the_unsubscribe_headers_to_sendgrid(transport):
    transport.send(message(asm_group_id=4242))
    [path] = transport.folder.iterdir()
    eml = parse(path.read_bytes())
    assert (eml["List-Unsubscribe"], eml["X-Digest-Asm-Group"]) == (None, "4242")


def test_custom_args_round_trip_as_json(transport):
    args = {"issue": "2026-W48", "segment": "ai, productivity and a very long " + "x" * 80}
    transport.send(message(custom_args=args))
    [path] = transport.folder.iterdir()
    assert json.loads(parse(path.read_bytes())["X-Digest-Args"]) == args


def test_more_than_1000_recipients_are_refused_like_sendgrid(transport):
    readers = tuple(recipient(f"r{n}@example.com", str(n)) for n in range(1001))
    with pytest.raises(DeliveryError, match=r"at most 1000 recipients .* got 1001"):
        transport.send(message(*readers))
    assert not transport.folder.exists()


def test_nothing_but_the_messages_is_left_in_the_folder(transport):
    readers = tuple(recipient(f"r{n}@example.com", str(n)) for n in range(5))
    transport.send(message(*readers))
    transport.send(message(*readers))  # a rerun replaces the files
    assert sorted(p.suffix for p in transport.folder.iterdir()) == [".eml"] * 5


def test_an_unwritable_folder_is_a_failed_outcome(tmp_path):
    blocker = tmp_path / "outbox"
    blocker.write_text("a file, not a folder")
    outcome = FilesTransport(blocker).send(message())
    assert outcome == Outcome(
        "failed", reason=f"Could not write the messages into {blocker}: File exists."
    )


def test_a_header_the_stdlib_refuses_fails_the_batch_and_writes_nothing(transport):
    readers = (recipient("ann@example.com", "t-ann"),
               recipient("bob@example.com", "t-bob", "Line1\nLine2"))
    outcome = transport.send(message(*readers))
    assert outcome == Outcome(
        "failed", reason="Could not build the message to bob@example.com: invalid arguments; "
                         "address parts cannot contain CR or LF.")
    assert not transport.folder.exists()
