"""A rendered email's parts, and the tags its links carry until each reader's are put in.

Its own module, so that a process that only sends (the courier) or records emails (the
ledger) does not import the renderer's stack (Jinja2, mjml-python, premailer).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise

UNSUBSCRIBE_TAG = "-unsubscribe_url-"
PREFERENCES_TAG = "-preferences_url-"


@dataclass(frozen=True)
class Email:
    subject: str
    preheader: str
    html: str
    text: str
    # Where the HTML's blocks begin and end (see Blocks), set by `assembled` only: an
    # email built otherwise, or copied with `dataclasses.replace`, has none.
    cuts: tuple[int, ...] = field(default=(), init=False, compare=False, repr=False)

    @classmethod
    def assembled(cls, subject: str, preheader: str, pieces: Sequence[str], text: str) -> Email:
        """The email whose HTML is `pieces` joined: a head, each block, a tail."""
        email = cls(subject, preheader, "".join(pieces), text)
        object.__setattr__(email, "cuts", tuple(accumulate(len(p) for p in pieces[:-1])))
        return email

    def parts(self) -> list[str]:
        """The HTML cut where its blocks begin and end: a head, each block, a tail (the
        whole HTML alone, without `cuts`)."""
        return [self.html[start:end] for start, end in pairwise((0, *self.cuts, len(self.html)))]

    @functools.cached_property
    def size(self) -> int:
        """Bytes of the HTML part: what Gmail measures before clipping."""
        return len(self.html.encode("utf-8"))
