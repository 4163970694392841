"""Delivery transports behind one small protocol: `send(Message) -> Outcome`.

A `Message` is one request's worth: one segment's rendered email and at most
1000 recipients, each with their own substitutions (e.g. the unsubscribe link
for `-unsubscribe_url-`) and headers. `sendgrid.py` posts it to SendGrid's v3
mail/send; `files.py` writes the `.eml` each recipient would get.

A run's recipients come as `Readers`: each reader's address and token, and the
`Links` their substitutions and headers are made of, so that a transport can make
them in one pass (SendGrid's does) rather than from a `Recipient` object each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, overload

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


Fields = tuple[str, str | None, dict[str, str], dict[str, str]]  # Recipient's, as a tuple
ONE_CLICK = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}  # RFC 8058


@dataclass(frozen=True)
class Links:
    """How each reader's substitutions and headers are made from their token: their
    unsubscribe and preferences URLs under these tags, and unless `headers` is False
    (SendGrid's ASM group gives its own) List-Unsubscribe headers as
    `list_unsubscribe_headers` makes them."""

    unsubscribe_tag: str
    unsubscribe_url: Callable[[str], str]
    preferences_tag: str
    preferences_url: Callable[[str], str]
    mailto: str | None = None
    headers: bool = True

    def fields(self, rows: Iterable[tuple[str, str, str]]) -> Iterator[Fields]:
        """Each (email, name or "", token) row's (email, name or None, substitutions,
        headers), in one pass."""
        unsubscribe_tag, unsubscribe_url = self.unsubscribe_tag, self.unsubscribe_url
        preferences_tag, preferences_url = self.preferences_tag, self.preferences_url
        after, headers = mailto_suffix(self.mailto), self.headers
        for email, name, token in rows:
            url = unsubscribe_url(token)
            yield (email, name or None,
                   {unsubscribe_tag: url, preferences_tag: preferences_url(token)},
                   {"List-Unsubscribe": f"<{url}>{after}", **ONE_CLICK} if headers else {})


class Readers(Sequence[Recipient]):
    """A request's recipients as (email, name or "", token) rows and their `Links`: each
    `Recipient` made when it is asked for (the files transport, a preview, tests), while
    `fields` makes all of theirs in one pass (SendGrid's transport)."""

    def __init__(self, rows: Sequence[tuple[str, str, str]], links: Links) -> None:
        self.rows, self.links = rows, links

    def fields(self) -> Iterator[Fields]:
        return self.links.fields(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Recipient]:
        return (Recipient(*fields) for fields in self.fields())

    @overload
    def __getitem__(self, index: int) -> Recipient: ...

    @overload
    def __getitem__(self, index: slice) -> Readers: ...

    def __getitem__(self, index: int | slice) -> Recipient | Readers:
        if isinstance(index, slice):
            return Readers(self.rows[index], self.links)
        return Recipient(*next(self.links.fields((self.rows[index],))))

    def __repr__(self) -> str:  # no token in a repr
        return f"Readers({len(self.rows)} rows)"


def recipient_fields(recipients: Sequence[Recipient]) -> Iterator[Fields]:
    """Each recipient's (email, name, substitutions, headers); those of `Readers` made in
    one pass, without a Recipient each (their dicts are new: the caller may keep them)."""
    if isinstance(recipients, Readers):
        return recipients.fields()
    return ((r.email, r.name, dict(r.substitutions), dict(r.headers)) for r in recipients)


@dataclass(frozen=True)
class Message:
    """One segment's rendered email for at most 1000 recipients (one SendGrid request)."""

    subject: str
    html: str
    text: str
    from_email: str
    from_name: str | None
    reply_to: str | None
    recipients: Sequence[Recipient]  # a tuple, or Readers
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
    return {"List-Unsubscribe": f"<{url}>{mailto_suffix(mailto)}", **ONE_CLICK}


def mailto_suffix(mailto: str | None) -> str:
    """What follows the URL in List-Unsubscribe: `, <mailto:…>`, or nothing."""
    if not mailto:
        return ""
    return f", <{mailto if mailto.lower().startswith('mailto:') else f'mailto:{mailto}'}>"


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
    if settings.text("delivery.transport") == "files":  # each imported here: it imports this
        from digest.transports.files import FilesTransport

        return FilesTransport(settings.files_dir)
    from digest.transports.sendgrid import SendGridTransport

    return SendGridTransport.from_environment(settings)
