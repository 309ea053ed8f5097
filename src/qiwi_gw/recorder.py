"""Writes webhook outcomes in batches, the way the committer writes payments:
whatever finished while the last write was in flight goes into the next one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import asyncpg

from qiwi_gw.backoff import retry_delay
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe
from qiwi_gw.store import queue
from qiwi_gw.store.queue import DeliveryOutcome

logger = logging.getLogger(__name__)

MAX_OUTCOMES_PER_WRITE: Final = 500
# A batch is tried for at most this many database timeouts in all (acquiring a
# connection and running the statement included), then given up: its claims
# expire and the rows are sent again.
BUDGET_IN_TIMEOUTS: Final = 3
# The first pause between tries; doubling from there.
RETRY_MIN: Final = 0.2


def worst_case_seconds(db_timeout: float) -> float:
    """The longest an outcome can wait between being added and being written or given
    up: the batch in flight when it arrived, then its own. The dispatcher's lease
    covers this, so no other process claims a row whose 2xx is still unrecorded."""
    return 2 * BUDGET_IN_TIMEOUTS * db_timeout


class OutcomeRecorder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        owner: str,
        db_timeout: float,
        on_written: Callable[[list[DeliveryOutcome]], None] = lambda _batch: None,
    ) -> None:
        self._pool = pool
        self._on_written = on_written
        self._owner = owner
        self._db_timeout = db_timeout
        self._pending: list[DeliveryOutcome] = []
        self._writing = 0
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def unrecorded(self) -> int:
        """Outcomes added and not yet written: their rows still count as claimed."""
        return len(self._pending) + self._writing

    def add(self, outcome: DeliveryOutcome) -> None:
        self._pending.append(outcome)
        self._idle.clear()
        self._arrived.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="qiwi-gw-outcome-recorder")

    async def drained(self) -> bool:
        """Wait until every outcome added so far is written (or given up on)."""
        try:
            async with asyncio.timeout(worst_case_seconds(self._db_timeout)):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Write what is pending (within the database timeout), then stop."""
        if not await self.drained():
            logger.warning("%d webhook outcomes not recorded; their claims expire", self.unrecorded)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            batch, self._pending = (
                self._pending[:MAX_OUTCOMES_PER_WRITE],
                self._pending[MAX_OUTCOMES_PER_WRITE:],
            )
            if not self._pending:
                self._arrived.clear()
            self._writing = len(batch)
            try:
                await self._write(batch)
            except Exception:
                # This loop must outlive any one batch: if it stopped, every delivery
                # after it would be sent again when its claim ran out.
                logger.exception("unexpected error recording %d webhook outcomes", len(batch))
            self._writing = 0
            if not self._pending:
                self._idle.set()

    async def _write(self, batch: list[DeliveryOutcome]) -> None:
        deadline = time.monotonic() + BUDGET_IN_TIMEOUTS * self._db_timeout
        failures = 0
        while True:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    async with self._pool.acquire(timeout=self._db_timeout) as connection:
                        await queue.record_outcomes(connection, batch, self._owner)
            except DATABASE_ERRORS as exc:
                failures += 1
                pause = retry_delay(failures, RETRY_MIN, self._db_timeout)
                if time.monotonic() + pause >= deadline:
                    # Claims expire and the rows are sent again: at-least-once, never lost.
                    logger.error("cannot record %d webhook outcomes: %s", len(batch), describe(exc))
                    return
                await asyncio.sleep(pause)
                continue
            self._on_written(batch)
            return
