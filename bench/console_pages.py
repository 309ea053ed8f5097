"""The console's pages on 1,000,000 payments: the time to serve one page.

Seeds a database of its own with 1,000,000 payments over a year (1 in 1,000
pending, 5,000 accounts, a day's worth stored in the last 24 hours for the
chart), then asks the console for each page ``--repeat`` times over HTTP on
loopback and prints the median and the slowest, with the plan of each search
statement (an index scan, never a scan of the table).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m bench.console_pages

DATABASE_URL is the server to create the database on (dropped at the end);
without it an embedded PostgreSQL is started.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time as clock
from datetime import date, datetime, time
from typing import Any

import asyncpg
import psycopg
from aiohttp.test_utils import TestClient, TestServer
from tests.support.database import with_database

from bench.run import postgres_server
from qiwi_gw import migrations
from qiwi_gw.app import create_app
from qiwi_gw.console import create_console_app
from qiwi_gw.settings import Settings
from qiwi_gw.store import reports

ROWS = 1_000_000

SEED = [
    "ALTER TABLE qiwi_webhook_attempt SET UNLOGGED",
    "ALTER TABLE qiwi_transaction SET UNLOGGED",
    f"""
    INSERT INTO qiwi_transaction
        (account, code, sum, status, txn_date, created_at, updated_at, attempts,
         next_attempt_at, last_attempt_at, last_error, delivered_at)
    SELECT
        (900000 + g % 5000)::text,
        (10000000000 + g)::text,
        (g % 99999 + 1) / 100.0,
        CASE WHEN g % 1000 = 0 THEN 0 ELSE 1 END,
        t + interval '3 hours',
        t,
        t,
        1,
        CASE WHEN g % 1000 = 0 THEN now() + interval '10 minutes' END,
        (t AT TIME ZONE 'UTC') + interval '1 second',
        CASE WHEN g % 1000 = 0 THEN 'HTTP 503' END,
        CASE WHEN g % 1000 <> 0 THEN (t AT TIME ZONE 'UTC') + interval '2 seconds' END
    FROM generate_series(1, {ROWS}) AS g,
         LATERAL (
            SELECT (now() AT TIME ZONE 'UTC') - interval '365 days'
                   + g * interval '31.5 seconds' AS t
         ) AS times
    """,
    "VACUUM ANALYZE qiwi_transaction",
]


def pages(middle_id: int, month: tuple[str, str, int]) -> list[tuple[str, str]]:
    first, last, inside = month
    dates = f"/payments?from={first}&to={last}"
    return [
        ("overview (counts, 24 h chart)", "/"),
        ("payments, newest page", "/payments"),
        ("payments, a page deep in the table", f"/payments?before={middle_id}"),
        ("payments by account", "/payments?account=901234"),
        ("payments by account, next page", f"/payments?account=901234&before={middle_id}"),
        ("payments by status 0", "/payments?status=0"),
        ("payments by status 1, deep", f"/payments?status=1&before={middle_id}"),
        ("payments by QIWI date, a month 8 months back", dates),
        ("payments by QIWI date, next page", f"{dates}&before={inside}"),
        ("payments by txn_id", "/payments?txn_id=10000500000"),
        ("one payment", "/payments/10000500000"),
        ("pending", "/pending"),
    ]


PLANS = {
    "newest": (reports.Search(), {}),
    "deep": (reports.Search(), {"older_than": ROWS // 2}),
    "account": (reports.Search(account="901234"), {}),
    "account, deep": (reports.Search(account="901234"), {"older_than": ROWS // 2}),
    "status 0": (reports.Search(status=0), {}),
}


# A month of QIWI's dates eight months back, and the id of a payment half-way through it.
MONTH = """
WITH bounds AS (
    SELECT (max(txn_date) - interval '240 days')::date AS first FROM qiwi_transaction
)
SELECT first, first + 29 AS last,
       (SELECT id FROM qiwi_transaction WHERE txn_date >= first + 15 ORDER BY txn_date LIMIT 1)
FROM bounds
"""


async def month_of(connection: asyncpg.Connection) -> tuple[date, date, int]:
    row = await connection.fetchrow(MONTH)
    assert row is not None
    return row[0], row[1], row[2]


async def plans(dsn: str) -> dict[str, str]:
    """The top of each search statement's plan, as the console runs it."""
    connection = await asyncpg.connect(dsn)
    found: dict[str, str] = {}
    captured: list[tuple[str, tuple[Any, ...]]] = []

    class Capture:
        async def fetch(self, statement: str, *args: Any) -> list[Any]:
            captured.append((statement, args))
            return []

    first, last, _ = await month_of(connection)
    month = reports.Search(
        txn_from=datetime.combine(first, time()), txn_to=datetime.combine(last, time())
    )
    try:
        for name, (criteria, cursor) in [*PLANS.items(), ("a month of QIWI dates", (month, {}))]:
            captured.clear()
            await reports.search(Capture(), criteria, limit=51, **cursor)  # type: ignore[arg-type]
            statement, args = captured[0]
            rows = await connection.fetch("EXPLAIN " + statement, *args)
            found[name] = " / ".join(
                row[0].strip().removeprefix("->  ").split("  (cost")[0]
                for row in rows
                if "Scan" in row[0] or "Limit" in row[0] or "Sort" in row[0]
            )
    finally:
        await connection.close()
    return found


async def measure(dsn: str, repeat: int) -> list[tuple[str, float, float]]:
    settings = Settings.from_env({"DATABASE_URL": dsn, "QIWI_CONSOLE_PORT": "0"})
    gateway = create_app(settings, dsn)
    console = create_console_app(settings, dsn, gateway)
    results = []
    connection = await asyncpg.connect(dsn)
    first, last, inside = await month_of(connection)
    await connection.close()
    async with TestClient(TestServer(console)) as client:
        middle = ROWS // 2
        for name, path in pages(middle, (first.isoformat(), last.isoformat(), inside)):
            times = []
            for _ in range(repeat + 1):
                started = clock.perf_counter()
                response = await client.get(path)
                await response.read()
                times.append(clock.perf_counter() - started)
                assert response.status == 200, (path, response.status)
            # The first request warms the pool and the caches: not counted.
            results.append((name, statistics.median(times[1:]), max(times[1:])))
    return results


def seed(server_dsn: str) -> tuple[str, str]:
    name = f"qiwi_gw_bench_console_{secrets.token_hex(4)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(server_dsn, name)
    migrations.apply(dsn, "public")
    started = clock.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as connection:
        for statement in SEED:
            connection.execute(statement)
    print(f"seeded {ROWS:,} payments in {clock.perf_counter() - started:.0f} s")
    return name, dsn


def main() -> None:
    parser = argparse.ArgumentParser(description="console page times on 1,000,000 payments")
    parser.add_argument("--repeat", type=int, default=20, help="requests per page (default 20)")
    args = parser.parse_args()
    with postgres_server() as server_dsn:
        name, dsn = seed(server_dsn)
        try:
            for plan_name, plan in asyncio.run(plans(dsn)).items():
                print(f"plan, {plan_name}: {plan}")
            results = asyncio.run(measure(dsn, args.repeat))
        finally:
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"\n{'page':<46} {'median':>9} {'slowest':>9}   ({args.repeat} requests each)")
    for page_name, median, slowest in results:
        print(f"{page_name:<46} {median * 1000:>7.1f} ms {slowest * 1000:>6.1f} ms")


if __name__ == "__main__":
    main()
