"""Dating an article file from its front matter's text, without parsing it.

A send needs only the articles of its window, yet a site's archive holds years of them:
parsing 12,000 files costs about 2 s, reading their date lines a tenth of that. A file is
dated here only when that is certain, from top-level `date`, `publishDate` and `pubDate`
lines holding an ISO day (or, with none of them, a Jekyll file name); anything else (a
quoted or flow key, a YAML merge, a TOML multi-line string, a value this does not read)
gives None, and the file is parsed as usual.
"""

from __future__ import annotations

import itertools
import os
import re
from datetime import UTC, date, datetime, timedelta

from digest.sites import BUNDLE_NAMES

FIRST_YEAR, LAST_YEAR = 1900, 9000  # content.py's: a year outside is parsed, and reported
DATE_KEYS = ("date", "publishDate", "pubDate")  # sites.DATE_FIELDS
DATE_LINE = re.compile(r"(?:date|publishDate|pubDate)[ \t]*[:=](.*)")  # YAML's or TOML's
ISO_DAY = re.compile(
    r"[ \t]*(?P<q>[\"']?)(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ][0-9:.]+)?(?:[Zz]|[ \t]*[+-]\d{1,2}(?::?\d{2})?)?(?P=q)[ \t]*\r?")
# Lines that could give a date this cannot see: a quoted (`"date":`), complex (`? date`),
# flow (`{date: …}`) or merged (`<<: *defaults`) key, a list; a TOML string over lines.
UNSURE_YAML = (*"\"'?{[&*!%@`|>-", "<<")
UNSURE_TOML = ("\"", "'")
TOML_STRINGS = ('"""', "'''")
JEKYLL_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-.+$")  # content.JEKYLL_NAME
# An unzoned day is midnight where the site is, and a time and an offset add at most 38
# hours: a day two days before the window's start is before it in every zone.
MARGIN = timedelta(days=2)


def older_than(since: datetime) -> date:
    """The day before which a file's dates are surely before `since` (UTC or zoned)."""
    return since.astimezone(UTC).date() - MARGIN


def latest_day(front: str, toml: bool, file: str) -> date | None:
    """The latest day the front matter's date fields name (the article is new then, or
    when its file name says if they are absent), or None when that is not certain."""
    lines = top_lines(front, toml)
    if lines is None:
        return None
    values = [match[1] for line in lines
              if line.startswith(DATE_KEYS) and (match := DATE_LINE.fullmatch(line))]
    days = [day_of(value) for value in values] if values else [file_day(file)]
    return None if None in days else max(day for day in days if day is not None)


def top_lines(front: str, toml: bool) -> list[str] | None:
    """The lines that hold the front matter's top-level keys (TOML's before its first
    table), or None when a line could hide one."""
    if toml and any(quotes in front for quotes in TOML_STRINGS):
        return None
    lines = front.split("\n")
    if toml:
        lines = list(itertools.takewhile(lambda line: not line.lstrip().startswith("["), lines))
    unsure = UNSURE_TOML if toml else UNSURE_YAML
    return None if any(line.startswith(unsure) for line in lines) else lines


def day_of(value: str) -> date | None:
    match = ISO_DAY.fullmatch(value)
    return checked_day(*match.group(2, 3, 4)) if match else None


def file_day(file: str) -> date | None:
    """A Jekyll post's day from its name (`2021-03-04-slug.md`); a page bundle's
    `index.md` is named by its folder, which this does not read."""
    name = os.path.basename(file)
    stem = os.path.splitext(name)[0]
    match = None if name.lower() in BUNDLE_NAMES else JEKYLL_DAY.match(stem)
    return checked_day(*match.groups()) if match else None


def checked_day(year: str, month: str, day: str) -> date | None:
    try:
        found = date(int(year), int(month), int(day))
    except ValueError:
        return None
    return found if FIRST_YEAR <= found.year <= LAST_YEAR else None
