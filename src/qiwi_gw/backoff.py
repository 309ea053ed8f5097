"""Retry timing: per-row exponential backoff, and a breaker that turns a flood into probes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

JITTER = 0.2


def retry_delay(
    failures: int, minimum: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after ``failures`` failed ones (1, 2, ...): the minimum
    doubling up to the maximum, then +-20 % jitter so retries of many rows spread out."""
    exponent = min(max(failures - 1, 0), 64)
    base = min(maximum, minimum * 2.0**exponent)
    return float(base * (1 - JITTER + 2 * JITTER * rand()))


class Breaker:
    """Tells the dispatcher how many deliveries it may start.

    Closed (the backend answers): as many as free slots allow. Open (the last
    ``threshold`` attempts all failed): one round of at most ``probe_size``
    deliveries per retry interval, the interval doubling while probes fail.
    A single success closes it.
    """

    def __init__(
        self,
        *,
        probe_size: int,
        minimum: float,
        maximum: float,
        threshold: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe_size = probe_size
        self._minimum = minimum
        self._maximum = maximum
        self._threshold = threshold
        self._clock = clock
        self._consecutive_failures = 0
        self._rounds = 0
        self._next_round_at = 0.0

    @property
    def is_open(self) -> bool:
        return self._consecutive_failures >= self._threshold

    def budget(self, free_slots: int) -> int:
        """How many deliveries may start now."""
        if not self.is_open:
            return free_slots
        if self._clock() < self._next_round_at:
            return 0
        return min(free_slots, self._probe_size)

    def started(self, count: int) -> None:
        """``count`` deliveries started; while open, that spends the current round."""
        if self.is_open and count > 0:
            self._rounds += 1
            delay = retry_delay(self._rounds + 1, self._minimum, self._maximum)
            self._next_round_at = self._clock() + delay

    def seconds_until_round(self) -> float | None:
        if not self.is_open:
            return None
        return max(0.0, self._next_round_at - self._clock())

    def record(self, delivered: bool) -> bool:
        """Note an outcome; True when a success follows failures, i.e. an outage
        (or a row's own trouble) just ended and backed-off rows should be made due."""
        if delivered:
            recovered = self._consecutive_failures > 0
            self._consecutive_failures = 0
            self._rounds = 0
            self._next_round_at = 0.0
            return recovered
        self._consecutive_failures += 1
        if self._consecutive_failures == self._threshold:
            self._next_round_at = self._clock() + retry_delay(1, self._minimum, self._maximum)
        return False
