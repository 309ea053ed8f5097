"""``qiwi_transaction``: one row per payment, keyed by QIWI's ``txn_id`` (``code``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asyncpg import Record

from qiwi_gw.channel import CHANNEL_SQL
from qiwi_gw.db import Executor, affected_rows
from qiwi_gw.protocol import Pay
from qiwi_gw.store import http_log

STATUS_RECEIVED = 0
STATUS_COMPLETED = 1

# A batch of requests in one statement, hence one implicit transaction and one
# round trip: every request's log row and every new payment row commit together,
# or none do. Log ids are drawn from the identity's sequence up front so each
# payment row can point at its own request. Only the first pay of a txn_id in the
# batch is offered for insertion; a txn_id already stored inserts nothing (its log
# row still lands). Rows go in txn_id order so concurrent batches that share
# txn_ids wait for each other instead of deadlocking.
#
# A row marked ``claimed`` is inserted already claimed by this process ($17, with a
# lease of $16 seconds), exactly as CLAIM_DUE would leave it: the process that stored
# it sends it when the NOTIFY arrives, without a claim's round trip, and another
# process can take it only once the lease has run out.
INSERT_PAYMENTS_WITH_LOGS = f"""
WITH input AS (
    SELECT i.*, nextval(pg_get_serial_sequence('qiwi_http_log', 'id')) AS log_id
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::numeric[], $9::int[], $10::timestamp[],
        $11::text[], $12::text[], $13::text[], $14::bool[], $15::bool[]
    ) AS i(ip, url, method, headers, body,
           account, code, sum, status, txn_date,
           ccy, prv_id, extra, offered, claimed)
),
logged AS (
    INSERT INTO qiwi_http_log (id, ip, url, method, headers, body)
    OVERRIDING SYSTEM VALUE
    SELECT log_id, ip, url, method, headers::json, body FROM input
)
INSERT INTO qiwi_transaction
    (account, code, sum, status, txn_date, ccy, prv_id, extra, http_log_id,
     next_attempt_at, locked_until, locked_by)
SELECT account, code, sum, status, txn_date, ccy, prv_id, extra::jsonb, log_id,
       CASE WHEN status = {STATUS_RECEIVED} AND claimed THEN now() + make_interval(secs => $16)
            WHEN status = {STATUS_RECEIVED} THEN now() END,
       CASE WHEN status = {STATUS_RECEIVED} AND claimed
            THEN now() + make_interval(secs => $16) END,
       CASE WHEN status = {STATUS_RECEIVED} AND claimed THEN $17 END
FROM input
WHERE offered
ORDER BY code
ON CONFLICT (code) DO NOTHING
RETURNING id, code, account, sum, status, created_at, locked_by IS NOT NULL AS claimed
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
    """What each txn_id of a batch is stored as, which of them the batch inserted, and
    the inserted rows it claimed for delivery."""

    stored: dict[str, StoredPayment]
    inserted: frozenset[str]
    claimed: tuple[DueRow, ...] = ()


@dataclass(frozen=True)
class Claim:
    """Which new payments of a batch to insert already claimed, by whom, for how long."""

    codes: frozenset[str]
    owner: str
    lease: float


async def insert_batch(
    connection: Executor, requests: Sequence[LoggedRequest], claim: Claim | None = None
) -> BatchResult:
    """Store a batch of log rows and the payments among them; look up the txn_ids
    already stored. New payments named by ``claim`` are inserted claimed."""
    columns: list[list[object]] = [[] for _ in range(15)]
    claimed_codes = claim.codes if claim is not None else frozenset()
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
                first and pay.txn_id in claimed_codes,
            )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    rows = await connection.fetch(
        INSERT_PAYMENTS_WITH_LOGS,
        *columns,
        claim.lease if claim is not None else 0.0,
        claim.owner if claim is not None else None,
    )
    stored = {row["code"]: _stored(row) for row in rows}
    inserted = frozenset(stored)
    claimed = tuple(
        DueRow(
            id=row["id"],
            account=row["account"],
            code=row["code"],
            sum=row["sum"],
            created_at=row["created_at"],
            attempts=0,
        )
        for row in rows
        if row["claimed"]
    )
    repeated = [code for code in offered if code not in stored]
    if repeated:
        # A new statement: it sees rows that concurrent transactions committed
        # while this one waited on them.
        for found in await connection.fetch(SELECT_BY_CODES, repeated):
            stored[found["code"]] = _stored(found)
    return BatchResult(stored=stored, inserted=inserted, claimed=claimed)


