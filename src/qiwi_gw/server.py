"""``serve`` and ``migrate``: find the database, bring its schema up to date, run."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from yoyo.exceptions import LockTimeout

from qiwi_gw import intake, migrations, provision
from qiwi_gw.app import create_app
from qiwi_gw.backoff import retry_delay
from qiwi_gw.console import operator_listener
from qiwi_gw.embedded import embedded_postgres
from qiwi_gw.errors import ConfigError, DatabaseUnavailableError, describe
from qiwi_gw.settings import Settings, mask_dsn

logger = logging.getLogger(__name__)

# Compose starts the database and the gateway together: wait for it this long.
STARTUP_WAIT = 60.0
# Waiting for the database at start: 0.5 s doubling to 5 s, jittered like every retry.
STARTUP_RETRY_MIN = 0.5
STARTUP_RETRY_MAX = 5.0
SHUTDOWN_TIMEOUT = 20.0


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed: the same asyncio, a faster loop under load."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The configured database's DSN, or a started embedded server's."""
    if settings.database.dsn is not None:
        logger.info(
            "database: %s (schema %s)", mask_dsn(settings.database.dsn), settings.database.schema
        )
        yield settings.database.dsn
        return
    if not settings.database.embedded_allowed:
        # Settings.from_env refuses this already; a Settings built otherwise must too.
        raise ConfigError("PG_HOST", "is not set (nor DATABASE_URL) and QIWI_EMBEDDED_DB is false")
    with embedded_postgres(settings.database.data_dir) as dsn:
        yield dsn


# Tries at creating a missing database before its absence counts as a failure. A try fails
# when another session stays on the template for PostgreSQL's 5 s (see provision); the
# other replicas' short maintenance sessions leave well within that.
CREATE_ATTEMPTS = 3


def migrate(dsn: str, schema: str, *, wait: float = 0.0) -> list[str]:
    """Create the database when it is missing, apply pending migrations, retrying while
    the database is not up yet; every retry says why, in the server's own words.

    A database that exists once this process has tried to create it (created here, or by
    a replica starting at the same time) is migrated at once, whatever ``wait`` is."""
    deadline = time.monotonic() + wait
    failures = 0
    creations = 0
    unmade = ""
    while True:
        try:
            found = provision.probe(dsn)
            if found.reach is provision.Reach.MISSING and creations < CREATE_ATTEMPTS:
                # Counted once CREATE DATABASE has run: a maintenance database that does not
                # answer raises, and is retried below like any other connection failure.
                made = provision.create_if_missing(dsn)
                creations += 1
                unmade = (
                    "the server still says so after it was created"
                    if made
                    else "another session stayed connected to its template"
                )
                continue
            if found.reach is provision.Reach.MISSING:
                problem = (
                    f"the database does not exist after {creations} tries to create it: {unmade}"
                )
            elif found.reach is provision.Reach.REFUSED:
                problem = provision.masked(found.problem or "refused", dsn)
            else:
                return migrations.apply(dsn, schema)
        except psycopg.errors.ProgrammingError as exc:
            # The database answers, but the schema is not what the migrations expect; or
            # libpq cannot parse the DSN (and quotes the part it cannot: the password, maybe).
            problem = provision.masked(describe(exc), dsn)
            raise DatabaseUnavailableError(f"cannot migrate: {problem}") from None
        except (psycopg.OperationalError, LockTimeout) as exc:
            problem = provision.connection_problem(exc, dsn)
        failures += 1
        delay = retry_delay(failures, STARTUP_RETRY_MIN, STARTUP_RETRY_MAX)
        if time.monotonic() + delay > deadline:
            raise DatabaseUnavailableError(f"cannot migrate {mask_dsn(dsn)}: {problem}")
        logger.warning(
            "database %s not ready: %s; retrying in %.1f s", mask_dsn(dsn), problem, delay
        )
        time.sleep(delay)


def serve(settings: Settings) -> None:
    with database(settings) as dsn:
        # Through PgBouncer (PG_REAL_HOST set) migrations go to the database itself:
        # DDL and yoyo's lock want a session of their own.
        migrate(settings.database.direct_dsn or dsn, settings.database.schema, wait=STARTUP_WAIT)
        app = create_app(settings, dsn)
        if settings.console.enabled:
            # The console and /metrics on their own listener, up and down with the gateway.
            app.cleanup_ctx.append(operator_listener(settings, dsn))
        logger.info("listening on %s:%d", settings.host, settings.port)
        # run_app's serving, on a listener with caps and timeouts (docs/security.md).
        intake.run(
            app,
            settings,
            loop=_event_loop(),
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            access_log=logging.getLogger("aiohttp.access"),
        )
