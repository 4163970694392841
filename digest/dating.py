"""Dating an article file from its front matter's text, without parsing it.

A send needs only the articles of its window, yet a site's archive holds years of them:
parsing 12,000 files costs about 2 s, reading their date lines a tenth of that. A file is
dated here only when that is certain, from top-level `date`, `publishDate` and `pubDate`
lines holding an ISO day, and a Jekyll file name's day; anything else (a line it cannot
read as a plain key and a value ending on that line, a value other than an ISO day, a
line break other than "\n", Zola's `path`) gives None, and the file is parsed as usual.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta

from digest.sites import BUNDLE_NAMES, DATE_FIELDS, split_file_name

FIRST_YEAR, LAST_YEAR = 1900, 9000  # content.py's: a year outside is parsed, and reported
ISO_DAY = re.compile(
    r"[ \t]*(?P<q>[\"']?)(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ][0-9:.]+)?(?:[Zz]|[ \t]*[+-]\d{1,2}(?::?\d{2})?)?(?P=q)[ \t]*")
# A line this reads: a plain key, then YAML's `:` or TOML's `=`, and its value. Anything
# else at the top level (a quoted, complex or flow key, a merge, an anchor, a directive,
# a document marker) could hide a date this cannot see.
YAML_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+(.*))?")
TOML_KEY = re.compile(r"([A-Za-z0-9_-]+)[ \t]*=[ \t]*(.*)")
LINE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")  # YAML's others than "\n" (after \r\n)
TOML_STRINGS = ('"""', "\'\'\'")
# An unzoned day is midnight where the site is, and a time and an offset add at most 38
# hours: a day two days before the window's start is before it in every zone.
MARGIN = timedelta(days=2)


def older_than(since: datetime) -> date:
    """The day before which a file's dates are surely before `since` (UTC or zoned)."""
    return since.astimezone(UTC).date() - MARGIN


def latest_day(front: str, toml: bool, file: str) -> date | None:
    """The latest day among the front matter's date fields and a Jekyll file name's
    (the article is new then at the latest), or None when that is not certain: a line
    this cannot read, a date it cannot read, Zola's `path`, or no day at all."""
    pairs = top_pairs(front.replace("\r\n", "\n"), toml)
    if pairs is None or any(key == "path" for key, _ in pairs):
        return None
    days = [day_of(value) for key, value in pairs if key in DATE_FIELDS]
    if None in days:
        return None
    found = [day for day in (*days, file_day(file)) if day is not None]
    return max(found) if found else None


def top_pairs(front: str, toml: bool) -> list[tuple[str, str]] | None:
    """The (key, value) of each top-level line (TOML's before its first table), or None
    when a line could hide a key."""
    if any(mark in front for mark in LINE_BREAKS) or \
            (toml and any(quotes in front for quotes in TOML_STRINGS)):
        return None
    lines = [line for line in front.split("\n")
             if line.strip() and not line.lstrip().startswith("#")]
    return toml_pairs(lines) if toml else yaml_pairs(lines)


def toml_pairs(lines: list[str]) -> list[tuple[str, str]] | None:
    pairs = []
    for line in (line.strip() for line in lines):
        if line.startswith("["):  # the first table: every line before it was whole
            break
        match = TOML_KEY.fullmatch(line)
        if match is None or not balanced(match[2]):
            return None
        pairs.append((match[1], match[2]))
    return pairs


def yaml_pairs(lines: list[str]) -> list[tuple[str, str]] | None:
    """Top-level keys start their line; indented lines and `- ` items belong to the key
    above them (a first line indented: the whole mapping is, which this does not read)."""
    pairs: list[tuple[str, str]] = []
    for line in lines:
        if line[0] in " \t" or line == "-" or line.startswith("- "):
            if not pairs:
                return None
            continue
        match = YAML_KEY.fullmatch(line)
        if match is None or not whole_value(match[2] or ""):
            return None
        pairs.append((match[1], match[2] or ""))
    return pairs


def whole_value(value: str) -> bool:
    """Whether a YAML value ends on its line: a quoted one closes, a flow one balances."""
    value = value.rstrip()
    if value.startswith('"'):
        body = value[1:]
        return body.endswith('"') and (len(body) - len(body[:-1].rstrip("\\")) - 1) % 2 == 0
    if value.startswith("'"):
        return len(value) > 1 and value.endswith("'") and value.count("'") % 2 == 0
    return balanced(value)


def balanced(value: str) -> bool:
    return value.count("[") == value.count("]") and value.count("{") == value.count("}")


def day_of(value: str) -> date | None:
    match = ISO_DAY.fullmatch(value)
    return checked_day(*match.group(2, 3, 4)) if match else None


def file_day(file: str) -> date | None:
    """A Jekyll post's day from its name (`2021-03-04-slug.md`); a page bundle's
    `index.md` is named by its folder, which this does not read."""
    name = os.path.basename(file)
    found = None if name.lower() in BUNDLE_NAMES else \
        split_file_name(os.path.splitext(name)[0])[0]
    return found if found and FIRST_YEAR <= found.year <= LAST_YEAR else None


def checked_day(year: str, month: str, day: str) -> date | None:
    try:
        found = date(int(year), int(month), int(day))
    except ValueError:
        return None
    return found if FIRST_YEAR <= found.year <= LAST_YEAR else None