# The payment columns of a request that carries none (a check, a rejected call).
_NO_PAYMENT = (None, None, None, None, None, None, None, None, False, False)


def _stored(row: Record) -> StoredPayment:
    return StoredPayment(id=row["id"], account=row["account"], sum=row["sum"], status=row["status"])


async def stored_by_codes(connection: Executor, codes: Sequence[str]) -> dict[str, StoredPayment]:
    """The rows these txn_ids are stored as (those that are)."""
    rows = await connection.fetch(SELECT_BY_CODES, list(codes))
    return {row["code"]: _stored(row) for row in rows}


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

# For /metrics: the pending rows only, through the partial indexes.
PENDING_SUMMARY = f"""
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM (now() AT TIME ZONE 'UTC') - min(created_at)), 0)::float8
           AS oldest_seconds
FROM qiwi_transaction
WHERE status = {STATUS_RECEIVED}
"""

# Why the undelivered rows wait: held back by an outage, or backing off on their own.
DELIVERY_BACKLOG = f"""
SELECT count(*) FILTER (WHERE held_by_outage) AS held,
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


@dataclass(frozen=True)
class Outcome:
    """A finished attempt: delivered, or to be retried in ``retry_in`` seconds;
    ``held`` when it failed because the backend was down."""

    record: AttemptRecord
    delivered: bool
    retry_in: float = 0.0
    held: bool = False


async def record_outcomes(connection: Executor, outcomes: Sequence[Outcome], owner: str) -> None:
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


async def pending_summary(connection: Executor) -> tuple[int, float]:
    """How many payments are undelivered, and the oldest one's age in seconds."""
    row = await connection.fetchrow(PENDING_SUMMARY)
    assert row is not None
    return int(row["pending"]), float(row["oldest_seconds"])


async def release_claims(connection: Executor, owner: str) -> int:
    return affected_rows(await connection.execute(RELEASE_CLAIMS, owner))


@dataclass(frozen=True)
class DeliveryBacklog:
    held: int
    backing_off: int


async def delivery_backlog(connection: Executor) -> DeliveryBacklog:
    row = await connection.fetchrow(DELIVERY_BACKLOG)
    assert row is not None
    return DeliveryBacklog(held=int(row["held"]), backing_off=int(row["backing_off"]))


async def release_held(connection: Executor, batch: int) -> int:
    """Make up to ``batch`` rows held back by an outage due now; how many it made due."""
    return affected_rows(await connection.execute(RELEASE_HELD, batch))


# --- operator queries ---------------------------------------------------------
# For ``qiwi-gw status|pending|attempts|resend|export|reconcile`` (``qiwi_gw.ops``).
# Each reads through an index, never the whole table: the pending ones through
# the partial indexes on ``status = 0`` (migrations 0002 and 0003), the rest by
# ``code``, ``txn_date`` or ``delivered_at``.

# Counting every row is a full scan: count exactly only up to a bound ...
COUNT_UP_TO = """
SELECT count(*) FROM (SELECT 1 FROM qiwi_transaction LIMIT $1) AS bounded
"""

# ... and past it take the planner's estimate (its statistics scaled to the
# table's current size; never a scan).
ESTIMATE_ROWS = "EXPLAIN (FORMAT JSON) SELECT 1 FROM qiwi_transaction"

# An index-only scan of the pending index; now() is the transaction's clock.
COUNT_PENDING = f"""
SELECT now() AS now,
       count(*) AS pending,
       count(*) FILTER (WHERE next_attempt_at <= now()) AS due
FROM qiwi_transaction
WHERE status = {STATUS_RECEIVED}
"""

# Oldest first, through qiwi_transaction_pending_created_idx.
SELECT_PENDING = f"""
SELECT id, code, account, sum, created_at, attempts, next_attempt_at, last_attempt_at,
       last_error, coalesce(locked_until > now(), false) AS in_flight
FROM qiwi_transaction
WHERE status = {STATUS_RECEIVED}
ORDER BY created_at, id
LIMIT $1
"""

SELECT_LAST_DELIVERY = """
SELECT id, code, delivered_at
FROM qiwi_transaction
WHERE delivered_at IS NOT NULL
ORDER BY delivered_at DESC
LIMIT 1
"""

