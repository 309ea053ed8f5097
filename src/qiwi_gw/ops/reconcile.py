"""``qiwi-gw reconcile FILE``: compare QIWI's registry with ``qiwi_transaction``.

Over the days the registry covers (its first to its last date, by ``txn_date``,
QIWI's date of the payment) it lists the payments missing on our side, those
missing on theirs, and those whose sum (or account) differs. Exit code 0 when
the two agree, 1 when they differ, 2 when the file cannot be read. See
``registry`` for the columns accepted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import asyncpg

from qiwi_gw.ops import output, registry
from qiwi_gw.ops.arguments import Commands, day_range
from qiwi_gw.ops.common import Job
from qiwi_gw.ops.registry import Registry, RegistryRow
from qiwi_gw.settings import Settings
from qiwi_gw.store import transactions

T = TypeVar("T")


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "reconcile",
        help="compare QIWI's registry (CSV) with the table",
        description="Compare QIWI's registry FILE (CSV with a header: txn_id, account, sum, "
        "date; comma, semicolon or tab) with qiwi_transaction over the days it covers. "
        "Exit 0: they agree; 1: they differ; 2: the file is malformed.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="QIWI's registry, CSV")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def prepare(args: argparse.Namespace) -> Job:
    return partial(run, theirs=registry.read(args.file), as_json=args.json)


@dataclass(frozen=True)
class Difference:
    theirs: RegistryRow
    ours: asyncpg.Record


@dataclass(frozen=True)
class Comparison:
    theirs: Registry
    ours_in_days: int
    missing_ours: list[RegistryRow]
    missing_theirs: list[asyncpg.Record]
    different_sums: list[Difference]
    different_accounts: list[Difference]

    @property
    def agree(self) -> bool:
        return not (
            self.missing_ours
            or self.missing_theirs
            or self.different_sums
            or self.different_accounts
        )


async def compare(connection: asyncpg.Connection, theirs: Registry) -> Comparison:
    start, end = day_range(theirs.first_date, theirs.last_date)
    codes = [row.txn_id for row in theirs.rows]
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        found = {
            record["code"]: record
            for record in await transactions.registry_by_codes(connection, codes)
        }
        in_days = await transactions.registry(connection, start, end)
    listed = set(codes)
    both = [Difference(row, found[row.txn_id]) for row in theirs.rows if row.txn_id in found]
    return Comparison(
        theirs=theirs,
        ours_in_days=len(in_days),
        missing_ours=[row for row in theirs.rows if row.txn_id not in found],
        missing_theirs=[record for record in in_days if record["code"] not in listed],
        different_sums=[pair for pair in both if pair.theirs.sum != pair.ours["sum"]],
        different_accounts=[pair for pair in both if pair.theirs.account != pair.ours["account"]],
    )


async def run(
    connection: asyncpg.Connection, settings: Settings, *, theirs: Registry, as_json: bool
) -> int:
    if not theirs.rows:
        message = f"{theirs.path}: the registry lists no payments: nothing to compare"
        print(
            output.to_json({"registry": str(theirs.path), "rows": 0, "agree": True})
            if as_json
            else message
        )
        return 0
    comparison = await compare(connection, theirs)
    print(output.to_json(as_json_object(comparison)) if as_json else render(comparison))
    return 0 if comparison.agree else 1


def render(comparison: Comparison) -> str:
    theirs = comparison.theirs
    days = f"{theirs.first_date} to {theirs.last_date}"
    parts = [
        output.fields(
            [
                ("registry", f"{theirs.path}: {len(theirs.rows):,} payment(s), dates {days}"),
                ("ours", f"{comparison.ours_in_days:,} payment(s) with txn_date {days}"),
            ]
        ),
        _section(
            "missing on our side (in the registry, not in qiwi_transaction)",
            comparison.missing_ours,
            ["line", "txn_id", "account", "sum", "date"],
            lambda row: [
                str(row.line),
                row.txn_id,
                row.account,
                output.money(row.sum),
                str(row.date),
            ],
            right={0, 3},
        ),
        _section(
            "missing on their side (in qiwi_transaction, not in the registry)",
            comparison.missing_theirs,
            ["txn_id", "prv_txn", "account", "sum", "txn_date"],
            lambda record: [
                record["code"],
                str(record["id"]),
                record["account"],
                output.money(record["sum"]),
                output.local(record["txn_date"]),
            ],
            right={1, 3},
        ),
        _section(
            "different sums",
            comparison.different_sums,
            ["line", "txn_id", "prv_txn", "our sum", "their sum"],
            lambda pair: [
                str(pair.theirs.line),
                pair.theirs.txn_id,
                str(pair.ours["id"]),
                output.money(pair.ours["sum"]),
                output.money(pair.theirs.sum),
            ],
            right={0, 2, 3, 4},
        ),
        _section(
            "different accounts",
            comparison.different_accounts,
            ["line", "txn_id", "prv_txn", "our account", "their account"],
            lambda pair: [
                str(pair.theirs.line),
                pair.theirs.txn_id,
                str(pair.ours["id"]),
                pair.ours["account"],
                pair.theirs.account,
            ],
            right={0, 2},
        ),
    ]
    if comparison.agree:
        parts.append("result: the registry and qiwi_transaction agree")
    else:
        count = (
            len(comparison.missing_ours)
            + len(comparison.missing_theirs)
            + len(comparison.different_sums)
            + len(comparison.different_accounts)
        )
        parts.append(f"result: {count} difference(s)")
    return "\n\n".join(parts)


def _section(
    title: str,
    items: list[T],
    headers: list[str],
    cells: Callable[[T], list[str]],
    right: set[int],
) -> str:
    if not items:
        return f"{title}: none"
    return f"{title}: {len(items)}\n" + output.table(
        headers, [cells(item) for item in items], right
    )


def as_json_object(comparison: Comparison) -> dict[str, object]:
    theirs = comparison.theirs
    return {
        "registry": str(theirs.path),
        "rows": len(theirs.rows),
        "first_date": theirs.first_date.isoformat(),
        "last_date": theirs.last_date.isoformat(),
        "ours_in_days": comparison.ours_in_days,
        "agree": comparison.agree,
        "missing_on_our_side": [
            {
                "line": row.line,
                "txn_id": row.txn_id,
                "account": row.account,
                "sum": output.money(row.sum),
                "date": row.date.isoformat(),
            }
            for row in comparison.missing_ours
        ],
        "missing_on_their_side": [
            {
                "txn_id": record["code"],
                "prv_txn": record["id"],
                "account": record["account"],
                "sum": output.money(record["sum"]),
                "txn_date": output.iso_local(record["txn_date"]),
            }
            for record in comparison.missing_theirs
        ],
        "different_sums": [
            {
                "line": pair.theirs.line,
                "txn_id": pair.theirs.txn_id,
                "prv_txn": pair.ours["id"],
                "our_sum": output.money(pair.ours["sum"]),
                "their_sum": output.money(pair.theirs.sum),
            }
            for pair in comparison.different_sums
        ],
        "different_accounts": [
            {
                "line": pair.theirs.line,
                "txn_id": pair.theirs.txn_id,
                "prv_txn": pair.ours["id"],
                "our_account": pair.ours["account"],
                "their_account": pair.theirs.account,
            }
            for pair in comparison.different_accounts
        ],
    }
