"""The ``/metrics`` page: rendered for each ask, except in a storm.

Prometheus scrapes every 15-60 s and each scrape gets a page rendered for it. A
caller asking in a loop (a misconfigured scraper, or anyone with the
credentials) would otherwise have every metric rendered for every request, on
the event loop that answers QIWI: while the page is asked for more than
``HOT_ASKS`` times within ``INTERVAL``, it is rendered at most once per
``INTERVAL`` and the same bytes are sent again. The database-backed gauges have
their own, longer interval (``DatabaseGauges``).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from typing import Final

from qiwi_gw.metrics import DatabaseGauges, Metrics

INTERVAL: Final = 1.0
HOT_ASKS: Final = 10


class MetricsPage:
    def __init__(
        self,
        metrics: Metrics,
        gauges: Callable[[], DatabaseGauges],
        listening: Callable[[], bool],
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._gauges = gauges
        self._listening = listening
        self._interval = interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._body = b""
        self._rendered_at = -math.inf
        self._gauges_read_at = -math.inf
        # When the last HOT_ASKS asks came: all within the interval means a storm.
        self._asks: collections.deque[float] = collections.deque(maxlen=HOT_ASKS)

    def _reusable(self, now: float, gauges_read_at: float) -> bool:
        storm = len(self._asks) == HOT_ASKS and now - self._asks[0] < self._interval
        recent = now - self._rendered_at < self._interval
        return storm and recent and gauges_read_at == self._gauges_read_at

    async def body(self) -> bytes:
        """The page; in a storm, concurrent asks wait for one rendering."""
        self._asks.append(self._clock())
        gauges = self._gauges()
        # Cheap while the gauges are fresh: it reads the table only when they are not.
        await gauges.refresh()
        if self._reusable(self._clock(), gauges.read_at):
            return self._body
        async with self._lock:
            if not self._reusable(self._clock(), gauges.read_at):
                self._metrics.listener_connected.set(1 if self._listening() else 0)
                self._body = self._metrics.render()
                self._rendered_at = self._clock()
                self._gauges_read_at = gauges.read_at
        return self._body
