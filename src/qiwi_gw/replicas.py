"""PG_SLAVES: where the operator's read-only commands read, and how stale that is.

A command connects to the first replica that is usable, else to the primary, and says which
on stderr with what it implies: a replica shows the primary as of its last replayed WAL, so
its replay lag is said, and whether replay is paused. A PG_SLAVES entry that is not in
recovery is not a replica (the primary itself, or a replica promoted since) and is passed
over. ``current`` commands (reconcile: a payment missing "on our side" costs an operator's
time and trust) read from a replica only once it has replayed everything the primary had
written when the command started; else from the primary.

A replica is only a convenience, so it never hangs a command: its session must open and
answer within ``DatabaseSettings.timeout`` (else the primary is used, saying so), each of
its statements within ``COMMAND_TIMEOUT``, and TCP keepalives notice a peer gone silent.
"""

from __future__ import annotations

import asyncio
import math
import socket
from dataclasses import dataclass
from typing import Any

import asyncpg

from qiwi_gw.db import DATABASE_ERRORS, where
from qiwi_gw.errors import describe
from qiwi_gw.settings import DatabaseSettings

# One statement of a read-only command on a replica, at most: a replica that stops
# answering mid-command ends the command with an error instead of hanging it. Generous:
# a day's summary in a million-line reconcile takes seconds.
COMMAND_TIMEOUT = 120.0
# Keepalive probes after this many idle seconds, then every INTERVAL, COUNT of them: a
# replica whose host or network died is noticed in about 25 s even mid-statement.
KEEPALIVE_IDLE = 10
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
# How often a ``current`` command asks whether the replica has replayed far enough.
CATCH_UP_POLL = 0.05

# Whether it is a replica, how old its last replayed commit is, whether replay is paused.
STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS lag,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS paused
"""
PRIMARY_WAL = "SELECT pg_current_wal_lsn()::text"
# Bytes of WAL the replica has still to replay to reach $1, and whether replay is paused.
BEHIND = """
SELECT coalesce(pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn()), 'NaN')::float8
           AS behind,
       pg_is_wal_replay_paused() AS paused
"""


@dataclass(frozen=True)
class Source:
    """Where a read-only command's connection went, and why there."""

    connection: asyncpg.Connection
    where: str
    replica: bool
    # On a replica: its state (lag, or that it has caught up). On the primary: nothing.
    state: str = ""
    passed_over: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for an operator: where the data comes from and what that implies."""
        if self.replica:
            return f"reading from replica {self.where} (PG_SLAVES){self.state}"
        if self.passed_over:
            return (
                f"no replica used ({'; '.join(self.passed_over)}): "
                f"reading from the primary {self.where}"
            )
        return f"reading from the primary {self.where}"


class _NotUsableError(Exception):
    """This replica is not to be read: the message says why."""


async def connect_for_reading(
    settings: DatabaseSettings, primary_dsn: str, *, current: bool = False, **options: Any
) -> Source:
    """A connection for queries that only read: the first of ``settings.replica_dsns``
    (PG_SLAVES) that is usable, else ``primary_dsn``. Nothing that writes, and nothing
    ``/payment`` needs, may come here: a replica refuses writes and may be behind.

    ``options`` go to ``asyncpg.connect``; the primary's failure is raised as it is.
    """
    passed_over: list[str] = []
    for dsn in settings.replica_dsns:
        try:
            connection, lag = await _connect_replica(settings, dsn, options)
        except _NotUsableError as exc:
            passed_over.append(f"{where(dsn)}: {exc}")
            continue
        if not current:
            return Source(connection, where(dsn), replica=True, state=f", {lag}")
        try:
            return await _current(connection, dsn, lag, settings, primary_dsn, options)
        except _NotUsableError as exc:
            passed_over.append(f"{where(dsn)}: {exc}")
            connection.terminate()
        except _PrimaryChosenError as chosen:
            connection.terminate()
            passed_over.append(f"{where(dsn)}: {chosen}")
            return Source(
                chosen.primary, where(primary_dsn), replica=False, passed_over=tuple(passed_over)
            )
        except BaseException:
            connection.terminate()
            raise
    connection = await asyncpg.connect(primary_dsn, timeout=settings.timeout, **options)
    return Source(connection, where(primary_dsn), replica=False, passed_over=tuple(passed_over))


async def _connect_replica(
    settings: DatabaseSettings, dsn: str, options: dict[str, Any]
) -> tuple[asyncpg.Connection, str]:
    """A session on a replica that has answered within the timeout, and its lag in words;
    or why it is not to be read."""
    try:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=settings.timeout, command_timeout=COMMAND_TIMEOUT, **options
        )
    except DATABASE_ERRORS as exc:
        raise _NotUsableError(_failure(exc, settings.timeout)) from None
    _keepalive(connection)
    try:
        row = await connection.fetchrow(STATE, timeout=settings.timeout)
    except DATABASE_ERRORS as exc:
        connection.terminate()
        raise _NotUsableError(_failure(exc, settings.timeout)) from None
    assert row is not None
    if not row["in_recovery"]:
        connection.terminate()
        raise _NotUsableError(
            "not in recovery, so not a replica: the primary itself, or a promoted one"
        )
    return connection, _lag(row["lag"], paused=bool(row["paused"]))


def _lag(seconds: float | None, *, paused: bool) -> str:
    """What the operator is told of a replica's staleness."""
    replay = "which may lag the primary: " + ("replay PAUSED; lag" if paused else "replay lag")
    if seconds is None:
        return f"{replay} unknown (no commit replayed since it started)"
    return f"{replay} {_age(seconds)} (its last replayed commit's age)"


