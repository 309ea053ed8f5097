"""Helpers that tests import: stand-ins for QIWI and the merchant's backend."""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestServer
from yarl import URL


async def result_of(response: ClientResponse) -> dict[str, str]:
    """The XML answer's elements by name; fails the test when it is not well-formed XML."""
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(await response.read())
    assert root.tag == "response"
    return {child.tag: child.text or "" for child in root}


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
