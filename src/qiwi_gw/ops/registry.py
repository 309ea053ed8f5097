"""Reading QIWI's registry file: its encoding, its layout, its decimal mark, its rows.

Layouts, told apart by the file's first lines:

- QIWI's standard registry: no header; one payment a line, ``txn_id``, date, time,
  account, sum separated by tabs; a last line ``Total: <count> <amount>``. Sums take
  a decimal point; times are Moscow time.
- QIWI's payments daily report: ``;``-separated with upper-case column names
  (``TRANS_DATE``, ``TRANSACTION_ID``, ``SUM``, ``PURPOSE``); rows whose ``PURPOSE``
  is a known non-payment type (``SETTLEMENT``, the day's transfer to the merchant)
  are skipped and counted. Every other row, a refund included, is compared: an
  unknown type skipped could hide a payment we never stored.
- A CSV file with a header row (``qiwi-gw export`` writes one): ``txn_id`` (or
  ``osmp_txn_id``, ``transaction_id``, ``Номер платежа``), ``sum`` (``amount``,
  ``Сумма``), ``date`` (``txn_date``, ``trans_date``, ``Дата``), optionally ``time``
  (``Время``) and ``account`` (``Счёт``, ``Лицевой счёт``), in any order and case;
  other columns are ignored. Comma, semicolon or tab, whichever the header uses;
  title lines above the header (one cell each) are skipped, a line of several cells
  there is refused (a row sorted above it); an ``Итого``/``Total`` line is checked.

The file is UTF-8 or UTF-16 with a byte-order mark, else UTF-8, else Windows-1251;
lines end in LF, CRLF or a bare CR; blank lines are skipped; a line longer than
``MAX_LINE`` characters is refused. A file is read twice
(``scan`` checks every line and settles the decimal mark, then ``Scan.read`` gives
the rows), never held whole in memory. A problem that makes it unreadable is a
``BadArgumentError`` naming the line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import stat
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path, PurePath
from typing import IO, BinaryIO, NamedTuple

from qiwi_gw.ops.common import BadArgumentError
from qiwi_gw.ops.registry_fields import (
    MARK_NAMES,
    MAX_TOTAL_WHOLE_DIGITS,
    MAX_WHOLE_DIGITS,
    POINT,
    SUMS,
    DayReader,
    out_of_range,
    printable,
    read_sum,
)

QIWI_STANDARD = "qiwi-standard"
QIWI_REPORT = "qiwi-report"
OUR_EXPORT = "qiwi-gw-export"
CSV_WITH_HEADER = "csv"

# What ``qiwi-gw export`` writes as CSV, recognised as such.
EXPORT_COLUMNS = ("txn_id", "prv_txn", "account", "sum", "txn_date", "created_at", "status")

# Column names as found after ``_normal``; the first one present wins.
COLUMNS: dict[str, tuple[str, ...]] = {
    "txn_id": ("txn_id", "osmp_txn_id", "transaction_id", "номер платежа", "номер транзакции"),
    "sum": ("sum", "amount", "сумма", "сумма платежа"),
    "date": ("date", "txn_date", "trans_date", "дата", "дата платежа", "дата и время"),
    "time": ("time", "время"),
    "account": ("account", "счет", "лицевой счет", "номер счета"),
    "purpose": ("purpose",),
}
REQUIRED = ("txn_id", "sum", "date")
# PURPOSE values of QIWI's payments report that are not payments, lower-cased. Only
# these are skipped, and only in that report: any other row is compared.
NOT_PAYMENTS = frozenset({"settlement"})
STANDARD_FIELDS = ("txn_id", "date", "time", "account", "sum")
DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
_HEADER_SEARCH_LINES = 10
# A registry's line is a few hundred characters (a bank transfer's purpose is at most
# 210); a longer one is refused before it is read whole: one of 300 MB would be held.
MAX_LINE = 4096
_TOTAL_LABELS = ("total", "итого", "всего")
_STANDARD_TOTAL = re.compile(r"total\s*:?\s*([^\s:]+)\s+(\S+)", re.IGNORECASE)
# Sums most files hold: no spaces, a decimal point with one or two decimals or none
# (and no more whole digits than a sum may have: longer ones take the slow path).
_PLAIN_SUM = re.compile(r"\d{1,15}(?:\.\d\d?)?")
_PLAIN_TIME = re.compile(r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?")
_FILE_DAY = re.compile(r"QIWI_.+_(\d{8})\d*\.\w+", re.IGNORECASE)
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009'")
_DATE_FORMS = "YYYY-MM-DD, DD.MM.YYYY or YYYYMMDD, optionally with a time and a zone"


# --- the file ------------------------------------------------------------------


class Source:
    """A registry file that can be read from its start more than once."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], AbstractContextManager[IO[bytes]]],
        owned: IO[bytes] | None = None,
    ) -> None:
        self.name = name
        self._opener = opener
        self._owned = owned  # a copy of a stream, closed by ``close``

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()

    @classmethod
    def of(cls, data: bytes | BinaryIO | Path, name: str | None = None) -> Source:
        """From a file's path, its bytes, or a binary stream (copied to a temporary
        file first, as it can be read only once)."""
        if isinstance(data, Path):
            return cls.from_path(data)
        if isinstance(data, bytes | bytearray):
            content = bytes(data)
            return cls(name or "registry", lambda: nullcontext(io.BytesIO(content)))
        copy = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by close()
        while chunk := data.read(1 << 20):
            copy.write(chunk)
        label = name or getattr(data, "name", None) or "registry"
        return cls(str(label), lambda: _rewound(copy), owned=copy)

    @classmethod
    def from_path(cls, path: Path) -> Source:
        """A file, read where it is; or a pipe (``reconcile <(unzip -p ...)``), which
        can be read only once, so copied first."""
        try:
            with path.open("rb") as stream:
                mode = os.fstat(stream.fileno()).st_mode
                if stat.S_ISFIFO(mode):
                    return cls.of(stream, str(path))
        except FileNotFoundError:
            raise BadArgumentError(f"{path}: no such file") from None
        except OSError as exc:
            raise BadArgumentError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(mode):  # a device would be read forever (/dev/zero)
            raise BadArgumentError(f"{path}: not a file or a pipe to read a registry from")
        return cls(str(path), lambda: path.open("rb"))

    def open(self) -> AbstractContextManager[IO[bytes]]:
        return self._opener()

    @property
    def file_day(self) -> date | None:
        """The day in QIWI's file name, ``QIWI_<service>_YYYYMMDDn.csv``."""
        match = _FILE_DAY.fullmatch(PurePath(self.name).name)
        if match is None:
            return None
        try:
            return datetime.strptime(match[1], "%Y%m%d").date()
        except ValueError:
            return None


