"""``qiwi-gw resend CODE… | --all-pending``: make payments due now.

The dispatcher sends every row with ``status = 0`` whose ``next_attempt_at`` has
come, so resending is scheduling: a pending row's next attempt becomes now, and
a delivered row goes back to status 0 (``delivered_at`` cleared) and is sent once
more. A NOTIFY on the gateway's channel wakes a running gateway at once. A row
being sent at this moment (a live claim) is left to that attempt.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial

import asyncpg

from qiwi_gw.ops import output
from qiwi_gw.ops.arguments import Commands
from qiwi_gw.ops.common import BadArgumentError, Job
from qiwi_gw.settings import Settings
from qiwi_gw.store import queue, reports
from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED

BATCH = 10_000


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "resend",
        help="make payments due now (a delivered one is sent again once)",
        description="Make the named payments due now; a delivered one is sent once more. "
        "With --all-pending: every undelivered payment waiting for a retry.",
    )
    parser.add_argument("codes", nargs="*", metavar="CODE", help="QIWI's txn_id")
    parser.add_argument("--all-pending", action="store_true", help="every undelivered payment, now")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    codes = list(dict.fromkeys(code.strip() for code in args.codes if code.strip()))
    if args.all_pending and args.codes:
        raise BadArgumentError("give CODEs or --all-pending, not both")
    if args.all_pending:
        return partial(run_all_pending, as_json=args.json)
    if not codes:
        raise BadArgumentError("give the txn_ids to resend, or --all-pending")
    return partial(run_codes, codes=codes, as_json=args.json)


@dataclass(frozen=True)
class ResendOutcome:
    txn_id: str
    prv_txn: int | None
    was: str
    now: str

    @property
    def found(self) -> bool:
        return self.prv_txn is not None


async def resend(connection: asyncpg.Connection, codes: list[str]) -> list[ResendOutcome]:
    """Make the rows of ``codes`` due in one transaction; say what became of each."""
    outcomes: dict[str, ResendOutcome] = {}
    async with connection.transaction():
        rows = await queue.lock_for_resend(connection, codes)
        due: list[int] = []
        for row in rows:
            if row.status == STATUS_RECEIVED and row.in_flight:
                outcomes[row.txn_id] = ResendOutcome(
                    row.txn_id, row.prv_txn, "pending", "being sent now"
                )
                continue
            due.append(row.prv_txn)
            if row.status == STATUS_COMPLETED:
                outcomes[row.txn_id] = ResendOutcome(
                    row.txn_id, row.prv_txn, "completed", "due now: will be sent once more"
                )
            else:
                outcomes[row.txn_id] = ResendOutcome(row.txn_id, row.prv_txn, "pending", "due now")
        if due:
            await queue.make_due(connection, due)
            # Delivered on commit, so the gateway sees the rows already due.
            await queue.notify_due(connection, due[0])
    return [outcomes.get(code) or ResendOutcome(code, None, "not found", "-") for code in codes]


async def run_codes(
    connection: asyncpg.Connection, settings: Settings, *, codes: list[str], as_json: bool
) -> int:
    _warn_without_webhook(settings)
    outcomes = await resend(connection, codes)
    if as_json:
        print(
            output.to_json(
                {
                    "payments": [
                        {
                            "txn_id": item.txn_id,
                            "prv_txn": item.prv_txn,
                            "was": item.was,
                            "now": item.now,
                        }
                        for item in outcomes
                    ],
                    "not_found": [item.txn_id for item in outcomes if not item.found],
                }
            )
        )
    else:
        print(
            output.table(
                ["txn_id", "prv_txn", "was", "now"],
                [
                    [item.txn_id, str(item.prv_txn or output.NONE), item.was, item.now]
                    for item in outcomes
                ],
                right={1},
            )
        )
    missing = [item.txn_id for item in outcomes if not item.found]
    if missing:
        print(f"qiwi-gw resend: no payment with txn_id {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


async def make_all_pending_due(connection: asyncpg.Connection) -> int:
    """In bounded batches, each its own transaction, so the dispatcher is never held up."""
    total = 0
    while True:
        ids = await queue.make_pending_due(connection, BATCH)
        if ids:
            total += len(ids)
            await queue.notify_due(connection, ids[0])
        if len(ids) < BATCH:
            return total


async def run_all_pending(
    connection: asyncpg.Connection, settings: Settings, *, as_json: bool
) -> int:
    _warn_without_webhook(settings)
    made_due = await make_all_pending_due(connection)
    counted = await reports.count_pending(connection)
    if as_json:
        print(
            output.to_json(
                {"made_due": made_due, "pending": counted.pending, "due_now": counted.due}
            )
        )
    else:
        print(
            f"{output.count(made_due)} payment(s) made due now;"
            f" {output.count(counted.pending)} pending, {output.count(counted.due)} of them due"
            " (rows being sent right now are left to that attempt)"
        )
    return 0


def _warn_without_webhook(settings: Settings) -> None:
    if settings.webhook.url is None:
        print(
            "qiwi-gw resend: note: QIWI_WEBHOOK_URL is not set here; only a gateway with a"
            " webhook URL sends these",
            file=sys.stderr,
        )
