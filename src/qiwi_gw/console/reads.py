"""Where the console's pages read (PG_SLAVES) and write.

Pages that only read (the overview, the searches, a payment, pending) take a
connection of the reading pool: with PG_SLAVES, each of its connections is opened on
the first replica that answers, else on the primary (``replicas.connect_for_reading``,
the CLI's choice), and remembers which, for the overview to say. Resend, and anything
else that writes, takes the primary's pool. Without PG_SLAVES both are one pool.

A connection opened on the primary because the replica was down is closed once idle
for ``IDLE_SECONDS`` (and any after ``MAX_QUERIES``), so the replica is tried again
when it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from aiohttp import web

from qiwi_gw import db, replicas
from qiwi_gw.console import keys
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.settings import Settings

# The console's own connections, of each pool: it never takes one from /payment's.
POOL_SIZE = 4
IDLE_SECONDS = 30.0
MAX_QUERIES = 1000
APPLICATION_NAME = "qiwi-gw-console"
# Whether a connection of the reading pool still reaches its server.
PROBE = "SELECT 1"


class ReadConnection(asyncpg.Connection):
    """A connection of the reading pool, with where it was opened, in the CLI's words."""

    source: str = ""


def _options(settings: Settings) -> dict[str, Any]:
    database = settings.database
    return {
        "server_settings": {
            **db.server_settings(database),
            "application_name": APPLICATION_NAME,
        },
        # PgBouncer in transaction mode cannot keep prepared statements.
        "statement_cache_size": 0 if database.behind_pooler else 100,
    }


async def primary_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=POOL_SIZE,
        timeout=settings.database.timeout,
        # Pages read a page of rows; a resend of every pending row takes what it takes.
        command_timeout=None,
        **_options(settings),
    )
    return pool


async def reading_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """Connections on the first replica of PG_SLAVES that answers, else on ``dsn``."""
    options = {**_options(settings), "connection_class": ReadConnection}

    async def connect(*args: object, **kwargs: object) -> asyncpg.Connection:
        source = await replicas.connect_for_reading(settings.database, dsn, **options)
        connection = source.connection
        assert isinstance(connection, ReadConnection)
        connection.source = source.describe()
        return connection

    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=POOL_SIZE,
        connect=connect,
        connection_class=ReadConnection,
        max_inactive_connection_lifetime=IDLE_SECONDS,
        max_queries=MAX_QUERIES,
    )
    return pool


@asynccontextmanager
async def reading(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a page that only reads. Typed as a connection: the pool's
    proxy passes every call through to one.

    With PG_SLAVES, the connection is asked a ``SELECT 1`` first: a replica stopped or
    restarted since the connection was opened fails there, before the page's queries, and
    another is taken, or a new one opened (on the next replica that answers, else the
    primary)."""
    pool = request.app[keys.READ_POOL]
    if pool is request.app[keys.POOL]:
        async with pool.acquire() as proxy:
            yield cast(asyncpg.Connection, proxy)
        return
    # Every connection of the pool may be one to the stopped replica: as many tries.
    for tries_left in reversed(range(POOL_SIZE + 1)):
        proxy = await pool.acquire()
        try:
            await proxy.execute(PROBE)
        except DATABASE_ERRORS:
            await pool.release(proxy)  # the pool closes a connection that failed
            if not tries_left:
                raise
            continue
        try:
            yield cast(asyncpg.Connection, proxy)
        finally:
            await pool.release(proxy)
        return


@asynccontextmanager
async def writing(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """A connection on the primary, for Resend and anything else that writes."""
    async with request.app[keys.POOL].acquire() as proxy:
        yield cast(asyncpg.Connection, proxy)


def source_of(request: web.Request, connection: asyncpg.Connection) -> str | None:
    """What the overview says about where it read: None without PG_SLAVES."""
    if not request.app[keys.SETTINGS].database.replica_dsns:
        return None
    return cast(ReadConnection, connection).source or None
