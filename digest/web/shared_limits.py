"""Rate limits counted in the store, so every worker and host enforces one limit.

`SharedLimiter.allow(key)` is one `Store.hit` on the request's store, under a name per limiter
(`address`, `client`) so the two never share a count. The store keeps only a hash of
the key and deletes expired hits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from digest.store import Store

Limit = tuple[int, float]  # at most `count` events per `seconds`


class Limiter(Protocol):
    def allow(self, key: str) -> bool: ...


class SharedLimiter:
    def __init__(self, name: str, limits: Sequence[Limit],
                 store: Callable[[], Store]) -> None:
        if not limits or any(count < 1 or seconds <= 0 for count, seconds in limits):
            raise ValueError("each limit needs a count of at least 1 and a positive period")
        self.name, self.limits, self.store = name, tuple(limits), store

    def allow(self, key: str) -> bool:
        """Whether one more event for `key` is within every limit; if so, it is counted."""
        return self.store().hit(f"{self.name}\x00{key}", self.limits)
