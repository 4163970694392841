"""Where a plan keeps its rendered emails until it is frozen: a temporary file, so that
memory holds one email at a time however many segments a run has.

The file is unlinked as soon as it is made (nothing is left behind by a crash) and
readable only by this process; `Spool.put` writes an email, and the `SpooledEmail` it
returns reads its HTML and text back when asked.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from digest.emails import Email


class Spool:
    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())

    def put(self, email: Email) -> SpooledEmail:
        html, text = email.html.encode(), email.text.encode()
        self.file.seek(0, 2)
        offset = self.file.tell()
        self.file.write(html + text)
        return SpooledEmail(self, email.subject, email.preheader, offset, len(html), len(text))

    def read(self, offset: int, length: int) -> str:
        self.file.seek(offset)
        return self.file.read(length).decode()

    def close(self) -> None:
        self.file.close()

    @contextmanager
    def kept_unless_failed(self) -> Iterator[None]:
        """Closed if the block fails; left open for its caller otherwise."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class SpooledEmail:
    """An Email kept in a Spool: its subject and size in memory, its parts on disk."""

    spool: Spool
    subject: str
    preheader: str
    offset: int
    size: int  # bytes of the HTML part, as Email.size
    text_size: int

    @property
    def html(self) -> str:
        return self.spool.read(self.offset, self.size)

    @property
    def text(self) -> str:
        return self.spool.read(self.offset + self.size, self.text_size)
