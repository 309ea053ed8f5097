"""Operator reads of ``qiwi_transaction``: ``qiwi-gw status|pending|attempts`` and the
console's search and chart. Each reads through an index, never the whole table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from qiwi_gw.db import PAYMENT_NAMES, Executor, typed
from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED

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


# The rows below name a payment as QIWI and the operator do: ``txn_id`` is the
# ``code`` column (QIWI's id), ``prv_txn`` the ``id`` column (ours, sent back to
# QIWI). Each is built from its statement's record in one place, its ``of``.


@dataclass(frozen=True)
class PendingPayment:
    """One undelivered payment, as ``pending`` (CLI and console) shows it."""

    prv_txn: int
    txn_id: str
    account: str
    sum: Decimal
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    in_flight: bool


@dataclass(frozen=True)
class LastDelivery:
    prv_txn: int
    txn_id: str
    delivered_at: datetime


@dataclass(frozen=True)
class PaymentDetail:
    """Every column of one ``qiwi_transaction`` row, and whether it is being sent now."""

    prv_txn: int
    txn_id: str
    account: str
    sum: Decimal
    status: int
    txn_date: datetime
    created_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    in_flight: bool
    ccy: str | None
    prv_id: str | None
    extra: str
    http_log_id: int | None
    updated_at: datetime
    locked_until: datetime | None
    locked_by: str | None


async def oldest_pending(connection: Executor, limit: int) -> list[PendingPayment]:
    return [
        typed(PendingPayment, record, PAYMENT_NAMES)
        for record in await connection.fetch(SELECT_PENDING, limit)
    ]


async def last_delivery(connection: Executor) -> LastDelivery | None:
    record = await connection.fetchrow(SELECT_LAST_DELIVERY)
    return None if record is None else typed(LastDelivery, record, PAYMENT_NAMES)


async def by_code(connection: Executor, code: str) -> PaymentDetail | None:
    record = await connection.fetchrow(SELECT_BY_CODE, code)
    return None if record is None else typed(PaymentDetail, record, PAYMENT_NAMES)


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
class FoundPayment:
    """One row of the console's search (``SEARCH_COLUMNS``)."""

    prv_txn: int
    txn_id: str
    account: str
    sum: Decimal
    status: int
    txn_date: datetime
    created_at: datetime
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


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
) -> list[FoundPayment]:
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
    rows = [
        typed(FoundPayment, record, PAYMENT_NAMES)
        for record in await connection.fetch(statement, *args)
    ]
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


@dataclass(frozen=True)
class StoredMinute:
    minute: datetime
    stored: int


@dataclass(frozen=True)
class DeliveredMinute:
    minute: datetime
    delivered: int
    lag_avg: float
    lag_max: float


async def stored_per_minute(connection: Executor, since: datetime) -> list[StoredMinute]:
    """``since`` is a naive UTC timestamp, like ``created_at``."""
    return [
        StoredMinute(minute=record["minute"], stored=record["stored"])
        for record in await connection.fetch(STORED_PER_MINUTE, since)
    ]


async def delivered_per_minute(connection: Executor, since: datetime) -> list[DeliveredMinute]:
    """``since`` is a naive UTC timestamp; minutes come back naive UTC too."""
    return [
        DeliveredMinute(
            minute=record["minute"],
            delivered=record["delivered"],
            lag_avg=record["lag_avg"],
            lag_max=record["lag_max"],
        )
        for record in await connection.fetch(DELIVERED_PER_MINUTE, since)
    ]
