"""What the ledger knows about each issue and its batches, for `digest issues`, and the
operator's finding about a batch whose outcome is unknown (`digest issues mark`)."""

from __future__ import annotations

from typing import Any

from digest.config import Settings
from digest.errors import DigestError
from digest.ledger import Batch, IssueRow, Ledger
from digest.runlock import Echo, quiet
from digest.runs import Options, Talk, open_run
from digest.store import open_store


def summaries(settings: Settings) -> list[dict[str, Any]]:
    """Every issue with its recipient counts, oldest window first."""
    with open_store(settings.store_path) as store:
        ledger = Ledger(store)
        return [ledger.summary(issue) for issue in ledger.issues()]


def batches(settings: Settings, key: str) -> tuple[IssueRow, list[Batch]]:
    """The issue `key` and each of its batches (segment, recipients, state, attempts,
    last reason or evidence)."""
    with open_store(settings.store_path) as store:
        ledger = Ledger(store)
        issue = ledger.require(key)
        return issue, ledger.batches(key)


def mark(settings: Settings, key: str, label: str, *, delivered: bool,
         echo: Echo = quiet) -> tuple[Batch, bool]:
    """Record what the operator found in SendGrid's activity feed about the unknown
    batch `label` (`segment#number`): delivered counts as accepted, not delivered is
    sent by the next run. Under the run lock of the issue's cadence, so no run is
    sending it meanwhile. Returns the batch as recorded and whether the issue is done."""
    with open_store(settings.store_path) as store:
        lock = Ledger(store).require(key).cadence
    with open_run(settings, lock, Options(), Talk(echo=echo)) as run:
        batch = run.ledger.batch(key, label)
        if not batch.unknown:
            raise DigestError(f"batch {label} of {key} is {batch.state}: only a batch whose "
                              "outcome is unknown can be marked")
        finding = "delivered" if delivered else "not delivered"
        run.ledger.resolve(batch.id, delivered=delivered,
                           evidence=f"marked {finding} by the operator")
        done = run.ledger.finish_if_complete(key)
        return run.ledger.batch(key, label), done