SELECT_BY_CODE = """
SELECT id, code, account, sum, status, txn_date, created_at, attempts, next_attempt_at,
       last_attempt_at, last_error, delivered_at,
       coalesce(locked_until > now(), false) AS in_flight,
       ccy, prv_id, extra::text AS extra, http_log_id, updated_at, locked_until, locked_by
FROM qiwi_transaction
WHERE code = $1
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

# A delivered row goes back to "received", so the dispatcher sends it once more.
MAKE_DUE = f"""
UPDATE qiwi_transaction
SET status = {STATUS_RECEIVED},
    delivered_at = NULL,
    next_attempt_at = now(),
    updated_at = now() AT TIME ZONE 'UTC'
WHERE id = ANY($1::bigint[])
"""

# One bounded batch of backed-off (or never scheduled) pending rows made due;
# rows the dispatcher holds are skipped, not waited for. "id = ANY(ARRAY(...))",
# not "id IN (...)": with IN the planner may hash-join against a scan of the
# whole table; with an array it looks each id up in the primary key.
MAKE_PENDING_DUE = f"""
UPDATE qiwi_transaction
SET next_attempt_at = now()
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


async def count_up_to(connection: Executor, bound: int) -> int:
    count: int = await connection.fetchval(COUNT_UP_TO, bound)
    return count


async def estimate_rows(connection: Executor) -> int:
    plan = json.loads(await connection.fetchval(ESTIMATE_ROWS))
    return int(plan[0]["Plan"]["Plan Rows"])


@dataclass(frozen=True)
class PendingCount:
    now: datetime
    pending: int
    due: int


async def count_pending(connection: Executor) -> PendingCount:
    """How many rows wait for delivery, and how many of them are due ``now``."""
    row = await connection.fetchrow(COUNT_PENDING)
    assert row is not None
    return PendingCount(now=row["now"], pending=row["pending"], due=row["due"])


async def oldest_pending(connection: Executor, limit: int) -> list[Record]:
    return await connection.fetch(SELECT_PENDING, limit)


async def last_delivery(connection: Executor) -> Record | None:
    return await connection.fetchrow(SELECT_LAST_DELIVERY)


async def by_code(connection: Executor, code: str) -> Record | None:
    return await connection.fetchrow(SELECT_BY_CODE, code)


async def lock_for_resend(connection: Executor, codes: Sequence[str]) -> list[Record]:
    """Call inside a transaction: the rows stay locked until it ends."""
    return await connection.fetch(LOCK_FOR_RESEND, list(codes))


async def make_due(connection: Executor, ids: Sequence[int]) -> None:
    await connection.execute(MAKE_DUE, list(ids))


async def make_pending_due(connection: Executor, batch: int) -> list[int]:
    return [row["id"] for row in await connection.fetch(MAKE_PENDING_DUE, batch)]


async def notify_due(connection: Executor, transaction_id: int) -> None:
    await connection.execute(NOTIFY_DUE, str(transaction_id))


# --- console queries ----------------------------------------------------------
# For the operator console's search (``qiwi_gw.console``), with keyset pagination
# (the cursor is the id of the last row shown), so a page reads about a page of
# index entries however deep it is. Newest first by id, the order rows were
# stored in: through the primary key, or qiwi_transaction_account_idx /
# _pending_id_idx (migration 0004) when searching by account or for status 0.
# A search by QIWI's dates alone is newest first by txn_date (then id), through
# the txn_date index: read by id, a range months back would walk the primary key
# through every newer row before reaching it.

SEARCH_COLUMNS = (
    "id, code, account, sum, status, txn_date, created_at, attempts, delivered_at, last_error"
)

