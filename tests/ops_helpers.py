"""Helpers for the operator commands' tests: run ``qiwi-gw`` in-process, seed rows."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from qiwi_gw import cli


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dsn: str,
    *args: str,
    **env: str,
) -> Result:
    """``qiwi-gw ARGS`` in this process, on ``dsn``; the root logger is left as it was."""
    for name in list(os.environ):
        if name.startswith(("PG_", "QIWI_", "HTTP_AUTH")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", dsn)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m qiwi_gw ARGS`` as a real process, with only ``env`` configuring it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_", "HTTP_AUTH"))}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "qiwi_gw", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
