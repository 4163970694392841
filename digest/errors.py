"""The one error root: the CLI shows any DigestError as `Error: …` and exits 1."""


class DigestError(Exception):
    """A problem the user can fix: bad input, bad configuration, a refused send."""


class ConfigError(DigestError):
    """The configuration file or an environment override is invalid."""


class WindowError(DigestError):
    """The dates asked for make no window (`--until` before `--since`)."""


class ContentError(DigestError):
    """An article could not be loaded (raised in strict mode)."""


class TemplateError(DigestError):
    """A template is missing, invalid, or produced invalid MJML."""


class DeliveryError(DigestError):
    """A send could not be completed."""


class StoreError(DigestError):
    """The subscriber store refused an operation."""


class StoreUnavailable(StoreError):
    """The database cannot be written now: locked by another process, or no space left.
    Nothing half-written stays behind (the transaction was rolled back)."""


class DatabaseLocked(StoreUnavailable):
    """Another process held the database's write lock past the busy time-out."""


class DiskFull(StoreUnavailable):
    """The disk (or the database's size limit) has no room for the write."""


def not_utf8(exc: UnicodeDecodeError) -> str:
    """How a file that is not UTF-8 is reported: where its first bad byte is."""
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
