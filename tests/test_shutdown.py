"""SIGTERM while webhooks are in flight: a clean exit, and no row left claimed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import unused_port

from tests.helpers import Backend


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while process.returncode is None:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # polling a separate process: there is no event
    raise AssertionError("the gateway exited before it was ready")


async def test_sigterm_during_deliveries(database_dsn: str, db: Any) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request, number: int) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    port = unused_port()
    async with Backend(slow) as backend:
        env = {
            **os.environ,
            "DATABASE_URL": database_dsn,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "QIWI_WEBHOOK_URL": backend.url,
            "QIWI_WEBHOOK_TIMEOUT": "5",
            "QIWI_WEBHOOK_CONCURRENCY": "4",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qiwi_gw", "serve", env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_ready(f"{base}/readyz", process)
            async with aiohttp.ClientSession() as session:
                for n in range(1, 11):
                    params = {
                        "command": "pay",
                        "txn_id": str(n),
                        "txn_date": "20261129120000",
                        "account": "1",
                        "sum": "1.00",
                    }
                    async with session.get(f"{base}/payment", params=params) as response:
                        assert "<result>0</result>" in await response.text()
            await backend.wait_received(4)
            process.send_signal(signal.SIGTERM)
            # In-flight deliveries are allowed to finish; let them.
            release.set()
            async with asyncio.timeout(30):
                _, stderr = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    assert (
        await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE locked_by IS NOT NULL") == 0
    )
    delivered = await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE status = 1")
    assert delivered == len(backend.delivered) >= 4
    # What was not delivered is due for whoever runs next.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM qiwi_transaction WHERE status = 0 AND next_attempt_at > now()"
        )
        == 0
    )
