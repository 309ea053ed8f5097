"""One cell of QIWI's registry: a sum, or a date and time read as QIWI's (Moscow) day.

Sums: spaces between thousands are dropped; a dot or a comma may be the decimal
mark. Most spellings say which mark is the decimal one (``10,45``, ``1,234.56``,
``1.234.567``); ``1,500`` and ``1.500`` do not (one and a half, or fifteen
hundred), so ``read_sum`` leaves those to the file's convention. A sum has at most
``MAX_WHOLE_DIGITS`` digits before its mark and ``MAX_DECIMALS`` after it
(``out_of_range``), so that adding a file's sums in ``SUMS`` is exact.

Dates: ``YYYY-MM-DD``, ``DD.MM.YYYY``, ``YYYYMMDD`` (or ``YYYYMMDDHHMMSS``), each
with or without a time (``9:59``, ``09:59:00``), with or without a zone (``Z``,
``UTC``, ``+03:00``, ``-0500``, ``MSK``). Without one the time is Moscow time, as
QIWI writes it; with one it is converted to Moscow time before its day is taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import TypeVar

from qiwi_gw.store.registry import QIWI_ZONE

T = TypeVar("T")

POINT = "."
COMMA = ","
MARK_NAMES = {POINT: "point", COMMA: "comma"}

_DROPPED = str.maketrans("", "", " \u00a0\u202f\u2009'")
_PLAIN = re.compile(r"[+-]?\d+(?:\.\d{1,2})?")
_ONE_MARK = re.compile(r"([+-]?)(\d+)([.,])(\d+)")
_GROUPED = re.compile(r"([+-]?)(\d{1,3})([.,])(\d{3}(?:\3\d{3})*)(?:([.,])(\d+))?")
_CENT = Decimal("0.01")

# Far above any payment (numeric(17,2) holds 15 digits before the point), and small
# enough that ``SUMS`` adds a billion of them without rounding. A total line's amount
# may have the digits of a billion such sums.
MAX_WHOLE_DIGITS = 15
MAX_TOTAL_WHOLE_DIGITS = MAX_WHOLE_DIGITS + 9
MAX_DECIMALS = 10
SUMS = Context(prec=MAX_TOTAL_WHOLE_DIGITS + MAX_DECIMALS + 10)


@dataclass(frozen=True, slots=True)
class SumReading:
    """A sum as read: ``value`` is None when only the file's decimal mark can say."""

    value: Decimal | None
    # The decimal mark this spelling shows (``10,45`` shows a comma), if it shows one.
    shows: str | None = None


def read_sum(raw: str, decimal_mark: str | None) -> SumReading | None:
    """The amount ``raw`` spells, or None when it is not an amount.

    ``decimal_mark`` (``POINT``, ``COMMA`` or None) settles ``1,500`` / ``1.500``.
    """
    text = raw.translate(_DROPPED)
    if _PLAIN.fullmatch(text):
        return SumReading(Decimal(text), POINT if POINT in text else None)
    match = _ONE_MARK.fullmatch(text)
    if match:
        sign, whole, mark, fraction = match.groups()
        if len(fraction) != 3 or len(whole) > 3 or whole.startswith("0"):
            # Thousands come in groups of three after one to three leading digits.
            return SumReading(Decimal(f"{sign}{whole}.{fraction}"), mark)
        if decimal_mark is None:
            return SumReading(None)
        if mark == decimal_mark:
            return SumReading(Decimal(f"{sign}{whole}.{fraction}"))
        return SumReading(Decimal(f"{sign}{whole}{fraction}"))
    match = _GROUPED.fullmatch(text)
    if match:
        sign, lead, group_mark, groups, mark, fraction = match.groups()
        digits = sign + lead + groups.replace(group_mark, "")
        if mark is None:
            return SumReading(Decimal(digits), COMMA if group_mark == POINT else POINT)
        if mark != group_mark:
            return SumReading(Decimal(f"{digits}.{fraction}"), mark)
    return None


def printable(text: str) -> str:
    """``text`` with what a terminal would act on (escape sequences, control and format
    characters, line breaks) written as Python escapes (``\\x1b``): a cell is data,
    and one could otherwise rewrite the operator's screen."""
    if text.isprintable():
        return text
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode()
        for character in text
    )


def out_of_range(value: Decimal, whole_digits: int = MAX_WHOLE_DIGITS) -> str | None:
    """What makes a sum too long to be one (``has more than 10 decimals``), or None."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a sum read is finite
    if len(digits) + exponent > whole_digits:
        return f"has more than {whole_digits} digits before the decimal mark"
    if -exponent > MAX_DECIMALS:
        return f"has more than {MAX_DECIMALS} decimals"
    return None


def whole_kopecks(value: Decimal) -> bool:
    """False for a sum with a non-zero third decimal or beyond (``500.004``)."""
    return value == value.quantize(_CENT)


_WHEN = re.compile(
    r"(?:(\d{4})-(\d{1,2})-(\d{1,2})|(\d{1,2})\.(\d{1,2})\.(\d{4})|(\d{4})(\d{2})(\d{2}))"
    r"(?:[ T]*(\d{1,2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?"
    r"\s*(Z|UTC|GMT|MSK|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


class DayReader:
    """Dates as QIWI's days (and times); the same text is parsed once (a registry
    repeats its days)."""

    def __init__(self) -> None:
        self._days: dict[str, date | None] = {}
        self._times: dict[str, datetime | None] = {}

    def day(self, text: str) -> date | None:
        """QIWI's (Moscow) day of ``text``, or None when it is not a date."""
        if text in self._days:
            return self._days[text]
        found = _read(text.strip())
        day = None if found is None else found[0]
        _keep(self._days, text, day)
        return day

    def moscow_time(self, text: str) -> datetime | None:
        """QIWI's (Moscow) time of ``text``, naive; None when it gives no time of day
        or is not a date."""
        if text in self._times:
            return self._times[text]
        found = _read(text.strip())
        moment = None if found is None else found[1]
        _keep(self._times, text, moment)
        return moment


def _keep(known: dict[str, T], text: str, value: T) -> None:
    # Bounded: a hostile file's dates could be a thousand spaces long each.
    if len(known) < 100_000 and len(text) <= 64:
        known[text] = value


def _read(text: str) -> tuple[date, datetime | None] | None:
    """The Moscow day of ``text``, and its Moscow time when it gives one."""
    match = _WHEN.fullmatch(text)
    if match is None:
        return None
    (y1, m1, d1, d2, m2, y2, y3, m3, d3, hours, minutes, seconds, zone) = match.groups()
    try:
        if y1 is not None:
            day = date(int(y1), int(m1), int(d1))
        elif y2 is not None:
            day = date(int(y2), int(m2), int(d2))
        else:
            day = date(int(y3), int(m3), int(d3))
    except ValueError:
        return None
    if hours is not None and (int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59):
        return None
    moment = datetime(
        day.year, day.month, day.day, int(hours or 0), int(minutes or 0), int(seconds or 0)
    )
    if zone is not None and zone.upper() != "MSK":
        try:
            moment = moment.replace(tzinfo=_zone(zone)).astimezone(QIWI_ZONE)
        except (OverflowError, ValueError):
            return None  # a zone of a day or more, or beyond the calendar's ends
        moment = moment.replace(tzinfo=None)
    return moment.date(), (None if hours is None else moment)


def _zone(text: str) -> timezone:
    if text.upper() in ("Z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    return timezone(sign * offset)
