"""Rate limits for what a caller can make the gateway write: rows of refused
requests, warnings about malformed ones, lines about caps being hit.

A token bucket per key (the caller's address) and one for everyone together, so
that neither one caller nor many can make the writing grow faster than a bounded
rate. What the limit drops is counted by the caller of ``allow``, never lost
silently.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# Addresses remembered at once; past this the longest-quiet ones are forgotten
# (forgetting only ever gives an address a full bucket again).
MAX_KEYS: Final = 10_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        total_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rate`` per key and second (bursts of up to one second's worth, at least
        one); ``total_rate`` for all keys together (default: unlimited)."""
        self._rate = rate
        self._burst = max(1.0, rate)
        self._total_rate = total_rate
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        now = clock()
        self._total = _Bucket(max(1.0, total_rate or 0.0), now)

    def allow(self, key: str) -> bool:
        """Take a token for ``key`` (and one of the total); False when either is empty."""
        now = self._clock()
        bucket = self._buckets.pop(key, None) or _Bucket(self._burst, now)
        self._buckets[key] = bucket  # most recent last
        if len(self._buckets) > MAX_KEYS:
            self._buckets.popitem(last=False)
        _refill(bucket, now, self._rate, self._burst)
        if bucket.tokens < 1:
            return False
        if self._total_rate is not None:
            _refill(self._total, now, self._total_rate, max(1.0, self._total_rate))
            if self._total.tokens < 1:
                return False
            self._total.tokens -= 1
        bucket.tokens -= 1
        return True


def _refill(bucket: _Bucket, now: float, rate: float, burst: float) -> None:
    bucket.tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
    bucket.at = now
