"""SIGTERM while webhooks are in flight: a clean exit, and no row left claimed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.backend import Backend, Received
from tests.support.gateway import Gateway


async def test_sigterm_during_deliveries(database_dsn: str, db: Any) -> None:
    release = asyncio.Event()

    async def slow(received: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async with Backend(slow) as backend:
        gateway = Gateway(
            database_dsn,
            backend.url,
            QIWI_WEBHOOK_TIMEOUT="5",
            QIWI_WEBHOOK_CONCURRENCY="4",
            QIWI_SWEEP_INTERVAL="5",
        )
        await gateway.start()
        async with aiohttp.ClientSession() as session:
            for n in range(1, 11):
                params = {
                    "command": "pay",
                    "txn_id": str(n),
                    "txn_date": "20261129120000",
                    "account": "1",
                    "sum": "1.00",
                }
                async with session.get(f"{gateway.base}/payment", params=params) as response:
                    assert "<result>0</result>" in await response.text()
        await backend.wait_received(4)
        assert gateway.process is not None
        gateway.process.terminate()  # SIGTERM while four deliveries hang
        # In-flight deliveries are allowed to finish; let them.
        release.set()
        async with asyncio.timeout(60):
            returncode = await gateway.wait()
    assert returncode == 0, gateway.log_text()
    assert "Traceback" not in gateway.log_text()
    assert (
        await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE locked_by IS NOT NULL") == 0
    )
    delivered = await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE status = 1")
    assert delivered == sum(map(len, backend.delivered().values())) >= 4
    # What was not delivered is due for whoever runs next.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qiwi_transaction WHERE status = 0 AND next_attempt_at > now()"
        )
        == 0
    )
