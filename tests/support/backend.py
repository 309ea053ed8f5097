"""The merchant's backend: real local HTTP servers receiving the gateway's webhooks.

- ``Backend``: answers by the request and its number, remembers every request (in-process
  tests); ``start_backend``: any handler on a path (a check URL, say);
- ``SwitchableBackend`` (``backend()``): a behaviour the scenario switches, stopped and
  started on its port (the chaos scenarios);
- ``CodeBackend`` (``running()``): answers by the payment's code (the delivery policy);
- ``Receiver`` (``receiver()``): accepts every webhook and counts payments (the bench);
- ``MockedResponse``: for aioresponses, when no server is wanted at all.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    started: float
    finished: float = 0.0


Respond = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def accept(request: web.Request, number: int) -> web.StreamResponse:
    return web.Response(text="ok")


class Backend:
    """A real local HTTP server as the merchant's webhook receiver.

    ``respond`` decides each answer from the request and its number (0, 1, ...);
    requests answered 2xx are in ``delivered``, every request in ``received``.
    """

    def __init__(self, respond: Respond = accept) -> None:
        self.respond = respond
        self.received: list[Received] = []
        self.delivered: list[Received] = []
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None

    async def __aenter__(self) -> Backend:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._server = TestServer(app)
        await self._server.start_server()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        await self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/hook"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        item = Received(json.loads(raw), raw, dict(request.headers), time.monotonic())
        number = len(self.received)
        self.received.append(item)
        try:
            response = await self.respond(request, number)
        finally:
            item.finished = time.monotonic()
        if 200 <= response.status < 300:
            self.delivered.append(item)
        async with self._changed:
            self._changed.notify_all()
        return response

    def delivered_codes(self) -> set[str]:
        return {item.body["code"] for item in self.delivered}

    async def wait_delivered(self, codes: set[str], within: float = 15.0) -> None:
        """Until every code is delivered; fails the test after ``within`` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: codes <= self.delivered_codes())

    async def wait_received(self, count: int, within: float = 15.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)


@dataclass
class Delivery:
    code: str
    started: float
    finished: float
    status: int


Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def accept_all(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


class SwitchableBackend:
    """A real local webhook receiver whose behaviour a scenario can switch."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = accept_all
        self.deliveries: list[Delivery] = []
        self.requests = 0
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = unused_port()

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
        body = await request.json()
        self.requests += 1
        response = await self.behaviour(request)
        if 200 <= response.status < 300:
            self.deliveries.append(
                Delivery(body["code"], started, time.monotonic(), response.status)
            )
            async with self._changed:
                self._changed.notify_all()
        return response

    def delivered(self) -> set[str]:
        return {d.code for d in self.deliveries}

    async def wait_delivered(self, codes: set[str], within: float) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: codes <= self.delivered())

    def overlapping(self) -> int:
        """Deliveries of one payment that were in flight at the same time."""
        by_code: dict[str, list[Delivery]] = {}
        for delivery in self.deliveries:
            by_code.setdefault(delivery.code, []).append(delivery)
        overlaps = 0
        for spans in by_code.values():
            spans.sort(key=lambda d: d.started)
            for earlier, later in itertools.pairwise(spans):
                if later.started < earlier.finished:
                    overlaps += 1
        return overlaps

    def duplicates(self) -> int:
        return len(self.deliveries) - len(self.delivered())


@asynccontextmanager
async def backend() -> AsyncIterator[SwitchableBackend]:
    server = SwitchableBackend()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


CodeAnswer = Callable[[str], Awaitable[web.StreamResponse]]


async def ok(_code: str) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Hit:
    code: str
    at: float
    finished: float
    status: int


@dataclass
class CodeBackend:
    """A local webhook receiver whose answer depends on the payment's code."""

    answer: CodeAnswer = ok
    hits: list[Hit] = field(default_factory=list)
    started: int = 0
    port: int = field(default_factory=unused_port)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        code = (await request.json())["code"]
        async with self.changed:
            self.started += 1
            self.changed.notify_all()
        response = await self.answer(code)
        async with self.changed:
            self.hits.append(Hit(code, started, time.monotonic(), response.status))
            self.changed.notify_all()
        return response

    def attempts(self, code: str) -> int:
        return sum(1 for hit in self.hits if hit.code == code)

    def delivered(self) -> dict[str, list[Hit]]:
        found: dict[str, list[Hit]] = {}
        for hit in self.hits:
            if 200 <= hit.status < 300:
                found.setdefault(hit.code, []).append(hit)
        return found

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(predicate)


@asynccontextmanager
async def running(backend: CodeBackend) -> AsyncIterator[CodeBackend]:
    app = web.Application()
    app.router.add_post("/hook", backend.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", backend.port).start()
    try:
        yield backend
    finally:
        await runner.cleanup()


@dataclass
class Receiver:
    """The merchant's backend as fast as it gets: accepts every webhook and counts distinct
    payments (the bench's, where the backend must cost nothing)."""

    codes: set[str] = field(default_factory=set)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.codes.add(body["code"])
        async with self.changed:
            self.changed.notify_all()
        return web.Response(text="ok")

    async def wait_count(self, count: int, within: float) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: len(self.codes) >= count)


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A ``Receiver`` on a free port; it and its webhook URL."""
    backend = Receiver()
    app = web.Application()
    app.router.add_post("/hook", backend.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield backend, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()
