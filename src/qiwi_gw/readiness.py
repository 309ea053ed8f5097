"""``/readyz``'s answer, from cached state.

``/readyz`` is open to whoever reaches the port (platforms probe it without
credentials), so it says only "ready" or a generic reason, never the driver's
error text, and a caller asking in a loop costs the database at most one small
query per ``interval`` while the answer is "ready". A "not ready" is checked
again at the next ask, so recovery shows at once; concurrent asks always share
one check.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Final

import asyncpg

from qiwi_gw.db import DATABASE_ERRORS

READY_QUERY: Final = "SELECT migration_id FROM _yoyo_migration"
INTERVAL: Final = 2.0

DATABASE_UNAVAILABLE: Final = "database unavailable"
SCHEMA_NOT_CURRENT: Final = "schema not current (run qiwi-gw migrate)"


class Readiness:
    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        expected_migrations: list[str],
        *,
        timeout: float,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._expected = expected_migrations
        self._timeout = timeout
        self._interval = interval
        self._clock = clock
        self._reason: str | None = DATABASE_UNAVAILABLE
        self._checked_at = -math.inf
        self._check: asyncio.Task[str | None] | None = None

    async def reason(self) -> str | None:
        """None when ready, else why not, in a few generic words."""
        if self._reason is None and self._clock() - self._checked_at < self._interval:
            return None
        if self._check is None:
            self._check = asyncio.ensure_future(self._run_check())
        # Shielded: a caller that goes away does not cancel the others' check.
        return await asyncio.shield(self._check)

    async def _run_check(self) -> str | None:
        try:
            self._reason = await self._ask()
            self._checked_at = self._clock()
            return self._reason
        finally:
            self._check = None

    async def _ask(self) -> str | None:
        try:
            async with self._pool().acquire(timeout=self._timeout) as connection:
                rows = await connection.fetch(READY_QUERY, timeout=self._timeout)
        except asyncpg.UndefinedTableError:
            return SCHEMA_NOT_CURRENT
        except DATABASE_ERRORS:
            return DATABASE_UNAVAILABLE
        applied = {row["migration_id"] for row in rows}
        if any(migration not in applied for migration in self._expected):
            return SCHEMA_NOT_CURRENT
        return None
