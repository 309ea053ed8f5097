"""/metrics off the QIWI path: its database gauges read at most every few seconds
on a connection of their own, and on QIWI's port only for callers /payment accepts."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from qiwi_gw import db, keys
from qiwi_gw.app import create_app
from qiwi_gw.console import scrape
from qiwi_gw.console.scrape import ScrapeCache
from qiwi_gw.metrics import DatabaseGauges
from qiwi_gw.settings import Settings
from tests.support.app import ClientFactory
from tests.support.console import Pair, start_pair
from tests.support.rows import add_payment


def gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the scrape")


async def test_a_scrape_storm_reads_the_table_once_per_interval(
    aiohttp_client: Any, database_dsn: str
) -> None:
    settings = Settings.from_env({"DATABASE_URL": database_dsn, "QIWI_DB_POOL_SIZE": "1"})
    app = create_app(settings, database_dsn)
    now = [0.0]
    queries: list[str] = []
    connections = 0

    async def connect() -> asyncpg.Connection:
        nonlocal connections
        connections += 1
        connection = await db.connect(settings.database, database_dsn)
        connection.add_query_logger(lambda record: queries.append(record.query))
        return connection

    app[keys.GAUGES] = DatabaseGauges(app[keys.METRICS], connect, interval=5, clock=lambda: now[0])
    client: TestClient[Any, Any] = await aiohttp_client(app)
    # Every connection of the /payment pool is taken: the scrape must not need one.
    held = await app[keys.POOL].acquire()
    try:
        add_payment(database_dsn, "1", delivered_ago=None)
        scrapes = await asyncio.gather(*(client.get("/metrics") for _ in range(50)))
        texts = [await response.text() for response in scrapes]
        assert all(response.status == 200 for response in scrapes)
        assert {gauge(text, "qiwi_pending_payments") for text in texts} == {1.0}
        # Each of the gauges' statements ran once for the fifty scrapes.
        assert max(Counter(queries).values()) == 1
        add_payment(database_dsn, "2", delivered_ago=None)
        now[0] = 4.9
        assert gauge(await (await client.get("/metrics")).text(), "qiwi_pending_payments") == 1
        assert max(Counter(queries).values()) == 1
        now[0] = 5.0
        assert gauge(await (await client.get("/metrics")).text(), "qiwi_pending_payments") == 2
        assert set(Counter(queries).values()) == {2}
        assert connections == 1
    finally:
        await app[keys.POOL].release(held)


async def test_a_database_down_is_asked_once_per_interval(
    aiohttp_client: Any, database_dsn: str
) -> None:
    settings = Settings.from_env({"DATABASE_URL": database_dsn})
    app = create_app(settings, database_dsn)
    attempts = 0

    async def unreachable() -> asyncpg.Connection:
        nonlocal attempts
        attempts += 1
        raise OSError("connection refused")

    app[keys.GAUGES] = DatabaseGauges(app[keys.METRICS], unreachable, clock=lambda: 0.0)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    for _ in range(10):
        response = await client.get("/metrics")
        assert response.status == 200
        assert gauge(await response.text(), "qiwi_database_up") == 0
    assert attempts == 1


async def test_refused_on_qiwi_port_outside_the_allow_list(make_client: ClientFactory) -> None:
    client = await make_client(QIWI_ALLOWED_IPS="10.0.0.0/8")
    assert (await client.get("/metrics")).status == 403
    assert (await client.get("/healthz")).status == 200


async def test_basic_auth_on_qiwi_port(make_client: ClientFactory) -> None:
    client = await make_client(HTTP_AUTH_USERNAME="qiwi", HTTP_AUTH_PASSWORD="pw")
    assert (await client.get("/metrics")).status == 401
    good = "Basic " + base64.b64encode(b"qiwi:pw").decode()
    response = await client.get("/metrics", headers={"Authorization": good})
    assert response.status == 200
    assert "qiwi_pending_payments" in await response.text()


async def test_served_on_the_operator_listener_to_callers_refused_on_qiwi_port(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(
        make_client, aiohttp_client, database_dsn, QIWI_ALLOWED_IPS="10.0.0.0/8"
    )
    assert (await pair.gateway.get("/metrics")).status == 403
    response = await pair.console.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "qiwi_requests_total" in await response.text() or "qiwi_requests" in (
        await response.text()
    )


async def test_operator_metrics_take_the_console_login_as_basic_auth(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(
        make_client,
        aiohttp_client,
        database_dsn,
        QIWI_CONSOLE_USERNAME="ops",
        QIWI_CONSOLE_PASSWORD="pw",
    )
    assert (await pair.console.get("/metrics")).status == 401
    good = "Basic " + base64.b64encode(b"ops:pw").decode()
    assert (await pair.console.get("/metrics", headers={"Authorization": good})).status == 200


async def test_scrapers_share_one_rendering_a_second() -> None:
    now = [0.0]
    renders = 0

    async def render() -> web.Response:
        nonlocal renders
        renders += 1
        return web.Response(body=f"scrape {renders}\n".encode(), content_type="text/plain")

    cache = ScrapeCache(render, max_age=1.0, clock=lambda: now[0])
    bodies = {(await scrape).body for scrape in [cache.get() for _ in range(100)]}
    assert bodies == {b"scrape 1\n"}
    now[0] = 0.99
    assert (await cache.get()).body == b"scrape 1\n"
    now[0] = 1.0
    assert (await cache.get()).body == b"scrape 2\n"
    assert renders == 2


async def _pay_times(pair: Pair, count: int, first: int) -> list[float]:
    times = []
    for number in range(first, first + count):
        started = time.perf_counter()
        await pair.pay(str(number))
        times.append(time.perf_counter() - started)
    return times


@pytest.mark.timeout(120)
async def test_a_scrape_storm_leaves_payments_as_fast_as_idle(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    answered = 0
    underway = asyncio.Event()

    async def scraper() -> None:
        nonlocal answered
        while True:
            response = await pair.console.get("/metrics")
            assert response.status == 200
            await response.read()
            answered += 1
            if answered >= 10:
                underway.set()

    idle: list[float] = []
    stormy: list[float] = []
    started = time.monotonic()
    # Rounds of idle and of storm alternate: the machine's own load drifts, in both alike.
    async with asyncio.timeout(90):
        for round_number in range(3):
            idle += await _pay_times(pair, 200, 100_000 + 1000 * round_number)
            underway.clear()
            storm = [asyncio.create_task(scraper()) for _ in range(100)]
            await underway.wait()
            stormy += await _pay_times(pair, 200, 200_000 + 1000 * round_number)
            for task in storm:
                task.cancel()
            await asyncio.gather(*storm, return_exceptions=True)
    elapsed = time.monotonic() - started
    assert statistics.median(stormy) <= 2 * statistics.median(idle), (idle, stormy)
    # A hundred clients asking in a loop were answered at the paced rate, not thousands a second.
    assert answered <= scrape.RATE * elapsed + 100
