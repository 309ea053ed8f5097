"""``status`` and ``pending`` on a table of 1,000,000 payments: right, and from indexes;
and the webhook queue's statements (claim, outcomes, releases, resend, backlog) and the
intake's look-ups planned through indexes on the same table.

The database is seeded once for the module (about ten seconds). Nothing here is
timed; docs/operating.md gives the measured times. What is checked instead is the plan
of every statement: no sequential scan of a big table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import psycopg
import pytest

from qiwi_gw.ops import status
from qiwi_gw.store import attempts, payments, queue, reports
from tests.support.cli import run_cli
from tests.support.database import create_database, drop_database, with_database

ROWS = 1_000_000

# Every 1000th payment is pending (1,000), half of those due now; the rest were
# delivered a second after they were stored. One failed attempt per pending row.
# The tables are made UNLOGGED first only to seed faster; plans are the same.
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
        CASE WHEN g % 1000 = 0 THEN 3 ELSE 1 END,
        CASE WHEN g % 1000 <> 0 THEN NULL
             WHEN g % 2000 = 0 THEN now() - interval '1 minute'
             ELSE now() + interval '10 minutes' END,
        (t AT TIME ZONE 'UTC') + interval '1 second',
        CASE WHEN g % 1000 = 0 THEN 'HTTP 503' END,
        CASE WHEN g % 1000 <> 0 THEN (t AT TIME ZONE 'UTC') + interval '1 second' END
    FROM generate_series(1, {ROWS}) AS g,
         LATERAL (SELECT timestamp '2026-01-01' + g * interval '10 seconds' AS t) AS times
    """,
    """
    INSERT INTO qiwi_webhook_attempt (transaction_id, attempt, started_at, duration_ms, http_status)
    SELECT id, 3, last_attempt_at, 20, 503 FROM qiwi_transaction WHERE status = 0
    """,
    # The pending rows backing off when the backend went down are held by the outage.
    """
    UPDATE qiwi_transaction SET held_by_outage = true
    WHERE status = 0 AND next_attempt_at > now()
    """,
    # What autovacuum would have done by now on a table this size.
    "VACUUM ANALYZE qiwi_transaction",
    "VACUUM ANALYZE qiwi_webhook_attempt",
]


@pytest.fixture(scope="module")
def million_dsn(server_dsn: str, template_database: str) -> Iterator[str]:
    name = create_database(server_dsn, template_database)
    dsn = with_database(server_dsn, name)
    try:
        with psycopg.connect(dsn, autocommit=True) as connection:
            for statement in SEED:
                connection.execute(statement)
        yield dsn
    finally:
        drop_database(server_dsn, name)


def code(number: int) -> str:
    return str(10_000_000_000 + number)


def test_status(
    million_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(monkeypatch, capsys, million_dsn, "status", "--json")
    assert result.code == 0, result.err
    report = result.json()
    counts = report["counts"]
    assert counts["total"]["estimate"] is True
    assert abs(counts["total"]["value"] - ROWS) <= ROWS // 100
    assert counts["received"] == {"value": 1000, "estimate": False, "due_now": 500}
    assert counts["completed"]["estimate"] is True
    assert counts["completed"]["value"] == counts["total"]["value"] - 1000
    assert report["oldest_pending"]["txn_id"] == code(1000)
    assert report["last_delivery"]["txn_id"] == code(ROWS - 1)
    assert (report["last_error"]["txn_id"], report["last_error"]["http_status"]) == (
        code(ROWS),
        503,
    )
    table = run_cli(monkeypatch, capsys, million_dsn, "status").out.splitlines()
    assert table[0].startswith("payments        ~")
    assert table[1].split()[2:] == ["1,000", "(exact;", "500", "due", "now)"]


def test_pending(
    million_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(monkeypatch, capsys, million_dsn, "pending", "--limit", "5", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert (report["total"], report["due_now"], report["shown"]) == (1000, 500, 5)
    assert [item["txn_id"] for item in report["payments"]] == [
        code(n) for n in (1000, 2000, 3000, 4000, 5000)
    ]
    assert report["payments"][0]["last_error"] == "HTTP 503"
    table = run_cli(monkeypatch, capsys, million_dsn, "pending").out.splitlines()
    assert table[-1] == "1,000 pending (500 due now); showing the oldest 50"


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


STATEMENTS = [
    (reports.COUNT_PENDING, ()),
    (reports.SELECT_PENDING, (50,)),
    (reports.SELECT_LAST_DELIVERY, ()),
    (attempts.SELECT_LAST_FAILURE, ()),
]


@pytest.mark.parametrize(("statement", "args"), STATEMENTS)
async def test_status_and_pending_read_through_indexes(
    million_dsn: str, statement: str, args: tuple[object, ...]
) -> None:
    connection = await asyncpg.connect(million_dsn)
    try:
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *args)
    finally:
        await connection.close()
    scans = [node for node in nodes(json.loads(plan)[0]["Plan"]) if "Relation Name" in node]
    assert scans
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), (statement, scan)


async def test_the_exact_count_stops_at_its_bound(million_dsn: str) -> None:
    connection = await asyncpg.connect(million_dsn)
    try:
        plan = await connection.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {reports.COUNT_UP_TO}",
            status.EXACT_TOTAL_UP_TO + 1,
        )
    finally:
        await connection.close()
    scans = [node for node in nodes(json.loads(plan)[0]["Plan"]) if "Relation Name" in node]
    assert [scan["Actual Rows"] for scan in scans] == [status.EXACT_TOTAL_UP_TO + 1]


OWNER = "gateway-1"
# The parameters each queue statement is run with by the dispatcher, recorder and
# resend: one attempt's outcome, a batch size, a lease, a pending row's txn_id.
QUEUE_STATEMENTS = {
    "claim due": (queue.CLAIM_DUE, (100, 55.0, OWNER)),
    "record outcomes": (
        queue.RECORD_OUTCOMES,
        (
            [1000],
            [4],
            [datetime(2026, 11, 30, tzinfo=UTC)],
            [20],
            [503],
            [None],
            [None],
            [False],
            ["HTTP 503"],
            [8.0],
            [True],
            OWNER,
        ),
    ),
    "release claims": (queue.RELEASE_CLAIMS, (OWNER,)),
    "release held": (queue.RELEASE_HELD, (5000,)),
    "delivery backlog": (queue.DELIVERY_BACKLOG, ()),
    "lock for resend": (queue.LOCK_FOR_RESEND, ([code(1000), code(1001)],)),
    "make due": (queue.MAKE_DUE, ([1000, 1001],)),
    "make pending due": (queue.MAKE_PENDING_DUE, (5000,)),
    "stored by codes": (payments.SELECT_BY_CODES, ([code(1), code(ROWS + 1)],)),
}
# Reading a partial index's matches through a bitmap is still reading the index.
INDEXED = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@pytest.mark.parametrize("name", QUEUE_STATEMENTS)
async def test_queue_statements_read_through_indexes(million_dsn: str, name: str) -> None:
    """Every statement the dispatcher runs however many rows are stored: with a million
    delivered payments, each reaches its rows through an index, never a table scan."""
    statement, args = QUEUE_STATEMENTS[name]
    connection = await asyncpg.connect(million_dsn)
    try:
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *args)
    finally:
        await connection.close()
    scans = [
        node
        for node in nodes(json.loads(plan)[0]["Plan"])
        if "Relation Name" in node and node["Node Type"] != "ModifyTable"
    ]
    assert scans, plan
    for scan in scans:
        assert scan["Node Type"] in INDEXED, (name, scan)
