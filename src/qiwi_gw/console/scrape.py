"""``/metrics`` on the operator listener: the body rendered at most once a second,
and scrapes answered at most ``RATE`` times a second.

Rendering every histogram and counter is milliseconds of the event loop's time;
a hundred scrapers in a loop made that the loop's whole time, and ``/payment``
waited (pay median 6 ms to 258 ms). Prometheus scrapes every 15-60 s: a body a
second old is as good as a fresh one, and a storm costs one rendering a second.
Even a cached answer costs its request's parsing and writing: a hundred clients
asking in a loop still took 6,000 answers a second from the loop (pay median 3.6 ms
to 37 ms), so scrapes past ``RATE`` a second wait their turn, holding only a timer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import hdrs, web

MAX_AGE = 1.0
# Scrapes answered a second, all callers together: a hundred Prometheus servers
# scraping every 15 s ask 7 a second.
RATE = 50.0


@dataclass(frozen=True)
class Scrape:
    body: bytes
    content_type: str

    def response(self) -> web.Response:
        return web.Response(body=self.body, headers={hdrs.CONTENT_TYPE: self.content_type})


class ScrapeCache:
    """The last rendering, made again when older than ``max_age``; concurrent scrapers
    wait for one rendering instead of each making their own."""

    def __init__(
        self,
        render: Callable[[], Awaitable[web.Response]],
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render = render
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._scrape: Scrape | None = None
        self._made_at = -math.inf

    def _fresh(self) -> Scrape | None:
        if self._clock() - self._made_at < self._max_age:
            return self._scrape
        return None

    async def get(self) -> Scrape:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
            response = await self._render()
            assert isinstance(response.body, bytes)
            self._scrape = Scrape(
                response.body, response.headers.get(hdrs.CONTENT_TYPE, "text/plain")
            )
            self._made_at = self._clock()
            return self._scrape


class Pacer:
    """Turns at most ``rate`` a second, first come first served: a caller past that
    waits for its turn; one who leaves (a closed connection) gives its place up."""

    def __init__(self, *, rate: float = RATE, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._lock = asyncio.Lock()
        self._next = -math.inf

    async def turn(self) -> None:
        async with self._lock:
            delay = self._next - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = self._clock() + self._interval
