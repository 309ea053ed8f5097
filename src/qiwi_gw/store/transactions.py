"""``qiwi_transaction``: one row per payment, keyed by QIWI's ``txn_id`` (``code``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from qiwi_gw.db import Executor
from qiwi_gw.protocol import Pay
from qiwi_gw.store import attempts, http_log

STATUS_RECEIVED = 0
STATUS_COMPLETED = 1

# The request's log row and the payment row go in one statement, hence one
# implicit transaction: both commit together or neither does, in one round trip.
# A repeated txn_id inserts nothing (the log row still lands) and returns no row.
INSERT_PAYMENT_WITH_LOG = f"""
WITH log AS ({http_log.INSERT})
INSERT INTO qiwi_transaction
    (account, code, sum, status, txn_date, ccy, prv_id, extra, http_log_id, next_attempt_at)
SELECT $6, $7, $8, $9, $10, $11, $12, $13::jsonb, log.id,
       CASE WHEN $9 = {STATUS_RECEIVED} THEN now() END
FROM log
ON CONFLICT (code) DO NOTHING
RETURNING id
"""

SELECT_BY_CODE = """
SELECT id, account, sum, status FROM qiwi_transaction WHERE code = $1
"""


@dataclass(frozen=True)
class StoredPayment:
    id: int
    account: str
    sum: Decimal
    status: int


async def insert_with_log(
    connection: Executor,
    entry: http_log.HttpLogEntry,
    pay: Pay,
    status: int,
) -> int | None:
    """The new row's id, or None when ``pay.txn_id`` is already stored."""
    new_id: int | None = await connection.fetchval(
        INSERT_PAYMENT_WITH_LOG,
        *entry.as_args(),
        pay.account,
        pay.txn_id,
        pay.sum,
        status,
        pay.txn_date,
        pay.ccy,
        pay.prv_id,
        json.dumps(pay.extra),
    )
    return new_id


async def get_by_code(connection: Executor, code: str) -> StoredPayment | None:
    row = await connection.fetchrow(SELECT_BY_CODE, code)
    if row is None:
        return None
    return StoredPayment(id=row["id"], account=row["account"], sum=row["sum"], status=row["status"])


# --- webhook delivery: the table is the queue -------------------------------

# A claim moves next_attempt_at past the lease, so a row claimed by a process
# that then dies becomes due again by itself once the lease runs out.
CLAIM_DUE = """
WITH due AS (
    SELECT id FROM qiwi_transaction
    WHERE status = 0 AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE qiwi_transaction t
SET next_attempt_at = now() + make_interval(secs => $2),
    locked_until = now() + make_interval(secs => $2),
    locked_by = $3
FROM due
WHERE t.id = due.id
RETURNING t.id, t.account, t.code, t.sum, t.created_at, t.attempts
"""

# Delivered even when our lease ran out meanwhile: the backend has the payment.
RECORD_DELIVERED = f"""
WITH attempt AS ({attempts.INSERT})
UPDATE qiwi_transaction
SET status = {STATUS_COMPLETED},
    attempts = attempts + 1,
    last_attempt_at = $3,
    last_error = NULL,
    delivered_at = now(),
    next_attempt_at = NULL,
    locked_until = NULL,
    locked_by = NULL,
    updated_at = now() AT TIME ZONE 'UTC'
WHERE id = $1
"""

# Only the holder of the lease reschedules: a stale failure must not push back
# a row that another process has claimed since.
RECORD_FAILED = f"""
WITH attempt AS ({attempts.INSERT})
UPDATE qiwi_transaction
SET attempts = attempts + 1,
    last_attempt_at = $3,
    last_error = $8,
    next_attempt_at = now() + make_interval(secs => $9),
    locked_until = NULL,
    locked_by = NULL,
    updated_at = now() AT TIME ZONE 'UTC'
WHERE id = $1 AND status = {STATUS_RECEIVED} AND locked_by = $10
"""

RELEASE_CLAIMS = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now(), locked_until = NULL, locked_by = NULL
WHERE status = {STATUS_RECEIVED} AND locked_by = $1
"""

# After an outage ends, rows backed off during it are due at once.
MAKE_BACKED_OFF_DUE = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now()
WHERE status = {STATUS_RECEIVED} AND next_attempt_at > now() AND locked_by IS NULL
"""


@dataclass(frozen=True)
class DueRow:
    id: int
    account: str
    code: str
    sum: Decimal
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class AttemptRecord:
    """One webhook attempt, as stored in ``qiwi_webhook_attempt``."""

    transaction_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    http_status: int | None
    error: str | None
    response_excerpt: str | None

    def as_args(self) -> tuple[object, ...]:
        """The parameters of ``attempts.INSERT``, in order ($1 to $7)."""
        return (
            self.transaction_id,
            self.attempt,
            self.started_at,
            self.duration_ms,
            self.http_status,
            self.error,
            self.response_excerpt,
        )

    @property
    def summary(self) -> str:
        """What went wrong, in a few words, for ``qiwi_transaction.last_error``."""
        if self.error is not None:
            return self.error
        return f"HTTP {self.http_status}"


async def claim_due(
    connection: Executor, limit: int, lease_seconds: float, owner: str
) -> list[DueRow]:
    rows = await connection.fetch(CLAIM_DUE, limit, lease_seconds, owner)
    return [
        DueRow(
            id=row["id"],
            account=row["account"],
            code=row["code"],
            sum=row["sum"],
            created_at=row["created_at"],
            attempts=row["attempts"],
        )
        for row in rows
    ]


async def record_delivered(connection: Executor, record: AttemptRecord) -> None:
    await connection.execute(RECORD_DELIVERED, *record.as_args())


async def record_failed(
    connection: Executor,
    record: AttemptRecord,
    retry_in_seconds: float,
    owner: str,
) -> None:
    await connection.execute(
        RECORD_FAILED, *record.as_args(), record.summary, retry_in_seconds, owner
    )


async def release_claims(connection: Executor, owner: str) -> int:
    status: str = await connection.execute(RELEASE_CLAIMS, owner)
    return int(status.rsplit(" ", 1)[1])


async def make_backed_off_due(connection: Executor) -> int:
    status: str = await connection.execute(MAKE_BACKED_OFF_DUE)
    return int(status.rsplit(" ", 1)[1])
