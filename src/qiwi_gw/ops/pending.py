"""``qiwi-gw pending [--limit N]``: the undelivered payments, oldest first.

Read through the partial index on ``status = 0`` ordered by ``created_at``, so the
first page comes at once however many rows the table holds.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import asyncpg

from qiwi_gw.ops import output
from qiwi_gw.ops.arguments import Commands, positive_int
from qiwi_gw.ops.common import Job
from qiwi_gw.settings import Settings
from qiwi_gw.store import reports
from qiwi_gw.store.reports import PendingPayment

DEFAULT_LIMIT = 50


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "pending",
        help="undelivered payments with attempts, next attempt, last error",
        description="Undelivered payments (status 0), oldest first.",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    return partial(run, limit=args.limit, as_json=args.json)


@dataclass(frozen=True)
class Pending:
    counted: reports.PendingCount
    rows: list[PendingPayment]


async def fetch(connection: asyncpg.Connection, limit: int) -> Pending:
    """The count and the ``limit`` oldest undelivered payments, one snapshot."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        counted = await reports.count_pending(connection)
        rows = await reports.oldest_pending(connection, limit)
    return Pending(counted, rows)


async def run(
    connection: asyncpg.Connection, settings: Settings, *, limit: int, as_json: bool
) -> int:
    pending = await fetch(connection, limit)
    if as_json:
        print(output.to_json(as_json_object(pending.rows, pending.counted)))
    else:
        print(render(pending.rows, pending.counted))
    return 0


def next_attempt(row: PendingPayment, now: datetime) -> str:
    if row.in_flight:
        return "sending now"
    due = row.next_attempt_at
    if due is None:
        return "not scheduled"
    if due <= now:
        return "due now"
    return f"in {output.duration(output.seconds_between(now, due))}"


def render(rows: list[PendingPayment], counted: reports.PendingCount) -> str:
    if not rows:
        return "no pending payments: every payment is delivered"
    body = output.table(
        [
            "txn_id",
            "prv_txn",
            "account",
            "sum",
            "stored (UTC)",
            "age",
            "attempts",
            "next attempt",
            "last error",
        ],
        [
            [
                row.txn_id,
                str(row.prv_txn),
                output.one_line(row.account, 24),
                output.money(row.sum),
                output.when(row.created_at),
                output.duration(output.seconds_between(row.created_at, counted.now)),
                str(row.attempts),
                next_attempt(row, counted.now),
                output.one_line(row.last_error, 60),
            ]
            for row in rows
        ],
        right={1, 3, 6},
    )
    shown = f"{len(rows):,}" if len(rows) == counted.pending else f"the oldest {len(rows):,}"
    footer = (
        f"{output.count(counted.pending)} pending ({output.count(counted.due)} due now);"
        f" showing {shown}"
    )
    return f"{body}\n{footer}"


def as_json_object(rows: list[PendingPayment], counted: reports.PendingCount) -> dict[str, object]:
    return {
        "now": output.iso(counted.now),
        "total": counted.pending,
        "due_now": counted.due,
        "shown": len(rows),
        "payments": [
            {
                "txn_id": row.txn_id,
                "prv_txn": row.prv_txn,
                "account": row.account,
                "sum": output.money(row.sum),
                "created_at": output.iso(row.created_at),
                "attempts": row.attempts,
                "next_attempt_at": output.iso(row.next_attempt_at),
                "in_flight": row.in_flight,
                "last_attempt_at": output.iso(row.last_attempt_at),
                "last_error": row.last_error,
            }
            for row in rows
        ],
    }
