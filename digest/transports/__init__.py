"""Delivery transports behind one small protocol: `send(Message) -> Outcome`.

A `Message` is one request's worth: one segment's rendered email and at most
1000 recipients, each with their own substitutions (e.g. the unsubscribe link
for `-unsubscribe_url-`) and headers. `sendgrid.py` posts it to SendGrid's v3
mail/send; `files.py` writes the `.eml` each recipient would get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from digest.config import Settings
from digest.errors import DeliveryError

MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None = None
    substitutions: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One segment's rendered email for at most 1000 recipients (one SendGrid request)."""

    subject: str
    html: str
    text: str
    from_email: str
    from_name: str | None
    reply_to: str | None
    recipients: tuple[Recipient, ...]
    categories: tuple[str, ...] = ()
    custom_args: Mapping[str, str] = field(default_factory=dict)
    asm_group_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    status: Literal["accepted", "failed", "unknown"]
    message_id: str | None = None
    reason: str | None = None


class Attempts(Protocol):
    """Told before each attempt at a request, and before each wait to retry one, so the
    ledger can tell a batch that may have reached the API (in flight) from one waiting
    to try again (pending). Either may raise to stop before the request or the wait."""

    def attempting(self, number: int) -> None: ...

    def waiting(self, reason: str, seconds: float) -> None: ...


class Transport(Protocol):
    def send(self, message: Message, attempts: Attempts | None = None) -> Outcome: ...


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """RFC 2369 List-Unsubscribe with RFC 8058 one-click; a mailto only when one is given."""
    value = f"<{url}>"
    if mailto:
        address = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        value += f", <{address}>"
    return {"List-Unsubscribe": value, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def check_message(message: Message) -> None:
    """The limits every transport enforces, so a dry run fails where a real send would."""
    count = len(message.recipients)
    if count == 0:
        raise DeliveryError("a message needs at least one recipient")
    if count > MAX_RECIPIENTS:
        raise DeliveryError(
            f"a message has at most {MAX_RECIPIENTS} recipients (one SendGrid request), "
            f"got {count}: split the segment into batches"
        )
    if len(message.categories) > MAX_CATEGORIES:
        raise DeliveryError(
            f"a message has at most {MAX_CATEGORIES} categories, got {len(message.categories)}"
        )


def transport_for(settings: Settings) -> Transport:
    """The transport `delivery.transport` names: `.eml` files, or SendGrid with the key
    from the environment."""
    from digest.transports.files import FilesTransport  # they import this module
    from digest.transports.sendgrid import SendGridTransport

    if settings.text("delivery.transport") == "files":
        return FilesTransport(settings.files_dir)
    return SendGridTransport.from_environment(settings)
