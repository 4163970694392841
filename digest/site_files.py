"""The site's own images on disk, for previews: the emails keep their absolute addresses,
while `preview` and `serve` show the local copy of each image under `site.base_url`.

An image is found under `content.static_dir` (its address's path below `site.base_url`),
or beside the page of a page bundle (`posts/trip/index.md` with `cover: pic.jpg`).
Nothing outside those folders is ever read.
"""

from __future__ import annotations

import hashlib
import html as html_module
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from digest.content import Article
from digest.errors import DigestError

IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")', re.IGNORECASE)
FOLDER = "site-images"


@dataclass
class SiteFiles:
    base_url: str
    static_dir: Path | None
    bundles: dict[str, Path] = field(default_factory=dict)  # image address → file
    named: dict[str, Path] = field(default_factory=dict)  # name in FOLDER → file

    @classmethod
    def of(cls, base_url: str, static_dir: Path | None, articles: Iterable[Article]
           ) -> SiteFiles:
        bundles = {}
        for article in articles:
            image, page = article.cover_image, article.url.rstrip("/") + "/"
            if image and article.path and image.startswith(page):
                folder = Path(article.path).parent
                bundles[image] = folder / unquote(image.removeprefix(page))
        return cls(base_url.rstrip("/") + "/", static_dir, bundles)

    def find(self, address: str) -> Path | None:
        """The local file for `address`, or None when it is not one of the site's."""
        if address in self.bundles:
            return inside(self.bundles[address], self.bundles[address].parent)
        if self.static_dir is None or not address.startswith(self.base_url):
            return None
        below = unquote(urlsplit(address).path).removeprefix(urlsplit(self.base_url).path)
        return inside(self.static_dir / below.lstrip("/"), self.static_dir)

    def localise(self, html: str, prefix: str) -> str:
        """`html` with each site image's `src` pointing at `prefix` + a stable name."""
        def swap(match: re.Match[str]) -> str:
            file = self.find(html_module.unescape(match[2]))
            if file is None:
                return match[0]
            name = hashlib.sha256(str(file).encode()).hexdigest()[:16] + file.suffix.lower()
            self.named[name] = file
            return f"{match[1]}{prefix}{name}{match[3]}"

        return IMG_SRC.sub(swap, html)

    def copy_to(self, out: Path) -> None:
        """The files `localise` named, into `out/site-images/`."""
        try:
            for name, file in self.named.items():
                (out / FOLDER).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, out / FOLDER / name)
        except OSError as exc:
            raise DigestError(f"cannot copy {exc.filename}: {exc.strerror}") from None


def inside(file: Path, folder: Path) -> Path | None:
    """`file` if it exists and lies in `folder` (no `..` out of it), else None."""
    try:
        resolved = file.resolve()
        return resolved if resolved.is_relative_to(folder.resolve()) and resolved.is_file() \
            else None
    except (OSError, ValueError):
        return None
