"""Group commit keeps every promise of the protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from qiwi_gw.errors import DatabaseUnavailableError
from qiwi_gw.group_commit import GroupCommitter, Stored
from qiwi_gw.protocol import Pay
from qiwi_gw.store.http_log import HttpLogEntry
from qiwi_gw.store.payments import STATUS_COMPLETED, LoggedRequest
from tests.support.app import ClientFactory
from tests.support.qiwi import result_of


def request(txn_id: str, account: str = "42", amount: str = "10.00") -> LoggedRequest:
    entry = HttpLogEntry(
        ip="127.0.0.1", url=f"/payment?txn_id={txn_id}", method="GET", headers={}, body=""
    )
    pay = Pay(txn_id=txn_id, txn_date=datetime(2026, 11, 29), account=account, sum=Decimal(amount))
    return LoggedRequest(entry, pay, STATUS_COMPLETED)


@pytest.fixture
async def pool(database_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_dsn, min_size=1, max_size=4) as pool:
        yield pool


async def in_one_batch(
    committer: GroupCommitter, *requests: LoggedRequest
) -> list[Stored | BaseException | None]:
    """Queue every request before the committer runs, so they share one transaction."""
    tasks = [asyncio.create_task(committer.store(r)) for r in requests]
    await asyncio.sleep(0)  # let each task enqueue (a scheduling yield, not a wait)
    await committer.start()
    try:
        return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        await committer.stop()


async def test_a_batch_is_one_transaction_with_every_log_row(pool: asyncpg.Pool, db: Any) -> None:
    committer = GroupCommitter(pool, db_timeout=5)
    results = await in_one_batch(committer, *(request(str(n)) for n in range(1, 21)))
    assert list(committer.batch_sizes) == [20]
    assert all(isinstance(r, Stored) and r.created for r in results)
    rows = await db.fetch(
        "SELECT t.id, t.code, l.url FROM qiwi_transaction t"
        " JOIN qiwi_http_log l ON l.id = t.http_log_id"
    )
    assert len(rows) == 20
    assert all(row["url"].endswith(f"txn_id={row['code']}") for row in rows)
    ids = {r.payment.id for r in results if isinstance(r, Stored)}
    assert ids == {row["id"] for row in rows}


async def test_repeats_inside_one_batch_share_the_row(pool: asyncpg.Pool, db: Any) -> None:
    committer = GroupCommitter(pool, db_timeout=5)
    first, again, other_sum = await in_one_batch(
        committer, request("7"), request("7"), request("7", amount="99.00")
    )
    assert isinstance(first, Stored)
    assert isinstance(again, Stored)
    assert isinstance(other_sum, Stored)
    assert (first.created, again.created, other_sum.created) == (True, False, False)
    assert first.payment == again.payment == other_sum.payment
    assert other_sum.payment.sum == Decimal("10.00")  # the stored one, for the caller to compare
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction") == 1
    assert await db.fetchval("SELECT count(*) FROM qiwi_http_log") == 3


async def test_repeats_across_batches_share_the_row(pool: asyncpg.Pool) -> None:
    first = await in_one_batch(GroupCommitter(pool, db_timeout=5), request("8"), request("9"))
    second = await in_one_batch(GroupCommitter(pool, db_timeout=5), request("9"), request("10"))
    assert isinstance(first[1], Stored)
    assert isinstance(second[0], Stored)
    assert first[1].payment.id == second[0].payment.id
    assert second[0].created is False
    assert isinstance(second[1], Stored)
    assert second[1].created


async def test_one_bad_row_never_fails_its_neighbours(pool: asyncpg.Pool, db: Any) -> None:
    # A constraint the protocol's validation does not know about stands in for any
    # row-specific database error.
    await db.execute(
        "ALTER TABLE qiwi_transaction ADD CONSTRAINT no_poison CHECK (account <> 'poison')"
    )
    committer = GroupCommitter(pool, db_timeout=5)
    good, bad, also_good = await in_one_batch(
        committer, request("1"), request("2", account="poison"), request("3")
    )
    assert isinstance(good, Stored)
    assert isinstance(also_good, Stored)
    assert isinstance(bad, DatabaseUnavailableError)
    assert sorted(await db.fetchval("SELECT array_agg(code) FROM qiwi_transaction")) == ["1", "3"]


async def test_a_database_error_answers_every_request_of_the_batch(
    server_dsn: str, database_dsn: str
) -> None:
    from tests.support.database import with_database

    async with asyncpg.create_pool(
        with_database(database_dsn, "no_such_database"), min_size=0
    ) as pool:
        results = await in_one_batch(GroupCommitter(pool, db_timeout=2), request("1"), request("2"))
    assert all(isinstance(r, DatabaseUnavailableError) for r in results)


async def test_zero_is_answered_only_after_the_commit(
    make_client: ClientFactory, db: Any, database_dsn: str
) -> None:
    client = await make_client()
    blocker = await asyncpg.connect(database_dsn)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE qiwi_transaction IN EXCLUSIVE MODE")
        params = {
            "command": "pay",
            "txn_id": "31",
            "txn_date": "20261129120000",
            "account": "1",
            "sum": "1.00",
        }
        answer = asyncio.create_task(client.get("/payment", params=params))
        # Wait until the gateway's insert is queued behind the lock.
        async with asyncio.timeout(10):
            # Polling another server's state: there is no event to await.
            while not await db.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert not answer.done()
        await transaction.rollback()
        response = await answer
    finally:
        await blocker.close()
    assert (await result_of(response))["result"] == "0"
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE code = '31'") == 1


async def test_a_burst_is_committed_in_fewer_transactions_than_payments(
    make_client: ClientFactory, db: Any
) -> None:
    from qiwi_gw import keys

    client = await make_client()
    params = [
        {
            "command": "pay",
            "txn_id": str(n),
            "txn_date": "20261129120000",
            "account": "1",
            "sum": "1.00",
        }
        for n in range(100)
    ]
    responses = await asyncio.gather(*(client.get("/payment", params=p) for p in params))
    assert {(await result_of(r))["result"] for r in responses} == {"0"}
    sizes = client.app[keys.COMMITTER].batch_sizes
    assert sum(sizes) == 100
    assert len(sizes) < 100
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction") == 100
