"""What every operator command shares: its errors, its job type, its connection."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from qiwi_gw import db, replicas
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import DatabaseUnavailableError, QiwiGwError, describe
from qiwi_gw.settings import DatabaseSettings, Settings, mask_dsn

APPLICATION_NAME = "qiwi-gw-cli"

# A command's work on an open connection; it returns the process's exit code.
Job = Callable[[asyncpg.Connection, Settings], Awaitable[int]]


class BadArgumentError(QiwiGwError):
    """An argument the command cannot use (exit code 2): a bad date, a missing file."""


class NotFoundError(QiwiGwError):
    """What the operator named is not in the database (exit code 1)."""


# The commands that only read: with PG_SLAVES they run on the first replica that answers.
READ_ONLY_COMMANDS = frozenset({"status", "pending", "attempts", "export", "reconcile"})
# Of those, the ones that read a replica only once it has caught up with the primary: a
# payment a replica has not replayed yet would be reported missing on our side.
CURRENT_COMMANDS = frozenset({"reconcile"})


@asynccontextmanager
async def connect(
    settings: DatabaseSettings, dsn: str, *, read_only: bool = False, current: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """One connection with the gateway's search_path; database errors become one line.

    ``read_only``: to a replica of PG_SLAVES when one is usable (``current``: and has
    caught up with the primary), else to ``dsn``; which one, and how stale, is said on
    stderr, so that stdout stays the answer (JSON, CSV). No command timeout on the primary:
    an export or a prune may rightly run for minutes (a replica's is in ``replicas``).
    """
    options: dict[str, Any] = {
        "server_settings": {**db.server_settings(settings), "application_name": APPLICATION_NAME},
        # PgBouncer in transaction mode cannot keep prepared statements.
        "statement_cache_size": 0 if settings.behind_pooler else 100,
    }
    try:
        if read_only and settings.replica_dsns:
            source = await replicas.connect_for_reading(settings, dsn, current=current, **options)
            print(f"qiwi-gw: {source.describe()}", file=sys.stderr)
            connection = source.connection
        else:
            connection = await asyncpg.connect(dsn, timeout=settings.timeout, **options)
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailableError(
            f"cannot connect to {mask_dsn(dsn)}: {describe(exc)}"
        ) from None
    try:
        yield connection
    except BrokenPipeError:
        raise  # stdout closed (``| head``): not the database's fault
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as exc:
        raise DatabaseUnavailableError(
            f"{describe(exc)} (is schema {settings.schema!r} migrated? run: qiwi-gw migrate)"
        ) from None
    except DATABASE_ERRORS as exc:
        raise DatabaseUnavailableError(f"database error: {describe(exc)}") from None
    finally:
        try:
            await connection.close(timeout=settings.timeout)
        except DATABASE_ERRORS:
            connection.terminate()
