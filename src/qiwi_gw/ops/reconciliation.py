"""QIWI's registry against ``qiwi_transaction``, over a period of QIWI's days.

The rules, for the CLI (``qiwi-gw reconcile``) and the console alike:

- The period is declared (``--date``, ``--from``/``--to``), else the day in QIWI's
  file name, else, and only then, the range of the rows' dates; the result says which.
- Every payment of ours in the period that the file does not list is "missing on
  their side", whatever the file's rows say; every row of the file is looked up by
  ``txn_id`` whatever its date ("missing on our side" when we have no such payment).
- A row dated outside the period is a difference (the file is another day's),
  unless it is within ``EDGE`` of the period's edge: QIWI lists a payment of
  23:59:59 in the next day's file now and then.
- Sums and accounts of the payments both sides list are compared; sums are kept as
  written, accounts compared without the spaces around them (on both sides). A
  sum that is not a whole number of kopecks, a ``txn_id`` listed twice and a total
  line that disagrees with the rows above it are differences too.
- The result agrees only when none of that was found. Every difference is counted;
  the first ``SHOWN`` of each kind are kept to show (a file compared with the wrong
  database differs on every line, and a million listed helps nobody).

Nothing is written to the database, not even a temporary table (this runs on a hot
standby). The file is read once, in batches, each looked up with
``code = ANY($1)``; the ids we matched and a hash of every txn_id go into compact
arrays (8 bytes a row); then the ids of our payments in the period stream from a
cursor, each checked against the sorted matched ids. All in one read-only
REPEATABLE READ transaction, so it compares one snapshot. The file is read again
only for what the first reading could not settle: sums such as ``1,500`` that came
before the file showed its decimal mark, and the lines of the repeated txn_ids
shown. No kind of file keeps more than ``SHOWN`` rows of a kind (and
``REPEAT_LINES_SHOWN`` lines of a repeated txn_id), whatever its size.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left
from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar, overload

import asyncpg

from qiwi_gw.ops import registry
from qiwi_gw.ops.common import BadArgumentError
from qiwi_gw.ops.registry import Layout, RegistryRow, RowStream, Scan, Source, TotalCheck
from qiwi_gw.ops.registry_fields import SUMS, DayReader, whole_kopecks
from qiwi_gw.store import registry as store
from qiwi_gw.store.registry import Days, RegistryPayment

T = TypeVar("T")

BATCH = 5000
PREFETCH = 20_000
# Differences of each kind kept to show; all are counted.
SHOWN = 10_000
# Lines of one repeated txn_id kept to show; all are counted.
REPEAT_LINES_SHOWN = 10
# A row dated this close to the period's edge (a payment of 23:59:59 in the next
# day's file) is not a difference; they are counted, this many kept to show.
EDGE = timedelta(minutes=5)
EDGE_SHOWN = 20

DECLARED = "declared"
FILE_NAME = "file name"
ROWS = "rows"


@dataclass(frozen=True)
class Period:
    """QIWI's days ``first`` to ``last``, both included, and where they came from."""

    first: date
    last: date
    origin: str = DECLARED  # DECLARED, FILE_NAME or ROWS

    def __contains__(self, day: date) -> bool:
        return self.first <= day <= self.last

    def __str__(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first} to {self.last}"


@dataclass(frozen=True)
class Mismatch:
    theirs: RegistryRow
    ours: RegistryPayment


@dataclass(frozen=True)
class Repeat:
    """A ``txn_id`` the file lists more than once."""

    txn_id: str
    rows: tuple[RegistryRow, ...]  # the first REPEAT_LINES_SHOWN lines listing it
    ours: RegistryPayment | None
    listed: int  # every line listing it
    same_sums: bool  # on every line

    @property
    def cut(self) -> bool:
        """Whether some lines were counted but not kept."""
        return self.listed > len(self.rows)


@dataclass
class Found(Generic[T]):
    """Differences of one kind: ``count`` all of them, ``items`` the first ``limit``.
    ``len`` is the count; iterating or indexing goes over the items kept."""

    items: list[T] = field(default_factory=list)
    count: int = 0
    limit: int = field(default_factory=lambda: SHOWN)

    def add(self, item: T) -> None:
        self.count += 1
        if len(self.items) < self.limit:
            self.items.append(item)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]

    @property
    def cut(self) -> bool:
        """Whether some were counted but not kept."""
        return self.count > len(self.items)


