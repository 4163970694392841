"""Write previews: the rendered parts of an issue as files for people to look at."""

from __future__ import annotations

from pathlib import Path

from digest.errors import DigestError
from digest.pipeline import Built


def write_preview(built: Built, out: Path, name: str | None = None) -> tuple[Path, Path]:
    """`<out>/<name>.html` and `<out>/<name>.txt`; `name` defaults to the issue key."""
    stem = safe_name(name or built.issue.key)
    html_path, text_path = out / f"{stem}.html", out / f"{stem}.txt"
    try:
        out.mkdir(parents=True, exist_ok=True)
        html_path.write_text(built.email.html, encoding="utf-8")
        text_path.write_text(built.email.text, encoding="utf-8")
    except OSError as exc:
        raise DigestError(f"cannot write the preview into {out}: {exc.strerror}") from None
    return html_path, text_path


def safe_name(name: str) -> str:
    """Issue keys are safe already (`2026-W48`, `2026-11-01..2026-11-07`); keep them so."""
    return "".join(c if c.isalnum() or c in "-._" else "-" for c in name)
