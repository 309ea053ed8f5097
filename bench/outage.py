"""The delivery policy's bad-day figures, for any checkout of the gateway.

    python -m bench.outage [--dsn SERVER_DSN] [--held 1000000]

Runs four scenarios against a real gateway process (the ``qiwi_gw`` on
PYTHONPATH, so an older checkout can be measured the same way), a local backend
and the given PostgreSQL server (a database of its own per scenario):

1. commits in 10 s with one payment pending and the backend answering 503;
2. attempts of one rejected (422) payment in 12 s beside 20 good payments/s;
3. the wait of a good payment after 12 rejected ones (concurrency 2, RETRY_MAX 8);
4. time from the backend's recovery to the first delivery of ``--held`` rows an
   outage held back (split into the wait for the next probe and the time from
   the successful probe to the first held row), and the rate over the next 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from tests.support.backend import Backend, Received
from tests.support.database import commits, own_database
from tests.support.gateway import default_gateway
from tests.support.qiwi import pay

from qiwi_gw import migrations

CAP = 30.0


@asynccontextmanager
async def fresh_database(server_dsn: str) -> AsyncIterator[str]:
    """A migrated database of the scenario's own."""
    with own_database(server_dsn, None) as dsn:
        migrations.apply(dsn, "public")
        yield dsn


async def idle_outage_commits(server_dsn: str) -> int:
    async def unavailable(_received: Received) -> web.StreamResponse:
        return web.Response(status=503)

    backend = Backend(unavailable)
    async with (
        fresh_database(server_dsn) as dsn,
        backend,
        default_gateway(dsn, backend) as gw,
    ):
        async with aiohttp.ClientSession() as session:
            await pay(session, gw.base, "1")
        await backend.wait_for(lambda: backend.attempts("1") >= 1, within=30)
        await asyncio.sleep(1.5)
        name = dsn.rsplit("/", 1)[1]
        before = await commits(server_dsn, name)
        await asyncio.sleep(10)
        await asyncio.sleep(1.5)  # statistics flush
        return await commits(server_dsn, name) - before


async def rejected_attempts(server_dsn: str) -> int:
    async def reject_one(received: Received) -> web.StreamResponse:
        return web.Response(status=422) if received.code == "999999" else web.Response(text="ok")

    backend = Backend(reject_one)
    async with (
        fresh_database(server_dsn) as dsn,
        backend,
        default_gateway(dsn, backend) as gw,
    ):
        async with aiohttp.ClientSession() as session:
            await pay(session, gw.base, "999999")
            deadline = time.monotonic() + 12
            good = 0
            while time.monotonic() < deadline:
                good += 1
                await pay(session, gw.base, str(good))
                await asyncio.sleep(0.05)
        return backend.attempts("999999")


async def good_after_rejections(server_dsn: str) -> float:
    async def reject_bad(received: Received) -> web.StreamResponse:
        return web.Response(status=422) if int(received.code) >= 900 else web.Response(text="ok")

    backend = Backend(reject_bad)
    env = {"QIWI_WEBHOOK_CONCURRENCY": "2", "QIWI_WEBHOOK_RETRY_MAX": "8"}
    async with (
        fresh_database(server_dsn) as dsn,
        backend,
        default_gateway(dsn, backend, **env) as gw,
        aiohttp.ClientSession() as session,
    ):
        for n in range(12):
            await pay(session, gw.base, str(900 + n))
        await backend.wait_for(lambda: len(backend.answered()) >= 12, within=30)
        sent = await pay(session, gw.base, "1")
        try:
            await backend.wait_for(lambda: "1" in backend.delivered(), within=CAP)
        except TimeoutError:
            return float("inf")
        return backend.delivered()["1"][0].started - sent


async def recovery(server_dsn: str, held: int) -> dict[str, Any]:
    up = asyncio.Event()

    async def down_until_up(_received: Received) -> web.StreamResponse:
        return web.Response(text="ok") if up.is_set() else web.Response(status=503)

    backend = Backend(down_until_up)
    env = {"QIWI_WEBHOOK_RETRY_MIN": "0.2", "QIWI_WEBHOOK_RETRY_MAX": "1"}
    async with (
        fresh_database(server_dsn) as dsn,
        backend,
        default_gateway(dsn, backend, **env) as gw,
    ):
        async with aiohttp.ClientSession() as session:
            for txn in ("1", "2", "3", "4"):
                await pay(session, gw.base, txn)
        await backend.wait_for(lambda: len(backend.answered()) >= 6, within=30)
        connection = await asyncpg.connect(dsn)
        try:
            has_hold = await connection.fetchval(
                "SELECT count(*) FROM information_schema.columns"
                " WHERE table_name = 'qiwi_transaction' AND column_name = 'held_by_outage'"
            )
            await connection.execute(
                f"""
                INSERT INTO qiwi_transaction
                    (account, code, sum, status, txn_date, attempts, next_attempt_at
                     {", held_by_outage" if has_hold else ""})
                SELECT 'held', (500000 + n)::text, 10.00, 0, now(), 1,
                       now() + interval '1 hour' {", true" if has_hold else ""}
                FROM generate_series(1, $1) AS n
                """,
                held,
            )
            await connection.execute("ANALYZE qiwi_transaction")
        finally:
            await connection.close()

        def held_delivered() -> int:
            return sum(
                1 for hit in backend.answered() if int(hit.code) >= 500000 and hit.status == 200
            )

        up.set()
        started = time.monotonic()
        try:
            await backend.wait_for(lambda: held_delivered() >= 1, within=CAP * 2)
        except TimeoutError:
            return {"first_delivery_s": None, "rate_per_s": 0.0}
        first = time.monotonic() - started
        # The backend's recovery as the gateway sees it: its first 2xx after up.set().
        recovered = min(hit.started for hit in backend.answered() if hit.status == 200)
        first_held = min(
            hit.started
            for hit in backend.answered()
            if int(hit.code) >= 500000 and hit.status == 200
        )
        count_before = held_delivered()
        await asyncio.sleep(10)
        rate = (held_delivered() - count_before) / 10
        return {
            "first_delivery_s": round(first, 3),
            "probe_after_up_s": round(recovered - started, 3),
            "first_held_after_probe_s": round(first_held - recovered, 3),
            "rate_per_s": round(rate, 1),
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--held", type=int, default=1_000_000)
    args = parser.parse_args()
    figures = {
        "outage_commits_in_10s": await idle_outage_commits(args.dsn),
        "rejected_attempts_in_12s": await rejected_attempts(args.dsn),
        "good_wait_after_12_rejections_s": round(await good_after_rejections(args.dsn), 3),
        f"recovery_of_{args.held}_held": await recovery(args.dsn, args.held),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
