"""A PostgreSQL server for the tests and the bench, a migrated template on it, and databases
cloned from the template (``CREATE DATABASE ... TEMPLATE``): fast, isolated and real."""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
from psycopg import sql

from qiwi_gw import migrations


def with_database(dsn: str, name: str) -> str:
    """``dsn`` with its database replaced by ``name``."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


@contextmanager
def postgres_server(variable: str, prefix: str = "qiwi-gw-test-") -> Iterator[str]:
    """The server in the environment's ``variable`` when set, else an embedded one (pgserver)
    in a temporary directory, so that nothing beyond the project need be installed."""
    configured = os.environ.get(variable)
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        server = get_server(Path(directory) / "pgdata", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


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


@contextmanager
def migrated_template(server_dsn: str) -> Iterator[str]:
    """A database migrated once, dropped at the end; its name."""
    name = f"qiwi_gw_tpl_{secrets.token_hex(4)}"
    with _admin(server_dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrations.apply(with_database(server_dsn, name), "public")
        yield name
    finally:
        drop_database(server_dsn, name)


@contextmanager
def own_database(server_dsn: str, template: str | None) -> Iterator[str]:
    """A database of the caller's own, a copy of ``template`` (or empty); its DSN."""
    name = create_database(server_dsn, template)
    try:
        yield with_database(server_dsn, name)
    finally:
        drop_database(server_dsn, name)


async def commits(server_dsn: str, database: str) -> int:
    """Transactions committed in ``database``, read from another one."""
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value: int = await connection.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database
        )
    finally:
        await connection.close()
    return value
