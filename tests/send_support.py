"""A small site and its readers for the tests that send: test_send, test_sync, test_stats."""

from pathlib import Path

from click.testing import CliRunner

from digest.cli import cli
from digest.ledger import Ledger
from digest.store import NewSubscriber, open_store

API_KEY = "SG.never-print-me.0123456789"
SECRET = "test-secret-0123456789"
NOW = "2026-11-29T08:00"
CATEGORIES = ["Work", "Tools", "Research", "Policy", "Health", "Culture"]


def write_site(root: Path, server_url: str = "http://127.0.0.1:9", extra: str = "",
               timeout: float = 10) -> Path:
    """A small site; `timeout` is long enough for a loaded CI machine unless a test times out."""
    (root / "digest.toml").write_text(
        '[site]\nname = "Send Test"\nbase_url = "https://send.example.org"\n'
        'timezone = "Europe/Berlin"\n'
        '[email]\nfrom = "Send Test <news@send.example.org>"\n'
        'postal_address = "1 Test Street, Testville"\n'
        f'[sendgrid]\napi_url = "{server_url}"\ntimeout = {timeout:g}\n' + extra)
    content = root / "content"
    content.mkdir()
    for day, category in enumerate(CATEGORIES, start=22):
        (content / f"2026-11-{day}-{category.lower()}-story.md").write_text(
            f"---\ntitle: A {category} story\ndate: '2026-11-{day}T10:00'\n"
            f"category: {category}\nexcerpt: What happened in {category} this week.\n---\nBody.\n")
    return root / "digest.toml"


def add_readers(root: Path, count: int, segments: int = 6) -> list[str]:
    """`count` weekly readers spread over `segments` category choices."""
    readers = [NewSubscriber(email=f"reader{i}@example.com", name=f"Reader {i}",
                             categories=(CATEGORIES[i % segments],), cadence="weekly",
                             status="active") for i in range(count)]
    with open_store(root / "digest.db") as store:
        store.insert(readers, "cli")
    return [r.email for r in readers]


def set_send_environment(monkeypatch) -> None:
    """The key, the secret, no stray overrides, and back-offs that do not really sleep."""
    monkeypatch.setattr("digest.transports.sendgrid.BACKOFF_BASE", 0.01)
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.delenv("SENDGRID_API_URL", raising=False)
    monkeypatch.delenv("DIGEST_DB", raising=False)


def digest(config: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def ledger_counts(root: Path, key: str = "2026-W48") -> dict[str, int]:
    with open_store(root / "digest.db") as store:
        return Ledger(store).counts(key)
