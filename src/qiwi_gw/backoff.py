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
    """Tells the dispatcher how many deliveries it may start, from the backend's health.

    Only signs that the backend as a whole is down count (see ``webhook.Verdict``):
    a payment the backend rejects says the backend is up. Closed: as many
    deliveries as free slots allow. Open (the last ``threshold`` signs were all
    "down"): one round of at most ``probe_size`` deliveries per interval, the
    interval doubling while probes fail. Any sign of life closes it.
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
        self._consecutive_down = 0
        self._rounds = 0
        self._next_round_at = 0.0

    @property
    def is_open(self) -> bool:
        return self._consecutive_down >= self._threshold

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
        """None while closed; else how long until the next probe round may start."""
        if not self.is_open:
            return None
        return max(0.0, self._next_round_at - self._clock())

    def backend_up(self) -> bool:
        """The backend answered; True when that ends an outage (the breaker was open)."""
        was_open = self.is_open
        self._consecutive_down = 0
        self._rounds = 0
        self._next_round_at = 0.0
        return was_open

    def backend_down(self) -> None:
        self._consecutive_down += 1
        if self._consecutive_down == self._threshold:
            self._next_round_at = self._clock() + retry_delay(1, self._minimum, self._maximum)
