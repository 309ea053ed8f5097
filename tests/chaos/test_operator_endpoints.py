"""``/metrics``, ``/readyz`` and ``/healthz`` off QIWI's path.

On QIWI's port ``/metrics`` answers only callers ``/payment`` would accept; the
operator listener serves it too. Either way the page is rendered at most once a
second and its database gauges read at most every few seconds on a connection
of their own, so a scrape storm costs neither the database nor QIWI. ``/readyz``
answers from cached state with a generic reason; ``/healthz`` stays open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from qiwi_gw.metrics import Metrics
from qiwi_gw.metrics_page import HOT_ASKS, MetricsPage
from qiwi_gw.readiness import DATABASE_UNAVAILABLE, Readiness
from tests.support.app import ClientFactory
from tests.support.gateway import gateway
from tests.support.intake import attacker, compare_latency, spawn
from tests.support.qiwi import AUTH, PASSWORD, QIWI, USER, median_ms

PROTECTED = {
    "HTTP_AUTH_USERNAME": USER,
    "HTTP_AUTH_PASSWORD": PASSWORD,
    "QIWI_ALLOWED_IPS": f"{QIWI}/32",
}


async def status_of(url: str, *, source: str = QIWI, auth: str | None = None) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    headers = {"Authorization": auth} if auth else {}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def test_metrics_outside_the_allow_list_is_refused_on_qiwis_port_and_served_on_the_operators(
    database_dsn: str,
) -> None:
    async with gateway(database_dsn, **PROTECTED) as gw:
        outsider = await status_of(f"{gw.base}/metrics", source=attacker(0), auth=AUTH)
        no_credentials = await status_of(f"{gw.base}/metrics")
        qiwi = await status_of(f"{gw.base}/metrics", auth=AUTH)
        operator = await status_of(f"{gw.console}/metrics")
        health = await status_of(f"{gw.base}/healthz", source=attacker(0))
    assert (outsider, no_credentials, qiwi, operator) == (403, 401, 200, 200)
    assert health == 200


async def test_a_scrape_storm_leaves_pay_latency_within_twice_idle(database_dsn: str) -> None:
    """100 scrapers outside the allow-list, on a table of 200,000 pending payments:
    each is refused before any work (and soon at connect), and QIWI's pays hardly
    notice. Each of three storms comes from an address of its own."""
    async with gateway(database_dsn, **PROTECTED) as gw:
        connection = await asyncpg.connect(database_dsn)
        try:
            await connection.execute(
                "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
                " SELECT 'a', 'p' || g, 1, 0, now() FROM generate_series(1, 200000) AS g"
            )
        finally:
            await connection.close()

        async def storm(number: int) -> asyncio.subprocess.Process:
            return await spawn(
                "scrape_storm",
                url=f"{gw.base}/metrics",
                clients=100,
                seconds=1.5,
                auth=None,
                source=number,
            )

        idle, stormy, counts = await compare_latency(gw.base, storm)
    for storm_counts in counts:
        # Refused, then refused at connect (the address penalised): never served.
        assert storm_counts["403"] >= 1
        assert "200" not in storm_counts
    assert median_ms(stormy) <= 2 * median_ms(idle), (median_ms(idle), median_ms(stormy))


# --- in-process ---------------------------------------------------------------------


async def test_readyz_gives_a_generic_reason_and_healthz_stays_open(
    make_client: ClientFactory, server_dsn: str, database_dsn: str
) -> None:
    client = await make_client(QIWI_DB_TIMEOUT="1", **PROTECTED)
    assert (await client.get("/readyz")).status == 200
    async with _database_off(server_dsn, database_dsn):
        # A fresh gateway: the one above answers from its cache for a few seconds.
        down = await make_client(QIWI_DB_TIMEOUT="1", **PROTECTED)
        response = await down.get("/readyz")
        text = await response.text()
        health = await down.get("/healthz")
    assert response.status == 503
    assert text == f"not ready: {DATABASE_UNAVAILABLE}\n"
    assert health.status == 200


@asynccontextmanager
async def _database_off(server_dsn: str, database_dsn: str) -> AsyncIterator[None]:
    name = urlsplit(database_dsn).path.lstrip("/")
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


class CountingPool:
    """Stands in for the pool: counts acquisitions, answers with the migrations."""

    def __init__(self, applied: list[str]) -> None:
        self.acquired = 0
        self.applied = applied
        self.release = asyncio.Event()

    @asynccontextmanager
    async def acquire(self, timeout: float) -> AsyncIterator[Any]:  # noqa: ASYNC109 - asyncpg's
        self.acquired += 1
        await self.release.wait()
        yield self

    async def fetch(self, query: str, timeout: float) -> list[dict[str, str]]:  # noqa: ASYNC109
        return [{"migration_id": migration} for migration in self.applied]


async def test_concurrent_readiness_asks_share_one_check_and_ready_is_cached() -> None:
    pool = CountingPool(["0001"])
    now = [0.0]
    readiness = Readiness(lambda: pool, ["0001"], timeout=1, interval=2, clock=lambda: now[0])  # type: ignore[arg-type,return-value]
    asks = [asyncio.create_task(readiness.reason()) for _ in range(100)]
    await asyncio.sleep(0)
    pool.release.set()
    assert await asyncio.gather(*asks) == [None] * 100
    assert pool.acquired == 1
    now[0] = 1.9
    assert await readiness.reason() is None
    assert pool.acquired == 1
    now[0] = 2.0
    assert await readiness.reason() is None
    assert pool.acquired == 2


async def test_not_ready_is_checked_again_at_the_next_ask() -> None:
    pool = CountingPool(["0001"])
    pool.release.set()
    readiness = Readiness(lambda: pool, ["0001", "0002"], timeout=1, interval=60)  # type: ignore[arg-type,return-value]
    assert await readiness.reason() == "schema not current (run qiwi-gw migrate)"
    pool.applied.append("0002")
    assert await readiness.reason() is None
    assert pool.acquired == 2


class CountingGauges:
    """Stands in for DatabaseGauges: reads "the table" once per call of ``stale``."""

    def __init__(self) -> None:
        self.read_at = 0.0
        self.renders = 0

    def stale(self) -> None:
        self.read_at += 1

    async def refresh(self) -> None:
        await asyncio.sleep(0)


async def test_the_metrics_page_is_rendered_for_each_ask_except_in_a_storm() -> None:
    gauges = CountingGauges()
    metrics = Metrics()
    renders = 0
    real_render = metrics.render

    def render() -> bytes:
        nonlocal renders
        renders += 1
        return real_render()

    metrics.render = render  # type: ignore[method-assign]
    now = [0.0]
    page = MetricsPage(metrics, lambda: gauges, lambda: True, clock=lambda: now[0])  # type: ignore[arg-type,return-value]
    # A scraper now and then: a page rendered for each.
    for second in range(5):
        now[0] = float(second)
        await page.body()
    assert renders == 5
    # 200 asks at once: after the first few, one page for all of them.
    now[0] = 10.0
    bodies = await asyncio.gather(*(page.body() for _ in range(200)))
    assert len(set(bodies[HOT_ASKS:])) == 1
    assert renders <= 5 + HOT_ASKS
    storm = renders
    now[0] = 10.9
    await page.body()
    assert renders == storm
    # New database figures, or a second gone: rendered again.
    gauges.stale()
    await page.body()
    assert renders == storm + 1
    now[0] = 11.0
    await page.body()
    assert renders == storm + 2


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, True),
        ({"HTTP_AUTH_USERNAME": USER, "HTTP_AUTH_PASSWORD": PASSWORD}, False),
        ({"QIWI_ALLOWED_IPS": "10.0.0.0/8"}, False),
    ],
)
async def test_an_open_payment_endpoint_is_warned_about_at_start(
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
    warned: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="qiwi_gw.app")
    await make_client(**env)
    messages = [r.getMessage() for r in caplog.records if r.name == "qiwi_gw.app"]
    assert any(m.startswith("/payment is open to any caller") for m in messages) is warned
