"""SendGrid's event webhook: one signed request with 10,000 events, over real HTTP, into a
store of 5,000 subscribers; prints one line: events, body size, time, events per second,
and the time of the same batch replayed (every event a duplicate, nothing changed).

    python benchmarks/bench_webhook.py [--events 10000] [--small] [--db postgresql://…]

Target: 10,000 events in a few seconds (SendGrid posts batches of events as they come).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "benchmarks")]

from helpers import make_settings
from stores import add_db_argument, backend, dsn, fresh_store
from webhook_support import Signer, make_hooks_app, serving

from digest.ledger import Ledger, PlannedSegment
from digest.location import Location
from digest.render import Email
from digest.select import Window
from digest.store import NewSubscriber, open_store

ISSUE = "2026-W48"
READERS = 5_000
# per 20 events: what a week of a digest brings back
MIX = ["delivered"] * 9 + ["open"] * 6 + ["click"] * 3 + ["bounce", "unsubscribe"]


def events(count: int) -> list[dict[str, Any]]:
    batch = []
    for i in range(count):
        name = MIX[i % len(MIX)]
        email = f"reader{i % (READERS + 100)}@example{i % 89}.org"  # some unknown
        event: dict[str, Any] = {
            "email": email, "timestamp": 1_764_403_200 + i, "event": name,
            "sg_event_id": base64.urlsafe_b64encode(f"{name}-{i}".encode()).decode(),
            "sg_message_id": f"14c5d75ce93.dfd.{i:x}.filter0001.16648.5515E0B88.0",
            "smtp-id": f"<14c5d75ce93.dfd.{i:x}@ismtpd-555>", "category": ["digest", ISSUE],
            "issue": ISSUE, "segment": f"segment-{i % 13}"}
        if name == "open":
            event |= {"useragent": "Mozilla/5.0 (Macintosh)", "ip": "192.0.2.1"}
        elif name == "click":
            event |= {"url": f"https://bench.example.org/posts/story-{i % 200}",
                      "useragent": "Mozilla/5.0", "ip": "192.0.2.1"}
        elif name == "bounce":
            event |= {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 no such user"}
        batch.append(event)
    return batch


def populate(db: Location) -> None:
    with open_store(db) as store:
        store.insert([NewSubscriber(f"reader{i}@example{i % 89}.org") for i in range(READERS)],
                     "import")
        window = Window(datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
        Ledger(store).create(ISSUE, "weekly", window, [PlannedSegment(
            "all", (), ("story",), Email("Subject", "", "<html></html>", "text"),
            tuple(s.id for s in store.subscribers()))])


def signed_post(url: str, raw: bytes, signer: Signer) -> tuple[dict[str, int], float]:
    request = urllib.request.Request(url, data=raw, method="POST", headers=signer.headers(raw))
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    return answer, time.perf_counter() - started


def run(root: Path, count: int, db: Location) -> str:
    signer = Signer()
    settings = make_settings(root, sendgrid__webhook_public_key=signer.public,
                             store__path=dsn(db))
    populate(settings.store_path)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    raw = json.dumps(events(count)).encode()
    with serving(make_hooks_app(settings)) as base_url:
        first, seconds = signed_post(f"{base_url}/hooks/sendgrid", raw, signer)
        replay, replay_seconds = signed_post(f"{base_url}/hooks/sendgrid", raw, signer)
    if first["received"] != count or replay["duplicates"] != count:
        raise SystemExit(f"unexpected answers: {first} then {replay}")
    return (f"webhook ({backend(db)}): {count} events in {seconds:.2f} s "
            f"({count / seconds:.0f} events/s), "
            f"{len(raw) / 1e6:.1f} MB, {first['status_changes']} status changes; "
            f"replayed in {replay_seconds:.2f} s, nothing changed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--small", action="store_true", help="CI size: 500 events")
    add_db_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fresh_store(args.db, Path(tmp)) as db:
        print(run(Path(tmp), 500 if args.small else args.events, db))


if __name__ == "__main__":
    main()
