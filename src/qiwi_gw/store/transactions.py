"""``qiwi_transaction``: one row per payment, keyed by QIWI's ``txn_id`` (``code``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asyncpg import Record

from qiwi_gw.db import Executor
from qiwi_gw.protocol import Pay
from qiwi_gw.store import attempts, http_log

STATUS_RECEIVED = 0
STATUS_COMPLETED = 1

# A batch of requests in one statement, hence one implicit transaction and one
# round trip: every request's log row and every new payment row commit together,
# or none do. Log ids are drawn from the identity's sequence up front so each
# payment row can point at its own request. Only the first pay of a txn_id in the
# batch is offered for insertion; a txn_id already stored inserts nothing (its log
# row still lands). Rows go in txn_id order so concurrent batches that share
# txn_ids wait for each other instead of deadlocking.
INSERT_PAYMENTS_WITH_LOGS = f"""
WITH input AS (
    SELECT i.*, nextval(pg_get_serial_sequence('qiwi_http_log', 'id')) AS log_id
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::numeric[], $9::int[], $10::timestamp[],
        $11::text[], $12::text[], $13::text[], $14::bool[]
    ) AS i(ip, url, method, headers, body,
           account, code, sum, status, txn_date,
           ccy, prv_id, extra, offered)
),
logged AS (
    INSERT INTO qiwi_http_log (id, ip, url, method, headers, body)
    OVERRIDING SYSTEM VALUE
    SELECT log_id, ip, url, method, headers::json, body FROM input
)
INSERT INTO qiwi_transaction
    (account, code, sum, status, txn_date, ccy, prv_id, extra, http_log_id, next_attempt_at)
SELECT account, code, sum, status, txn_date, ccy, prv_id, extra::jsonb, log_id,
       CASE WHEN status = {STATUS_RECEIVED} THEN now() END
FROM input
WHERE offered
ORDER BY code
ON CONFLICT (code) DO NOTHING
RETURNING id, code, account, sum, status
"""

SELECT_BY_CODES = """
SELECT id, code, account, sum, status FROM qiwi_transaction WHERE code = ANY($1::text[])
"""


@dataclass(frozen=True)
class StoredPayment:
    id: int
    account: str
    sum: Decimal
    status: int


@dataclass(frozen=True)
class LoggedRequest:
    """One request's log row, with the payment it carries (a ``pay``) and its first status."""

    entry: http_log.HttpLogEntry
    pay: Pay | None = None
    status: int = STATUS_RECEIVED


@dataclass(frozen=True)
class BatchResult:
    """What each txn_id of a batch is stored as, and which of them the batch inserted."""

    stored: dict[str, StoredPayment]
    inserted: frozenset[str]


async def insert_batch(connection: Executor, requests: Sequence[LoggedRequest]) -> BatchResult:
    """Store a batch of log rows and the payments among them; look up the txn_ids
    already stored."""
    columns: list[list[object]] = [[] for _ in range(14)]
    offered: set[str] = set()
    for request in requests:
        pay = request.pay
        values: tuple[object, ...]
        if pay is None:
            values = (*request.entry.as_args(), *_NO_PAYMENT)
        else:
            first = pay.txn_id not in offered
            offered.add(pay.txn_id)
            values = (
                *request.entry.as_args(),
                pay.account,
                pay.txn_id,
                pay.sum,
                request.status,
                pay.txn_date,
                pay.ccy,
                pay.prv_id,
                json.dumps(pay.extra),
                first,
            )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = await connection.fetch(INSERT_PAYMENTS_WITH_LOGS, *columns)
    stored = {row["code"]: _stored(row) for row in rows}
    inserted = frozenset(stored)
    repeated = [code for code in offered if code not in stored]
    if repeated:
        # A new statement: it sees rows that concurrent transactions committed
        # while this one waited on them.
        for found in await connection.fetch(SELECT_BY_CODES, repeated):
            stored[found["code"]] = _stored(found)
    return BatchResult(stored=stored, inserted=inserted)


# The payment columns of a request that carries none (a check, a rejected call).
_NO_PAYMENT = (None, None, None, None, None, None, None, None, False)


def _stored(row: Record) -> StoredPayment:
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
