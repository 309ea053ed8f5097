"""``qiwi_http_log``: every request to ``/payment``, as it arrived (credentials redacted)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from qiwi_gw.db import Executor

INSERT = """
INSERT INTO qiwi_http_log (ip, url, method, headers, body)
VALUES ($1, $2, $3, $4::json, $5)
RETURNING id
"""


@dataclass(frozen=True)
class HttpLogEntry:
    ip: str | None
    url: str
    method: str
    headers: dict[str, str]
    body: str

    def as_args(self) -> tuple[str | None, str, str, str, str]:
        """The parameters of ``INSERT``, in order ($1 to $5)."""
        return (self.ip, self.url, self.method, json.dumps(self.headers), self.body)


async def insert(connection: Executor, entry: HttpLogEntry) -> int:
    log_id: int = await connection.fetchval(INSERT, *entry.as_args())
    return log_id
