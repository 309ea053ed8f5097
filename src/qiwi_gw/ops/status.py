"""``qiwi-gw status``: how many payments, what waits for delivery, what happened last.

Every number comes from an index or the planner's statistics, so the answer is as
quick on millions of rows as on ten: the pending count is exact (an index-only
scan of the partial index on status 0); the total is exact up to
``EXACT_TOTAL_UP_TO`` rows and the planner's estimate past that, and says so.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import asyncpg

from qiwi_gw.ops import output
from qiwi_gw.ops.arguments import Commands
from qiwi_gw.ops.common import Job
from qiwi_gw.settings import Settings, mask_url
from qiwi_gw.store import attempts, reports
from qiwi_gw.store.attempts import LastFailure
from qiwi_gw.store.reports import LastDelivery, PendingPayment

EXACT_TOTAL_UP_TO = 100_000


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "status",
        help="counts, oldest pending, last delivery and error",
        description="Counts by status, the oldest pending payment, the last delivery, "
        "the last failed attempt, and whether a webhook URL is configured.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    return partial(run, as_json=args.json)


@dataclass(frozen=True)
class Status:
    now: datetime
    total: int
    total_exact: bool
    pending: int
    due: int
    oldest_pending: PendingPayment | None
    last_delivery: LastDelivery | None
    last_failure: LastFailure | None
    webhook_url: str | None

    @property
    def completed(self) -> int:
        return max(self.total - self.pending, 0)


async def collect(connection: asyncpg.Connection, settings: Settings) -> Status:
    # One snapshot: the numbers agree with each other, and now() is one instant.
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        counted = await reports.count_pending(connection)
        total = await reports.count_up_to(connection, EXACT_TOTAL_UP_TO + 1)
        total_exact = total <= EXACT_TOTAL_UP_TO
        if not total_exact:
            total = max(await reports.estimate_rows(connection), total)
        oldest = await reports.oldest_pending(connection, 1)
        delivery = await reports.last_delivery(connection)
        failure = await attempts.last_failure(connection)
        return Status(
            now=counted.now,
            total=max(total, counted.pending),
            total_exact=total_exact,
            pending=counted.pending,
            due=counted.due,
            oldest_pending=oldest[0] if oldest else None,
            last_delivery=delivery,
            last_failure=failure,
            webhook_url=settings.webhook.url,
        )


async def run(connection: asyncpg.Connection, settings: Settings, *, as_json: bool) -> int:
    status = await collect(connection, settings)
    print(output.to_json(as_json_object(status)) if as_json else render(status))
    return 0


def render(status: Status) -> str:
    estimate = "" if status.total_exact else "  (estimate: planner statistics)"
    pending = f"{output.count(status.pending)}  (exact; {output.count(status.due)} due now)"
    return output.fields(
        [
            ("payments", output.count(status.total, estimate=not status.total_exact) + estimate),
            ("  0 received", pending),
            (
                "  1 completed",
                output.count(status.completed, estimate=not status.total_exact)
                + ("  (exact)" if status.total_exact else "  (estimate)"),
            ),
            ("oldest pending", _oldest(status)),
            ("last delivery", _delivery(status)),
            ("last error", _failure(status)),
            ("webhook URL", _webhook(status.webhook_url)),
        ]
    )


def _oldest(status: Status) -> str:
    row = status.oldest_pending
    if row is None:
        return "none: every payment is delivered"
    return (
        f"txn_id {row.txn_id} (prv_txn {row.prv_txn}), stored {output.when(row.created_at)}"
        f" UTC, {output.ago(row.created_at, status.now)}; {row.attempts} attempt(s)"
    )


def _delivery(status: Status) -> str:
    row = status.last_delivery
    if row is None:
        return "none yet"
    return (
        f"txn_id {row.txn_id} (prv_txn {row.prv_txn}) at {output.when(row.delivered_at)} UTC,"
        f" {output.ago(row.delivered_at, status.now)}"
    )


def _failure(status: Status) -> str:
    row = status.last_failure
    if row is None:
        return "none recorded"
    return (
        f"txn_id {row.txn_id} (prv_txn {row.prv_txn}) at {output.when(row.started_at)} UTC,"
        f" {output.ago(row.started_at, status.now)}: {failure_text(row)}"
        f" (attempt {row.attempt})"
    )


def failure_text(row: LastFailure) -> str:
    return output.one_line(row.error or f"HTTP {row.http_status}", 80)


def _webhook(url: str | None) -> str:
    if url is None:
        return "not set (QIWI_WEBHOOK_URL): payments are stored completed, nothing is sent"
    return f"configured: {mask_url(url)}"


def as_json_object(status: Status) -> dict[str, object]:
    oldest = status.oldest_pending
    delivery = status.last_delivery
    failure = status.last_failure
    return {
        "now": output.iso(status.now),
        "counts": {
            "total": {"value": status.total, "estimate": not status.total_exact},
            "received": {"value": status.pending, "estimate": False, "due_now": status.due},
            "completed": {"value": status.completed, "estimate": not status.total_exact},
        },
        "oldest_pending": None
        if oldest is None
        else {
            "txn_id": oldest.txn_id,
            "prv_txn": oldest.prv_txn,
            "created_at": output.iso(oldest.created_at),
            "age_seconds": output.seconds_between(oldest.created_at, status.now),
            "attempts": oldest.attempts,
        },
        "last_delivery": None
        if delivery is None
        else {
            "txn_id": delivery.txn_id,
            "prv_txn": delivery.prv_txn,
            "delivered_at": output.iso(delivery.delivered_at),
            "age_seconds": output.seconds_between(delivery.delivered_at, status.now),
        },
        "last_error": None
        if failure is None
        else {
            "txn_id": failure.txn_id,
            "prv_txn": failure.prv_txn,
            "at": output.iso(failure.started_at),
            "age_seconds": output.seconds_between(failure.started_at, status.now),
            "attempt": failure.attempt,
            "http_status": failure.http_status,
            "error": failure.error,
        },
        "webhook_url_configured": status.webhook_url is not None,
        "webhook_url": None if status.webhook_url is None else mask_url(status.webhook_url),
    }
