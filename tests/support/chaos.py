"""The fault-injection suite's own pieces: its scale, the money invariants every scenario
asserts, and the figures it reports. The processes it breaks are ``tests.support``'s:
``gateway.Gateway``, ``backend.Backend``, ``postgres.disposable_postgres``, ``qiwi.Qiwi``.

``make chaos`` sets CHAOS_FULL=1 for the full loads and durations; the normal
suite (and CI) runs the same scenarios small. With CHAOS_REPORT=path each
scenario appends its figures there as a JSON line (``make chaos`` renders them
into docs/reliability.md: ``python -m tests.support.chaos RESULTS OUT``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.qiwi import Qiwi

FULL = os.environ.get("CHAOS_FULL") == "1"


def scale(small: float, full: float) -> float:
    return full if FULL else small


# The per-test timeout (pyproject's is for ordinary tests), by scale.
TIMEOUT = 180 if not FULL else 1200

# Killing servers under load leaves asyncio's own sockets to be reaped by the
# garbage collector mid-connect (a KeyError inside selectors): noise of the
# fault, not of the gateway, so it is not turned into a test failure here.
QUIET = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::ResourceWarning"
)


def report(scenario: str, **figures: Any) -> None:
    """Print the scenario's figures; append them to CHAOS_REPORT when set."""
    line = {"scenario": scenario, "full": FULL, **figures}
    print(json.dumps(line))
    path = os.environ.get("CHAOS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


async def stored_payments(dsn: str) -> dict[str, int]:
    """code -> id of every stored payment."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT code, id FROM qiwi_transaction")
    finally:
        await connection.close()
    return {row["code"]: row["id"] for row in rows}


async def assert_money_invariants(qiwi: Qiwi, dsn: str) -> dict[str, int]:
    """Every 0 is stored once with its prv_txn; nothing is stored twice; no 500s."""
    stored = await stored_payments(dsn)
    lost = [txn for txn, a in qiwi.answered.items() if str(stored.get(txn)) != a.prv_txn]
    assert not lost, f"answered 0 but not stored as answered: {lost[:10]}"
    assert qiwi.http_500 == 0
    connection = await asyncpg.connect(dsn)
    try:
        doubled = await connection.fetchval(
            "SELECT count(*) FROM (SELECT code FROM qiwi_transaction GROUP BY code"
            " HAVING count(*) > 1) d"
        )
    finally:
        await connection.close()
    assert doubled == 0
    return stored


COLUMNS = (
    ("load", "load"),
    ("faults", "faults injected"),
    ("requests", "requests sent"),
    ("answered_0", "pays answered 0"),
    ("stored", "payments stored"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("delivered", "delivered"),
    ("worst_recovery_s", "worst recovery (s)"),
)


def render(results: Path, out: Path) -> None:
    """docs/reliability.md from the JSON lines the scenarios appended."""
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    lines = [
        "# Reliability",
        "",
        "Produced by `make chaos` (CHAOS_FULL=1: full loads and durations); every row is one",
        "scenario of the fault-injection suite in `tests/chaos/test_chaos_*.py`, run against real",
        "gateway processes, a real PostgreSQL and a real local backend. Each scenario asserts",
        "its invariants; this table is what it measured.",
        "",
        "| scenario | " + " | ".join(title for _, title in COLUMNS) + " | other figures |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    known = {"scenario", "full", *(key for key, _ in COLUMNS)}
    for row in rows:
        cells = [str(row.get(key, "-")) for key, _ in COLUMNS]
        other = ", ".join(f"{k}={v}" for k, v in row.items() if k not in known)
        lines.append(f"| {row['scenario']} | " + " | ".join(cells) + f" | {other} |")
    lines.append("")
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]))
