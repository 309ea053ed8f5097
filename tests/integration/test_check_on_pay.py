"""``QIWI_CHECK_ON_PAY=true``: a ``pay`` not yet stored asks the check URL first.

200 stores it as usual; any other answer is 5 with nothing stored (the request
is logged); no answer within ``QIWI_CHECK_TIMEOUT`` is 1 with nothing stored. A
repeat of a stored txn_id never asks: its answer is its row's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.app import ClientFactory
from tests.support.backend import start_backend
from tests.support.qiwi import result_of

PAY = {
    "command": "pay",
    "txn_id": "8001",
    "txn_date": "20261129120000",
    "account": "acc 8001",
    "sum": "25.00",
}


@dataclass
class CheckBackend:
    """The merchant's account check: answers ``status``, or hangs while ``hang`` is set."""

    status: int = 200
    hang: bool = False
    accounts: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.accounts.append(request.query["account"])
        if self.hang:
            await self.release.wait()
        return web.Response(status=self.status, text="whatever")

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/check"))


@pytest.fixture
async def backend() -> AsyncIterator[CheckBackend]:
    check = CheckBackend()
    check.server = await start_backend(check.handle, "/check")
    try:
        yield check
    finally:
        check.release.set()
        await check.server.close()


async def count(db: Any, table: str) -> int:
    value: int = await db.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def test_200_stores_and_answers_0(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    client = await make_client(QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true")
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "0"
    assert answer["prv_txn"] == str(await db.fetchval("SELECT id FROM qiwi_transaction"))
    assert backend.accounts == ["acc 8001"]


@pytest.mark.parametrize("status", [404, 403, 500, 302])
async def test_any_other_answer_is_5_with_nothing_stored(
    make_client: ClientFactory, db: Any, backend: CheckBackend, status: int
) -> None:
    backend.status = status
    client = await make_client(QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true")
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "5"
    assert answer["osmp_txn_id"] == "8001"
    assert "prv_txn" not in answer
    assert await count(db, "qiwi_transaction") == 0
    # The refused request is logged all the same.
    assert "txn_id=8001" in await db.fetchval("SELECT url FROM qiwi_http_log")


async def test_no_answer_in_time_is_1_with_nothing_stored(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    backend.hang = True
    client = await make_client(
        QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true", QIWI_CHECK_TIMEOUT="0.3"
    )
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "1"
    assert await count(db, "qiwi_transaction") == 0
    assert await count(db, "qiwi_http_log") == 1
    # QIWI repeats on 1; the backend answers now.
    backend.hang = False
    backend.release.set()
    assert (await result_of(await client.get("/payment", params=PAY)))["result"] == "0"


async def test_a_stored_txn_id_never_asks_again(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    client = await make_client(QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true")
    first = await result_of(await client.get("/payment", params=PAY))
    # The merchant has since deleted the account, or its check is down: the
    # payment is stored all the same, and its repeats say so.
    backend.status = 404
    repeats = [await result_of(await client.get("/payment", params=PAY)) for _ in range(3)]
    backend.hang = True
    repeats.append(await result_of(await client.get("/payment", params=PAY)))
    other_sum = await result_of(await client.get("/payment", params={**PAY, "sum": "26.00"}))
    assert repeats == [first] * 4
    assert other_sum["result"] == "300"
    assert backend.accounts == ["acc 8001"]
    assert await count(db, "qiwi_transaction") == 1


async def test_the_merchants_limits_refuse_before_the_backend_is_asked(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    client = await make_client(
        QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true", QIWI_MAX_SUM="10"
    )
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "242"
    assert backend.accounts == []


async def test_concurrent_first_pays_make_one_row(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    client = await make_client(QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true")
    responses = await asyncio.gather(*(client.get("/payment", params=PAY) for _ in range(20)))
    answers = [await result_of(response) for response in responses]
    assert {a["result"] for a in answers} == {"0"}
    assert len({a["prv_txn"] for a in answers}) == 1
    assert await count(db, "qiwi_transaction") == 1


async def test_off_by_default_pay_does_not_ask(
    make_client: ClientFactory, db: Any, backend: CheckBackend
) -> None:
    backend.status = 404
    client = await make_client(QIWI_CHECK_URL=backend.url)
    assert (await result_of(await client.get("/payment", params=PAY)))["result"] == "0"
    check = {"command": "check", "txn_id": "8002", "account": "x", "sum": "1.00"}
    assert (await result_of(await client.get("/payment", params=check)))["result"] == "5"
    assert backend.accounts == ["x"]


async def test_a_refusal_never_contradicts_a_repeat_in_flight(
    make_client: ClientFactory, backend: CheckBackend, db: Any
) -> None:
    """QIWI repeats a pay whose answer is late. If the backend says 404 to the repeat
    while the first request (told 200) is still being stored, the repeat must not
    get a fatal 5: QIWI would refund a payment the merchant has."""
    client = await make_client(QIWI_CHECK_URL=backend.url, QIWI_CHECK_ON_PAY="true")
    backend.hang = True
    first = asyncio.create_task(client.get("/payment", params=PAY))
    async with asyncio.timeout(10):
        while not backend.accounts:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the first request reaches the check URL
    backend.hang = False
    backend.status = 404  # the backend changes its mind
    repeat = await result_of(await client.get("/payment", params=PAY))
    backend.status = 200
    backend.release.set()
    answer = await result_of(await first)
    assert answer["result"] == "0"
    assert repeat["result"] == "1", repeat
    assert await count(db, "qiwi_transaction") == 1
