"""Reading QIWI's daily registry: a CSV file with a header row.

Accepted columns, by name in any case and order (others are ignored):
``txn_id`` (or ``osmp_txn_id``), ``account``, ``sum`` (or ``amount``) and ``date``
(or ``txn_date``). The delimiter is a comma, a semicolon or a tab, whichever the
header line uses. A sum may use a dot or a decimal comma (``10.45``, ``10,45``)
and spaces between thousands. A date is ``YYYY-MM-DD``, ``DD.MM.YYYY`` or
``YYYYMMDDHHMMSS``, optionally with a time (only the day counts). The file is
UTF-8 (with or without a BOM), else Windows-1251. Blank lines are skipped.
A problem is reported with its line number, as a ``BadArgumentError``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from qiwi_gw.ops.common import BadArgumentError

COLUMNS = {
    "txn_id": ("txn_id", "osmp_txn_id"),
    "account": ("account",),
    "sum": ("sum", "amount"),
    "date": ("date", "txn_date"),
}
DELIMITERS = (",", ";", "\t")

_SUM = re.compile(r"-?\d+(?:\.\d+)?")
_DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y%m%d%H%M%S", "%Y%m%d")


@dataclass(frozen=True)
class RegistryRow:
    line: int
    txn_id: str
    account: str
    sum: Decimal
    date: date


@dataclass(frozen=True)
class Registry:
    path: Path
    delimiter: str
    rows: list[RegistryRow]

    @property
    def first_date(self) -> date:
        return min(row.date for row in self.rows)

    @property
    def last_date(self) -> date:
        return max(row.date for row in self.rows)


def read(path: Path) -> Registry:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadArgumentError(f"{path}: no such file") from None
    except OSError as exc:
        raise BadArgumentError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251", errors="replace")
    return parse(text, path)


def parse(text: str, path: Path) -> Registry:
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        raise BadArgumentError(f"{path}: the file is empty; a header row is needed")
    delimiter = max(DELIMITERS, key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    lines = _non_blank(reader)
    header_number, header = next(lines)
    names = [cell.strip().lower() for cell in header]
    where = _locate(names, path, header_number)
    rows: list[RegistryRow] = []
    seen: dict[str, int] = {}
    for number, cells in lines:
        row = _row(cells, names, where, path, number)
        if row.txn_id in seen:
            raise BadArgumentError(
                f"{path}: line {number}: txn_id {row.txn_id} repeats line {seen[row.txn_id]}"
            )
        seen[row.txn_id] = number
        rows.append(row)
    return Registry(path=path, delimiter=delimiter, rows=rows)


def _non_blank(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Rows with the number of the line each starts on; blank rows skipped."""
    line = 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            yield line, cells
        line = reader.line_num + 1  # type: ignore[attr-defined]


def _locate(names: list[str], path: Path, number: int) -> dict[str, int]:
    where: dict[str, int] = {}
    for column, accepted in COLUMNS.items():
        for name in accepted:
            if name in names:
                where[column] = names.index(name)
                break
    missing = [column for column in COLUMNS if column not in where]
    if missing:
        raise BadArgumentError(
            f"{path}: line {number}: the header has no {', '.join(missing)} column"
            f" (it has: {', '.join(name for name in names if name) or 'nothing'})"
        )
    return where


def _row(
    cells: list[str], names: list[str], where: dict[str, int], path: Path, number: int
) -> RegistryRow:
    extra = cells[len(names) :]
    if len(cells) < len(names) or any(cell.strip() for cell in extra):
        raise BadArgumentError(
            f"{path}: line {number}: {len(cells)} fields, the header has {len(names)}"
        )
    txn_id = cells[where["txn_id"]].strip()
    if not txn_id:
        raise BadArgumentError(f"{path}: line {number}: txn_id is empty")
    amount = _sum(cells[where["sum"]])
    if amount is None:
        raise BadArgumentError(
            f"{path}: line {number}: sum {cells[where['sum']].strip()!r} is not an amount"
            " like 10.45"
        )
    day = _date(cells[where["date"]])
    if day is None:
        raise BadArgumentError(
            f"{path}: line {number}: date {cells[where['date']].strip()!r} is not a date"
            " (YYYY-MM-DD, DD.MM.YYYY or YYYYMMDDHHMMSS)"
        )
    return RegistryRow(
        line=number, txn_id=txn_id, account=cells[where["account"]].strip(), sum=amount, date=day
    )


def _sum(raw: str) -> Decimal | None:
    text = "".join(raw.split())  # spaces, also non-breaking ones, between thousands
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    return Decimal(text) if _SUM.fullmatch(text) else None


def _date(raw: str) -> date | None:
    text = raw.strip()
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        pass
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None
