"""``qiwi_transaction`` read by QIWI's day, for ``export`` and ``reconcile``.

QIWI's registry goes by QIWI's time of the payment, Moscow time: ``txn_date`` as
QIWI sent it. Rows the original image stored have no QIWI time: migration 0001
copied their ``created_at`` (UTC) into ``txn_date``, so a row whose ``txn_date``
equals its ``created_at`` is one of those, and its QIWI time is its ``created_at``
converted to Moscow time. A row we stored can never match that way: ``created_at``
carries microseconds and runs three hours behind QIWI's clock.

Read-only statements only, each through an index (``code``, ``id``, ``txn_date``,
``created_at``): they run on a hot standby, which refuses anything that writes,
temporary tables included.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from asyncpg import Connection, Record
from asyncpg.cursor import Cursor

from qiwi_gw.db import Executor

QIWI_ZONE = ZoneInfo("Europe/Moscow")

# RegistryPayment reads these by position: keep its fields in this order.
_COLUMNS = "code, id, account, sum, {qiwi_time} AS qiwi_time, created_at, status"
# The payment's time on QIWI's clock ({zone} is the parameter holding QIWI's zone).
_QIWI_TIME = """CASE WHEN txn_date = created_at
     THEN (created_at AT TIME ZONE 'UTC') AT TIME ZONE {zone}
     ELSE txn_date END"""


def _in_period(ours: str, legacy: str) -> str:
    """Columns of the payments of QIWI's days [$1, $2) (Moscow time): ``ours`` by
    txn_date, the original image's (``legacy``) by created_at in [$3, $4), the same
    instants in UTC. Two index range scans, in no particular order."""
    return f"""
SELECT {ours}
FROM qiwi_transaction
WHERE txn_date >= $1 AND txn_date < $2 AND txn_date <> created_at
UNION ALL
SELECT {legacy}
FROM qiwi_transaction
WHERE created_at >= $3 AND created_at < $4 AND txn_date = created_at
"""


# Export: the period's payments in QIWI's time order ($5: QIWI's zone).
SELECT_REGISTRY = (
    _in_period(
        _COLUMNS.format(qiwi_time="txn_date"),
        _COLUMNS.format(qiwi_time=_QIWI_TIME.format(zone="$5")),
    )
    + "ORDER BY qiwi_time, id\n"
)

# Reconcile: the period's count and sum, and its ids (8 bytes a row to stream).
PERIOD_SUMMARY = f"""
SELECT count(*) AS count, coalesce(sum(sum), 0.00) AS sum
FROM ({_in_period("sum", "sum")}) AS period
"""
PERIOD_IDS = _in_period("id", "id")

SELECT_REGISTRY_BY_CODES = f"""
SELECT {_COLUMNS.format(qiwi_time=_QIWI_TIME.format(zone="$2"))}
FROM qiwi_transaction
WHERE code = ANY($1::text[])
"""

# The first $3 of these ids' payments in QIWI's time order.
SELECT_REGISTRY_BY_IDS = f"""
SELECT {_COLUMNS.format(qiwi_time=_QIWI_TIME.format(zone="$2"))}
FROM qiwi_transaction
WHERE id = ANY($1::bigint[])
ORDER BY qiwi_time, id
LIMIT $3
"""

# A batch of the registry's txn_ids looked up through the index on code: for each one
# we hold, its place in the batch (n, from 1), our id, sum (as text: decoding a million
# numerics costs more than comparing them) and account. One we do not hold gives no row.
LOOKUP_BY_CODES = """
SELECT i.n, t.id, t.sum::text AS sum, t.account
FROM unnest($1::text[]) WITH ORDINALITY AS i(code, n)
JOIN qiwi_transaction t ON t.code = i.code
WHERE t.code = ANY($1::text[])
"""


@dataclass(frozen=True)
class Days:
    """QIWI's days ``first`` to ``last``, both included, as the statements' bounds."""

    first: date
    last: date

    def bounds(self) -> tuple[datetime, datetime, datetime, datetime]:
        """$1 to $4 of the period statements: Moscow time, then UTC."""
        start = _midnight(self.first)
        end = datetime.max if self.last == date.max else _midnight(self.last + timedelta(days=1))
        return start, end, _as_utc(start), _as_utc(end)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time())


def _as_utc(moscow: datetime) -> datetime:
    """A Moscow wall-clock time as naive UTC, like ``created_at``; clamped at the
    calendar's ends."""
    try:
        return moscow.replace(tzinfo=QIWI_ZONE).astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.min if moscow.year == 1 else datetime.max


@dataclass(frozen=True, slots=True)
class RegistryPayment:
    """A payment as the registry lists it: ``txn_id`` is the ``code`` column, ``prv_txn``
    the ``id``; ``qiwi_time`` is its time on QIWI's clock (see the module's note)."""

    txn_id: str
    prv_txn: int
    account: str
    sum: Decimal
    qiwi_time: datetime
    created_at: datetime
    status: int

    @classmethod
    def of(cls, record: Record) -> RegistryPayment:
        """From a row of ``_COLUMNS``, by position: an export reads a million of them."""
        return cls(*record)

    @property
    def sum_text(self) -> str:
        return str(self.sum)  # numeric(17,2): exactly as stored


@dataclass(frozen=True)
class PeriodSummary:
    count: int
    sum: Decimal


async def registry_rows(
    connection: Connection, days: Days, prefetch: int
) -> AsyncGenerator[RegistryPayment]:
    """Payments of ``days`` in QIWI's time order, from a cursor; iterate inside a
    transaction, and close it (``contextlib.aclosing``) when stopping early."""
    cursor = connection.cursor(SELECT_REGISTRY, *days.bounds(), QIWI_ZONE.key, prefetch=prefetch)
    async for record in cursor:
        yield RegistryPayment.of(record)


async def period_ids(connection: Connection, days: Days) -> Cursor[Record]:
    """A cursor over the ids (``prv_txn``) of the payments of ``days``, one-column
    records; call inside a transaction and ``fetch`` from it in batches."""
    return await connection.cursor(PERIOD_IDS, *days.bounds())


async def period_summary(connection: Executor, days: Days) -> PeriodSummary:
    """How many payments ``days`` have, and their sum."""
    row = await connection.fetchrow(PERIOD_SUMMARY, *days.bounds())
    assert row is not None
    return PeriodSummary(count=row["count"], sum=row["sum"])


async def lookup_by_codes(connection: Executor, codes: Sequence[str]) -> list[Record]:
    """``(n, prv_txn, sum text, account)`` records, read by position. Left raw on
    purpose: reconcile looks up every line of a million-line registry here, and a
    dataclass a hit would cost it seconds."""
    return await connection.fetch(LOOKUP_BY_CODES, codes)


async def registry_by_codes(connection: Executor, codes: Sequence[str]) -> list[RegistryPayment]:
    records = await connection.fetch(SELECT_REGISTRY_BY_CODES, list(codes), QIWI_ZONE.key)
    return [RegistryPayment.of(record) for record in records]


async def registry_by_ids(
    connection: Executor, ids: Sequence[int], limit: int
) -> list[RegistryPayment]:
    records = await connection.fetch(SELECT_REGISTRY_BY_IDS, ids, QIWI_ZONE.key, limit)
    return [RegistryPayment.of(record) for record in records]
