"""Write previews: the rendered parts of an issue as files for people to look at."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import jinja2

from digest.config import Settings
from digest.errors import DigestError
from digest.fileio import write_atomically
from digest.pipeline import Built, SegmentBuild
from digest.quality import Finding
from digest.site_files import FOLDER, SiteFiles
from digest.transports import Message, Recipient, list_unsubscribe_headers
from digest.transports.files import build_eml

INDEX = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True
).get_template("preview_index.html.j2")


def write_preview(built: Built, out: Path, name: str | None = None,
                  site: SiteFiles | None = None) -> tuple[Path, Path]:
    """`<out>/<name>.html` and `<out>/<name>.txt`; `name` defaults to the issue key. With
    `site`, the HTML shows the site's images from local copies (`site.copy_to` writes them)."""
    stem = safe_name(name or built.issue.key)
    html_path, text_path = out / f"{stem}.html", out / f"{stem}.txt"
    html = site.localise(built.email.html, f"{FOLDER}/") if site else built.email.html
    write(html_path, html)
    write(text_path, built.email.text)
    return html_path, text_path


def write_segment_previews(
    main: Built, segments: Sequence[SegmentBuild], out: Path, site: SiteFiles | None = None
) -> list[tuple[Path, Path]]:
    """One preview per segment that has articles: `<out>/<key>--<segment>.html/.txt`."""
    return [
        write_preview(item.built, out, variant_stem(main.issue.key, item.segment.slug), site)
        for item in segments
        if item.built is not None
    ]


def write_index(
    main: Built,
    segments: Sequence[SegmentBuild],
    out: Path,
    shots: Mapping[str, Sequence[str]] | None = None,
    checks: Mapping[str, Sequence[Finding]] | None = None,
) -> Path:
    """`<out>/index.html`: every variant with its subscribers, articles, size, subject and
    quality findings, and the screenshots taken of it (both keyed by file stem)."""
    key = main.issue.key
    rows = [row("(whole issue)", "every category", None, main, variant_stem(key), shots or {})]
    rows += [
        row(item.segment.slug, item.segment.label, len(item.segment.recipients), item.built,
            variant_stem(key, item.segment.slug), shots or {})
        for item in segments
    ]
    for item in rows:
        item["checks"] = (checks or {}).get(str(item["stem"]))
    index = out / "index.html"
    write(index, INDEX.render(key=main.issue.key, rows=rows))
    return index


def row(name: str, label: str, subscribers: int | None, built: Built | None, stem: str,
        shots: Mapping[str, Sequence[str]]) -> dict[str, object]:
    common = {"name": name, "label": label, "stem": stem,
              "subscribers": "" if subscribers is None else subscribers}
    if built is None:
        return {**common, "articles": 0, "size": "", "subject": "nothing this time: skipped",
                "html": None, "text": None, "shots": []}
    return {**common, "articles": len(built.issue.articles),
            "size": f"{built.email.size / 1024:.1f} KB", "subject": built.email.subject,
            "html": f"{stem}.html", "text": f"{stem}.txt", "shots": list(shots.get(stem, []))}


def write(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def variant_stem(key: str, segment: str | None = None) -> str:
    """The file name, without extension, of an issue's preview or one segment's."""
    stem = safe_name(key)
    return f"{stem}--{segment}" if segment else stem


def safe_name(name: str) -> str:
    """Issue keys are safe already (`2026-W48`, `2026-11-01..2026-11-07`); keep them so."""
    return "".join(c if c.isalnum() or c in "-._" else "-" for c in name)


def write_eml_files(settings: Settings, main: Built, segments: Sequence[SegmentBuild],
                    out: Path) -> list[Path]:
    """`<out>/<stem>.eml`: each variant as the RFC 5322 message a reader would get
    (multipart/alternative, text first, List-Unsubscribe headers), to open in a mail client."""
    key = main.issue.key
    variants = [(variant_stem(key), main)] + [
        (variant_stem(key, item.segment.slug), item.built)
        for item in segments if item.built is not None]
    paths = []
    for stem, built in variants:
        path = out / f"{stem}.eml"
        message = preview_message(settings, built, main.issue.key)
        data = build_eml(message, message.recipients[0],
                         message_id=f"<{stem}@preview.invalid>", date=datetime.now(UTC))
        write_bytes(path, data)
        paths.append(path)
    return paths


def preview_message(settings: Settings, built: Built, key: str) -> Message:
    name, address = settings.sender
    unsubscribe = settings.unsubscribe_url("preview")
    sample = Recipient("reader@example.com", "A Reader", {},
                       list_unsubscribe_headers(unsubscribe, settings.text("unsubscribe.mailto")))
    return Message(
        subject=built.email.subject, html=built.email.html, text=built.email.text,
        from_email=address or f"newsletter@{urlsplit(settings.base_url).hostname}",
        from_name=name or settings.site_name, reply_to=settings.text("email.reply_to") or None,
        recipients=(sample,), categories=("digest", key), custom_args={"issue": key})


def write_bytes(path: Path, data: bytes) -> None:
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise DigestError(f"cannot write {path}: {exc.strerror}") from None
