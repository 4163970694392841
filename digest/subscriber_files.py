"""Subscriber files: read CSV and the original site's `subscribers.json`, write both.

CSV: a header with `email` and any of `name,categories,cadence,status,created`;
categories separated by `;` or `|`. JSON: a list of
`{"email", "subscribedAt", "isActive", "preferences": {"frequency", "categories"}}`,
plus the optional `name` and `status` that `export` adds so nothing is lost.
Exported CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`,
`-`, `@`, a tab or a carriage return) get a leading `'`, which import takes off again.
A row is numbered as a spreadsheet numbers it (the CSV header is row 1), a JSON record
by its position in the list (from 1). Parsing is pure; only `read_subscribers` reads.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from digest.config import CONTROL
from digest.errors import DigestError, not_utf8
from digest.store import (
    CADENCES,
    STATUSES,
    Cadence,
    Status,
    Subscriber,
    as_cadence,
    as_status,
    email_key,
)
from digest.text import remove_invisible

CSV_COLUMNS = ("email", "name", "categories", "cadence", "status", "created")
CATEGORY_SEPARATORS = re.compile(r"[;|]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Row:
    """One subscriber as a file describes them; None means the file does not say."""

    number: int
    email: str
    name: str | None = None
    categories: tuple[str, ...] | None = None  # () means every category
    cadence: Cadence | None = None
    status: Status | None = None
    created: datetime | None = None


@dataclass(frozen=True)
class Problem:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass(frozen=True)
class Parsed:
    rows: tuple[Row, ...]
    bad: tuple[Problem, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def bad_rows(self) -> int:
        return len({problem.row for problem in self.bad})


def read_subscribers(path: Path) -> Parsed:
    """Read a CSV or JSON subscriber file (UTF-8, with or without a BOM)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise DigestError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DigestError(f"{path}: {not_utf8(exc)}") from None
    try:
        return parse_subscribers(text)
    except ValueError as exc:
        raise DigestError(f"{path}: {exc}") from None


def parse_subscribers(text: str) -> Parsed:
    """JSON if the text starts like JSON (a CSV header cannot), CSV otherwise."""
    text = text.removeprefix("\ufeff")
    return parse_site_json(text) if text.lstrip()[:1] in ("[", "{") else parse_csv(text)


# CSV


def parse_csv(text: str) -> Parsed:
    records = csv_records(text)
    header_row = next(records, None)
    if header_row is None:
        raise ValueError("empty file (expected a header: email,name,categories,cadence)")
    header = [cell.strip().lower() for cell in header_row[1]]
    if "email" not in header:
        raise ValueError(f"no 'email' column in the header {','.join(header_row[1])!r} "
                         "(expected email,name,categories,cadence)")
    warnings = tuple(f"ignored the unknown column {name!r}"
                     for name in header if name not in CSV_COLUMNS)
    rows: list[Row | list[Problem]] = []
    for number, cells in records:
        if len(cells) > len(header):
            rows.append([Problem(number, f"{len(cells)} fields, but the header has "
                                         f"{len(header)}")])
        else:
            fields = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
            rows.append(build_row(number, csv_fields(fields)))
    return collect(rows, warnings)


def csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) for each record that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ValueError(f"row {start}: {exc}") from None
        if any(cell.strip() for cell in cells):
            yield start, cells


def csv_fields(cells: Mapping[str, str]) -> dict[str, Any]:
    """An empty cell: no name, every category, the default cadence and status."""
    fields: dict[str, Any] = {key: unguarded(cells.get(key)) for key in CSV_COLUMNS}
    for key in ("cadence", "status", "created"):
        fields[key] = (fields[key] or "").strip() or None
    return fields


# The original site's JSON


def parse_site_json(text: str) -> Parsed:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    if not isinstance(data, list):
        raise ValueError("expected a list of subscribers, as in the site's subscribers.json")
    return collect(json_row(number, item) for number, item in enumerate(data, start=1))


def json_row(number: int, item: Any) -> Row | list[Problem]:
    if not isinstance(item, dict):
        return [Problem(number, f"not an object but {json.dumps(item)[:40]}")]
    preferences = item.get("preferences") or {}
    if not isinstance(preferences, dict):
        return [Problem(number, "preferences must be an object")]
    try:
        status = item.get("status") or json_status(item.get("isActive"))
    except ValueError as exc:
        return [Problem(number, str(exc))]
    return build_row(number, {
        "email": item.get("email"), "name": item.get("name"),
        "categories": preferences.get("categories"), "cadence": preferences.get("frequency"),
        "status": status, "created": item.get("subscribedAt"),
    })


def json_status(active: Any) -> str | None:
    if active is None:
        return None
    if not isinstance(active, bool):
        raise ValueError(f"isActive must be true or false, not {json.dumps(active)}")
    return "active" if active else "unsubscribed"


