"""The operator console beside the gateway, both in-process: pages read, forms posted."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from qiwi_gw import keys
from qiwi_gw.console import create_console_app
from tests.support.app import Client, ClientFactory

PAY = {"command": "pay", "txn_date": "20261129120000", "account": "42", "sum": "10.00"}
HOSTILE_ACCOUNT = "<img src=x onerror=alert(1)>"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Pair:
    """The QIWI application's client and its console's."""

    gateway: Client
    console: Client

    async def pay(self, txn_id: str, **params: str) -> None:
        response = await self.gateway.get("/payment", params={**PAY, "txn_id": txn_id, **params})
        assert "<result>0</result>" in await response.text()

    async def page(self, path: str, expect: int = 200, /, **params: str) -> str:
        response = await self.console.get(path, params=params or None, allow_redirects=False)
        text = await response.text()
        assert response.status == expect, text
        return text

    async def csrf(self, path: str = "/pending/resend") -> str:
        """The CSRF token the console's forms carry for this client's session."""
        return csrf_of(await self.page(path))


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field in the page"
    return found[1]


async def start_pair(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str, **env: str
) -> Pair:
    gateway = await make_client(**env)
    settings = gateway.app[keys.SETTINGS]
    console = await aiohttp_client(create_console_app(settings, database_dsn, gateway.app))
    return Pair(gateway, console)


async def raw_exchange(client: Client, head: str, body: bytes = b"", *, wait: float = 10.0) -> str:
    """Send ``head`` (a request line and headers, CRLF-terminated) and the start of a
    body, never the rest, and return the answer's status line and headers: proof that
    the console answered without waiting for (or reading) the body it was promised."""
    host, port = client.host, client.port
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.replace("{host}", f"{host}:{port}").encode() + b"\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(wait):
            answer = await reader.readuntil(b"\r\n\r\n")
        return answer.decode(errors="replace")
    finally:
        writer.close()
