"""``qiwi-gw attempts CODE``: one payment's delivery history.

``CODE`` is QIWI's ``txn_id``. Attempts of delivered payments are pruned after
``QIWI_ATTEMPT_RETENTION_DAYS``; the payment row keeps its counters.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial

import asyncpg

from qiwi_gw.ops import output
from qiwi_gw.ops.arguments import Commands
from qiwi_gw.ops.common import BadArgumentError, Job, NotFoundError
from qiwi_gw.settings import Settings
from qiwi_gw.store import attempts, payments, reports
from qiwi_gw.store.attempts import AttemptRecord
from qiwi_gw.store.reports import PaymentDetail


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "attempts",
        help="one payment's delivery history",
        description="One payment's state and its webhook attempts, by QIWI's txn_id.",
    )
    parser.add_argument("code", metavar="CODE", help="QIWI's txn_id (qiwi_transaction.code)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    code = args.code.strip()
    if not code:
        raise BadArgumentError("CODE is empty; give QIWI's txn_id")
    return partial(run, code=code, as_json=args.json)


@dataclass(frozen=True)
class History:
    payment: PaymentDetail
    attempts: list[AttemptRecord]


async def fetch(connection: asyncpg.Connection, code: str) -> History | None:
    """The payment with txn_id ``code`` and its attempts, one snapshot; None when absent."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        found = await reports.by_code(connection, code)
        if found is None:
            return None
        tried = await attempts.for_transaction(connection, found.prv_txn)
    return History(found, tried)


async def run(
    connection: asyncpg.Connection, settings: Settings, *, code: str, as_json: bool
) -> int:
    history = await fetch(connection, code)
    if history is None:
        raise NotFoundError(f"no payment with txn_id {code}")
    if as_json:
        print(output.to_json(as_json_object(history.payment, history.attempts)))
    else:
        print(render(history.payment, history.attempts))
    return 0


def state(payment: PaymentDetail) -> str:
    if payment.status == payments.STATUS_COMPLETED:
        if payment.delivered_at is None:
            return "1 completed (stored completed: no webhook was configured)"
        return f"1 completed, delivered {output.when(payment.delivered_at)} UTC"
    if payment.in_flight:
        return "0 received, being sent now"
    if payment.next_attempt_at is None:
        return "0 received, not scheduled"
    return f"0 received, next attempt {output.when(payment.next_attempt_at)} UTC"


def render(payment: PaymentDetail, tried: list[AttemptRecord]) -> str:
    head = output.fields(
        [
            ("txn_id", payment.txn_id),
            ("prv_txn", str(payment.prv_txn)),
            ("account", payment.account),
            ("sum", output.money(payment.sum)),
            ("txn_date", output.local(payment.txn_date) + " (QIWI's clock)"),
            ("stored", output.when(payment.created_at) + " UTC"),
            ("status", state(payment)),
            ("attempts", str(payment.attempts)),
            ("last error", output.one_line(payment.last_error, 100)),
        ]
    )
    if not tried:
        note = (
            "no attempts recorded (none made yet, or pruned: attempts of delivered"
            " payments are kept QIWI_ATTEMPT_RETENTION_DAYS days)"
        )
        return f"{head}\n\n{note}"
    history = output.table(
        ["attempt", "started (UTC)", "duration", "result", "response"],
        [
            [
                str(row.attempt),
                output.when(row.started_at),
                f"{row.duration_ms} ms",
                result(row),
                output.one_line(row.response_excerpt, 50),
            ]
            for row in tried
        ],
        right={0, 2},
    )
    return f"{head}\n\n{history}"


def result(row: AttemptRecord) -> str:
    if row.error is not None:
        return output.one_line(row.error, 50)
    status = row.http_status
    if status is None:
        return output.NONE
    return f"HTTP {status}" + (" (delivered)" if 200 <= status < 300 else "")


def as_json_object(payment: PaymentDetail, tried: list[AttemptRecord]) -> dict[str, object]:
    return {
        "payment": {
            "txn_id": payment.txn_id,
            "prv_txn": payment.prv_txn,
            "account": payment.account,
            "sum": output.money(payment.sum),
            "txn_date": output.iso_local(payment.txn_date),
            "created_at": output.iso(payment.created_at),
            "status": payment.status,
            "attempts": payment.attempts,
            "next_attempt_at": output.iso(payment.next_attempt_at),
            "in_flight": payment.in_flight,
            "last_attempt_at": output.iso(payment.last_attempt_at),
            "last_error": payment.last_error,
            "delivered_at": output.iso(payment.delivered_at),
        },
        "attempts": [
            {
                "attempt": row.attempt,
                "started_at": output.iso(row.started_at),
                "duration_ms": row.duration_ms,
                "http_status": row.http_status,
                "error": row.error,
                "response_excerpt": row.response_excerpt,
            }
            for row in tried
        ],
    }
