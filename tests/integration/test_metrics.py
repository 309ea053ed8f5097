"""``/metrics``: the figures move as payments and deliveries happen."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.support.app import ClientFactory
from tests.support.backend import Backend, Received

PAY = {
    "command": "pay",
    "txn_id": "1",
    "txn_date": "20261129120000",
    "account": "42",
    "sum": "1.00",
}


async def scrape(client: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")  # type: ignore[attr-defined]
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_requests_pays_and_deliveries_are_counted(make_client: ClientFactory) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url)
        # The LISTEN connection comes up in a task of its own, just after start.
        async with asyncio.timeout(10):
            while (await scrape(client))[("qiwi_listener_connected", ())] != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # no event to await from outside the app
        await client.get("/payment", params=PAY)
        await client.get("/payment", params={**PAY, "txn_id": "x"})
        await backend.wait_delivered({"1"})
        after = await scrape(client)
        await client.close()
    assert after[("qiwi_requests_total", (("command", "pay"), ("result", "0")))] == 1
    assert after[("qiwi_requests_total", (("command", "pay"), ("result", "300")))] == 1
    assert after[("qiwi_pay_seconds_count", ())] == 1
    assert after[("qiwi_webhook_deliveries_total", (("outcome", "delivered"),))] == 1
    assert after[("qiwi_webhook_delivery_lag_seconds_count", ())] == 1
    assert after[("qiwi_commit_batch_size_count", ())] >= 1
    assert after[("qiwi_database_up", ())] == 1


async def test_pending_payments_and_their_age_show_while_the_backend_is_down(
    make_client: ClientFactory,
) -> None:
    refused = asyncio.Event()

    async def failing(received: Received) -> web.StreamResponse:
        refused.set()
        return web.Response(status=503)

    async with Backend(failing) as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_RETRY_MIN="60")
        await client.get("/payment", params=PAY)
        await refused.wait()
        samples = await scrape(client)
        await client.close()
    assert samples[("qiwi_pending_payments", ())] == 1
    assert samples[("qiwi_oldest_pending_seconds", ())] >= 0
    assert samples[("qiwi_webhook_deliveries_total", (("outcome", "down"),))] >= 1


async def test_an_outage_shows_as_backend_down_with_held_payments(
    make_client: ClientFactory, db: object
) -> None:
    async def failing(received: Received) -> web.StreamResponse:
        return web.Response(status=503)

    async with Backend(failing) as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_RETRY_MIN="60")
        for txn in ("1", "2", "3"):
            await client.get("/payment", params={**PAY, "txn_id": txn})
        query = "SELECT count(*) FROM qiwi_transaction WHERE attempts = 1"
        async with asyncio.timeout(30):
            while await db.fetchval(query) < 3:  # type: ignore[attr-defined]  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the recorder's write, in another task's time
        # Three "down" answers opened the outage; those three back off on their own
        # (tests/chaos/test_delivery_policy.py): rows an outage holds are the ones that
        # fail while it lasts, two of them here.
        await db.execute(  # type: ignore[attr-defined]
            "UPDATE qiwi_transaction SET held_by_outage = true WHERE code IN ('1', '2')"
        )
        samples = await scrape(client)
        await client.close()
    assert samples[("qiwi_webhook_backend_up", ())] == 0
    assert samples[("qiwi_webhook_held_payments", ())] == 2
    assert samples[("qiwi_webhook_backing_off_payments", ())] == 1


async def test_no_webhook_means_no_listener(make_client: ClientFactory) -> None:
    client = await make_client()
    samples = await scrape(client)
    assert samples[("qiwi_listener_connected", ())] == 0
    assert samples[("qiwi_pending_payments", ())] == 0