# One row, whatever the format


def build_row(number: int, fields: Mapping[str, Any]) -> Row | list[Problem]:
    """A checked row, or every problem it has."""
    values: dict[str, Any] = {}
    problems = []
    for key, parse in PARSERS.items():
        try:
            values[key] = parse(fields.get(key))
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))
    return problems or Row(number, **values)


def parse_email(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("no email address")
    if not isinstance(value, str):
        raise ValueError(f"the email address must be text, not {json.dumps(value)}")
    return checked_email(value)


def checked_email(text: str) -> str:
    """The normalized address, or ValueError saying what is wrong with it (no DNS)."""
    try:
        return validate_email(text.strip(), check_deliverability=False,
                              allow_smtputf8=False).normalized  # what mail can carry today
    except EmailNotValidError as exc:
        raise ValueError(f"bad address {text.strip()!r}: {exc}") from None


def parse_name(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"the name must be text, not {json.dumps(value)}")
    return checked_text(value, "the name") if value is not None else None


def checked_text(text: str, what: str) -> str:
    """`text` on one line (line breaks and tabs become spaces: a name goes into mail
    headers), without bidi or C1 controls (invisible, they only reorder or hide what a
    reader sees), unless it holds another control character or is not valid Unicode."""
    text = " ".join(remove_invisible(text).split())
    if bad := CONTROL.search(text):
        raise ValueError(f"{what} contains a control character ({bad.group()!r}): {text!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid text (bytes that are not UTF-8?): "
                         f"{text!r}") from None
    return text


def parse_categories(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return clean_categories(CATEGORY_SEPARATORS.split(value))
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return clean_categories(value)
    raise ValueError(f"categories must be a list of names, not {json.dumps(value)}")


def clean_categories(names: Iterable[str]) -> tuple[str, ...]:
    """Stripped, blanks dropped, the first spelling of each kept (case does not count)."""
    kept: dict[str, str] = {}
    for name in names:
        if name := checked_text(name, "a category"):
            kept.setdefault(name.casefold(), name)
    return tuple(kept.values())


def parse_cadence(value: Any) -> Cadence | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in CADENCES:
        raise ValueError(f"unknown cadence {value!r} (expected weekly or daily)")
    return as_cadence(value.strip().lower())


def parse_status(value: Any) -> Status | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in STATUSES:
        raise ValueError(f"unknown status {value!r} (expected {', '.join(STATUSES[:-1])} "
                         f"or {STATUSES[-1]})")
    return as_status(value.strip().lower())


def parse_created(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"bad date {value!r} (expected ISO 8601, e.g. "
                         "2025-06-03T18:57:08Z)") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"bad date {value!r} (out of range)") from None
    return moment


PARSERS = {"email": parse_email, "name": parse_name, "categories": parse_categories,
           "cadence": parse_cadence, "status": parse_status, "created": parse_created}


def collect(rows: Iterable[Row | list[Problem]], warnings: tuple[str, ...] = ()) -> Parsed:
    """Good rows and problems, with a second row for the same address marked a duplicate."""
    good: list[Row] = []
    bad: list[Problem] = []
    first: dict[str, int] = {}
    for row in rows:
        if isinstance(row, list):
            bad += row
        elif (seen := first.setdefault(email_key(row.email), row.number)) != row.number:
            bad.append(Problem(row.number, f"duplicate of row {seen} ({row.email})"))
        else:
            good.append(row)
    return Parsed(tuple(good), tuple(bad), warnings)


# Writing: what `export` prints, which `import` reads back unchanged


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_csv(subscribers: Iterable[Subscriber]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in subscribers:
        writer.writerow([guarded(s.email), guarded(s.name), guarded(";".join(s.categories)),
                         s.cadence, s.status, iso(s.created)])
    return out.getvalue()


def guarded(cell: str) -> str:
    """A cell a spreadsheet shows as text rather than running it as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def unguarded(cell: str | None) -> str | None:
    if cell is not None and cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def to_site_json(subscribers: Iterable[Subscriber]) -> str:
    records = [
        {"email": s.email, "name": s.name, "subscribedAt": iso(s.created),
         "isActive": s.status == "active", "status": s.status,
         "preferences": {"frequency": s.cadence, "categories": list(s.categories)}}
        for s in subscribers
    ]
    return json.dumps(records, indent=2, ensure_ascii=False) + "\n"


def as_dicts(subscribers: Iterable[Subscriber]) -> list[dict[str, Any]]:
    """For `list --json`."""
    return [{"email": s.email, "name": s.name, "categories": list(s.categories),
             "cadence": s.cadence, "status": s.status, "created": iso(s.created)}
            for s in subscribers]
