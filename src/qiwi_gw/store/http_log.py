"""``qiwi_http_log``: every request to ``/payment``, as it arrived (credentials redacted)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from qiwi_gw.db import Executor, affected_rows, typed


@dataclass(frozen=True)
class HttpLogEntry:
    ip: str | None
    url: str
    method: str
    headers: dict[str, str]
    body: str

    def as_args(self) -> tuple[str | None, str, str, str, str]:
        """The log columns (ip, url, method, headers, body), in the order of the
        batch statement in ``payments``, which writes every log row."""
        return (self.ip, self.url, self.method, json.dumps(self.headers), self.body)


# --- operator queries ---------------------------------------------------------
# qiwi_transaction.http_log_id has no foreign key: pruning the log never blocks
# on, nor deletes, a payment (the payment keeps a dangling id).

# One bounded batch, oldest first through qiwi_http_log_created_at_idx, by the
# database's clock (the one that wrote created_at, in UTC). Each runs as its own
# short transaction and touches only old rows, so writers never wait on it.
# "id = ANY(ARRAY(...))" makes the planner look the ids up in the primary key;
# "id IN (...)" lets it hash-join against a scan of the whole table.
PRUNE_BATCH = """
DELETE FROM qiwi_http_log
WHERE id = ANY(ARRAY(
    SELECT id FROM qiwi_http_log
    WHERE created_at < (now() AT TIME ZONE 'UTC') - make_interval(secs => $1)
    ORDER BY created_at
    LIMIT $2
))
"""


async def prune_batch(connection: Executor, older_than_seconds: float, batch: int) -> int:
    """Delete up to ``batch`` rows older than the given age; return how many went."""
    return affected_rows(await connection.execute(PRUNE_BATCH, older_than_seconds, batch))


# The request a payment came from (qiwi_transaction.http_log_id), for the console.
SELECT_BY_ID = """
SELECT id, ip, url, method, headers::text AS headers, body, created_at
FROM qiwi_http_log
WHERE id = $1
"""


@dataclass(frozen=True)
class LoggedRow:
    """One stored request; ``headers`` is the JSON text as stored."""

    id: int
    ip: str | None
    url: str
    method: str
    headers: str
    body: str
    created_at: datetime


async def by_id(connection: Executor, log_id: int) -> LoggedRow | None:
    record = await connection.fetchrow(SELECT_BY_ID, log_id)
    return None if record is None else typed(LoggedRow, record)
