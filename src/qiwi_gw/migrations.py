"""Schema migrations with yoyo, applied under yoyo's lock so replicas starting together
do not collide. yoyo speaks DB-API, so this module is synchronous; async callers run it
in a thread."""

from __future__ import annotations

import logging
from contextlib import suppress
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)

LOCK_TIMEOUT = 60


def migrations_dir() -> Path:
    """Migrations ship inside the wheel; in a source checkout they are at the top."""
    packaged = Path(str(resources.files("qiwi_gw") / "_migrations"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def expected_ids() -> list[str]:
    return sorted(migration.id for migration in read_migrations(str(migrations_dir())))


def _yoyo_url(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query["schema"] = schema
    if parts.path.strip("/"):
        # yoyo passes the URL's path to psycopg as the database name without undoing its
        # %-escapes ("my%20db"); its query parameters it unescapes and passes as they are,
        # and a dbname there wins over the path.
        query.setdefault("dbname", unquote(parts.path[1:]))
    return urlunsplit(parts._replace(scheme="postgresql+psycopg", query=urlencode(query)))


def ensure_schema(dsn: str, schema: str) -> None:
    # IF NOT EXISTS is not atomic: replicas starting together on a new database can both
    # pass the check; the loser finds the schema there.
    with (
        psycopg.connect(dsn, autocommit=True) as connection,
        suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema),
    ):
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def apply(dsn: str, schema: str, limit: int | None = None) -> list[str]:
    """Apply pending migrations (the first ``limit`` of them, or all); return their ids."""
    ensure_schema(dsn, schema)
    backend = get_backend(_yoyo_url(dsn, schema))
    migrations = read_migrations(str(migrations_dir()))
    try:
        with backend.lock(timeout=LOCK_TIMEOUT):
            pending = backend.to_apply(migrations)[:limit]
            backend.apply_migrations(pending)
    finally:
        backend.connection.close()
    applied = [migration.id for migration in pending]
    for migration_id in applied:
        logger.info("applied migration %s", migration_id)
    return applied


def rollback(dsn: str, schema: str, count: int = 1) -> list[str]:
    """Roll back the ``count`` latest migrations; return the ids rolled back."""
    backend = get_backend(_yoyo_url(dsn, schema))
    migrations = read_migrations(str(migrations_dir()))
    try:
        with backend.lock(timeout=LOCK_TIMEOUT):
            to_rollback = backend.to_rollback(migrations)[:count]
            backend.rollback_migrations(to_rollback)
    finally:
        backend.connection.close()
    return [migration.id for migration in to_rollback]
