"""The gateway application in-process, on aiohttp's test server, and its database switch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from qiwi_gw.app import create_app
from qiwi_gw.settings import Settings

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
Switch = Callable[[bool], Awaitable[None]]


def client_factory(database_dsn: str, aiohttp_client: Any) -> ClientFactory:
    """``make(http_client=None, **env)``: the gateway app on ``database_dsn``, ``env`` as in
    the environment, served by pytest-aiohttp's ``aiohttp_client``."""

    async def make(http_client: aiohttp.ClientSession | None = None, **env: str) -> Client:
        settings = Settings.from_env({"DATABASE_URL": database_dsn, **env})
        app = create_app(settings, database_dsn, http_client=http_client)
        client: Client = await aiohttp_client(app)
        return client

    return make


def database_switch(admin: asyncpg.Connection, name: str) -> Switch:
    """Turn database ``name`` off (refuse and cut every connection) and on again."""

    async def switch(on: bool) -> None:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(on).lower()}')
        if not on:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )

    return switch
