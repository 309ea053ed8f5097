"""Helpers that tests import: stand-ins for QIWI and the merchant's backend."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

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
