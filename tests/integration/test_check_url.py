"""``QIWI_CHECK_URL``: the merchant's backend decides whether an account exists."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from tests.support.app import ClientFactory
from tests.support.backend import MockedResponse, start_backend
from tests.support.qiwi import result_of

CHECK = {"command": "check", "txn_id": "11", "account": "a b&c=д", "sum": "5.00"}


@pytest.mark.parametrize(("status", "code"), [(200, "0"), (404, "5"), (500, "5"), (302, "5")])
async def test_backend_status_decides_the_answer(
    make_client: ClientFactory, status: int, code: str
) -> None:
    seen: list[URL] = []

    async def backend(request: web.Request) -> web.Response:
        seen.append(request.rel_url)
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status, text="whatever")

    server = await start_backend(backend, "/accounts")
    try:
        url = str(server.make_url("/accounts?token=t"))
        client = await make_client(QIWI_CHECK_URL=url)
        answer = await result_of(await client.get("/payment", params=CHECK))
        info = await result_of(
            await client.get("/payment", params={"command": "getInfo", "account": "a b&c=д"})
        )
    finally:
        await server.close()
    assert answer["result"] == code
    assert info["result"] == code
    # The account is appended to the URL's own query, encoded.
    assert seen[0].query["token"] == "t"
    assert seen[0].query["account"] == "a b&c=д"


async def test_backend_refusing_connections_is_temporary(make_client: ClientFactory) -> None:
    client = await make_client(QIWI_CHECK_URL="http://127.0.0.1:9/check")
    answer = await result_of(await client.get("/payment", params=CHECK))
    assert answer["result"] == "1"


async def test_backend_too_slow_is_temporary(make_client: ClientFactory) -> None:
    release = asyncio.Event()

    async def hanging(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    server = await start_backend(hanging, "/check")
    try:
        client = await make_client(
            QIWI_CHECK_URL=str(server.make_url("/check")), QIWI_CHECK_TIMEOUT="0.2"
        )
        answer = await result_of(await client.get("/payment", params=CHECK))
    finally:
        release.set()
        await server.close()
    assert answer["result"] == "1"


@pytest.mark.parametrize(
    ("mock", "code"),
    [
        ({"status": 200}, "0"),
        ({"status": 404}, "5"),
        ({"exception": aiohttp.ClientConnectionError("refused")}, "1"),
        ({"exception": TimeoutError()}, "1"),
    ],
)
async def test_four_outcomes_with_a_mocked_backend(
    make_client: ClientFactory, mock: dict[str, Any], code: str
) -> None:
    async with aiohttp.ClientSession() as session:
        client = await make_client(http_client=session, QIWI_CHECK_URL="http://backend.test/check")
        with aioresponses(passthrough=[str(client.make_url(""))]) as mocked:
            mocked.get(
                "http://backend.test/check?account=a+b%26c%3D%D0%B4",
                response_class=MockedResponse,
                **mock,
            )
            answer = await result_of(await client.get("/payment", params=CHECK))
    assert answer["result"] == code


async def test_pay_does_not_ask_the_backend(make_client: ClientFactory) -> None:
    # QIWI may send pay alone; the account was checked (or not) by QIWI's flow.
    client = await make_client(QIWI_CHECK_URL="http://127.0.0.1:9/check")
    pay = {**CHECK, "command": "pay", "txn_date": "20261129120000"}
    answer = await result_of(await client.get("/payment", params=pay))
    assert answer["result"] == "0"