# The conditions a search may combine; each value is a $n parameter. The status is
# one of two constants, written into the statement so that the planner can match
# the partial index on ``status = 0``.
_SEARCH_CONDITIONS = {
    "code": "code = ${}",
    "id": "id = ${}",
    "account": "account = ${}",
    "txn_from": "txn_date >= ${}",
    "txn_to": "txn_date < ${}",
}
_STATUS_CONDITIONS = {
    STATUS_RECEIVED: f"status = {STATUS_RECEIVED}",
    STATUS_COMPLETED: f"status = {STATUS_COMPLETED}",
}
# Past the cursor row, in each order: by id, or by (txn_date, id) with the cursor
# row's txn_date looked up by its id.
_CURSOR_TXN_DATE = "(SELECT txn_date FROM qiwi_transaction WHERE id = ${0})"
_PAST_CURSOR = {
    ("id", "<"): "id < ${0}",
    ("id", ">"): "id > ${0}",
    ("txn_date", "<"): (
        f"txn_date <= {_CURSOR_TXN_DATE} AND (txn_date < {_CURSOR_TXN_DATE} OR id < ${{0}})"
    ),
    ("txn_date", ">"): (
        f"txn_date >= {_CURSOR_TXN_DATE} AND (txn_date > {_CURSOR_TXN_DATE} OR id > ${{0}})"
    ),
}
_ORDER = {
    ("id", "DESC"): "id DESC",
    ("id", "ASC"): "id ASC",
    ("txn_date", "DESC"): "txn_date DESC, id DESC",
    ("txn_date", "ASC"): "txn_date ASC, id ASC",
}


@dataclass(frozen=True)
class Search:
    """What the console's payment search filters on; None is "any"."""

    code: str | None = None
    id: int | None = None
    account: str | None = None
    txn_from: datetime | None = None
    txn_to: datetime | None = None
    status: int | None = None

    @property
    def order(self) -> str:
        """``txn_date`` for a search by QIWI's dates alone, else ``id``."""
        by_dates = self.txn_from is not None or self.txn_to is not None
        narrower = self.code is not None or self.id is not None or self.account is not None
        return "txn_date" if by_dates and not narrower else "id"


async def search(
    connection: Executor,
    criteria: Search,
    *,
    limit: int,
    older_than: int | None = None,
    newer_than: int | None = None,
) -> list[Record]:
    """Up to ``limit`` payments matching ``criteria``, newest first (``Search.order``):
    the newest, those just older than the row with id ``older_than``, or those just
    newer than the row with id ``newer_than``."""
    values = {
        "code": criteria.code,
        "id": criteria.id,
        "account": criteria.account,
        "txn_from": criteria.txn_from,
        "txn_to": criteria.txn_to,
    }
    conditions: list[str] = []
    args: list[object] = []
    for name, value in values.items():
        if value is not None:
            args.append(value)
            conditions.append(_SEARCH_CONDITIONS[name].format(len(args)))
    if criteria.status is not None:
        conditions.append(_STATUS_CONDITIONS[criteria.status])
    for cursor, side in ((older_than, "<"), (newer_than, ">")):
        if cursor is not None:
            args.append(cursor)
            conditions.append(_PAST_CURSOR[criteria.order, side].format(len(args)))
    where = " AND ".join(conditions) or "true"
    # Newer pages read upwards from their boundary, then turn round.
    direction = "ASC" if newer_than is not None else "DESC"
    args.append(limit)
    statement = (
        f"SELECT {SEARCH_COLUMNS} FROM qiwi_transaction WHERE {where}"
        f" ORDER BY {_ORDER[criteria.order, direction]} LIMIT ${len(args)}"
    )
    rows = await connection.fetch(statement, *args)
    return rows[::-1] if newer_than is not None else rows


# Payments stored and webhooks delivered per minute, in UTC, since $1 (UTC), and
# the delivery lag of the minute's deliveries: through the created_at index and
# the partial index on delivered_at.
STORED_PER_MINUTE = """
SELECT date_trunc('minute', created_at) AS minute, count(*) AS stored
FROM qiwi_transaction
WHERE created_at >= $1
GROUP BY 1
"""

DELIVERED_PER_MINUTE = """
SELECT date_trunc('minute', delivered_at AT TIME ZONE 'UTC') AS minute,
       count(*) AS delivered,
       avg(extract(epoch FROM (delivered_at AT TIME ZONE 'UTC') - created_at))::float8
           AS lag_avg,
       max(extract(epoch FROM (delivered_at AT TIME ZONE 'UTC') - created_at))::float8
           AS lag_max
FROM qiwi_transaction
WHERE delivered_at >= $1::timestamp AT TIME ZONE 'UTC'
GROUP BY 1
"""


async def stored_per_minute(connection: Executor, since: datetime) -> list[Record]:
    """``since`` is a naive UTC timestamp, like ``created_at``."""
    return await connection.fetch(STORED_PER_MINUTE, since)


async def delivered_per_minute(connection: Executor, since: datetime) -> list[Record]:
    """``since`` is a naive UTC timestamp; minutes come back naive UTC too."""
    return await connection.fetch(DELIVERED_PER_MINUTE, since)
