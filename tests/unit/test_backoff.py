"""backoff.py: per-row exponential retry delays, and the breaker that turns a flood into probes."""

from __future__ import annotations

import itertools

import pytest

from qiwi_gw.backoff import JITTER, Breaker, retry_delay

MIN = 1.0
MAX = 600.0


# --- retry_delay ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, 1.0),
        (2, 2.0),
        (3, 4.0),
        (4, 8.0),
        (10, 512.0),
        (11, 600.0),
        (12, 600.0),
        (1000, 600.0),
        (10**9, 600.0),
    ],
)
def test_doubles_from_minimum_up_to_maximum(failures: int, expected: float) -> None:
    assert retry_delay(failures, MIN, MAX, rand=lambda: 0.5) == pytest.approx(expected)


@pytest.mark.parametrize("failures", [0, -1, -100])
def test_no_failures_yet_gives_the_minimum(failures: int) -> None:
    assert retry_delay(failures, 0.25, 10.0, rand=lambda: 0.5) == pytest.approx(0.25)


def test_other_minimum() -> None:
    delays = [retry_delay(n, 0.05, 0.2, rand=lambda: 0.5) for n in range(1, 6)]
    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.2, 0.2])


@pytest.mark.parametrize("failures", [1, 3, 11, 50])
@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (1.0, 1.2), (0.5, 1.0), (0.25, 0.9)])
def test_jitter_is_plus_minus_twenty_percent(failures: int, rand: float, factor: float) -> None:
    base = min(MAX, MIN * 2 ** (failures - 1))
    delay = retry_delay(failures, MIN, MAX, rand=lambda: rand)
    assert delay == pytest.approx(base * factor)


def test_default_jitter_stays_in_bounds() -> None:
    delays = [retry_delay(3, MIN, MAX) for _ in range(500)]
    assert all(4.0 * (1 - JITTER) <= delay <= 4.0 * (1 + JITTER) for delay in delays)
    # It does jitter: 500 draws are not all the same.
    assert len(set(delays)) > 1


def test_returns_a_float() -> None:
    assert isinstance(retry_delay(2, 1, 10, rand=lambda: 0.5), float)


# --- Breaker -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(
    clock: FakeClock, *, probe_size: int = 2, threshold: int = 3, maximum: float = MAX
) -> Breaker:
    return Breaker(
        probe_size=probe_size, minimum=MIN, maximum=maximum, threshold=threshold, clock=clock
    )


def fail(breaker: Breaker, times: int) -> None:
    for _ in range(times):
        breaker.backend_down()


def within_jitter(value: float, base: float) -> bool:
    return base * (1 - JITTER) - 1e-9 <= value <= base * (1 + JITTER) + 1e-9


@pytest.mark.parametrize("free", [0, 1, 2, 16, 1000])
def test_closed_budget_is_the_free_slots(free: int) -> None:
    breaker = make_breaker(FakeClock())
    assert not breaker.is_open
    assert breaker.budget(free) == free
    assert breaker.seconds_until_round() is None


def test_closed_breaker_is_not_spent_by_starts() -> None:
    breaker = make_breaker(FakeClock())
    breaker.started(10)
    assert breaker.budget(16) == 16


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_threshold_consecutive_failures(threshold: int) -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, threshold=threshold)
    fail(breaker, threshold - 1)
    assert not breaker.is_open
    assert breaker.budget(16) == 16
    fail(breaker, 1)
    assert breaker.is_open
    assert breaker.budget(16) == 0


def test_success_between_failures_resets_the_count() -> None:
    breaker = make_breaker(FakeClock(), threshold=3)
    fail(breaker, 2)
    # Not an outage's end: the breaker never opened.
    assert breaker.backend_up() is False
    fail(breaker, 2)
    assert not breaker.is_open
    assert breaker.budget(5) == 5


def test_open_gives_nothing_until_the_first_round() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2)
    start = clock.now
    fail(breaker, 3)
    wait = breaker.seconds_until_round()
    assert wait is not None
    assert within_jitter(wait, MIN)
    clock.now = start + wait * 0.99
    assert breaker.budget(16) == 0
    clock.now = start + wait
    assert breaker.budget(16) == 2
    assert breaker.seconds_until_round() == 0.0


def test_round_gives_at_most_probe_size_and_at_most_free_slots() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=3)
    fail(breaker, 3)
    clock.now += MIN * (1 + JITTER)
    assert breaker.budget(100) == 3
    assert breaker.budget(2) == 2
    assert breaker.budget(0) == 0
    # Asking is not spending.
    assert breaker.budget(100) == 3


def test_starting_probes_spends_the_round() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2)
    fail(breaker, 3)
    clock.now += MIN * (1 + JITTER)
    assert breaker.budget(16) == 2
    breaker.started(2)
    assert breaker.budget(16) == 0
    wait = breaker.seconds_until_round()
    assert wait is not None
    assert within_jitter(wait, 2 * MIN)


def test_starting_nothing_does_not_spend_the_round() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2)
    fail(breaker, 3)
    clock.now += MIN * (1 + JITTER)
    breaker.started(0)
    assert breaker.budget(16) == 2


def test_failures_while_open_do_not_postpone_the_round() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    fail(breaker, 3)
    first = breaker.seconds_until_round()
    fail(breaker, 10)
    assert breaker.seconds_until_round() == first


def run_failing_rounds(clock: FakeClock, breaker: Breaker, rounds: int) -> list[float]:
    """Probe and fail ``rounds`` times; the waits between rounds."""
    waits = []
    for _ in range(rounds):
        wait = breaker.seconds_until_round()
        assert wait is not None
        waits.append(wait)
        clock.now += wait
        budget = breaker.budget(16)
        assert budget == 2
        breaker.started(budget)
        assert breaker.budget(16) == 0
        fail(breaker, budget)
        assert breaker.is_open
    return waits


def test_rounds_spread_out_while_probes_fail() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2, maximum=60.0)
    fail(breaker, 3)
    waits = run_failing_rounds(clock, breaker, 9)
    expected = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    for wait, base in zip(waits, expected, strict=True):
        assert within_jitter(wait, base), (waits, expected)
    # Jitter never overlaps two doublings, so each interval is longer than the one before.
    assert all(later > earlier for earlier, later in itertools.pairwise(waits[:7]))


def test_one_success_closes_it_and_reports_recovery() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2)
    fail(breaker, 3)
    run_failing_rounds(clock, breaker, 3)
    assert breaker.backend_up() is True
    assert not breaker.is_open
    assert breaker.budget(16) == 16
    assert breaker.seconds_until_round() is None


def test_only_closing_an_open_breaker_is_a_recovery() -> None:
    breaker = make_breaker(FakeClock(), threshold=3)
    assert breaker.backend_up() is False
    fail(breaker, 2)
    assert breaker.backend_up() is False
    fail(breaker, 3)
    assert breaker.backend_up() is True
    assert breaker.backend_up() is False


def test_reopening_starts_from_the_minimum_again() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, probe_size=2)
    fail(breaker, 3)
    run_failing_rounds(clock, breaker, 5)
    assert breaker.backend_up() is True
    fail(breaker, 3)
    assert breaker.is_open
    waits = run_failing_rounds(clock, breaker, 2)
    assert within_jitter(waits[0], MIN)
    assert within_jitter(waits[1], 2 * MIN)
