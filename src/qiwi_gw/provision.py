"""The configured database, created when its server does not have it yet.

The original image created ``PG_DATABASE`` at start when it was missing, through the
direct connection (``PG_REAL_HOST``), and operators rely on it. This is synchronous
psycopg, like the migrations that run right after it.

Whether the database exists is asked of the server (``pg_database``) rather than read
from the failed connection's message: that message is in the server's language.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from qiwi_gw.errors import ConfigError

logger = logging.getLogger(__name__)

# Where a role that may connect anywhere can always connect; template1 exists even where
# an administrator dropped postgres.
MAINTENANCE_DATABASES = ("postgres", "template1")
CONNECT_TIMEOUT = 10
# A password this short is masked in the DSN but not searched for in messages: replacing
# it everywhere would garble the message and hide nothing worth hiding.
_MASKABLE_PASSWORD = 4


class CreateDatabaseRefusedError(ConfigError):
    """The database is missing and the role may not create it: an operator must act."""

    def __init__(self, database: str, role: str, server: str) -> None:
        name = sql.Identifier(database).as_string()
        owner = sql.Identifier(role).as_string()
        super().__init__(
            "PG_DATABASE",
            f"database {name} does not exist on {server} and role {owner} may not create "
            f"databases: create it (CREATE DATABASE {name} OWNER {owner}) or let the role "
            f"create it (ALTER ROLE {owner} CREATEDB), then start again",
        )


def create_if_missing(dsn: str) -> bool:
    """Create ``dsn``'s database when its server answers and lacks it.

    True when this call created it. False when it exists (the connection failed for
    another reason) or another process created it meanwhile. A ``psycopg.Error`` when
    no maintenance database answers either; ``CreateDatabaseRefusedError`` when the role
    lacks CREATEDB.
    """
    with _maintenance_connection(dsn) as connection:
        database = str(conninfo_to_dict(dsn).get("dbname") or connection.info.user)
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        return found is None and create(connection, database)


def create(connection: psycopg.Connection[tuple[object, ...]], database: str) -> bool:
    """``CREATE DATABASE`` on a maintenance connection; False when it exists already."""
    role = connection.info.user
    server = f"{connection.info.host}:{connection.info.port}"
    name = sql.Identifier(database)
    logger.warning(
        "database %s does not exist on %s: creating it as role %s",
        name.as_string(),
        server,
        sql.Identifier(role).as_string(),
    )
    try:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(name))
    except (errors.DuplicateDatabase, errors.UniqueViolation):
        # Replicas starting together: one creates it, the others find it created.
        logger.info("database %s was created meanwhile by another process", name.as_string())
        return False
    except errors.InsufficientPrivilege:
        raise CreateDatabaseRefusedError(database, role, server) from None
    logger.info("created database %s", name.as_string())
    return True


def _maintenance_connection(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    failure: psycopg.Error | None = None
    for name in MAINTENANCE_DATABASES:
        try:
            return psycopg.connect(
                make_conninfo(dsn, dbname=name, connect_timeout=CONNECT_TIMEOUT), autocommit=True
            )
        except psycopg.OperationalError as exc:
            failure = exc
    assert failure is not None
    raise failure


def connection_problem(exc: BaseException, dsn: str) -> str:
    """Why a connection to ``dsn`` failed, in one line: the server's or the network's own
    words (password authentication failed, host unknown, connection refused), with any
    trace of the password removed."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    text = text.removeprefix("connection failed: ")
    password = _password(dsn)
    if password is not None and len(password) >= _MASKABLE_PASSWORD:
        text = text.replace(password, "***")
    return text


def _password(dsn: str) -> str | None:
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return None
    return None if password is None else str(password)
