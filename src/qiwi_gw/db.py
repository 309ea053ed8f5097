"""Connections to PostgreSQL: the pool for requests, single connections for LISTEN."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from qiwi_gw.settings import DatabaseSettings, mask_dsn

# What a query against an unreachable, restarting or overloaded database raises.
# Each of these means "try again later" (QIWI's code 1), never "the request was bad".
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection left mid-protocol by a server that cut it (pg_terminate_backend).
    asyncpg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)

APPLICATION_NAME = "qiwi-gw"

# What the store's functions run their statements on: a pool (one statement, any
# connection), a connection of the pool, or a connection of its own.
Executor = asyncpg.Pool | PoolConnectionProxy | asyncpg.Connection

Row = TypeVar("Row")

# qiwi_transaction keeps the original image's column names (operators query them);
# callers see QIWI's names for the same values.
PAYMENT_NAMES: Mapping[str, str] = {"id": "prv_txn", "code": "txn_id"}


def typed(
    kind: Callable[..., Row], record: asyncpg.Record, renamed: Mapping[str, str] | None = None
) -> Row:
    """``record`` as a ``kind`` (a dataclass whose fields are the statement's columns),
    with the columns in ``renamed`` under their new names."""
    names = renamed or {}
    return kind(**{names.get(column, column): value for column, value in record.items()})


def server_settings(settings: DatabaseSettings) -> dict[str, str]:
    return {"search_path": settings.schema, "application_name": APPLICATION_NAME}


def affected_rows(status: str) -> int:
    """Rows an INSERT/UPDATE/DELETE touched, from its command tag ("DELETE 42")."""
    return int(status.rsplit(" ", 1)[1])


async def create_pool(settings: DatabaseSettings, dsn: str) -> asyncpg.Pool:
    """A pool that opens connections lazily, so the gateway starts while the database is away."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=settings.pool_size,
        timeout=settings.timeout,
        command_timeout=settings.timeout,
        server_settings=server_settings(settings),
        # PgBouncer in transaction mode cannot keep prepared statements.
        statement_cache_size=0 if settings.behind_pooler else 100,
        reset=_keep_session,
    )
    return pool


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query.

    The default (UNLISTEN *, RESET ALL, CLOSE ALL, unlock advisory locks) costs a
    round trip per release. Pooled connections here never LISTEN, SET, open
    cursors or take advisory locks; asyncpg still rolls back an open transaction.
    """


async def connect(settings: DatabaseSettings, dsn: str) -> asyncpg.Connection:
    connection: asyncpg.Connection = await asyncpg.connect(
        dsn,
        timeout=settings.timeout,
        command_timeout=settings.timeout,
        server_settings=server_settings(settings),
    )
    return connection


def where(dsn: str) -> str:
    """``host:port`` of a DSN, for messages (no credentials)."""
    parts = urlsplit(dsn)
    try:
        if parts.hostname:
            host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
            return f"{host}:{parts.port or 5432}"
    except ValueError:
        pass
    return mask_dsn(dsn)
