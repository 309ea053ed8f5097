"""New payments are stored already claimed by the dispatcher that will send them.

The committer inserts a batch's new payments with this process's claim while the
dispatcher has free slots; the NOTIFY of the commit then starts the delivery
without a claim's round trip. Each promise of the queue holds: sent once, sent
even when the NOTIFY is lost, never claimed while the backend is down, handed
back at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from qiwi_gw import dispatcher as dispatcher_module
from qiwi_gw import keys
from qiwi_gw.dispatcher import Dispatcher
from tests.support.app import ClientFactory
from tests.support.backend import Backend, Received

PAY = {
    "command": "pay",
    "txn_date": "20261130120000",
    "account": "42",
    "sum": "10.00",
}


@contextmanager
def logged(message: str) -> Iterator[asyncio.Event]:
    """An event set when the dispatcher logs a line starting with ``message``."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith(message):
                seen.set()

    handler = Watch(logging.DEBUG)
    logger = logging.getLogger("qiwi_gw.dispatcher")
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


async def pay(client: Any, txn_id: str) -> None:
    response = await client.get("/payment", params={**PAY, "txn_id": txn_id})
    assert "<result>0</result>" in await response.text()


async def test_a_new_payment_is_stored_claimed_and_sent_once(
    make_client: ClientFactory, db: Any
) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url)
        dispatcher: Dispatcher = client.app[keys.DISPATCHER]
        await dispatcher.listener.up.wait()
        stored_claims: list[tuple[int, ...]] = []
        claimed = dispatcher.claimed

        def spy(rows: Any) -> None:
            stored_claims.append(tuple(row.id for row in rows))
            claimed(rows)

        dispatcher.claimed = spy  # type: ignore[method-assign]
        await pay(client, "1")
        await backend.wait_delivered({"1"})
        await client.close()
    assert stored_claims == [(1,)]
    assert len(backend.received) == 1
    row = await db.fetchrow("SELECT status, attempts, locked_by FROM qiwi_transaction")
    assert (row["status"], row["attempts"], row["locked_by"]) == (1, 1, None)


async def test_a_lost_notification_still_sends_it(
    make_client: ClientFactory, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dispatcher_module, "NOTIFY_GRACE", 0.2)
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_SWEEP_INTERVAL="600")
        dispatcher: Dispatcher = client.app[keys.DISPATCHER]
        await dispatcher.listener.up.wait()
        dispatcher.listener._on_notify = lambda _payload: None
        await pay(client, "2")
        # Neither the NOTIFY nor the sweep (600 s): only the grace timer sends it.
        await backend.wait_delivered({"2"}, within=10)
        await client.close()


async def test_nothing_is_claimed_on_insert_while_the_backend_is_down(
    make_client: ClientFactory, db: Any
) -> None:
    async def down(received: Received) -> web.StreamResponse:
        return web.Response(status=503)

    async with Backend(down) as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_RETRY_MIN="60")
        dispatcher: Dispatcher = client.app[keys.DISPATCHER]
        await dispatcher.listener.up.wait()
        with logged("webhook backend is down") as outage:
            for txn in ("1", "2", "3"):
                await pay(client, txn)
            await asyncio.wait_for(outage.wait(), 30)
        assert not dispatcher.state.backend_up
        assert dispatcher.reserve(5) == 0
        await pay(client, "4")
        row = await db.fetchrow("SELECT locked_by FROM qiwi_transaction WHERE code = '4'")
        await client.close()
    assert row["locked_by"] is None


async def test_claims_on_insert_are_handed_back_at_shutdown(
    make_client: ClientFactory, db: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dispatcher_module, "NOTIFY_GRACE", 60.0)
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url)
        dispatcher: Dispatcher = client.app[keys.DISPATCHER]
        await dispatcher.listener.up.wait()
        # Stored claimed, then the process stops before the NOTIFY starts it.
        dispatcher.listener._on_notify = lambda _payload: None
        await pay(client, "5")
        assert await db.fetchval("SELECT locked_by FROM qiwi_transaction") == dispatcher.owner
        await client.close()
    row = await db.fetchrow(
        "SELECT status, locked_by, next_attempt_at <= now() AS due FROM qiwi_transaction"
    )
    assert (row["status"], row["locked_by"], row["due"]) == (0, None, True)
    assert backend.received == []


async def test_slots_lent_for_claims_count_against_concurrency(
    make_client: ClientFactory,
) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_CONCURRENCY="2")
        dispatcher: Dispatcher = client.app[keys.DISPATCHER]
        assert dispatcher.reserve(5) == 2
        assert dispatcher.reserve(1) == 0
        dispatcher.unreserve(2)
        assert dispatcher.reserve(1) == 1
        dispatcher.unreserve(1)
        await client.close()
