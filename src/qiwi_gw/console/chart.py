"""The overview's chart: payments stored and webhooks delivered per minute over
the last 24 hours, and the delivery lag, drawn as SVG on the server.

Its queries read a day of rows through indexes; on a busy gateway that is
hundreds of thousands of rows, so the result is kept for ``CACHE_SECONDS``
however often the overview is opened.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from qiwi_gw.store import reports

MINUTES = 24 * 60
CACHE_SECONDS = 30.0

# The drawing's own coordinates; the page scales it to its width.
WIDTH = 960
PLOT_LEFT = 48
PLOT_RIGHT = WIDTH - 8
COUNTS_TOP, COUNTS_BOTTOM = 10, 150
LAG_TOP, LAG_BOTTOM = 190, 270
HEIGHT = 300


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Per-minute series from ``start`` (naive UTC), and the SVG geometry to draw them."""

    start: datetime
    stored: list[int]
    delivered: list[int]
    lag: list[float | None]

    @property
    def counts_max(self) -> int:
        return max([*self.stored, *self.delivered, 1])

    @property
    def lag_max(self) -> float:
        return max([value for value in self.lag if value is not None] + [1.0])

    @property
    def stored_points(self) -> str:
        return _points(self.stored, self.counts_max, COUNTS_TOP, COUNTS_BOTTOM)

    @property
    def delivered_points(self) -> str:
        return _points(self.delivered, self.counts_max, COUNTS_TOP, COUNTS_BOTTOM)

    @property
    def lag_points(self) -> str:
        return _points(self.lag, self.lag_max, LAG_TOP, LAG_BOTTOM)

    @property
    def ticks(self) -> list[Tick]:
        """One every three hours, on the hour, labelled in UTC."""
        first = self.start.replace(minute=0) + timedelta(hours=1)
        ticks = []
        for hour in range(0, 24, 1):
            moment = first + timedelta(hours=hour)
            offset = int((moment - self.start).total_seconds() // 60)
            if offset < MINUTES and moment.hour % 3 == 0:
                ticks.append(Tick(_x(offset), moment.strftime("%H:%M")))
        return ticks

    @property
    def totals(self) -> tuple[int, int]:
        return sum(self.stored), sum(self.delivered)

    def as_json_object(self) -> dict[str, object]:
        """What the pointer read-out (static/chart.js) shows, minute by minute."""
        return {
            "start": self.start.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
            "left": PLOT_LEFT,
            "right": PLOT_RIGHT,
            "width": WIDTH,
            "stored": self.stored,
            "delivered": self.delivered,
            "lag": [None if value is None else round(value, 3) for value in self.lag],
        }


def _x(minute: int) -> float:
    return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * minute / (MINUTES - 1)


def _points(values: Sequence[float | None], top_value: float, top: int, bottom: int) -> str:
    """``x,y`` pairs for a polyline; a minute without a value sits on the axis."""
    scale = (bottom - top) / top_value
    return " ".join(
        f"{_x(minute):.1f},{bottom - (value or 0) * scale:.1f}"
        for minute, value in enumerate(values)
    )


def build(
    start: datetime,
    stored: Sequence[reports.StoredMinute],
    delivered: Sequence[reports.DeliveredMinute],
) -> Chart:
    """Place each minute's figures at its offset from ``start``; minutes with no row are 0."""
    counts_stored = [0] * MINUTES
    counts_delivered = [0] * MINUTES
    lag: list[float | None] = [None] * MINUTES
    for minute in stored:
        index = _index(start, minute.minute)
        if index is not None:
            counts_stored[index] = minute.stored
    for sent in delivered:
        index = _index(start, sent.minute)
        if index is not None:
            counts_delivered[index] = sent.delivered
            lag[index] = max(float(sent.lag_avg), 0.0)
    return Chart(start=start, stored=counts_stored, delivered=counts_delivered, lag=lag)


def _index(start: datetime, minute: datetime) -> int | None:
    index = int((minute - start).total_seconds() // 60)
    return index if 0 <= index < MINUTES else None


class ChartCache:
    """The last chart, recomputed when older than ``CACHE_SECONDS``; concurrent
    visitors wait for one computation instead of each starting their own."""

    def __init__(
        self, *, max_age: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._chart: Chart | None = None
        self._made_at = -math.inf

    async def get(self, connection: asyncpg.Connection) -> Chart:
        async with self._lock:
            if self._chart is None or self._clock() - self._made_at >= self._max_age:
                self._chart = await compute(connection)
                self._made_at = self._clock()
            return self._chart

    def forget(self) -> None:
        self._chart = None


async def compute(connection: asyncpg.Connection) -> Chart:
    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    start = now - timedelta(minutes=MINUTES - 1)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        stored = await reports.stored_per_minute(connection, start)
        delivered = await reports.delivered_per_minute(connection, start)
    return build(start, stored, delivered)
