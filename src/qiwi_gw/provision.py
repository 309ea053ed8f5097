"""The configured database, created when its server does not have it yet.

The original image created ``PG_DATABASE`` at start when it was missing, through the
direct connection (``PG_REAL_HOST``), and operators rely on it. This is synchronous
psycopg, like the migrations that run right after it.

Whether the database is missing is never read from a failed connection's message, which
is in the server's language: ``probe`` asks for a session through asyncpg, which reads the
server's SQLSTATE (libpq keeps it to itself), and only ``3D000`` (the database does not
exist) leads to the maintenance database. A wrong password so costs one failed login per
attempt, not three, on servers that lock accounts out.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import asyncpg
import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from qiwi_gw.errors import ConfigError, first_line

logger = logging.getLogger(__name__)

# Where a role that may connect anywhere can always connect; template1 exists even where
# an administrator dropped postgres.
MAINTENANCE_DATABASES = ("postgres", "template1")
CONNECT_TIMEOUT = 10
# CREATE DATABASE copies template1 and, once other sessions connected to it have not left
# within 5 s, refuses: an administrator's psql on template1 blocks it. The gateway waits a
# random moment up to this long, its session closed, and tries again.
TEMPLATE_BUSY_PAUSE = 0.5
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


class Reach(enum.Enum):
    """What asking for one session on a DSN found."""

    OPEN = "a session opened"
    MISSING = "the server says the database does not exist"
    REFUSED = "the server refused the session"
    UNKNOWN = "no server's answer"


@dataclass(frozen=True)
class Probe:
    reach: Reach
    # REFUSED: the server's own words (no password in them: the server never repeats it).
    problem: str | None = None


def probe(dsn: str) -> Probe:
    """Open and close one session on ``dsn``. UNKNOWN when no server answered (refused,
    unknown host, timeout) or asyncpg could not use the DSN: the caller's own connection
    then says why, in libpq's words. Runs in a thread of its own: callers are synchronous,
    some of them inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, _probe(dsn)).result()


async def _probe(dsn: str) -> Probe:
    try:
        connection = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except asyncpg.InvalidCatalogNameError:
        return Probe(Reach.MISSING)
    except asyncpg.PostgresError as exc:
        return Probe(Reach.REFUSED, " ".join(str(exc).split()) or type(exc).__name__)
    except (TimeoutError, OSError, asyncpg.InterfaceError, ValueError):
        # No server answered, or asyncpg cannot use this DSN: libpq's to try and report.
        return Probe(Reach.UNKNOWN)
    await connection.close(timeout=CONNECT_TIMEOUT)
    return Probe(Reach.OPEN)


def create_if_missing(dsn: str) -> bool:
    """Create ``dsn``'s database unless its server has it.

    True when it exists now: created by this call, by another process meanwhile (replicas
    starting together), or there already. False when CREATE DATABASE found its template in
    use by another session: the caller tries again (this call has paused a random moment
    already). A ``psycopg.Error`` when no maintenance database answers;
    ``CreateDatabaseRefusedError`` when the role lacks CREATEDB.
    """
    with _maintenance_connection(dsn) as connection:
        database = str(conninfo_to_dict(dsn).get("dbname") or connection.info.user)
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if found is not None:
            return True
        try:
            create(connection, database)
        except errors.ObjectInUse as exc:
            busy = connection_problem(exc, dsn)
        else:
            return True
    logger.warning(
        "database %s not created yet: %s; trying again",
        sql.Identifier(database).as_string(),
        busy,
    )
    # Jitter, not a secret: replicas that collided should not collide again.
    time.sleep(random.uniform(0.0, TEMPLATE_BUSY_PAUSE))
    return False


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
        connection.execute(_create_statement(connection, name))
    except (errors.DuplicateDatabase, errors.UniqueViolation):
        # Replicas starting together: one creates it, the others find it created.
        logger.info("database %s was created meanwhile by another process", name.as_string())
        return False
    except errors.InsufficientPrivilege:
        raise CreateDatabaseRefusedError(database, role, server) from None
    logger.info("created database %s", name.as_string())
    return True


# The columns of pg_database that decide how a database encodes and sorts text, under
# every supported PostgreSQL's names (the ICU ones came in 15, renamed in 17); those
# a server lacks are absent from both sides.
_LOCALE_COLUMNS = [
    "encoding",
    "datcollate",
    "datctype",
    "datlocprovider",
    "daticulocale",
    "daticurules",
    "datlocale",
]
_TEMPLATES_ALIKE = """
SELECT t0.datistemplate
       AND (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(t0))
            WHERE key = ANY(%(columns)s))
         = (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(t1))
            WHERE key = ANY(%(columns)s))
FROM pg_database t0, pg_database t1
WHERE t0.datname = 'template0' AND t1.datname = 'template1'
"""


def _create_statement(
    connection: psycopg.Connection[tuple[object, ...]], name: sql.Identifier
) -> sql.Composed:
    """A plain ``CREATE DATABASE`` (a copy of template1, as the original image made it),
    unless this session is itself on template1: then every replica starting together is
    there too, each one's session makes the others' copy of template1 wait PostgreSQL's
    5 s and fail, and they can keep colliding. template0 takes no sessions, so copying it
    cannot be blocked; it is copied only where its encoding and locale (provider
    included) are template1's, so the database differs only by objects an administrator
    added to template1, which the gateway never uses. Elsewhere template1 is copied and
    a collision is tried again."""
    if connection.info.dbname == "template1":
        alike = connection.execute(_TEMPLATES_ALIKE, {"columns": _LOCALE_COLUMNS}).fetchone()
        if alike is not None and alike[0] is True:
            return sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(name)
    return sql.SQL("CREATE DATABASE {}").format(name)


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
    return masked(first_line(exc).removeprefix("connection failed: "), dsn)


def masked(text: str, dsn: str) -> str:
    """``text`` without ``dsn``'s password, as written in the DSN or decoded."""
    for password in sorted(_passwords(dsn), key=len, reverse=True):
        if len(password) >= _MASKABLE_PASSWORD:
            text = text.replace(password, "***")
    return text


def _passwords(dsn: str) -> set[str]:
    """The password libpq reads from ``dsn``, and as the URL writes it: where libpq cannot
    parse the DSN (a bad %-escape) its message quotes the written form."""
    found: set[str] = set()
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password is not None:
        found.add(str(password))
    try:
        written = urlsplit(dsn).password
    except ValueError:
        written = None
    if written is not None:
        found |= {written, unquote(written)}
    return found