class _PrimaryChosenError(Exception):
    """The replica is behind: read from the primary, on this connection."""

    def __init__(self, reason: str, primary: asyncpg.Connection) -> None:
        super().__init__(reason)
        self.primary = primary


async def _current(
    replica: asyncpg.Connection,
    dsn: str,
    lag: str,
    settings: DatabaseSettings,
    primary_dsn: str,
    options: dict[str, Any],
) -> Source:
    """The replica when it has replayed all the primary had written at this moment
    (waiting up to the timeout for it, unless its replay is paused); else the primary.
    Where the primary cannot be asked, the replica, saying it could not be checked."""
    try:
        primary = await asyncpg.connect(primary_dsn, timeout=settings.timeout, **options)
    except DATABASE_ERRORS as exc:
        problem = _failure(exc, settings.timeout)
        unchecked = f", NOT checked against the primary ({problem}), {lag}"
        return Source(replica, where(dsn), replica=True, state=unchecked)
    try:
        target = await primary.fetchval(PRIMARY_WAL, timeout=settings.timeout)
        behind, paused = await _catch_up(replica, target, settings.timeout)
    except BaseException:
        primary.terminate()
        raise
    if behind <= 0:
        await primary.close(timeout=settings.timeout)
        return Source(
            replica,
            where(dsn),
            replica=True,
            state=": it has replayed all the primary had written when this command started",
        )
    waited = "replay paused" if paused else f"after waiting {settings.timeout:g} s"
    amount = "an unknown amount" if math.isnan(behind) else f"{behind:.0f} bytes"
    raise _PrimaryChosenError(f"behind the primary by {amount} of WAL, {waited}", primary)


async def _catch_up(replica: asyncpg.Connection, target: str, seconds: float) -> tuple[float, bool]:
    """Bytes of WAL the replica still has to replay to reach ``target`` (0 or less: none),
    and whether its replay is paused, once it has reached it or ``seconds`` have passed.
    Replay is another server's progress: there is no event to wait for, only to ask."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            row = await replica.fetchrow(BEHIND, target, timeout=seconds)
        except DATABASE_ERRORS as exc:
            raise _NotUsableError(_failure(exc, seconds)) from None
        assert row is not None
        behind, paused = float(row["behind"]), bool(row["paused"])
        if behind <= 0 or paused or loop.time() >= deadline:
            return behind, paused
        await asyncio.sleep(CATCH_UP_POLL)


def _keepalive(connection: asyncpg.Connection) -> None:
    """TCP keepalives on the replica's socket. asyncpg has no option for them: its
    transport's socket is reached directly."""
    transport = getattr(connection, "_transport", None)
    tcp = transport.get_extra_info("socket") if transport is not None else None
    if tcp is None or tcp.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket: no network to go silent
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, name):  # Linux; elsewhere the system's defaults
            tcp.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"timeout, no answer within {timeout:g} s"
    return describe(exc)


def _age(seconds: float) -> str:
    """0.3 s, 42.0 s, 3m 20s, 2h 5m."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"
