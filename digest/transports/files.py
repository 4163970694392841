"""Write the `.eml` each recipient would get, instead of sending: dry runs and tests.

One RFC 5322 file per recipient: multipart/alternative (text/plain, then
text/html), the recipient's substitutions applied to subject, text and html,
their own headers (List-Unsubscribe …), and `X-Digest-Categories` /
`X-Digest-Args` showing what SendGrid would have been given.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from digest.fileio import write_atomically
from digest.transports import Attempts, Message, Outcome, Recipient, check_message

# Headers are written unfolded up to RFC 5322's 998 characters: at 78, the stdlib
# turns a long List-Unsubscribe URL into an RFC 2047 encoded-word no client reads.
WRITE_POLICY = policy.SMTP.clone(max_line_length=998)
UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def build_eml(message: Message, recipient: Recipient, *, message_id: str, date: datetime) -> bytes:
    """The RFC 5322 bytes (CRLF) that `recipient` would receive for `message`."""
    eml = EmailMessage(policy=policy.SMTP)
    eml["From"] = Address(message.from_name or "", addr_spec=message.from_email)
    eml["To"] = Address(recipient.name or "", addr_spec=recipient.email)
    eml["Subject"] = substitute(message.subject, recipient.substitutions)
    eml["Date"] = format_datetime(date)
    eml["Message-ID"] = message_id
    if message.reply_to:
        eml["Reply-To"] = message.reply_to
    for name, value in digest_headers(message, recipient).items():
        eml[name] = value
    eml.set_content(substitute(message.text, recipient.substitutions))
    eml.add_alternative(substitute(message.html, recipient.substitutions), subtype="html")
    for part in eml.iter_parts():
        del part["MIME-Version"]  # the stdlib copies it into the parts; it belongs on top
    return eml.as_bytes(policy=WRITE_POLICY)


def digest_headers(message: Message, recipient: Recipient) -> dict[str, str]:
    """The recipient's own headers (none under an ASM group: SendGrid adds its own)."""
    headers = dict(recipient.headers) if message.asm_group_id is None else {}
    if message.asm_group_id is not None:
        headers["X-Digest-Asm-Group"] = str(message.asm_group_id)
    if message.categories:
        headers["X-Digest-Categories"] = ", ".join(message.categories)
    if message.custom_args:
        headers["X-Digest-Args"] = json.dumps(dict(message.custom_args))
    return headers


def substitute(text: str, substitutions: Mapping[str, str]) -> str:
    for tag, value in substitutions.items():
        text = text.replace(tag, value)
    return text


def eml_name(message: Message, index: int, recipient: Recipient) -> str:
    """`<issue or 'message'>--<index>--<safe email>.eml`, e.g. `2026-W48--0003--ann@x.org.eml`."""
    issue = UNSAFE.sub("_", message.custom_args.get("issue") or "message")
    return f"{issue}--{index:04d}--{UNSAFE.sub('_', recipient.email.lower())}.eml"


class FilesTransport:
    """`send(message)` writes one `.eml` per recipient into `folder`."""

    def __init__(
        self, folder: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.folder = folder
        self._clock = clock

    def __repr__(self) -> str:
        return f"FilesTransport(folder={str(self.folder)!r})"

    def send(self, message: Message, attempts: Attempts | None = None) -> Outcome:
        check_message(message)
        if attempts is not None:
            attempts.attempting(1)
        batch, date = uuid.uuid4().hex, self._clock()
        domain = message.from_email.rpartition("@")[2] or "digest.invalid"
        files = {}
        for index, recipient in enumerate(message.recipients):  # all built before any written
            try:
                files[eml_name(message, index, recipient)] = build_eml(
                    message, recipient, message_id=f"<{batch}.{index}@{domain}>", date=date)
            except ValueError as error:  # a header the stdlib refuses, e.g. a line break
                return Outcome("failed", reason=f"Could not build the message to "
                                                f"{recipient.email}: {error}.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                write_atomically(self.folder / name, data)
        except OSError as error:
            reason = f"Could not write the messages into {self.folder}: {error.strerror}."
            return Outcome("failed", reason=reason)
        return Outcome("accepted", message_id=batch)
