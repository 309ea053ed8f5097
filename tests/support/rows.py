"""Rows seeded and read directly on a test's database (psycopg, autocommit): payments in
any state, their webhook attempts, a row as stored."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg


def execute(dsn: str, statement: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else []


def add_payment(
    dsn: str,
    code: str,
    *,
    account: str = "42",
    amount: str = "10.00",
    txn_date: str = "2026-11-28 12:00:00",
    created_ago: str = "1 hour",
    delivered_ago: str | None = "59 minutes",
    attempts: int = 1,
    next_attempt_in: str | None = None,
    last_error: str | None = None,
    locked_for: str | None = None,
) -> int:
    """One payment row: delivered, or pending when ``delivered_ago`` is None.

    Ages and delays are PostgreSQL intervals ("1 hour", "-5 minutes").
    """
    params = {
        "account": account,
        "code": code,
        "sum": Decimal(amount),
        "status": 1 if delivered_ago is not None else 0,
        "txn_date": txn_date,
        "created_ago": created_ago,
        "attempts": attempts,
        "next_attempt_in": next_attempt_in,
        "last_error": last_error,
        "delivered_ago": delivered_ago,
        "locked_for": locked_for,
    }
    with psycopg.connect(dsn, autocommit=True) as connection:
        found = connection.execute(
            """
            INSERT INTO qiwi_transaction
                (account, code, sum, status, txn_date, created_at, attempts,
                 next_attempt_at, last_attempt_at, last_error, delivered_at,
                 locked_until, locked_by)
            VALUES (
                %(account)s, %(code)s, %(sum)s, %(status)s, %(txn_date)s::timestamp,
                (now() AT TIME ZONE 'UTC') - %(created_ago)s::interval,
                %(attempts)s,
                now() + %(next_attempt_in)s::interval,
                CASE WHEN %(attempts)s > 0 THEN now() - interval '1 minute' END,
                %(last_error)s,
                now() - %(delivered_ago)s::interval,
                now() + %(locked_for)s::interval,
                CASE WHEN %(locked_for)s::interval IS NOT NULL THEN 'other-gateway' END
            )
            RETURNING id
            """,
            params,
        ).fetchone()
    assert found is not None
    transaction_id: int = found[0]
    return transaction_id


def add_attempt(
    dsn: str,
    transaction_id: int,
    attempt: int,
    *,
    ago: str,
    http_status: int | None = None,
    error: str | None = None,
    response: str | None = None,
    duration_ms: int = 12,
) -> None:
    execute(
        dsn,
        """
        INSERT INTO qiwi_webhook_attempt
            (transaction_id, attempt, started_at, duration_ms, http_status, error,
             response_excerpt)
        VALUES (%s, %s, now() - %s::interval, %s, %s, %s, %s)
        """,
        transaction_id,
        attempt,
        ago,
        duration_ms,
        http_status,
        error,
        response,
    )


def row(dsn: str, code: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as connection:
        cursor = connection.execute(
            "SELECT *, next_attempt_at <= now() AS due FROM qiwi_transaction WHERE code = %s",
            (code,),
        )
        values = cursor.fetchone()
        assert values is not None, code
        assert cursor.description is not None
        return dict(zip([column.name for column in cursor.description], values, strict=True))


def utc_now(dsn: str) -> datetime:
    value: datetime = execute(dsn, "SELECT now()")[0][0]
    return value
