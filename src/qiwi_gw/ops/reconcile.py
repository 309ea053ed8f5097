"""``qiwi-gw reconcile FILE [--date DAY | --from DAY --to DAY]``: QIWI's registry
against ``qiwi_transaction``.

The file is read and checked before any database is asked (``registry``); the
comparison and its rules are ``reconciliation``'s; this module prints the result,
as a table or as JSON. Exit code 0 when the two agree, 1 when they differ, 2 when
the file cannot be read or no period can be had.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from qiwi_gw.ops import output, registry
from qiwi_gw.ops.arguments import Commands, iso_date
from qiwi_gw.ops.common import BadArgumentError, Job
from qiwi_gw.ops.reconciliation import (
    DECLARED,
    EDGE,
    FILE_NAME,
    ROWS,
    Found,
    Mismatch,
    Period,
    Reconciliation,
    Repeat,
    compare,
)
from qiwi_gw.ops.registry import RegistryRow, Scan, TotalCheck
from qiwi_gw.ops.registry_fields import COMMA, POINT, printable
from qiwi_gw.settings import Settings
from qiwi_gw.store.registry import RegistryPayment

T = TypeVar("T")

DECIMAL_MARKS = {"point": POINT, "comma": COMMA}
TITLES = {
    "missing_ours": "missing on our side (in the registry, not in qiwi_transaction)",
    "missing_theirs": "missing on their side (in qiwi_transaction, not in the registry)",
    "different_sums": "different sums",
    "different_accounts": "different accounts",
    "repeated": "listed twice (one txn_id on several lines)",
    "odd_sums": "sums with more than two decimals",
    "outside_period": (
        f"dated outside the period (more than {EDGE.seconds // 60} minutes from its edge)"
    ),
    "totals": "total line",
}


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "reconcile",
        help="compare QIWI's registry file with the table",
        description="Compare QIWI's registry FILE (its standard tab-separated registry, its "
        "payments report, or CSV with a header) with qiwi_transaction over a period of QIWI's "
        "(Moscow) days: the one declared, else the day in QIWI's file name "
        "(QIWI_<service>_YYYYMMDDn.csv), else the rows' dates. "
        "Exit 0: they agree; 1: they differ; 2: the file cannot be read.",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="QIWI's registry")
    parser.add_argument("--date", type=iso_date, metavar="DAY", help="the day to compare")
    parser.add_argument(
        "--from", dest="first", type=iso_date, metavar="DAY", help="the first day to compare"
    )
    parser.add_argument(
        "--to", dest="last", type=iso_date, metavar="DAY", help="the last day, included"
    )
    parser.add_argument(
        "--decimal",
        choices=tuple(DECIMAL_MARKS),
        help="the file's decimal mark, for sums such as 1,500 its other sums do not settle",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(prepare=prepare)


def declared_period(args: argparse.Namespace) -> Period | None:
    if args.date is not None:
        if args.first is not None or args.last is not None:
            raise BadArgumentError("--date or --from/--to, not both")
        return Period(args.date, args.date, DECLARED)
    if (args.first is None) != (args.last is None):
        raise BadArgumentError("--from and --to go together (for one day: --date)")
    if args.first is None:
        return None
    if args.first > args.last:
        raise BadArgumentError(f"--from {args.first} is after --to {args.last}")
    return Period(args.first, args.last, DECLARED)


def prepare(args: argparse.Namespace) -> Job:
    """The file's encoding and layout are checked here, before the database is asked;
    its lines as they are compared."""
    declared = declared_period(args)
    mark = DECIMAL_MARKS[args.decimal] if args.decimal else None
    scanned = registry.scan(registry.Source.from_path(args.file), mark)
    return partial(run, scanned=scanned, declared=declared, as_json=args.json)


async def run(
    connection: asyncpg.Connection,
    settings: Settings,
    *,
    scanned: Scan,
    declared: Period | None,
    as_json: bool,
) -> int:
    try:
        result = await compare(scanned, declared, connection)
    finally:
        scanned.source.close()  # a pipe's copy
    print(output.to_json(as_json_object(result)) if as_json else render(result))
    return 0 if result.agree else 1


# --- the table ---------------------------------------------------------------------


def describe_period(period: Period, name_day: date | None = None) -> str:
    """Where the period came from; a declared one the file's name contradicts says so
    (``--date`` of another day on QIWI's file of the 28th)."""
    if period.origin == DECLARED:
        if name_day is not None and name_day not in period:
            return f"{period} (declared; the file's name says {name_day})"
        return f"{period} (declared)"
    if period.origin == FILE_NAME:
        return f"{period} (the day in the file's name)"
    return f"{period} (the rows' dates: no period declared, no day in the file's name)"


def render(result: Reconciliation) -> str:
    """The result as the CLI prints it: a summary, then one section per kind of difference.
    What the file (or a row of ours) holds is printed escaped (``printable``)."""
    summary = [
        ("registry", f"{printable(result.source)}: {result.layout.title}"),
        ("payments", f"{result.rows:,} listed, sum {result.amount}"),
        ("period", describe_period(result.period, result.name_day)),
        ("ours", f"{result.ours:,} payment(s) in the period, sum {result.our_amount}"),
    ]
    if result.skipped:
        skipped = ", ".join(
            f"{count:,} {printable(kind)}" for kind, count in sorted(result.skipped.items())
        )
        summary.append(("skipped", f"{skipped} (not payments)"))
    edge = result.near_edge
    if edge.count:
        lines = ", ".join(str(row.line) for row in edge.items)
        more = ", ..." if edge.cut else ""
        summary.append(
            (
                "edge",
                f"{edge.count:,} listed payment(s) dated within {EDGE.seconds // 60} minutes of"
                f" the period's edge (line {lines}{more}): looked up, not a difference",
            )
        )
    if not result.accounts_compared:
        summary.append(("accounts", "not compared: the file has no account column"))
    parts = [
        output.fields(summary),
        _section(
            TITLES["missing_ours"],
            result.missing_ours,
            ["line", "txn_id", "account", "sum", "date"],
            lambda row: [str(row.line), row.txn_id, row.account or "-", row.sum_text, row.when],
            right={0, 3},
        ),
        _section(
            TITLES["missing_theirs"],
            result.missing_theirs,
            ["txn_id", "prv_txn", "account", "sum", "QIWI time"],
            lambda ours: [
                ours.txn_id,
                str(ours.prv_txn),
                ours.account,
                ours.sum_text,
                output.local(ours.qiwi_time),
            ],
            right={1, 3},
        ),
        _section(
            TITLES["different_sums"],
            result.different_sums,
            ["line", "txn_id", "prv_txn", "our sum", "their sum"],
            lambda pair: [
                str(pair.theirs.line),
                pair.theirs.txn_id,
                str(pair.ours.prv_txn),
                pair.ours.sum_text,
                pair.theirs.sum_text,
            ],
            right={0, 2, 3, 4},
        ),
    ]
    if result.accounts_compared:
        parts.append(
            _section(
                TITLES["different_accounts"],
                result.different_accounts,
                ["line", "txn_id", "prv_txn", "our account", "their account"],
                lambda pair: [
                    str(pair.theirs.line),
                    pair.theirs.txn_id,
                    str(pair.ours.prv_txn),
                    pair.ours.account,
                    pair.theirs.account or "-",
                ],
                right={0, 2},
            )
        )
    parts += [
        _section(
            TITLES["repeated"],
            result.repeated,
            ["txn_id", "lines", "their sums", "our sum"],
            lambda repeat: [
                repeat.txn_id,
                ", ".join(str(row.line) for row in repeat.rows)
                + (f", ... ({repeat.listed:,} lines)" if repeat.cut else ""),
                ", ".join(row.sum_text for row in repeat.rows)
                + (", ..." if repeat.cut else "")
                + ("" if repeat.same_sums else " (different)"),
                repeat.ours.sum_text if repeat.ours else "not ours",
            ],
            right=set(),
        ),
        _section(
            TITLES["odd_sums"],
            result.odd_sums,
            ["line", "txn_id", "sum"],
            lambda row: [str(row.line), row.txn_id, row.sum_text],
            right={0, 2},
        ),
        _section(
            TITLES["outside_period"],
            result.outside_period,
            ["line", "txn_id", "account", "sum", "date"],
            lambda row: [str(row.line), row.txn_id, row.account or "-", row.sum_text, row.when],
            right={0, 3},
        ),
        _totals(result.totals),
        _verdict(result),
    ]
    return "\n\n".join(part for part in parts if part)


def _verdict(result: Reconciliation) -> str:
    # A guessed period cannot tell a day at its end that the file left out whole.
    guessed = " (period guessed from the rows)" if result.period.origin == ROWS else ""
    if result.agree:
        return f"result: the registry and qiwi_transaction agree over {result.period}{guessed}"
    return f"result: {result.differences:,} difference(s) over {result.period}{guessed}"


def _totals(totals: Sequence[TotalCheck]) -> str:
    if not totals:
        return ""
    lines = []
    for total in totals:
        made = f"the rows above it make {total.counted:,} / {total.summed}"
        if total.line is None:
            lines.append(f"missing: the file does not end with one (cut short?); {made}")
        elif total.agrees:
            lines.append(f"line {total.line}: {total.text!r} agrees with the rows above it")
        else:
            lines.append(f"line {total.line}: {total.text!r} disagrees: {made}")
    bad = sum(1 for total in totals if not total.agrees)
    title = f"{TITLES['totals']}: {bad}" if bad else f"{TITLES['totals']}: agrees"
    return title + "\n" + "\n".join(lines)


def _section(
    title: str,
    found: Found[T],
    headers: list[str],
    cells: Callable[[T], list[str]],
    right: set[int],
) -> str:
    if not found.count:
        return f"{title}: none"
    shown = f" (the first {len(found.items):,} listed)" if found.cut else ""
    rows = [[printable(cell) for cell in cells(item)] for item in found.items]
    return f"{title}: {found.count:,}{shown}\n" + output.table(headers, rows, right)


# --- JSON ----------------------------------------------------------------------------


def as_json_object(result: Reconciliation) -> dict[str, object]:
    """The result for programs. Sums are strings, exactly as each side writes them."""
    kinds: dict[str, Found[Any]] = {
        "missing_on_our_side": result.missing_ours,
        "missing_on_their_side": result.missing_theirs,
        "different_sums": result.different_sums,
        "different_accounts": result.different_accounts,
        "listed_twice": result.repeated,
        "sums_with_more_than_two_decimals": result.odd_sums,
        "dated_outside_period": result.outside_period,
    }
    return {
        "registry": result.source,
        "layout": result.layout.key,
        "layout_title": result.layout.title,
        "encoding": result.encoding,
        "decimal_mark": registry.describe_mark(result.decimal_mark),
        "rows": result.rows,
        "sum": str(result.amount),
        "skipped": result.skipped,
        "first_date": result.period.first.isoformat(),
        "last_date": result.period.last.isoformat(),
        "period_from": result.period.origin,
        "file_name_day": None if result.name_day is None else result.name_day.isoformat(),
        "ours_in_period": result.ours,
        "our_sum": str(result.our_amount),
        "accounts_compared": result.accounts_compared,
        "near_period_edge": result.near_edge.count,
        "agree": result.agree,
        "differences": result.differences,
        # Every difference is counted; each list holds the first 10,000 of its kind.
        "counts": {key: found.count for key, found in kinds.items()},
        "missing_on_our_side": [_their_row(row) for row in result.missing_ours.items],
        "missing_on_their_side": [_our_payment(ours) for ours in result.missing_theirs.items],
        "different_sums": [_mismatch(pair, "sum") for pair in result.different_sums.items],
        "different_accounts": [
            _mismatch(pair, "account") for pair in result.different_accounts.items
        ],
        "listed_twice": [_repeat(repeat) for repeat in result.repeated.items],
        "sums_with_more_than_two_decimals": [_their_row(row) for row in result.odd_sums.items],
        "dated_outside_period": [_their_row(row) for row in result.outside_period.items],
        "total_lines": [_total(total) for total in result.totals],
    }


def _their_row(row: RegistryRow) -> dict[str, object]:
    return {
        "line": row.line,
        "txn_id": row.txn_id,
        "account": row.account,
        "sum": row.sum_text,
        "date": row.day.isoformat(),
        "written": row.when,
    }


def _our_payment(ours: RegistryPayment) -> dict[str, object]:
    return {
        "txn_id": ours.txn_id,
        "prv_txn": ours.prv_txn,
        "account": ours.account,
        "sum": ours.sum_text,
        "qiwi_time": output.iso_local(ours.qiwi_time),
        "status": ours.status,
    }


def _mismatch(pair: Mismatch, what: str) -> dict[str, object]:
    ours = pair.ours.sum_text if what == "sum" else pair.ours.account
    theirs = pair.theirs.sum_text if what == "sum" else pair.theirs.account
    return {
        "line": pair.theirs.line,
        "txn_id": pair.theirs.txn_id,
        "prv_txn": pair.ours.prv_txn,
        f"our_{what}": ours,
        f"their_{what}": theirs,
    }


def _repeat(repeat: Repeat) -> dict[str, object]:
    return {
        "txn_id": repeat.txn_id,
        "lines": [row.line for row in repeat.rows],  # the first 10
        "listed": repeat.listed,
        "their_sums": [row.sum_text for row in repeat.rows],
        "same_sums": repeat.same_sums,
        "our_sum": repeat.ours.sum_text if repeat.ours else None,
    }


def _total(total: TotalCheck) -> dict[str, object]:
    return {
        "line": total.line,
        "text": total.text,
        "count": total.count,
        "amount": total.amount_text,
        "rows_above": total.counted,
        "sum_above": str(total.summed),
        "agrees": total.agrees,
    }
