"""``qiwi_webhook_attempt``: one row per webhook attempt, so an operator sees why a row is stuck."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from qiwi_gw.db import PAYMENT_NAMES, Executor, affected_rows, typed
from qiwi_gw.store.payments import STATUS_COMPLETED

# Bounded batches keep the delete's locks short on a large table. "= ANY(ARRAY(...))"
# rather than "IN (...)", so that each id is looked up by primary key instead of
# hash-joined against a scan of the whole table.
PRUNE_DELIVERED = f"""
DELETE FROM qiwi_webhook_attempt
WHERE id = ANY(ARRAY(
    SELECT a.id
    FROM qiwi_webhook_attempt a
    JOIN qiwi_transaction t ON t.id = a.transaction_id
    WHERE t.status = {STATUS_COMPLETED} AND a.started_at < now() - make_interval(days => $1)
    LIMIT $2
))
"""

SELECT_FOR_TRANSACTION = """
SELECT attempt, started_at, duration_ms, http_status, error, response_excerpt
FROM qiwi_webhook_attempt
WHERE transaction_id = $1
ORDER BY attempt
"""


async def prune_delivered(connection: Executor, days: int, batch: int = 5000) -> int:
    """Delete attempts of delivered rows older than ``days``; return how many went."""
    total = 0
    while True:
        deleted = affected_rows(await connection.execute(PRUNE_DELIVERED, days, batch))
        total += deleted
        if deleted < batch:
            return total


async def for_transaction(connection: Executor, transaction_id: int) -> list[AttemptRecord]:
    """The payment's attempts, first to last."""
    return [
        AttemptRecord(
            transaction_id=transaction_id,
            attempt=record["attempt"],
            started_at=record["started_at"],
            duration_ms=record["duration_ms"],
            http_status=record["http_status"],
            error=record["error"],
            response_excerpt=record["response_excerpt"],
        )
        for record in await connection.fetch(SELECT_FOR_TRANSACTION, transaction_id)
    ]


# --- operator queries ---------------------------------------------------------

# The latest failed attempt, through the partial index qiwi_webhook_attempt_failed_idx
# (migration 0003): the condition must stay the index's own.
SELECT_LAST_FAILURE = """
SELECT a.started_at, a.attempt, a.http_status, a.error, t.id, t.code
FROM qiwi_webhook_attempt a
JOIN qiwi_transaction t ON t.id = a.transaction_id
WHERE a.error IS NOT NULL OR a.http_status < 200 OR a.http_status > 299
ORDER BY a.started_at DESC
LIMIT 1
"""


@dataclass(frozen=True)
class LastFailure:
    """The latest failed attempt and its payment (``txn_id`` is the ``code`` column,
    ``prv_txn`` the ``id``)."""

    started_at: datetime
    attempt: int
    http_status: int | None
    error: str | None
    prv_txn: int
    txn_id: str


async def last_failure(connection: Executor) -> LastFailure | None:
    record = await connection.fetchrow(SELECT_LAST_FAILURE)
    return None if record is None else typed(LastFailure, record, PAYMENT_NAMES)


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
        """The attempt's columns, in the order of ``RECORD_OUTCOMES``'s first seven arrays."""
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
