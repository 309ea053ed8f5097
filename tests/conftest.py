"""Shared fixtures: a real PostgreSQL, a migrated template, a fresh database per test.

The server is ``TEST_DATABASE_URL`` when set, else an embedded one (pgserver) in a
temporary directory, so the suite needs nothing installed beyond the project.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from psycopg import sql

from qiwi_gw import migrations
from qiwi_gw.app import create_app
from qiwi_gw.settings import Settings

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
    with tempfile.TemporaryDirectory(prefix="qiwi-gw-test-") as directory:
        server = get_server(Path(directory) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="session")
def template_database(server_dsn: str) -> Iterator[str]:
    """Migrated once; every test's database is a copy of it."""
    name = f"qiwi_gw_tpl_{secrets.token_hex(4)}"
    with _admin(server_dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrations.apply(with_database(server_dsn, name), "public")
        yield name
    finally:
        with _admin(server_dsn) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def create_database(server_dsn: str, template: str | None) -> str:
    name = f"qiwi_gw_t_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _admin(server_dsn) as admin:
        admin.execute(statement)
    return name


def drop_database(server_dsn: str, name: str) -> None:
    with _admin(server_dsn) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database_dsn(server_dsn: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = create_database(server_dsn, template_database)
    try:
        yield with_database(server_dsn, name)
    finally:
        drop_database(server_dsn, name)


@pytest.fixture
def empty_database_dsn(server_dsn: str) -> Iterator[str]:
    """A database with no tables, for migration tests."""
    name = create_database(server_dsn, None)
    try:
        yield with_database(server_dsn, name)
    finally:
        drop_database(server_dsn, name)


@pytest.fixture
def make_client(database_dsn: str, aiohttp_client: Any) -> ClientFactory:
    """Start the gateway app on this test's database; ``env`` as in the environment.

    The database is requested first so that it is dropped last, after the app's
    cleanup (which records webhook outcomes and releases claims) has run."""

    async def make(
        http_client: aiohttp.ClientSession | None = None, **env: str
    ) -> TestClient[web.Request, web.Application]:
        settings = Settings.from_env({"DATABASE_URL": database_dsn, **env})
        app = create_app(settings, database_dsn, http_client=http_client)
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def db(database_dsn: str) -> AsyncIterator[Any]:
    """A direct connection to this test's database, for setting up and checking rows."""
    import asyncpg

    connection = await asyncpg.connect(database_dsn)
    try:
        yield connection
    finally:
        await connection.close()


Switch = Callable[[bool], Awaitable[None]]


@pytest.fixture
async def database_switch(server_dsn: str, database_dsn: str) -> AsyncIterator[Switch]:
    """Turn this test's database off (refuse and cut every connection) and on again."""
    import asyncpg

    name = urlsplit(database_dsn).path.lstrip("/")
    admin = await asyncpg.connect(server_dsn)

    async def switch(on: bool) -> None:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(on).lower()}')
        if not on:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )

    try:
        yield switch
    finally:
        await switch(True)
        await admin.close()
