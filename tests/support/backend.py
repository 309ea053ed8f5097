"""The merchant's backend: a real local HTTP server receiving the gateway's webhooks.

- ``Backend``: records every request (its code, body, when it started and finished, what it
  was answered) and answers each through a ``respond`` function the test may switch at any
  time; ``stop`` and ``start`` take it down and up on its port. The in-process tests, the
  chaos scenarios, the delivery policy and the bench all use it.
- ``start_backend``: any handler on a path (a check URL, say);
- ``MockedResponse``: for aioresponses, when no server is wanted at all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestServer, unused_port
from yarl import URL


async def start_backend(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    path: str = "/",
) -> TestServer:
    """A real local aiohttp server standing in for the merchant's backend."""
    app = web.Application()
    app.router.add_route("*", path, handler)
    server = TestServer(app)
    await server.start_server()
    return server


class MockedResponse(ClientResponse):
    """aioresponses 0.7.x builds responses without the ``stream_writer`` that aiohttp
    3.14 requires (pnuckowski/aioresponses#289); pass this as ``response_class``."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@dataclass
class Received:
    """One request to the backend; ``status`` is None while it is being answered."""

    number: int
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    started: float
    finished: float = 0.0
    status: int | None = None

    @property
    def code(self) -> str:
        return str(self.body["code"])


Respond = Callable[[Received], Awaitable[web.StreamResponse]]


async def accept(_received: Received) -> web.StreamResponse:
    return web.Response(text="ok")


class Backend:
    """A real local HTTP server on a port of its own as the merchant's webhook receiver.

    ``respond`` is looked up for each request, so a switch takes effect at once, and a
    ``respond`` that never returns makes the backend hang. Every request is in ``received``
    in the order it came; the requests answered 2xx by payment code in ``delivered()``.
    """

    def __init__(self, respond: Respond = accept) -> None:
        self.respond = respond
        self.received: list[Received] = []
        self._delivered: dict[str, list[Received]] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = unused_port()

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """The backend goes down: connections are refused until ``start``."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = await request.read()
        item = Received(len(self.received), json.loads(raw), raw, dict(request.headers), started)
        self.received.append(item)
        await self._notify()
        try:
            response = await self.respond(item)
            item.status = response.status
        except web.HTTPException as answer:  # a redirect, say
            item.status = answer.status
            raise
        finally:
            item.finished = time.monotonic()
            if item.status is not None and 200 <= item.status < 300:
                self._delivered.setdefault(item.code, []).append(item)
            await self._notify()
        return response

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def answered(self) -> list[Received]:
        """The requests answered so far, whatever the answer."""
        return [item for item in self.received if item.status is not None]

    def attempts(self, code: str) -> int:
        """Answered requests for the payment ``code``."""
        return sum(1 for item in self.received if item.code == code and item.status is not None)

    def delivered(self) -> dict[str, list[Received]]:
        """The requests answered 2xx, by payment code."""
        return {code: list(items) for code, items in self._delivered.items()}

    def overlapping(self) -> int:
        """Deliveries of one payment that were in flight at the same time."""
        overlaps = 0
        for items in self._delivered.values():
            spans = sorted(items, key=lambda item: item.started)
            for earlier, later in itertools.pairwise(spans):
                if later.started < earlier.finished:
                    overlaps += 1
        return overlaps

    def duplicates(self) -> int:
        """Deliveries beyond the first of each payment."""
        return sum(len(items) - 1 for items in self._delivered.values())

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        """Until ``predicate`` holds, checked at each request's start and end; fails the
        test after ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_received(self, count: int, within: float = 15.0) -> None:
        await self.wait_for(lambda: len(self.received) >= count, within)

    async def wait_delivered(self, codes: set[str], within: float = 15.0) -> None:
        await self.wait_for(lambda: codes <= self._delivered.keys(), within)

    async def wait_count(self, count: int, within: float) -> None:
        """Until ``count`` distinct payments are delivered."""
        await self.wait_for(lambda: len(self._delivered) >= count, within)
