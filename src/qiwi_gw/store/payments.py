"""``qiwi_transaction``'s writes on intake: a batch of payments (with their requests' log
rows) in one statement, and the look-up of txn_ids already stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from asyncpg import Record

from qiwi_gw.db import Executor
from qiwi_gw.protocol import Pay
from qiwi_gw.store import http_log

# qiwi_transaction.status, as the original image wrote it: received (the webhook is
# owed) and completed (delivered, or none was to be sent).
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


@dataclass(frozen=True)
class DueRow:
    id: int
    account: str
    code: str
    sum: Decimal
    created_at: datetime
    attempts: int
