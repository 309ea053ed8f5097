"""Chaos 7: PgBouncer in transaction mode as PG_HOST, the database as PG_REAL_HOST."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import unused_port

from tests.support.backend import Backend
from tests.support.chaos import QUIET, TIMEOUT, assert_money_invariants, report, scale
from tests.support.gateway import FAST, Gateway
from tests.support.postgres import Server, disposable_postgres
from tests.support.qiwi import Qiwi, result_of

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.timeout(TIMEOUT),
    QUIET,
    pytest.mark.skipif(
        shutil.which("pgbouncer") is None,
        reason="pgbouncer is not installed (.ci/run installs Debian's package)",
    ),
]


@contextmanager
def pgbouncer(postgres: Server) -> Iterator[int]:
    port = unused_port()
    with tempfile.TemporaryDirectory(prefix="qiwi-gw-pgbouncer-") as directory:
        config = Path(directory) / "pgbouncer.ini"
        # search_path cannot pass PgBouncer: the gateway's schema must be the
        # role's default there (public here), as docs/deployment.md says.
        config.write_text(
            f"""
[databases]
* = host=127.0.0.1 port={postgres.port} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 200
default_pool_size = 10
ignore_startup_parameters = search_path,extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
        )
        user = None
        if os.geteuid() == 0:  # PgBouncer will not run as root
            user = "pgserver"
            entry = pwd.getpwnam(user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
            os.chown(config, entry.pw_uid, entry.pw_gid)
        process = subprocess.Popen(["pgbouncer", str(config)], user=user)  # noqa: S607
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)


async def test_protocol_and_webhooks_through_pgbouncer() -> None:
    qiwi = Qiwi()
    with disposable_postgres() as postgres, pgbouncer(postgres) as bouncer_port:
        async with Backend() as hook:
            env = {
                "PG_HOST": "127.0.0.1",
                "PG_PORT": str(bouncer_port),
                "PG_USER": "postgres",
                "PG_DATABASE": "postgres",
                "PG_REAL_HOST": "127.0.0.1",
                "PG_REAL_PORT": str(postgres.port),
            }
            gateway = Gateway("", hook.url, tuning=FAST | env)
            await gateway.start()
            async with aiohttp.ClientSession() as session:
                check = {"command": "check", "txn_id": "1", "account": "a", "sum": "1.00"}
                async with session.get(f"{gateway.base}/payment", params=check) as response:
                    assert (await result_of(response))["result"] == "0"
            await qiwi.load([gateway.base], seconds=scale(2, 10), concurrency=16)
            await qiwi.repeat_unanswered(gateway.base)
            stored = await assert_money_invariants(qiwi, postgres.dsn())
            await hook.wait_delivered(set(stored), within=60)
            admin = await asyncpg.connect(postgres.dsn())
            try:
                listening = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'qiwi-gw'"
                    " AND (query LIKE 'LISTEN%' OR query LIKE '%listener probe%')"
                )
            finally:
                await admin.close()
            assert await gateway.terminate() == 0
    assert listening == 1
    report(
        "PgBouncer (transaction mode) as PG_HOST, the database as PG_REAL_HOST",
        load="16 connections, closed loop",
        faults="none: pooled connections without prepared statements, LISTEN direct",
        requests=qiwi.sent,
        answered_0=len(qiwi.answered),
        stored=len(stored),
        lost=0,
        doubled=0,
        delivered=len(hook.delivered()),
    )
