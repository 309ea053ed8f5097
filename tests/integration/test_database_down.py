"""The database goes away: QIWI hears 1 (repeat later), never 0 and never a 500;
the gateway recovers by itself when the database is back."""

from __future__ import annotations

import asyncpg

from tests.support.app import ClientFactory, Switch
from tests.support.qiwi import result_of

PAY = {
    "command": "pay",
    "txn_id": "77",
    "txn_date": "20261129120000",
    "account": "42",
    "sum": "100.00",
}
CHECK = {"command": "check", "txn_id": "77", "account": "42", "sum": "100.00"}


async def test_answers_1_while_down_and_recovers(
    make_client: ClientFactory, database_switch: Switch, database_dsn: str
) -> None:
    client = await make_client(QIWI_DB_TIMEOUT="2")
    assert (await result_of(await client.get("/payment", params=CHECK)))["result"] == "0"

    await database_switch(False)
    for params in (PAY, CHECK):
        response = await client.get("/payment", params=params)
        assert response.status == 200
        answer = await result_of(response)
        assert answer["result"] == "1"
        assert "prv_txn" not in answer
    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200

    await database_switch(True)
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "0"
    assert (await client.get("/readyz")).status == 200
    # The fixture's connections were cut with the rest: count with a new one.
    fresh = await asyncpg.connect(database_dsn)
    try:
        assert await fresh.fetchval("SELECT count(*) FROM qiwi_transaction") == 1
    finally:
        await fresh.close()
