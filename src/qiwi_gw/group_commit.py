"""Group commit: concurrent requests share one transaction.

Every ``pay`` must be durable before it is answered, and every request to
``/payment`` is logged, so the database's commit rate is the ceiling. Committing
one request per transaction spends a WAL flush and a round trip on each; here,
whatever arrives while a commit is in flight goes into the next one. Idle, a
request is committed at once, alone: batching adds no delay, it only absorbs
bursts.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import asyncpg

from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import DatabaseUnavailableError, ShuttingDownError, describe
from qiwi_gw.metrics import Metrics
from qiwi_gw.store import payments
from qiwi_gw.store.payments import BatchResult, Claim, DueRow, LoggedRequest, StoredPayment

logger = logging.getLogger(__name__)

MAX_REQUESTS_PER_COMMIT: Final = 256
# Errors caused by one row's data: the batch is retried row by row so that one
# bad payment never fails its neighbours.
ROW_ERRORS: Final = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True)
class Stored:
    """The row a ``pay``'s txn_id is stored as, and whether this request stored it."""

    payment: StoredPayment
    created: bool


class Claimer(Protocol):
    """Who takes new payments for delivery as they are stored (the dispatcher): the
    committer inserts up to ``reserve``'s answer of a batch's new payments already
    claimed, then hands over the rows it inserted and gives back the rest."""

    owner: str
    lease: float

    def reserve(self, wanted: int) -> int: ...

    def claimed(self, rows: Sequence[DueRow]) -> None: ...

    def unreserve(self, count: int) -> None: ...


@dataclass
class _Waiting:
    request: LoggedRequest
    answer: asyncio.Future[Stored | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        db_timeout: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._db_timeout = db_timeout
        self._queue: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.claimer: Claimer | None = None
        # Sizes of the batches committed so far, newest last (bounded), for
        # tests and metrics.
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=1000)

    async def start(self) -> None:
        # One committer task: a batch is whatever queued while the previous commit
        # was in flight; committers running side by side would only split batches.
        self._task = asyncio.create_task(self._run(), name="qiwi-gw-committer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail(self._queue, ShuttingDownError("the gateway is shutting down"))
        self._queue = []

    async def store(self, request: LoggedRequest) -> Stored | None:
        """Return once the request's log row (and payment) is committed; for a
        ``pay``, the row its txn_id is stored as.

        Raises ``DatabaseUnavailableError`` when the commit failed: nothing of
        this request is stored then, and QIWI's repeat will be safe.
        """
        waiting = _Waiting(request)
        self._queue.append(waiting)
        self._arrived.set()
        return await asyncio.shield(waiting.answer)

    async def lookup(self, code: str) -> StoredPayment | None:
        """The row ``code`` is stored as, as committed now; raise
        ``DatabaseUnavailableError`` when the database cannot say."""
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                found = await payments.stored_by_codes(connection, [code])
        except DATABASE_ERRORS as exc:
            raise DatabaseUnavailableError(describe(exc)) from None
        return found.get(code)

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            batch, self._queue = (
                self._queue[:MAX_REQUESTS_PER_COMMIT],
                self._queue[MAX_REQUESTS_PER_COMMIT:],
            )
            if not self._queue:
                self._arrived.clear()
            if batch:
                await self.commit(batch)

    async def commit(self, batch: list[_Waiting]) -> None:
        """Commit ``batch`` in one transaction and answer each of its requests."""
        self.batch_sizes.append(len(batch))
        if self._metrics is not None:
            self._metrics.commit_batch_size.observe(len(batch))
        try:
            result = await self._insert([waiting.request for waiting in batch])
        except ROW_ERRORS as exc:
            if len(batch) == 1:
                self._fail(batch, DatabaseUnavailableError(describe(exc)))
                return
            logger.warning("batch of %d failed on one row's data; storing one by one", len(batch))
            for waiting in batch:
                await self.commit([waiting])
            return
        except DATABASE_ERRORS as exc:
            self._fail(batch, DatabaseUnavailableError(describe(exc)))
            return
        except Exception as exc:
            # A bug must not leave handlers waiting forever.
            logger.exception("unexpected error committing %d payments", len(batch))
            self._fail(batch, DatabaseUnavailableError(describe(exc)))
            return
        created = set(result.inserted)
        for waiting in batch:
            if waiting.request.pay is None:
                if not waiting.answer.done():
                    waiting.answer.set_result(None)
                continue
            code = waiting.request.pay.txn_id
            payment = result.stored.get(code)
            if payment is None:
                error = DatabaseUnavailableError(f"txn_id {code} conflicted but is not stored")
                self._fail([waiting], error)
                continue
            first = code in created
            created.discard(code)  # later requests of the same txn_id are repeats
            if not waiting.answer.done():
                waiting.answer.set_result(Stored(payment=payment, created=first))

    async def _insert(self, requests: list[LoggedRequest]) -> BatchResult:
        claim = self._claim(requests)
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                result = await payments.insert_batch(connection, requests, claim)
        except BaseException:
            if claim is not None and self.claimer is not None:
                self.claimer.unreserve(len(claim.codes))
            raise
        if claim is not None and self.claimer is not None:
            self.claimer.claimed(result.claimed)
            self.claimer.unreserve(len(claim.codes) - len(result.claimed))
        return result

    def _claim(self, requests: list[LoggedRequest]) -> Claim | None:
        """The batch's new payments the claimer has room to send now."""
        claimer = self.claimer
        if claimer is None:
            return None
        codes = list(
            dict.fromkeys(
                request.pay.txn_id
                for request in requests
                if request.pay is not None and request.status == payments.STATUS_RECEIVED
            )
        )
        granted = claimer.reserve(len(codes)) if codes else 0
        if granted == 0:
            return None
        return Claim(codes=frozenset(codes[:granted]), owner=claimer.owner, lease=claimer.lease)

    @staticmethod
    def _fail(batch: list[_Waiting], error: Exception) -> None:
        for waiting in batch:
            if not waiting.answer.done():
                waiting.answer.set_exception(error)
