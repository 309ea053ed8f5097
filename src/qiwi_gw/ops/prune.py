"""``qiwi-gw prune-log --older-than 90d``: delete old ``qiwi_http_log`` rows.

In batches of ``--batch-size`` rows, oldest first through the ``created_at``
index, each batch its own short transaction: the gateway keeps writing new rows
meanwhile and never waits. ``qiwi_transaction.http_log_id`` has no foreign key,
so payments are untouched (their ``http_log_id`` then points at nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from qiwi_gw.ops import output
from qiwi_gw.ops.arguments import Commands, age, format_age, positive_int
from qiwi_gw.ops.common import Job
from qiwi_gw.settings import Settings
from qiwi_gw.store import http_log

DEFAULT_BATCH = 10_000
PROGRESS_EVERY = 10.0  # seconds between progress lines on stderr


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "prune-log",
        help="delete old qiwi_http_log rows, in batches",
        description="Delete qiwi_http_log rows older than AGE, in batches, each its own "
        "transaction. Payments are not touched.",
    )
    parser.add_argument(
        "--older-than",
        type=age,
        required=True,
        metavar="AGE",
        help="90d, 12h or 30m: days, hours or minutes",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"rows per statement (default {DEFAULT_BATCH})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    return partial(run, older_than=args.older_than, batch=args.batch_size, as_json=args.json)


async def prune(
    connection: asyncpg.Connection, older_than: timedelta, batch: int
) -> tuple[int, int]:
    """Delete until a batch comes back short; return (rows deleted, statements run)."""
    deleted = batches = 0
    report_at = time.monotonic() + PROGRESS_EVERY
    while True:
        count = await http_log.prune_batch(connection, older_than.total_seconds(), batch)
        deleted += count
        batches += 1
        if count < batch:
            return deleted, batches
        if time.monotonic() >= report_at:
            print(f"qiwi-gw prune-log: {deleted:,} rows deleted so far", file=sys.stderr)
            report_at = time.monotonic() + PROGRESS_EVERY


async def run(
    connection: asyncpg.Connection,
    settings: Settings,
    *,
    older_than: timedelta,
    batch: int,
    as_json: bool,
) -> int:
    deleted, batches = await prune(connection, older_than, batch)
    cutoff = datetime.now(UTC) - older_than
    if as_json:
        print(
            output.to_json(
                {
                    "deleted": deleted,
                    "batches": batches,
                    "older_than_seconds": int(older_than.total_seconds()),
                    "created_before": output.iso(cutoff),
                }
            )
        )
    else:
        print(
            f"deleted {deleted:,} qiwi_http_log row(s) older than {format_age(older_than)}"
            f" (created before about {output.when(cutoff)} UTC) in {batches:,} batch(es)"
        )
    return 0
