"""The figures of docs/security.md: findings 1-3 of the penetration test, measured
against any source tree, so that a tree before the hardening and one after it
can be compared on the same machine in the same hour.

    python -m tests.support.hardening_figures SRC [SRC ...]

SRC is a checkout's root (its ``src`` goes on PYTHONPATH for the gateway
process); the database server is TEST_DATABASE_URL's (a database of its own is
created and dropped for each measurement). One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.support.database import own_database
from tests.support.gateway import gateway
from tests.support.intake import held, log_table_bytes, result_of, spawn
from tests.support.qiwi import AUTH, PASSWORD, QIWI, USER, Payer, median_ms, p99_ms

PROTECTED = {
    "HTTP_AUTH_USERNAME": USER,
    "HTTP_AUTH_PASSWORD": PASSWORD,
    "QIWI_ALLOWED_IPS": f"{QIWI}/32",
}
AUTHENTICATED_STALL = (
    "POST /payment HTTP/1.1\r\nHost: q\r\nAuthorization: Basic cWl3aTpxaXdpLXMzY3JldA==\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ncommand=pay"
)


@asynccontextmanager
async def database(server: str) -> AsyncIterator[str]:
    """An empty database of the measurement's own; the gateway migrates it."""
    with own_database(server, None) as dsn:
        yield dsn


async def while_paying(
    base: str,
    load: Awaitable[asyncio.subprocess.Process],
    *,
    holding: bool = False,
    reconnect: bool = False,
) -> tuple[Payer, dict[str, int]]:
    payer = Payer(base, first_txn=1_000_000, reconnect=reconnect)
    process = await load
    if holding:
        await held(process)
    stop = asyncio.Event()
    paying = asyncio.create_task(payer.run_until(stop))
    counts = await result_of(process)
    stop.set()
    await paying
    return payer, counts


def latency(prefix: str, payer: Payer) -> dict[str, Any]:
    return {
        f"{prefix}_pays": len(payer.answers),
        f"{prefix}_not_0": sum(answer != "0" for answer in payer.answers),
        f"{prefix}_median_ms": round(median_ms(payer.latencies), 2),
        f"{prefix}_mean_ms": round(1000 * sum(payer.latencies) / max(1, len(payer.latencies)), 2),
        f"{prefix}_p99_ms": round(p99_ms(payer.latencies), 2),
    }


async def refused_flood(dsn: str, src: str, headers: int, header_bytes: int) -> dict[str, Any]:
    """Finding 1: four callers without credentials, 2,000 big requests back to back."""
    async with gateway(dsn, src=src, **PROTECTED) as gw:
        idle = Payer(gw.base)
        await idle.run(200)
        before = await log_table_bytes(dsn)
        started = time.monotonic()
        payer, counts = await while_paying(
            gw.base,
            spawn(
                "refused_flood",
                port=gw.port,
                clients=4,
                requests=2000,
                seconds=20,
                headers=headers,
                header_bytes=header_bytes,
                body_bytes=65000,
            ),
        )
        elapsed = time.monotonic() - started
        growth = await log_table_bytes(dsn) - before
    return {
        "request_header_bytes": headers * header_bytes,
        "answers": counts,
        "seconds": round(elapsed, 1),
        "table_growth_mb": round(growth / 1e6, 1),
        **latency("idle", idle),
        **latency("flood", payer),
    }


async def stalled_bodies(dsn: str, src: str) -> dict[str, Any]:
    """Finding 2a: 1,000 authenticated requests whose bodies never finish."""
    env = {"HTTP_AUTH_USERNAME": USER, "HTTP_AUTH_PASSWORD": PASSWORD}
    async with gateway(dsn, src=src, **env) as gw:
        await Payer(gw.base).run(50)
        idle = (gw.rss_kb(), gw.open_descriptors())
        hold = await spawn(
            "hold_connections",
            port=gw.port,
            addresses=10,
            per_address=100,
            seconds=15,
            partial=AUTHENTICATED_STALL,
        )
        await asyncio.sleep(5)  # sampling another process: nothing to await
        held = (gw.rss_kb(), gw.open_descriptors())
        await asyncio.sleep(8)
        later = (gw.rss_kb(), gw.open_descriptors())
        counts = await result_of(hold)
    return {
        "held": counts,
        "rss_mb": [idle[0] // 1024, held[0] // 1024, later[0] // 1024],
        "descriptors": [idle[1], held[1], later[1]],
        "sampled_at_s": [0, 5, 13],
    }


async def descriptor_flood(dsn: str, src: str) -> dict[str, Any]:
    """Finding 2b: 1,024 descriptors, 1,100 idle connections from eleven addresses;
    QIWI opens a new connection for every pay once they are held."""
    async with gateway(dsn, src=src, nofile=1024, **PROTECTED) as gw:
        idle = Payer(gw.base)
        await idle.run(50)
        payer, counts = await while_paying(
            gw.base,
            spawn("hold_connections", port=gw.port, addresses=11, per_address=100, seconds=6),
            holding=True,
            reconnect=True,
        )
    return {"held": counts, **latency("idle", idle), **latency("flood", payer)}


async def scrape_storm(dsn: str, src: str, *, auth: bool, where: str) -> dict[str, Any]:
    """Finding 3: 100 scrapers of /metrics for 10 s, 500,000 pending payments."""
    env = {"HTTP_AUTH_USERNAME": USER, "HTTP_AUTH_PASSWORD": PASSWORD}
    async with gateway(dsn, src=src, **env) as gw:
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
                " SELECT 'a', 'p' || g, 1, 0, now() FROM generate_series(1, 500000) AS g"
            )
            connection.execute("VACUUM ANALYZE qiwi_transaction")
        idle = Payer(gw.base)
        await idle.run(200)
        base = gw.console if where == "console" else gw.base
        payer, counts = await while_paying(
            gw.base,
            spawn(
                "scrape_storm",
                url=f"{base}/metrics",
                clients=100,
                seconds=10,
                auth=AUTH if auth else None,
            ),
        )
    return {"scrapes": counts, **latency("idle", idle), **latency("storm", payer)}


Measurement = Callable[[str, str], Awaitable[dict[str, Any]]]
MEASUREMENTS: dict[str, Measurement] = {
    "1 refused flood, 960 KB of headers": lambda d, s: refused_flood(d, s, 120, 8000),
    "1 refused flood, 112 KB of headers": lambda d, s: refused_flood(d, s, 28, 4000),
    "2a stalled bodies": stalled_bodies,
    "2b descriptor flood": descriptor_flood,
    "3 scrape storm, no credentials, QIWI's port": lambda d, s: scrape_storm(
        d, s, auth=False, where="qiwi"
    ),
    "3 scrape storm, credentials, QIWI's port": lambda d, s: scrape_storm(
        d, s, auth=True, where="qiwi"
    ),
}


async def measure(trees: dict[str, str], only: str | None) -> None:
    server = os.environ["TEST_DATABASE_URL"]
    for name, run in MEASUREMENTS.items():
        if only and not name.startswith(only):
            continue
        for source in trees:
            async with database(server) as dsn:
                figures = await run(dsn, trees[source])
            print(json.dumps({"finding": name, "source": source, **figures}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.hardening_figures")
    parser.add_argument("sources", nargs="+", help="checkout roots to measure, in turn")
    parser.add_argument("--only", help="measurements whose name starts with this")
    args = parser.parse_args()
    trees = {source: str(Path(source).resolve() / "src") for source in args.sources}
    asyncio.run(measure(trees, args.only))


if __name__ == "__main__":
    main()
