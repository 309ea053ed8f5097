"""Fixtures every test folder reaches; what they start lives in ``tests.support``.

The server is ``TEST_DATABASE_URL`` when set, else an embedded one (pgserver) in a
temporary directory, so the suite needs nothing installed beyond the project.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.support.app import ClientFactory, Switch, client_factory
from tests.support.app import database_switch as switch_of
from tests.support.database import migrated_template, own_database, postgres_server


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    with postgres_server("TEST_DATABASE_URL") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def template_database(server_dsn: str) -> Iterator[str]:
    """Migrated once; every test's database is a copy of it."""
    with migrated_template(server_dsn) as name:
        yield name


@pytest.fixture
def database_dsn(server_dsn: str, template_database: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    with own_database(server_dsn, template_database) as dsn:
        yield dsn


@pytest.fixture
def empty_database_dsn(server_dsn: str) -> Iterator[str]:
    """A database with no tables, for migration tests."""
    with own_database(server_dsn, None) as dsn:
        yield dsn


@pytest.fixture
def make_client(database_dsn: str, aiohttp_client: Any) -> ClientFactory:
    """Start the gateway app on this test's database; ``env`` as in the environment.

    The database is requested first so that it is dropped last, after the app's
    cleanup (which records webhook outcomes and releases claims) has run."""
    return client_factory(database_dsn, aiohttp_client)


@pytest.fixture
async def db(database_dsn: str) -> AsyncIterator[Any]:
    """A direct connection to this test's database, for setting up and checking rows."""
    connection = await asyncpg.connect(database_dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def database_switch(server_dsn: str, database_dsn: str) -> AsyncIterator[Switch]:
    """Turn this test's database off (refuse and cut every connection) and on again."""
    admin = await asyncpg.connect(server_dsn)
    switch = switch_of(admin, urlsplit(database_dsn).path.lstrip("/"))
    try:
        yield switch
    finally:
        await switch(True)
        await admin.close()
