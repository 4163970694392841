"""What the ledger knows about each issue, for `digest issues`."""

from __future__ import annotations

from typing import Any

from digest.config import Settings
from digest.ledger import Ledger
from digest.store import open_store


def summaries(settings: Settings) -> list[dict[str, Any]]:
    """Every issue with its recipient counts, oldest window first."""
    with open_store(settings.store_path) as store:
        ledger = Ledger(store)
        return [ledger.summary(issue) for issue in ledger.issues()]
