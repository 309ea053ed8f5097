"""``qiwi_transaction`` as the webhook queue: claim due rows, record attempts' outcomes,
release claims and held rows, make rows due again (resend), and the backlog's size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qiwi_gw.channel import CHANNEL_SQL
from qiwi_gw.db import PAYMENT_NAMES, Executor, affected_rows, typed
from qiwi_gw.store.attempts import AttemptRecord
from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED, DueRow

# A claim moves next_attempt_at past the lease, so a row claimed by a process
# that then dies becomes due again by itself once the lease runs out.
CLAIM_DUE = f"""
WITH due AS (
    SELECT id FROM qiwi_transaction
    WHERE status = {STATUS_RECEIVED} AND next_attempt_at <= now()
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

# The outcomes of many attempts in one statement: each attempt's row in
# qiwi_webhook_attempt, and its payment's new state — written only by the holder
# of the payment's claim. A process whose lease ran out and whose row another
# process has claimed since keeps its attempt in the history but changes nothing:
# the current holder's outcome decides. ``held`` marks a failure caused by the
# backend being down, so the end of the outage can make the row due at once.
RECORD_OUTCOMES = f"""
WITH outcome AS (
    SELECT *
    FROM unnest(
        $1::bigint[], $2::int[], $3::timestamptz[], $4::int[], $5::int[], $6::text[],
        $7::text[], $8::bool[], $9::text[], $10::float8[], $11::bool[]
    ) AS o(transaction_id, attempt, started_at, duration_ms, http_status, error,
           response_excerpt, delivered, last_error, retry_in, held)
),
attempt AS (
    INSERT INTO qiwi_webhook_attempt
        (transaction_id, attempt, started_at, duration_ms, http_status, error, response_excerpt)
    SELECT transaction_id, attempt, started_at, duration_ms, http_status, error, response_excerpt
    FROM outcome
)
UPDATE qiwi_transaction t
SET status = CASE WHEN o.delivered THEN {STATUS_COMPLETED} ELSE t.status END,
    attempts = t.attempts + 1,
    last_attempt_at = o.started_at,
    last_error = o.last_error,
    delivered_at = CASE WHEN o.delivered THEN now() ELSE t.delivered_at END,
    next_attempt_at = CASE WHEN o.delivered THEN NULL
                           ELSE now() + make_interval(secs => o.retry_in) END,
    held_by_outage = o.held AND NOT o.delivered,
    locked_until = NULL,
    locked_by = NULL,
    updated_at = now() AT TIME ZONE 'UTC'
FROM outcome o
WHERE t.id = o.transaction_id
  AND t.status = {STATUS_RECEIVED}
  AND t.locked_by = $12
"""

# How many rows wait, the oldest one's age, and why they wait: held back by an
# outage, or backing off on their own. One scan of the pending rows, through the
# partial index, for /metrics and the console's overview.
DELIVERY_BACKLOG = f"""
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM (now() AT TIME ZONE 'UTC') - min(created_at)), 0)::float8
           AS oldest_seconds,
       count(*) FILTER (WHERE held_by_outage) AS held,
       count(*) FILTER (WHERE NOT held_by_outage AND next_attempt_at > now()) AS backing_off
FROM qiwi_transaction
WHERE status = {STATUS_RECEIVED}
"""

RELEASE_CLAIMS = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now(), locked_until = NULL, locked_by = NULL
WHERE status = {STATUS_RECEIVED} AND locked_by = $1
"""

# After an outage ends, one batch of the rows it held back is due at once: each
# batch its own short statement, through qiwi_transaction_held_idx, so a backlog
# of any size starts moving within one batch's time. Rows being sent now are
# skipped: their outcome decides. "id = ANY(ARRAY(...))" looks each id up by
# primary key instead of letting the planner join against a scan.
RELEASE_HELD = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now(), held_by_outage = false
WHERE id = ANY(ARRAY(
    SELECT id FROM qiwi_transaction
    WHERE status = {STATUS_RECEIVED} AND held_by_outage
      AND (locked_until IS NULL OR locked_until <= now())
    LIMIT $1
    FOR UPDATE SKIP LOCKED
))
"""


# Resend: lock the rows first, so the dispatcher cannot claim one between the
# look and the change. A row whose claim is live is being sent right now.
LOCK_FOR_RESEND = """
SELECT id, code, status, coalesce(locked_until > now(), false) AS in_flight
FROM qiwi_transaction
WHERE code = ANY($1::text[])
ORDER BY id
FOR UPDATE
"""

# A delivered row goes back to "received", so the dispatcher sends it once more. A row
# an outage held is held no longer: the operator has made it due (the held gauge would
# count it until its next outcome otherwise).
MAKE_DUE = f"""
UPDATE qiwi_transaction
SET status = {STATUS_RECEIVED},
    delivered_at = NULL,
    next_attempt_at = now(),
    held_by_outage = false,
    updated_at = now() AT TIME ZONE 'UTC'
WHERE id = ANY($1::bigint[])
"""

# One bounded batch of backed-off (or never scheduled) pending rows made due;
# rows the dispatcher holds are skipped, not waited for. "id = ANY(ARRAY(...))",
# not "id IN (...)": with IN the planner may hash-join against a scan of the
# whole table; with an array it looks each id up in the primary key.
MAKE_PENDING_DUE = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now(), held_by_outage = false
WHERE id = ANY(ARRAY(
    SELECT id FROM qiwi_transaction
    WHERE status = {STATUS_RECEIVED}
      AND (next_attempt_at > now() OR next_attempt_at IS NULL)
      AND (locked_until IS NULL OR locked_until <= now())
    LIMIT $1
    FOR UPDATE SKIP LOCKED
))
RETURNING id
"""

# The channel the insert trigger uses; a running gateway wakes and sends at once.
NOTIFY_DUE = f"SELECT pg_notify({CHANNEL_SQL}, $1) FROM current_schema() AS schema_name"


async def claim_due(
    connection: Executor, limit: int, lease_seconds: float, owner: str
) -> list[DueRow]:
    rows = await connection.fetch(CLAIM_DUE, limit, lease_seconds, owner)
    return [typed(DueRow, row) for row in rows]


@dataclass(frozen=True)
class DeliveryOutcome:
    """A finished attempt: delivered, or to be retried in ``retry_in`` seconds;
    ``held`` when it failed because the backend was down."""

    record: AttemptRecord
    delivered: bool
    retry_in: float = 0.0
    held: bool = False


async def record_outcomes(
    connection: Executor, outcomes: Sequence[DeliveryOutcome], owner: str
) -> None:
    columns: list[list[object]] = [[] for _ in range(11)]
    for outcome in outcomes:
        last_error = None if outcome.delivered else outcome.record.summary
        values = (
            *outcome.record.as_args(),
            outcome.delivered,
            last_error,
            outcome.retry_in,
            outcome.held,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    await connection.execute(RECORD_OUTCOMES, *columns, owner)


async def release_claims(connection: Executor, owner: str) -> int:
    return affected_rows(await connection.execute(RELEASE_CLAIMS, owner))


@dataclass(frozen=True)
class DeliveryBacklog:
    pending: int
    oldest_seconds: float
    held: int
    backing_off: int


async def delivery_backlog(connection: Executor) -> DeliveryBacklog:
    """Undelivered payments: how many, the oldest one's age in seconds, and how many
    an outage holds back or back off on their own."""
    row = await connection.fetchrow(DELIVERY_BACKLOG)
    assert row is not None
    return DeliveryBacklog(
        pending=int(row["pending"]),
        oldest_seconds=float(row["oldest_seconds"]),
        held=int(row["held"]),
        backing_off=int(row["backing_off"]),
    )


async def release_held(connection: Executor, batch: int) -> int:
    """Make up to ``batch`` rows held back by an outage due now; how many it made due."""
    return affected_rows(await connection.execute(RELEASE_HELD, batch))


@dataclass(frozen=True)
class ResendRow:
    """A row locked for resending (``txn_id`` is the ``code`` column, ``prv_txn`` the
    ``id``); ``in_flight`` while its claim is live."""

    prv_txn: int
    txn_id: str
    status: int
    in_flight: bool


async def lock_for_resend(connection: Executor, codes: Sequence[str]) -> list[ResendRow]:
    """Call inside a transaction: the rows stay locked until it ends."""
    return [
        typed(ResendRow, record, PAYMENT_NAMES)
        for record in await connection.fetch(LOCK_FOR_RESEND, list(codes))
    ]


async def make_due(connection: Executor, ids: Sequence[int]) -> None:
    await connection.execute(MAKE_DUE, list(ids))


async def make_pending_due(connection: Executor, batch: int) -> list[int]:
    return [row["id"] for row in await connection.fetch(MAKE_PENDING_DUE, batch)]


async def notify_due(connection: Executor, transaction_id: int) -> None:
    await connection.execute(NOTIFY_DUE, str(transaction_id))
