"""Every ``PG_SCHEMA`` PostgreSQL accepts (1-63 bytes) works end to end.

The NOTIFY channel carries the schema; ``qiwi_gw:`` and a schema of 56 or more
characters exceed PostgreSQL's 63-byte limit, which made the insert trigger's
``pg_notify`` fail and with it every pay (code 1) when a webhook was set. The
channel is now derived to fit, by the same rule in Python (LISTEN), in the
statements that NOTIFY from Python (resend) and in the trigger.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from qiwi_gw import dispatcher as dispatcher_module
from qiwi_gw import keys, migrations
from qiwi_gw.app import create_app
from qiwi_gw.channel import MAX_BYTES, channel_for
from qiwi_gw.settings import Settings
from qiwi_gw.store import queue
from tests.support.backend import Backend
from tests.support.qiwi import result_of

# 63 characters: the longest name PostgreSQL keeps whole.
LONGEST = "qiwi_" + "x" * 57 + "1"
SCHEMAS = ["s", "q" * 55, "q" * 56, "q" * 62 + "a", "q" * 62 + "b", LONGEST]


@pytest.mark.parametrize("length", range(1, 64))
def test_every_channel_fits_and_short_ones_are_unchanged(length: int) -> None:
    schema = "a" * length
    channel = channel_for(schema)
    assert len(channel.encode()) <= MAX_BYTES
    if length <= 55:
        assert channel == f"qiwi_gw:{schema}"
    else:
        assert channel.startswith(f"qiwi_gw:{schema[:46]}:")


def test_long_schemas_sharing_a_prefix_get_different_channels() -> None:
    assert channel_for("q" * 62 + "a") != channel_for("q" * 62 + "b")


async def test_python_and_sql_name_the_same_channel(empty_database_dsn: str) -> None:
    """For each schema: LISTEN on the Python name, then the trigger (a pending row
    inserted) and resend's NOTIFY (a statement of the store) must both arrive there."""
    for schema in SCHEMAS:
        migrations.apply(empty_database_dsn, schema)
    listener = await asyncpg.connect(empty_database_dsn)
    writer = await asyncpg.connect(empty_database_dsn)
    received: dict[str, list[str]] = {schema: [] for schema in SCHEMAS}
    arrived = asyncio.Event()

    def note(schema: str) -> Any:
        def callback(_connection: object, _pid: int, _channel: str, payload: str) -> None:
            received[schema].append(payload)
            if all(len(payloads) == 2 for payloads in received.values()):
                arrived.set()

        return callback

    try:
        for schema in SCHEMAS:
            await listener.add_listener(channel_for(schema), note(schema))
        for schema in SCHEMAS:
            await writer.execute(f'SET search_path TO "{schema}"')
            row_id = await writer.fetchval(
                "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
                " VALUES ('a', '1', 1, 0, now()) RETURNING id"
            )
            await queue.notify_due(writer, row_id)
        async with asyncio.timeout(10):
            await arrived.wait()
    finally:
        await listener.close()
        await writer.close()
    assert received == {schema: ["1", "1"] for schema in SCHEMAS}


async def test_a_63_character_schema_stores_and_delivers(
    empty_database_dsn: str, aiohttp_client: Any, monkeypatch: Any
) -> None:
    # Delivered through the NOTIFY alone: no sweep, no fallback timer in time.
    monkeypatch.setattr(dispatcher_module, "NOTIFY_GRACE", 600.0)
    migrations.apply(empty_database_dsn, LONGEST)
    async with Backend() as backend:
        settings = Settings.from_env(
            {
                "DATABASE_URL": empty_database_dsn,
                "PG_SCHEMA": LONGEST,
                "QIWI_WEBHOOK_URL": backend.url,
                "QIWI_SWEEP_INTERVAL": "600",
            }
        )
        client = await aiohttp_client(create_app(settings, empty_database_dsn))
        await client.app[keys.DISPATCHER].listener.up.wait()
        pay = {
            "command": "pay",
            "txn_id": "6301",
            "txn_date": "20261129120000",
            "account": "42",
            "sum": "10.00",
        }
        answer = await result_of(await client.get("/payment", params=pay))
        repeat = await result_of(await client.get("/payment", params=pay))
        await backend.wait_delivered({"6301"})
        await client.close()
    assert answer["result"] == "0"
    assert repeat["prv_txn"] == answer["prv_txn"]
    connection = await asyncpg.connect(empty_database_dsn)
    try:
        status = await connection.fetchval(f'SELECT status FROM "{LONGEST}".qiwi_transaction')
    finally:
        await connection.close()
    assert status == 1