@dataclass(frozen=True)
class Reconciliation:
    """What ``reconcile`` found; the CLI prints it as a table or JSON, the console
    shows it. ``agree`` is true only when every kind of difference counts none."""

    source: str
    layout: Layout
    encoding: str
    decimal_mark: str | None
    decimal_from: str
    period: Period
    name_day: date | None  # the day in QIWI's file name, if it gives one
    rows: int  # payment rows in the file (every line of a repeated txn_id counted)
    amount: Decimal
    skipped: dict[str, int]  # rows that are not payments, by their type
    outside_period: Found[RegistryRow]  # dated outside the period, beyond EDGE
    near_edge: Found[RegistryRow]  # outside, within EDGE of its edge: not a difference
    ours: int  # our payments in the period
    our_amount: Decimal
    missing_ours: Found[RegistryRow]
    missing_theirs: Found[RegistryPayment]
    different_sums: Found[Mismatch]
    different_accounts: Found[Mismatch]
    repeated: Found[Repeat]
    odd_sums: Found[RegistryRow]  # not a whole number of kopecks
    totals: list[TotalCheck]

    @property
    def accounts_compared(self) -> bool:
        return self.layout.has_accounts

    @property
    def bad_totals(self) -> list[TotalCheck]:
        return [total for total in self.totals if not total.agrees]

    @property
    def differences(self) -> int:
        return (
            self.missing_ours.count
            + self.missing_theirs.count
            + self.different_sums.count
            + self.different_accounts.count
            + self.repeated.count
            + self.odd_sums.count
            + self.outside_period.count
            + len(self.bad_totals)
        )

    @property
    def agree(self) -> bool:
        return self.differences == 0


async def reconcile(
    data: bytes | BinaryIO | Path,
    period: Period | None,
    connection: asyncpg.Connection,
    *,
    name: str | None = None,
    decimal_mark: str | None = None,
) -> Reconciliation:
    """Reconcile QIWI's registry file with ``qiwi_transaction``.

    ``data``: the file's bytes, a binary stream, or its path; ``name``: its file name
    (QIWI's names carry the day, and messages name the file). ``period``: the days to
    compare, or None for the day in the file name, else the rows' range.
    ``decimal_mark``: "." or "," when the operator says which one the file uses.

    Raises ``BadArgumentError`` (one line, naming the line of the file) when the file
    cannot be read or no period can be had; database errors pass through. Reads
    only, so it may run on a read replica.
    """
    source = Source.of(data, name)
    try:
        scanned = await asyncio.to_thread(registry.scan, source, decimal_mark)
        return await compare(scanned, period, connection)
    finally:
        source.close()


def known_period(scanned: Scan, declared: Period | None) -> Period | None:
    """The declared period, else the day in QIWI's file name; None: the rows' range,
    known once they are read."""
    if declared is not None:
        return declared
    day = scanned.source.file_day
    return None if day is None else Period(day, day, FILE_NAME)


async def compare(
    scanned: Scan, declared: Period | None, connection: asyncpg.Connection
) -> Reconciliation:
    """Compare a registry file with our payments over the declared period (None: the
    day in QIWI's file name, else the rows' range)."""
    known = known_period(scanned, declared)
    state = _Comparer(scanned, known)
    first = scanned.read()
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        await state.read(connection, iter(first))
        mark, mark_from = first.settle()
        stream = first
        if first.reread:
            # Sums such as 1,500 came before the file showed its decimal mark.
            stream = scanned.read(mark)
            await state.read(connection, _at_lines(stream, first.deferred))
            state.sort()
        period = known or _rows_period(scanned, first)
        days = Days(period.first, period.last)
        summary = await store.period_summary(connection, days)
        missing_theirs = await _missing_theirs(connection, days, state.matched_ids)
        repeated = await _repeats(connection, scanned.read(mark), state.hashes)
    return Reconciliation(
        source=scanned.name,
        layout=scanned.layout,
        encoding=scanned.encoding.replace("-sig", ""),
        decimal_mark=mark,
        decimal_from=mark_from,
        period=period,
        name_day=scanned.source.file_day,
        rows=state.rows,
        amount=state.amount,
        skipped=first.skipped,
        outside_period=state.outside,
        near_edge=state.near_edge,
        ours=summary.count,
        our_amount=summary.sum,
        missing_ours=state.missing_ours,
        missing_theirs=missing_theirs,
        different_sums=state.different_sums,
        different_accounts=state.different_accounts,
        repeated=repeated,
        odd_sums=state.odd_sums,
        totals=stream.totals,
    )


