"""Load problems as a reader of `preview` and `check` wants them: when most files of a
folder fail for the same reason, one line saying so, with the likely cause and what fixes
it, instead of hundreds of identical lines above the summary."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from digest.content import Problem, folder_of

PATTERN_FROM = 5  # files failing the same way before they are one line
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|0x[0-9a-f]+|\d+")  # what differs from file to file

# (field, start of the message) → (what the files lack, likely cause and fix)
HINTS: dict[tuple[str | None, str], tuple[str, str]] = {
    ("date", "missing"): (
        "have no date",
        "likely cause: the site keeps its dates outside the front matter; add a `date` "
        "field, name the files YYYY-MM-DD-slug.md, or (Zola) give each page a `path` "
        "starting YYYY/MM/DD/"),
    ("title", "missing"): (
        "have no title",
        "likely cause: these are not articles (partials, data or section pages); point "
        "content.dir (or --content) at the folder of posts"),
    (None, "no front matter"): (
        "have no front matter",
        "likely cause: this is not the site's posts folder (docs, notes, a README tree); "
        "set content.dir (or --content) to the folder of posts"),
    (None, "not valid UTF-8"): (
        "are not UTF-8",
        "likely cause: the files were saved in a legacy encoding; save them as UTF-8"),
    ("date", "cannot read"): (
        "have a date digest cannot read",
        "likely cause: the site writes dates in its own format; write them as YYYY-MM-DD "
        "or an ISO 8601 date-time"),
}


@dataclass(frozen=True)
class Pattern:
    """Files of one folder failing with one problem."""

    folder: str
    example: Problem  # the first file's
    files: int
    total: int

    def __str__(self) -> str:
        lacking, hint = hint_for(self.example.field, self.example.message)
        text = (f"{self.folder}: {self.files} of {self.total} files {lacking} and were "
                f"skipped, such as {self.example}")
        return f"{text}; {hint}" if hint else text


def hint_for(field: str | None, message: str) -> tuple[str, str]:
    for (hint_field, start), (lacking, hint) in HINTS.items():
        if hint_field == field and message.startswith(start):
            return lacking, hint
    return "fail the same way", ""


def summarize(problems: Sequence[Problem], folder_files: Mapping[str, int]
              ) -> tuple[list[Pattern], list[Problem]]:
    """The patterns (over half of a folder's files and at least PATTERN_FROM, failing
    with the same problem, values aside), and the problems not in one, in order."""
    groups: dict[tuple[str, str | None, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault(key_of(problem), []).append(problem)
    patterns, covered = [], set()
    for (folder, _, _), members in groups.items():
        files = len({str(problem.path) for problem in members})
        total = folder_files.get(folder, files)
        if files >= PATTERN_FROM and files * 2 > total:
            patterns.append(Pattern(folder, members[0], files, total))
            covered |= {id(problem) for problem in members}
    return patterns, [problem for problem in problems if id(problem) not in covered]


def key_of(problem: Problem) -> tuple[str, str | None, str]:
    return (folder_of(str(problem.path)), problem.field,
            QUOTED.sub("…", problem.message))


def problem_lines(problems: Sequence[Problem], folder_files: Mapping[str, int]) -> list[str]:
    """One line per pattern, then one per remaining problem."""
    patterns, rest = summarize(problems, folder_files)
    return [*map(str, patterns), *map(str, rest)]
