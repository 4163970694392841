"""The English words of the CLI's and the run's own messages (not the emails', which
the site's language gives: digest.i18n)."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """`word` for one, else `many` (by default `word` + "s")."""
    return word if count == 1 else (many or f"{word}s")