def _rows_period(scanned: Scan, stream: RowStream) -> Period:
    if stream.days is None:
        raise BadArgumentError(
            f"{scanned.name}: the file lists no payments and its name gives no day:"
            " declare the period (--date DAY, or --from DAY --to DAY)"
        )
    return Period(*stream.days, ROWS)


class _Comparer:
    """The file's side of one comparison, a batch of rows at a time."""

    def __init__(self, scanned: Scan, period: Period | None) -> None:
        self.scanned = scanned
        self.period = period  # None: the rows' range, so no row is outside it
        self.matched_ids = array("q")  # ours the file lists
        self.hashes = array("q")  # hash(txn_id) of every row, to find repeats
        self.rows = 0
        self.amount = Decimal("0.00")
        self.outside: Found[RegistryRow] = Found()
        self.near_edge: Found[RegistryRow] = Found(limit=EDGE_SHOWN)
        self._times = DayReader()
        self._edges: dict[str, bool] = {}  # by the date as written: a file repeats them
        self.missing_ours: Found[RegistryRow] = Found()
        self.different_sums: Found[Mismatch] = Found()
        self.different_accounts: Found[Mismatch] = Found()
        self.odd_sums: Found[RegistryRow] = Found()

    async def read(self, connection: asyncpg.Connection, rows: Iterator[RegistryRow]) -> None:
        async with aclosing(_read_ahead(_batches(rows, BATCH))) as batches:
            async for batch in batches:
                await self.batch(connection, batch)

    async def batch(self, connection: asyncpg.Connection, batch: list[RegistryRow]) -> None:
        """Compare a batch of the file's rows: one look-up by index for all of them."""
        records = await store.lookup_by_codes(connection, [row.txn_id for row in batch])
        hits: list[asyncpg.Record | None] = [None] * len(batch)
        for record in records:
            hits[record[0] - 1] = record
        differing: list[tuple[RegistryRow, bool, bool]] = []
        period = self.period
        accounts = self.scanned.layout.has_accounts
        for row, hit in zip(batch, hits, strict=True):
            self.rows += 1
            self.amount = SUMS.add(self.amount, row.sum)
            self.hashes.append(hash(row.txn_id))
            if not whole_kopecks(row.sum):
                self.odd_sums.add(row)
            if period is not None and row.day not in period:
                (self.near_edge if self._near_edge(period, row) else self.outside).add(row)
            if hit is None:
                self.missing_ours.add(row)
                continue
            _, our_id, our_sum, our_account = hit
            self.matched_ids.append(our_id)
            # The same spelling is the same sum; only other spellings need Decimal.
            other_sum = our_sum != row.sum_text and Decimal(our_sum) != row.sum
            # The file's cells are read without the spaces around them: ours too.
            other_account = accounts and our_account.strip() != row.account
            if other_sum or other_account:
                differing.append((row, other_sum, other_account))
        if differing:
            ours = await _ours_by_codes(connection, [row.txn_id for row, _, _ in differing])
            for row, other_sum, other_account in differing:
                if other_sum:
                    self.different_sums.add(Mismatch(row, ours[row.txn_id]))
                if other_account:
                    self.different_accounts.add(Mismatch(row, ours[row.txn_id]))

    def _near_edge(self, period: Period, row: RegistryRow) -> bool:
        near = self._edges.get(row.when)
        if near is None:
            near = _near_edge(period, row, self._times)
            if len(self._edges) < 100_000 and len(row.when) <= 64:
                self._edges[row.when] = near
        return near

    def sort(self) -> None:
        """Rows left for a second reading were compared last: back to the file's order."""
        for found in (self.missing_ours, self.odd_sums, self.outside, self.near_edge):
            found.items.sort(key=lambda row: row.line)
        for pairs in (self.different_sums, self.different_accounts):
            pairs.items.sort(key=lambda pair: pair.theirs.line)


def _near_edge(period: Period, row: RegistryRow, times: DayReader) -> bool:
    """Whether a row dated outside ``period`` is within ``EDGE`` of its edge; a row
    without a time of day cannot be shown to be."""
    if (period.first - row.day).days > 1 or (row.day - period.last).days > 1:
        return False  # days away: its time need not be read
    moment = times.moscow_time(row.when)
    if moment is None:
        return False
    start = datetime.combine(period.first, time())
    if moment < start:
        return start - moment <= EDGE
    if period.last == date.max:
        return False
    return moment - datetime.combine(period.last + timedelta(days=1), time()) < EDGE


