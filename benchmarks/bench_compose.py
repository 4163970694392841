"""CPU time the courier spends making requests, in this process: composing each request
and its mail/send body for 100,000 readers in requests of 1,000 (each body dropped after,
as the courier does), the same with the client's json.dumps, and deriving the readers'
tokens (one by one, and together as `Store.addressees` does). Best of a few repeats: a busy
machine disturbs CPU time far less than wall time. One summary line each.

    python benchmarks/bench_compose.py [--readers 100000] [--repeat 7] [--small]
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from digest.config import SPEC, Settings
from digest.desk import compose
from digest.render import Email
from digest.store import Addressee, derive_token, derive_tokens
from digest.transports.sendgrid import request_body

PER_REQUEST = 1_000
SECRET = "a-benchmark-secret-of-enough-length"


def settings() -> Settings:
    values = {key: default for key, (_, default) in SPEC.items()}
    values.update({"site.name": "Bench News", "site.base_url": "https://news.example.org",
                   "email.from": "Bench News <news@example.org>"})
    return Settings(root=Path("/nonexistent"), values=values)


def requests_of(readers: int) -> list[tuple[Addressee, ...]]:
    everyone = [Addressee(f"reader{n}@example.org", f"Reader {n}" if n % 3 else "",
                          f"{n:08d}" + "Q" * 35) for n in range(readers)]
    return [tuple(everyone[start:start + PER_REQUEST])
            for start in range(0, readers, PER_REQUEST)]


def cpu(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        work()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--small", action="store_true", help="CI size: 5,000 readers, twice")
    args = parser.parse_args()
    if args.small:
        args.readers, args.repeat = 5_000, 2
    site, requests = settings(), requests_of(args.readers)
    email = Email("Subject", "", "<p>" + "x" * 60_000 + "</p>", "t" * 20_000)

    def bodies(encode: bool) -> None:
        for number, readers in enumerate(requests):
            body = request_body(compose(site, email, readers, key="2026-W48",
                                        segment="all", batch=number))
            if encode:
                json.dumps(body)

    made = cpu(lambda: bodies(False), args.repeat)
    encoded = cpu(lambda: bodies(True), args.repeat)
    print(f"compose: {args.readers} readers in {len(requests)} requests, compose and body "
          f"{made:.3f} s CPU, with the client's json.dumps {encoded:.3f} s (best of "
          f"{args.repeat})")
    salts = [secrets.token_bytes(16) for _ in range(args.readers)]
    each = cpu(lambda: [derive_token(SECRET, salt) for salt in salts], args.repeat)
    together = cpu(lambda: derive_tokens(SECRET, salts), args.repeat)
    print(f"tokens: {args.readers} readers, derive_token each {each:.3f} s CPU, "
          f"derive_tokens {together:.3f} s (best of {args.repeat})")


if __name__ == "__main__":
    main()
