"""A cache of loaded articles keyed by each file's modification time and size.

Parsing YAML front matter costs about 85 µs a file, so a 15,000-article site
takes seconds to load cold; a weekly cron run then re-reads only what changed.
The cache is a pickle in the user's cache folder: it is never shared or downloaded,
and a cache that cannot be read or written is ignored, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digest import __version__
from digest.fileio import write_atomically

# 2: unquoted dates read by parse_date (its messages differ); 3: no control characters in
# loaded text, years 1900 to 9000 only, excerpts from the first 2,000 characters
# 4: TOML noncharacters written as is are removed too
# 5: references decoded, excerpts by markdown-it, authors, aliases, warnings
CACHE_FORMAT = 7  # 6: the generators' URL rules; publish and expiry dates; 7: Older entries
Stamp = tuple[int, int]


@dataclass
class ArticleCache:
    path: Path | None
    fingerprint: str
    entries: dict[str, tuple[Stamp, Any]] = field(default_factory=dict)
    stamps: dict[str, Stamp] = field(default_factory=dict)
    dirty: bool = False

    @classmethod
    def open(cls, path: Path | None, options_key: str) -> ArticleCache:
        fingerprint = f"{CACHE_FORMAT}|{__version__}|{options_key}"
        return cls(path, fingerprint, read_entries(path, fingerprint))

    def lookup(self, files: Iterable[str]) -> dict[str, Any]:
        """The cached values of the `files` that have not changed since they were kept."""
        fresh = {}
        for file in files:
            self.stamps[file] = stamp_of(file)
            cached = self.entries.get(file)
            if cached is not None and cached[0] == self.stamps[file]:
                fresh[file] = cached[1]
        return fresh

    def put(self, file: str, value: Any) -> None:
        self.entries[file] = (self.stamps.get(file) or stamp_of(file), value)
        self.dirty = True

    def save(self) -> None:
        """Write atomically, dropping files that are gone; failures are ignored."""
        stale = self.entries.keys() - self.stamps.keys()
        if self.path is None or not (self.dirty or stale):
            return
        for key in stale:
            del self.entries[key]
        with contextlib.suppress(OSError):
            write_atomically(self.path, pickle.dumps((self.fingerprint, self.entries)))


def cache_path(content_dir: Path, environ: dict[str, str] | None = None) -> Path:
    """`$XDG_CACHE_HOME/digest/articles-<hash of the folder>.pickle` (default ~/.cache)."""
    env = os.environ if environ is None else environ
    root = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digest"
    name = hashlib.sha256(str(content_dir.resolve()).encode()).hexdigest()[:16]
    return root / f"articles-{name}.pickle"


def stamp_of(file: str) -> Stamp:
    try:
        status = os.stat(file)
    except OSError:
        return (-1, -1)
    return (status.st_mtime_ns, status.st_size)


def read_entries(path: Path | None, fingerprint: str) -> dict[str, tuple[Stamp, Any]]:
    if path is None or not path.is_file():
        return {}
    try:
        stored_fingerprint, entries = pickle.loads(path.read_bytes())
    except Exception:  # a corrupt or foreign cache is simply rebuilt
        return {}
    return entries if stored_fingerprint == fingerprint else {}
