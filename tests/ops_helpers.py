"""Moved to tests.support.cli and tests.support.rows; this name lasts until the operator
commands' tests import from there."""

from tests.support.cli import Result, run_cli, run_process
from tests.support.rows import add_attempt, add_payment, execute, row, utc_now

__all__ = [
    "Result",
    "add_attempt",
    "add_payment",
    "execute",
    "row",
    "run_cli",
    "run_process",
    "utc_now",
]