@contextmanager
def _rewound(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    stream.seek(0)
    yield stream


@contextmanager
def _text(source: Source, encoding: str) -> Iterator[io.TextIOWrapper]:
    """The file as text; lines split at LF, CRLF and a bare CR, endings kept for csv."""
    with source.open() as binary:
        errors = "replace" if encoding == "cp1251" else "strict"
        wrapper = io.TextIOWrapper(binary, encoding=encoding, errors=errors, newline="")
        try:
            yield wrapper
        finally:
            wrapper.detach()  # the binary stream is its opener's to close


def _encoding(source: Source) -> str:
    """UTF-8 or UTF-16 by its byte-order mark, if every byte decodes so (else it is
    refused); else UTF-8 if every byte decodes as UTF-8, else Windows-1251. Checked a
    chunk at a time, so that reading the rows never meets a byte it cannot decode."""
    with source.open() as binary:
        head = binary.read(4)
        for bom, encoding, label in _MARKED:
            if head.startswith(bom):
                offset = _undecodable(binary, head, encoding)
                if offset is not None:
                    raise BadArgumentError(
                        f"{source.name}: the file starts with {label}'s byte-order mark but is"
                        f" not {label} from byte {offset} (counted from 0) on: cut short, or"
                        " a character broken"
                    )
                return encoding
        if b"\x00" in head:
            raise BadArgumentError(
                f"{source.name}: the file looks like UTF-16 without a byte-order mark;"
                " save it as UTF-8 or as UTF-16 with a BOM"
            )
        if _undecodable(binary, head, "utf-8") is not None:
            return "cp1251"
    return "utf-8"


_MARKED = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def _undecodable(binary: IO[bytes], head: bytes, encoding: str) -> int | None:
    """The offset of the first byte of the file (``head``, then the rest of
    ``binary``) that does not decode, or None when all of it does."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, chunk, final = 0, head, False
    while True:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            return offset - pending + exc.start
        if final:
            return None
        offset += len(chunk)
        chunk = binary.read(1 << 20)
        final = not chunk


# --- the layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    key: str
    title: str
    delimiter: str
    columns: dict[str, int]
    width: int
    header_line: int | None = None
    # QIWI's standard registry takes a decimal point by definition: the mark when the
    # file's own sums show none (a file written with commas shows them).
    decimal_mark: str | None = None

    @property
    def has_accounts(self) -> bool:
        return "account" in self.columns


def _normal(cell: str) -> str:
    text = cell.replace("\ufeff", "").strip().strip('"').strip().rstrip(":").lower()
    return " ".join(text.replace("\u0451", "\u0435").split())  # Счёт is often spelt Счет


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), [])


def _detect(name: str, lines: list[tuple[int, str]]) -> Layout:
    if not lines:
        raise BadArgumentError(f"{name}: the file is empty: no header, no payments, no Total line")
    for index, (number, line) in enumerate(lines):
        found = _header(name, number, line, titles=lines[:index])
        if found is not None:
            return found
    number, line = lines[0]
    fields = _standard_fields(line.split("\t"))
    if line.strip().lower().startswith("total") or (
        len(fields) == len(STANDARD_FIELDS)
        and fields[0].strip()
        and DayReader().day(fields[1]) is not None
    ):
        return Layout(
            key=QIWI_STANDARD,
            title="QIWI's standard registry (tab-separated, no header, Total line)",
            delimiter="\t",
            columns={column: index for index, column in enumerate(STANDARD_FIELDS)},
            width=len(STANDARD_FIELDS),
            decimal_mark=POINT,
        )
    raise BadArgumentError(
        f"{name}: line {number}: cannot tell the file's layout: no header row naming a"
        f" txn_id column in its first lines, and line {number} is not a line of QIWI's"
        " standard registry (txn_id, date, time, account, sum, separated by tabs)"
    )


def _header(name: str, number: int, line: str, titles: list[tuple[int, str]]) -> Layout | None:
    best: tuple[int, str, list[str]] | None = None
    for delimiter in DELIMITERS:
        names = [_normal(cell) for cell in _split(line, delimiter)]
        known = sum(1 for column in COLUMNS.values() if any(n in column for n in names))
        if any(n in COLUMNS["txn_id"] for n in names) and (best is None or known > best[0]):
            best = (known, delimiter, names)
    if best is None:
        return None
    _, delimiter, names = best
    columns: dict[str, int] = {}
    for column, accepted in COLUMNS.items():
        for accepted_name in accepted:
            if accepted_name in names:
                columns[column] = names.index(accepted_name)
                break
    missing = [column for column in REQUIRED if column not in columns]
    if missing:
        raise BadArgumentError(
            f"{name}: line {number}: the header has no {', '.join(missing)} column"
            f" (it has: {printable(', '.join(n for n in names if n)) or 'nothing'})"
        )
    _check_titles(name, number, delimiter, titles)
    notes = []
    if any(not names[index].isascii() for index in columns.values()):
        notes.append("Russian column names")
    if titles:
        plural = "s" if len(titles) > 1 else ""
        numbers = ", ".join(str(title) for title, _ in titles)
        notes.append(f"title line{plural} {numbers} skipped")
    if "transaction_id" in names and "trans_date" in names:
        key, title = QIWI_REPORT, "QIWI's payments daily report"
    elif tuple(names) == EXPORT_COLUMNS:
        key, title = OUR_EXPORT, "a qiwi-gw export"
    else:
        key, title = CSV_WITH_HEADER, "CSV with a header row"
    details = ", ".join(
        [*(["CSV"] if key == OUR_EXPORT else []), _DELIMITER_NAMES[delimiter], *notes]
    )
    return Layout(
        key=key,
        title=f"{title} ({details})",
        delimiter=delimiter,
        columns=columns,
        width=len(names),
        header_line=number,
    )


def _check_titles(name: str, header: int, delimiter: str, titles: list[tuple[int, str]]) -> None:
    """A title above the header is one cell of text; a line of several cells there
    is a row sorted above it (a spreadsheet's doing), which skipping would lose."""
    for number, line in titles:
        cells = sum(1 for cell in _split(line, delimiter) if cell.strip())
        if cells >= 2:
            raise BadArgumentError(
                f"{name}: line {number}: above the header (line {header}), yet {cells} fields"
                f" separated by {_DELIMITER_NAMES[delimiter]}, like a row: a title line holds"
                " one; put the header first"
            )


def _standard_fields(cells: list[str]) -> list[str]:
    """A standard line's fields; empty ones after the last (a trailing tab) dropped."""
    end = len(cells)
    while end > len(STANDARD_FIELDS) and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _capped(text: io.TextIOWrapper, name: str) -> Iterator[str]:
    """The file's lines, endings kept, each refused once past ``MAX_LINE``; up to a
    DOS end-of-file mark (^Z), after which nothing but blanks may come."""
    readline = text.readline
    number = 0
    while line := readline(MAX_LINE + 1):
        number += 1
        if len(line) > MAX_LINE:
            raise BadArgumentError(
                f"{name}: line {number}: longer than {MAX_LINE:,} characters, which no line"
                " of a registry is"
            )
        if _END in line:
            line, _, rest = line.partition(_END)
            while rest:
                if rest.strip():
                    raise BadArgumentError(
                        f"{name}: line {number}: text after the end-of-file mark (^Z)"
                    )
                rest = readline(MAX_LINE)
            if line:
                yield line
            return
        yield line


_END = "\x1a"  # DOS's end-of-file mark, which its tools write after the last line


def _first_lines(name: str, text: io.TextIOWrapper) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in enumerate(_capped(text, name), start=1):
        if line.strip():
            found.append((number, line.rstrip("\r\n")))
            if len(found) == _HEADER_SEARCH_LINES:
                break
    return found


# --- the rows --------------------------------------------------------------------


class RegistryRow(NamedTuple):
    """One payment as the file lists it (a tuple: a million are made per pass)."""

    line: int
    txn_id: str
    account: str | None  # None: the layout has no account column
    sum: Decimal
    sum_text: str  # as written
    day: date  # QIWI's (Moscow) day
    when: str  # the date (and time) as written


@dataclass(frozen=True)
class TotalCheck:
    """A total line (``Total: 3 2010.45``, ``Итого``) against the rows above it."""

    line: int | None  # None: QIWI's standard registry without its closing Total line
    text: str
    count: int | None  # as declared; None when the line does not give one
    amount: Decimal | None
    amount_text: str | None
    counted: int  # the rows since the previous total line
    summed: Decimal

    @property
    def agrees(self) -> bool:
        return (
            self.line is not None
            and (self.count is None or self.count == self.counted)
            and (self.amount is None or self.amount == self.summed)
        )


@dataclass
class _Tally:
    """What one reading of the file found besides its rows."""

    totals: list[TotalCheck] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    marks: set[str] = field(default_factory=set)
    # Lines whose sum only the file's decimal mark can settle, left for a second reading.
    deferred: array[int] = field(default_factory=lambda: array("q"))
    ambiguous: tuple[int, str] | None = None  # the first such sum, for the message
    rows: int = 0
    first_day: date | None = None
    last_day: date | None = None
    ends_with_total: bool = False


class _Reader:
    """One reading of the file. With no ``decimal_mark``, a row whose sum only the
    file's convention can settle (``1,500``) is not given: its line is noted."""

    def __init__(self, name: str, layout: Layout, decimal_mark: str | None) -> None:
        self.name = name
        self.layout = layout
        self.decimal_mark = decimal_mark
        self.tally = _Tally()
        self._days = DayReader()
        # Only QIWI's report has payment types; elsewhere a purpose is free text.
        self._purpose = layout.columns.get("purpose") if layout.key == QIWI_REPORT else None
        self._segment_count = 0
        self._segment_sum = Decimal("0.00")

    def rows(self, text: io.TextIOWrapper) -> Iterator[RegistryRow]:
        layout = self.layout
        standard = layout.key == QIWI_STANDARD
        reader = csv.reader(
            _capped(text, self.name),
            delimiter=layout.delimiter,
            quoting=csv.QUOTE_NONE if standard else csv.QUOTE_MINIMAL,
        )
        tally = self.tally
        skip_to = layout.header_line or 0
        number = 1
        try:
            for cells in reader:
                line, number = number, reader.line_num + 1
                if line <= skip_to:
                    continue
                # Most lines start with a digit: neither blank nor a total line.
                if not (cells and cells[0][:1].isdigit()):
                    if not any(cell.strip() for cell in cells):
                        continue
                    if _is_total(cells):
                        self._total(cells, line)
                        tally.ends_with_total = True
                        continue
                tally.ends_with_total = False
                row = self._standard(cells, line) if standard else self._row(cells, line)
                if row is not None:
                    tally.rows += 1
                    self._segment_count += 1
                    self._segment_sum = SUMS.add(self._segment_sum, row.sum)
                    yield row
        except csv.Error as exc:  # a quoted field longer than the csv module takes
            raise self._fail(number, f"cannot read it: {exc}") from None
        if standard and not tally.ends_with_total:
            tally.totals.append(
                TotalCheck(None, "", None, None, None, self._segment_count, self._segment_sum)
            )

    def _fail(self, line: int, problem: str) -> BadArgumentError:
        return BadArgumentError(f"{self.name}: line {line}: {problem}")

    def _standard(self, cells: list[str], line: int) -> RegistryRow | None:
        fields = cells if len(cells) == len(STANDARD_FIELDS) else _standard_fields(cells)
        if len(fields) != len(STANDARD_FIELDS):
            raise self._fail(
                line,
                f"{len(fields)} field(s); a line of QIWI's standard registry has 5"
                " (txn_id, date, time, account, sum), separated by tabs",
            )
        txn_id, day_text, time_text, account, sum_text = fields
        txn_id, day_text, time_text = txn_id.strip(), day_text.strip(), time_text.strip()
        account, sum_text = account.strip(), sum_text.strip()
        if _PLAIN_TIME.fullmatch(time_text):
            day = self._days.day(day_text)  # Moscow time: the date alone gives the day
        else:
            day = self._days.day(f"{day_text} {time_text}")
        return self._make(line, txn_id, account, sum_text, day, f"{day_text} {time_text}")

    def _row(self, cells: list[str], line: int) -> RegistryRow | None:
        layout = self.layout
        columns = layout.columns
        if len(cells) < layout.width or any(cell.strip() for cell in cells[layout.width :]):
            raise self._fail(line, f"{len(cells)} fields, the header has {layout.width}")
        if self._purpose is not None:
            purpose = cells[self._purpose].strip()
            if purpose.lower() in NOT_PAYMENTS:
                self.tally.skipped[purpose] += 1
                return None
        when = cells[columns["date"]].strip()
        if "time" in columns:
            when = f"{when} {cells[columns['time']].strip()}".strip()
        txn_id = cells[columns["txn_id"]].strip()
        account = cells[columns["account"]].strip() if "account" in columns else None
        if layout.key == OUR_EXPORT:  # its cells that looked like formulas were quoted
            txn_id = unquote(txn_id)
            account = None if account is None else unquote(account).strip()
        return self._make(
            line,
            txn_id,
            account,
            cells[columns["sum"]].strip(),
            self._days.day(when),
            when,
        )

    def _make(
        self,
        line: int,
        txn_id: str,
        account: str | None,
        sum_text: str,
        day: date | None,
        when: str,
    ) -> RegistryRow | None:
        if not txn_id:
            raise self._fail(line, "txn_id is empty")
        if "\x00" in txn_id:  # PostgreSQL's text cannot hold one to look it up
            raise self._fail(line, f"txn_id {txn_id!r} holds a NUL character")
        amount: Decimal | None
        if _PLAIN_SUM.fullmatch(sum_text):
            amount = Decimal(sum_text)
            if "." in sum_text:
                self.tally.marks.add(POINT)
        else:
            amount = self._sum(sum_text, line, "sum")
        if day is None:
            raise self._fail(line, f"date {when!r} is not a date ({_DATE_FORMS})")
        tally = self.tally
        if tally.first_day is None or day < tally.first_day:
            tally.first_day = day
        if tally.last_day is None or day > tally.last_day:
            tally.last_day = day
        if amount is None:
            tally.deferred.append(line)
            return None
        return RegistryRow(line, txn_id, account, amount, sum_text, day, when)

    def _sum(
        self, text: str, line: int, what: str, whole_digits: int = MAX_WHOLE_DIGITS
    ) -> Decimal | None:
        """The sum; None when only the file's decimal mark can settle it (noted)."""
        reading = read_sum(text, self.decimal_mark)
        if reading is None:
            raise self._fail(line, f"{what} {text!r} is not an amount like 10.45")
        if reading.value is not None and (problem := out_of_range(reading.value, whole_digits)):
            raise self._fail(line, f"{what} {text!r} {problem}")
        if reading.shows is not None:
            self.tally.marks.add(reading.shows)
        if reading.value is None and self.tally.ambiguous is None:
            self.tally.ambiguous = (line, text)
        return reading.value

    def _total(self, cells: list[str], line: int) -> None:
        text = " ".join(cell.strip() for cell in cells if cell.strip())
        count_text, amount_text = self._declared(cells, text, line)
        count = None
        if count_text is not None:
            if not count_text.isdecimal():
                raise self._fail(line, f"the total line's count {count_text!r} is not a number")
            count = int(count_text)
        amount = (
            None
            if amount_text is None
            else self._sum(amount_text, line, "the total", MAX_TOTAL_WHOLE_DIGITS)
        )
        self.tally.totals.append(
            TotalCheck(
                line, text, count, amount, amount_text, self._segment_count, self._segment_sum
            )
        )
        self._segment_count, self._segment_sum = 0, Decimal("0.00")

    def _declared(self, cells: list[str], text: str, line: int) -> tuple[str | None, str | None]:
        """The count and the amount a total line declares, as written."""
        if self.layout.key == QIWI_STANDARD:
            match = _STANDARD_TOTAL.fullmatch(text)
            if match is None:
                raise self._fail(
                    line, f"the Total line reads {text!r}, not 'Total: <count> <amount>'"
                )
            return match[1], match[2]
        label = next(index for index, cell in enumerate(cells) if cell.strip())
        words = cells[label].strip()
        words = words[len(next(w for w in _TOTAL_LABELS if words.lower().startswith(w))) :]
        # After the label, words ("за день") say nothing; numbers are the count, then
        # the amount when no sum column holds it.
        numbers = [word for word in words.replace(":", " ").split() if _has_digit(word)]
        layout = self.layout
        sum_at = layout.columns["sum"]
        read = {index for column, index in layout.columns.items() if column != "sum"}
        amount_text: str | None = None
        for index, cell in enumerate(cells):
            value = cell.strip()
            if index == label or not value:
                continue
            if index == sum_at:
                amount_text = value
            elif index in read or index >= layout.width:
                # The only number a total line can hold here is the count; anything
                # else is refused below rather than left unchecked.
                numbers.append(value)
            # A column not read (a commission) holds its own total: not ours to check.
        if amount_text is None and len(numbers) == 2:
            return numbers[0], numbers[1]
        if len(numbers) > 1:
            raise self._fail(
                line,
                f"the total line {text!r} holds more numbers than a count and a sum:"
                " cannot tell which is which",
            )
        return (numbers[0] if numbers else None), amount_text


def _has_digit(text: str) -> bool:
    return any(character.isdigit() for character in text)


def _is_total(cells: list[str]) -> bool:
    first = next((cell.strip().lower() for cell in cells if cell.strip()), "")
    return first.startswith(_TOTAL_LABELS)


# --- reading -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    """A registry file whose encoding and layout are known: every byte decodes, its
    first lines name the layout. Its rows are read by ``read``."""

    source: Source
    layout: Layout
    encoding: str
    decimal_mark: str | None  # the operator's; else the file's sums, else the layout's
    decimal_from: str = ""

    @property
    def name(self) -> str:
        return self.source.name

    def read(self, decimal_mark: str | None = None) -> RowStream:
        """The rows, with the file's decimal mark when it is known (``settle``)."""
        return RowStream(self, decimal_mark or self.decimal_mark)


class RowStream:
    """One reading of the file's payments, from its start. Without a decimal mark, rows
    whose sum needs one are left out and their lines noted (``deferred``): ``settle``
    then gives the mark the file's sums show, to read them with.

    Once read to the end: ``totals`` holds its total lines checked against the rows,
    and the counts and days found are kept."""

    def __init__(self, scan: Scan, decimal_mark: str | None) -> None:
        self._scan = scan
        self.decimal_mark = decimal_mark
        self._reader = _Reader(scan.name, scan.layout, decimal_mark)

    def __iter__(self) -> Iterator[RegistryRow]:
        try:
            with _text(self._scan.source, self._scan.encoding) as text:
                yield from self._reader.rows(text)
        except OSError as exc:
            raise BadArgumentError(
                f"{self._scan.name}: cannot read: {exc.strerror or exc}"
            ) from None
        except UnicodeDecodeError:
            # Every byte decoded when scanned: the file changed since.
            raise BadArgumentError(
                f"{self._scan.name}: no longer decodes as {self._scan.encoding}: changed while"
                " being read?"
            ) from None

    @property
    def totals(self) -> list[TotalCheck]:
        return self._reader.tally.totals

    @property
    def deferred(self) -> array[int]:
        return self._reader.tally.deferred

    @property
    def reread(self) -> bool:
        """Whether some sum (a row's or a total's) waits for the file's decimal mark."""
        return self._reader.tally.ambiguous is not None

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self._reader.tally.skipped)

    @property
    def days(self) -> tuple[date, date] | None:
        """The first and the last day of the rows (those left out included)."""
        tally = self._reader.tally
        if tally.first_day is None or tally.last_day is None:
            return None
        return tally.first_day, tally.last_day

    def settle(self) -> tuple[str | None, str]:
        """The decimal mark and what decided it, once read to the end; raise
        ``BadArgumentError`` at the first sum it leaves ambiguous."""
        tally = self._reader.tally
        if self.decimal_mark is not None:
            return self.decimal_mark, self._scan.decimal_from
        if len(tally.marks) == 1:
            return next(iter(tally.marks)), "the file's sums"
        default = self._scan.layout.decimal_mark
        if not tally.marks and default is not None:
            return default, "QIWI's standard layout"
        if tally.ambiguous is not None:
            line, text = tally.ambiguous
            whole, fraction = re.split(r"[.,]", text.translate(_SPACES), maxsplit=1)
            mixed = " (they use both)" if tally.marks else ""
            raise BadArgumentError(
                f"{self._scan.name}: line {line}: sum {text!r} could be {whole}.{fraction} or"
                f" {whole}{fraction}, and the file's other sums do not show whether its decimal"
                f" mark is a point or a comma{mixed}; declare it (--decimal point|comma)"
            )
        return None, "the file's sums use both" if tally.marks else "no sum shows one"


def scan(source: Source, decimal_mark: str | None = None) -> Scan:
    """Check the file's encoding and tell its layout; ``BadArgumentError`` if it cannot.

    ``decimal_mark`` (``"."`` or ``","``) is the operator's word for sums such as
    ``1,500``; without it the file's other sums decide, else the layout (QIWI's
    standard one takes a point), or such a sum is refused when the rows are read.
    """
    try:
        encoding = _encoding(source)
        with _text(source, encoding) as text:
            layout = _detect(source.name, _first_lines(source.name, text))
    except OSError as exc:
        raise BadArgumentError(f"{source.name}: cannot read: {exc.strerror or exc}") from None
    except csv.Error as exc:
        raise BadArgumentError(f"{source.name}: cannot read its first lines: {exc}") from None
    return Scan(
        source=source,
        layout=layout,
        encoding=encoding,
        decimal_mark=decimal_mark,
        decimal_from="" if decimal_mark is None else "declared",
    )


def describe_mark(mark: str | None) -> str:
    return MARK_NAMES.get(mark or "", "unknown")


# --- writing QIWI's standard layout ----------------------------------------------------

_FIELD_BREAKS = str.maketrans("\t\r\n", "   ")


def standard_line(txn_id: str, moment: datetime, account: str, amount: str) -> str:
    """One payment as a line of QIWI's standard registry (Moscow time, CRLF).

    A tab or a line break inside the account (only rows of the original image can
    hold one) would break the layout: it is written as a space."""
    return (
        f"{txn_id}\t{moment.day:02d}.{moment.month:02d}.{moment.year:04d}"
        f"\t{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        f"\t{account.translate(_FIELD_BREAKS)}\t{amount}\r\n"
    )


def standard_total(count: int, amount: str) -> str:
    return f"Total: {count} {amount}\r\n"


# --- writing our CSV export ------------------------------------------------------------

# What a spreadsheet takes for the start of a formula, and the quote that marks text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def quoted(cell: str) -> str:
    """A cell of our CSV export that a spreadsheet would run as a formula, after a
    single quote (which it shows as text); ``unquote`` reverses it exactly."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def unquote(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS) else cell
