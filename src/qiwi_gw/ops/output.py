"""How the commands print: aligned tables for people, JSON for programs.

Times print in UTC (``created_at`` is stored in UTC), except ``txn_date``, which is
QIWI's own clock as QIWI sent it. Sums print with two decimals; in JSON they are
strings, so no float ever rounds them.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal

NONE = "-"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()
) -> str:
    """Columns padded to their widest cell; ``right`` holds the numeric columns' indexes."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """``name  value`` lines, the values aligned."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in pairs)


def to_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def money(value: Decimal) -> str:
    return f"{value:.2f}"


def count(value: int, *, estimate: bool = False) -> str:
    return f"~{value:,}" if estimate else f"{value:,}"


def utc(value: datetime) -> datetime:
    """An instant in UTC; the tables' naive timestamps are UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def when(value: datetime | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, for tables and CSV."""
    if value is None:
        return NONE
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return local(value)


def local(value: datetime) -> str:
    """A timestamp without a zone (QIWI's ``txn_date``) as written."""
    # isoformat, not strftime: several times faster, which an export of millions feels.
    return value.isoformat(sep=" ", timespec="seconds")


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with ``Z``, for JSON."""
    if value is None:
        return None
    return utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_local(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def seconds_between(earlier: datetime, later: datetime) -> int:
    return int((utc(later) - utc(earlier)).total_seconds())


def duration(seconds: float) -> str:
    """``45s``, ``4m 05s``, ``3h 12m``, ``2d 05h``: two units at most."""
    total = int(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def ago(earlier: datetime, now: datetime) -> str:
    return f"{duration(seconds_between(earlier, now))} ago"


def one_line(text: str | None, width: int) -> str:
    """Whitespace collapsed, cut to ``width`` characters with an ellipsis."""
    if not text:
        return NONE
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
