"""In-process rate limits with bounded memory.

A `RateLimiter` keeps, for each key (an address, a client IP), the times of its last
few allowed events: at most as many as its largest limit, so a key costs a few floats.
Keys are kept in the order they were last allowed; expired ones are dropped from the
front on every call, and past `max_keys` the least recently allowed key is forgotten,
so memory stays bounded whatever a client sends.

The limits live in one process: each gunicorn worker counts on its own (N workers let
N times as much through) and a restart forgets them. For one small app that is enough;
a shared limit needs a shared store (Redis, or the proxy in front).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

Limit = tuple[int, float]  # at most `count` events per `seconds`


class RateLimiter:
    def __init__(self, limits: Sequence[Limit], *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not limits or any(count < 1 or seconds <= 0 for count, seconds in limits):
            raise ValueError("each limit needs a count of at least 1 and a positive period")
        self.limits = tuple(limits)
        self.max_keys = max_keys
        self._clock = clock
        self._depth = max(count for count, _ in limits)
        self._longest = max(seconds for _, seconds in limits)
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hits)

    def allow(self, key: str) -> bool:
        """Whether one more event for `key` is within every limit; if so, it is counted."""
        with self._lock:
            now = self._clock()
            self._forget_expired(now)
            stamps = self._hits.get(key)
            if stamps is not None and self._over(stamps, now):
                return False
            if stamps is None:
                stamps = self._hits[key] = deque(maxlen=self._depth)
            stamps.append(now)
            self._hits.move_to_end(key)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            return True

    def would_allow(self, key: str) -> bool:
        """Whether `allow(key)` would allow one more event now (nothing is counted)."""
        with self._lock:
            now = self._clock()
            stamps = self._hits.get(key)
            return stamps is None or not self._over(stamps, now)

    def _over(self, stamps: deque[float], now: float) -> bool:
        return any(sum(1 for t in stamps if now - t < seconds) >= count
                   for count, seconds in self.limits)

    def _forget_expired(self, now: float) -> None:
        """Keys are ordered by their newest event: drop from the front while expired."""
        while self._hits:
            stamps = next(iter(self._hits.values()))
            if now - stamps[-1] < self._longest:
                return
            self._hits.popitem(last=False)
