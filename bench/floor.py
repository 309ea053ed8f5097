"""The floor: the least a process on the gateway's stack can do between a ``pay`` and its
webhook, so that the gateway's latency is measured as a ratio to it.

Per pay: aiohttp's handler parses QIWI's parameters (the gateway's own parser), runs ONE
statement that inserts the payment into ``qiwi_transaction`` and ``pg_notify``\\ s the
row as JSON, and answers QIWI's XML with ``prv_txn``. One dedicated LISTEN connection's
callback builds the webhook body from that JSON (the gateway's own ``payload``, so the
contract is byte for byte the same) and POSTs it through one shared aiohttp
``ClientSession``. Nothing else: no claim, no lease, no outcome written, no request log,
no retry, no signature, no metrics. uvloop, as ``qiwi-gw serve``.

    python -m bench.floor --dsn postgresql://... --port 8090 --webhook http://127.0.0.1:8001/hook

The database must be migrated (the gateway's tables). The floor's rows are stored with
status 1 and no ``next_attempt_at``: the table's insert trigger notifies the gateway's
channel only for status 0, and a gateway's sweep only claims due status-0 rows, so a
gateway on the same database is never woken nor sent the floor's payments; the floor's
one NOTIFY per pay goes to a channel of its own (``--channel``). The cost of that: the
floor's row skips the two partial indexes on pending rows the gateway's row enters.
A repeated txn_id is answered 300: the floor does not answer repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import uvloop
from aiohttp import web

from qiwi_gw.protocol import Answer, Pay, ProtocolError, ResultCode, parse_syntax
from qiwi_gw.store.payments import DueRow
from qiwi_gw.webhook import payload

logger = logging.getLogger("bench.floor")

CHANNEL = "qiwi_gw_bench_floor"
POOL_SIZE = 20  # the gateway's default pool size

# One statement, one implicit transaction, one round trip: the row and its NOTIFY
# commit together. The channel is a parameter ($9), not part of the text.
PAY = """
WITH ins AS (
    INSERT INTO qiwi_transaction
        (account, code, sum, status, txn_date, ccy, prv_id, extra, next_attempt_at)
    VALUES ($1, $2, $3, 1, $4, $5, $6, $7::jsonb, NULL)
    ON CONFLICT (code) DO NOTHING
    RETURNING id, account, code, sum, created_at
)
SELECT ins.id, pg_notify($8, row_to_json(ins)::text) FROM ins
"""

POOL = web.AppKey("pool", asyncpg.Pool)
CHANNEL_KEY = web.AppKey("channel", str)
XML = "text/xml"


def xml(answer: Answer) -> web.Response:
    return web.Response(text=answer.to_xml(), content_type=XML, charset="utf-8")


async def payment(request: web.Request) -> web.Response:
    pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
    if request.method == "POST":
        pairs += parse_qsl((await request.read()).decode("utf-8", errors="replace"))
    try:
        command = parse_syntax(pairs)
    except ProtocolError as error:
        return xml(Answer.from_error(error))
    if not isinstance(command, Pay):
        return xml(Answer(ResultCode.OTHER, "the floor answers pay only"))
    prv_txn = await request.app[POOL].fetchval(
        PAY,
        command.account,
        command.txn_id,
        command.sum,
        command.txn_date,
        command.ccy,
        command.prv_id,
        json.dumps(command.extra),
        request.app[CHANNEL_KEY],
    )
    if prv_txn is None:
        return xml(Answer(ResultCode.OTHER, "txn_id already stored", osmp_txn_id=command.txn_id))
    return xml(
        Answer(
            ResultCode.OK,
            "OK",
            osmp_txn_id=command.txn_id,
            prv_txn=prv_txn,
            sum=command.sum,
        )
    )


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


class Sender:
    """The LISTEN callback: one POST per NOTIFY, straight from its payload."""

    def __init__(self, session: aiohttp.ClientSession, url: str, zone: ZoneInfo) -> None:
        self._session = session
        self._url = url
        self._zone = zone
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = 0

    def notified(self, connection: object, pid: int, channel: str, data: object) -> None:
        task = asyncio.get_running_loop().create_task(self._post(str(data)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, data: str) -> None:
        row = json.loads(data, parse_float=Decimal)
        body = payload(
            DueRow(
                id=row["id"],
                account=row["account"],
                code=row["code"],
                sum=Decimal(row["sum"]),
                created_at=datetime.fromisoformat(row["created_at"]),
                attempts=0,
            ),
            self._zone,
        )
        try:
            async with self._session.post(
                self._url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    self.failures += 1
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # No retry: the floor measures the path, not the promise.
            self.failures += 1
            logger.warning("webhook for %s failed: %s", row["code"], exc)


def create_app(dsn: str, webhook: str, channel: str, zone: ZoneInfo) -> web.Application:
    app = web.Application()
    app[CHANNEL_KEY] = channel

    async def resources(app: web.Application) -> AsyncIterator[None]:
        async with (
            asyncpg.create_pool(
                dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_keep_session
            ) as pool,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session,
        ):
            app[POOL] = pool
            sender = Sender(session, webhook, zone)
            listener = await asyncpg.connect(dsn)
            await listener.add_listener(channel, sender.notified)
            try:
                yield
            finally:
                await listener.close()

    app.cleanup_ctx.append(resources)
    app.router.add_route("*", "/payment", payment)
    app.router.add_get("/readyz", ready)
    return app


async def _keep_session(connection: asyncpg.Connection) -> None:
    """No reset query on release, as the gateway's pool: nothing here LISTENs or SETs."""


def main() -> None:
    parser = argparse.ArgumentParser(description="the bare pay → NOTIFY → webhook path")
    parser.add_argument("--dsn", required=True, help="a migrated database")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook", required=True, help="URL the webhooks are POSTed to")
    parser.add_argument("--channel", default=CHANNEL, help="the floor's own NOTIFY channel")
    parser.add_argument("--timezone", default="UTC", help="created_at's zone, as MS_TIMEZONE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(
        create_app(args.dsn, args.webhook, args.channel, ZoneInfo(args.timezone)),
        host=args.host,
        port=args.port,
        loop=uvloop.new_event_loop(),
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
