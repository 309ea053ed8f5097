"""Argument types for the operator commands; argparse turns their errors into one line."""

from __future__ import annotations

import argparse
import re
from datetime import date, datetime, time, timedelta
from typing import NoReturn, TypeAlias

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """A usage error is one line (and exit code 2), like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


# What each command module adds its sub-command to.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"

_AGE = re.compile(r"(\d{1,9})([dhm])")
_AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def iso_date(raw: str) -> date:
    """``YYYY-MM-DD``, a real date."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a real date") from None


def positive_int(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) <= 0:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive whole number")
    return int(raw)


def age(raw: str) -> timedelta:
    """``90d``, ``12h`` or ``30m``: a positive age in days, hours or minutes."""
    match = _AGE.fullmatch(raw.strip().lower())
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not an age like 90d, 12h or 30m (days, hours, minutes)"
        )
    try:
        return timedelta(**{_AGE_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{raw!r} is too long an age") from None


def format_age(value: timedelta) -> str:
    """The age as ``age`` reads it: ``90d``, ``12h`` or ``30m``."""
    minutes = int(value.total_seconds()) // 60
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """Whole days ``first`` to ``last`` (inclusive) as a half-open range of timestamps."""
    end = datetime.max if last == date.max else datetime.combine(last + timedelta(days=1), time())
    return datetime.combine(first, time()), end
