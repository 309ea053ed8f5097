"""PG_SLAVES on the console: the pages that only read come from the first replica that
answers, else from the primary, and the overview says which; Resend always writes to
the primary."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from aiohttp.test_utils import unused_port

from qiwi_gw import migrations
from tests.support.app import ClientFactory
from tests.support.console import start_pair
from tests.support.postgres import cluster
from tests.support.rows import add_payment, execute, row

REPLAY_WAIT = 60.0


def read_from(page: str) -> str:
    found = re.search(r'<p class="source" id="read-from"><small>([^<]*)</small>', page)
    assert found is not None, "the overview does not say where it read"
    return found[1]


async def test_a_dead_replica_leaves_the_pages_on_the_primary(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    add_payment(database_dsn, "5101")
    dead = f"127.0.0.1:{unused_port()}"
    pair = await start_pair(make_client, aiohttp_client, database_dsn, PG_SLAVES=dead)
    said = read_from(await pair.page("/"))
    assert f"no replica used ({dead}:" in said
    assert "reading from the primary" in said
    assert ">5101</a>" in await pair.page("/payments")


async def test_without_replicas_the_overview_says_nothing_of_them(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    assert 'id="read-from"' not in await pair.page("/")


def wait_replayed(primary_dsn: str, replica_dsn: str) -> None:
    target = execute(primary_dsn, "SELECT pg_current_wal_lsn()::text")[0][0]
    statement = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"
    deadline = time.monotonic() + REPLAY_WAIT
    # Replay is another server's progress: there is no event to await from here.
    while not execute(replica_dsn, statement, target)[0][0]:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


@pytest.mark.timeout(180)
async def test_pages_read_the_replica_and_resend_writes_the_primary(
    make_client: ClientFactory, aiohttp_client: Any
) -> None:
    with cluster() as own:
        primary = own.primary()
        dsn = primary.dsn()
        migrations.apply(dsn, "public")
        add_payment(dsn, "5201", delivered_ago=None, attempts=0)
        replica = own.replica(primary)
        wait_replayed(dsn, replica.dsn())
        execute(replica.dsn(), "SELECT pg_wal_replay_pause()")
        add_payment(dsn, "5202")  # on the primary only, while the replica's replay is paused
        pair = await start_pair(
            make_client, aiohttp_client, dsn, DATABASE_URL=dsn, PG_SLAVES=replica.where
        )
        said = read_from(await pair.page("/"))
        assert f"reading from replica {replica.where} (PG_SLAVES)" in said
        found = await pair.page("/payments")
        assert ">5201</a>" in found
        assert ">5202</a>" not in found  # not replayed yet: the replica is read
        # Resend writes, so to the primary, which a replica would refuse.
        token = await pair.csrf()
        response = await pair.console.post(
            "/payments/5202/resend", data={"csrf": token}, allow_redirects=False
        )
        assert response.status == 303
        assert row(dsn, "5202")["status"] == 0
        # The replica stops: the next pages come from the primary, and say so.
        replica.stop()
        said = read_from(await pair.page("/"))
        assert f"no replica used ({replica.where}:" in said
        assert ">5202</a>" in await pair.page("/payments")