async def _missing_theirs(
    connection: asyncpg.Connection, days: Days, matched_ids: array[int]
) -> Found[RegistryPayment]:
    """Our payments of ``days`` the file does not list, the first ``SHOWN`` by QIWI's time."""
    matched = array("q", sorted(matched_ids))
    missing = array("q")
    cursor = await store.period_ids(connection, days)
    while records := await cursor.fetch(PREFETCH):
        for (our_id,) in records:
            index = bisect_left(matched, our_id)
            if index == len(matched) or matched[index] != our_id:
                missing.append(our_id)
    found: Found[RegistryPayment] = Found(count=len(missing))
    if missing:
        found.items = await store.registry_by_ids(connection, missing, found.limit)
    return found


async def _repeats(
    connection: asyncpg.Connection, stream: RowStream, hashes: array[int]
) -> Found[Repeat]:
    """The txn_ids the file lists more than once, counted by their equal hashes, so
    that no row is kept to find them. The file is read once more for the first
    ``SHOWN`` of them in its order, keeping ``REPEAT_LINES_SHOWN`` lines of each; a
    chance collision of two txn_ids' hashes is found there and dropped (among those
    not shown it would count one repeat too many: odds of about 1 in 10^7 for a
    million distinct txn_ids, and the hash is seeded anew in each process)."""
    ordered = sorted(hashes)
    twice = {
        ordered[index] for index in range(1, len(ordered)) if ordered[index] == ordered[index - 1]
    }
    del ordered
    found: Found[Repeat] = Found()
    if not twice:
        return found
    shown: set[int] = set()
    for value in hashes:
        if value in twice and value not in shown:
            shown.add(value)
            if len(shown) == found.limit:
                break
    counted = len(twice)
    del twice
    groups: dict[str, _Group] = {}  # in the order of their first lines
    for row in stream:
        if hash(row.txn_id) in shown:
            group = groups.get(row.txn_id)
            if group is None:
                groups[row.txn_id] = _Group(row)
            else:
                group.add(row)
    repeated = [group for group in groups.values() if group.listed > 1]
    collided = len(shown) - len({hash(group.rows[0].txn_id) for group in repeated})
    found.count = counted - collided
    ours = await _ours_by_codes(connection, [group.rows[0].txn_id for group in repeated])
    found.items = [group.repeat(ours.get(group.rows[0].txn_id)) for group in repeated]
    return found


class _Group:
    """The lines of one txn_id: the first ``REPEAT_LINES_SHOWN`` kept, all counted."""

    __slots__ = ("listed", "rows", "same_sums")

    def __init__(self, row: RegistryRow) -> None:
        self.rows = [row]
        self.listed = 1
        self.same_sums = True

    def add(self, row: RegistryRow) -> None:
        self.listed += 1
        self.same_sums = self.same_sums and row.sum == self.rows[0].sum
        if len(self.rows) < REPEAT_LINES_SHOWN:
            self.rows.append(row)

    def repeat(self, ours: RegistryPayment | None) -> Repeat:
        return Repeat(self.rows[0].txn_id, tuple(self.rows), ours, self.listed, self.same_sums)


async def _ours_by_codes(
    connection: asyncpg.Connection, codes: list[str]
) -> dict[str, RegistryPayment]:
    return {ours.txn_id: ours for ours in await store.registry_by_codes(connection, codes)}


async def _read_ahead(
    batches: Iterator[list[RegistryRow]],
) -> AsyncGenerator[list[RegistryRow], None]:
    """The batches, each read in a worker thread while the caller compares the one
    before: parsing goes on while a look-up waits on the database, and a web server's
    event loop is not held up by it."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    try:
        while (batch := await pending) is not None:
            pending = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
            yield batch
    finally:
        # A thread cannot be stopped: let it finish its batch before the file is closed.
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # retrieved: the caller's own exception is the one to see


def _at_lines(rows: Iterable[RegistryRow], lines: array[int]) -> Iterator[RegistryRow]:
    """The rows on ``lines`` (in increasing order, like the rows). The rows are read to
    the end all the same: their total lines are checked on the way."""
    wanted = iter(lines)
    line = next(wanted, None)
    for row in rows:
        while line is not None and line < row.line:
            line = next(wanted, None)
        if line == row.line:
            yield row


def _batches(rows: Iterable[RegistryRow], size: int) -> Iterator[list[RegistryRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch
