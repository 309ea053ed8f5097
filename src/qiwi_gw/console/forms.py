"""Reading what an operator typed: each bad value is one line naming the field."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from qiwi_gw.ops.arguments import day_range, iso_date
from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED
from qiwi_gw.store.reports import Search

MAX_TEXT = 256
MAX_ID = 2**63 - 1
# Echoed back on a page (a txn_id nobody has): enough to recognise it.
MAX_ECHO = 100
# C0 and C1 control characters and DEL (PostgreSQL refuses NUL in text; the others
# only hide what a value is), and halves of surrogate pairs, which are no text at all
# (UTF-8 cannot carry them).
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
SEARCH_FIELDS = ("txn_id", "prv_txn", "account", "from", "to", "status")


@dataclass
class SearchForm:
    """The search as typed (to fill the form in again) and as understood."""

    values: dict[str, str]
    criteria: Search = field(default_factory=Search)
    older_than: int | None = None
    newer_than: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(self.values.get(name) for name in SEARCH_FIELDS)


def positive_id(raw: str, name: str, errors: list[str]) -> int | None:
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    errors.append(f"{name}: {raw[:40]!r} is not a positive whole number")
    return None


def a_date(raw: str, name: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    if len(raw) > len("YYYY-MM-DD"):
        errors.append(f"{name}: {echo(raw)!r} is not a date written YYYY-MM-DD")
        return None
    try:
        return iso_date(raw)
    except argparse.ArgumentTypeError as exc:
        errors.append(f"{name}: {exc}")
        return None


def not_text(raw: str, name: str) -> str | None:
    """What is wrong with ``raw`` as a text, in one line naming the field; None: nothing."""
    found = _NOT_TEXT.search(raw)
    if found is None:
        return None
    return f"{name}: contains the control character U+{ord(found[0]):04X}"


def echo(raw: str) -> str:
    """``raw`` as a page repeats it: cut to ``MAX_ECHO`` characters."""
    return raw if len(raw) <= MAX_ECHO else raw[:MAX_ECHO] + "…"


def text(raw: str, name: str, errors: list[str]) -> str | None:
    if not raw:
        return None
    if len(raw) > MAX_TEXT:
        errors.append(f"{name}: longer than {MAX_TEXT} characters")
        return None
    problem = not_text(raw, name)
    if problem is not None:
        errors.append(problem)
        return None
    return raw


def parse_search(query: Mapping[str, str]) -> SearchForm:
    values = {name: query.get(name, "").strip() for name in SEARCH_FIELDS}
    errors: list[str] = []
    first = a_date(values["from"], "from", errors)
    last = a_date(values["to"], "to", errors)
    if first is not None and last is not None and first > last:
        errors.append(f"from: {first} is after to {last}")
    start = end = None
    if first is not None or last is not None:
        start, end = day_range(first or date.min, last or date.max)
    status = {"": None, "0": STATUS_RECEIVED, "1": STATUS_COMPLETED}.get(values["status"], -1)
    if status == -1:
        errors.append(f"status: {values['status'][:10]!r} is neither 0 nor 1")
        status = None
    criteria = Search(
        code=text(values["txn_id"], "txn_id", errors),
        id=positive_id(values["prv_txn"], "prv_txn", errors),
        account=text(values["account"], "account", errors),
        txn_from=start if first is not None else None,
        txn_to=end if last is not None else None,
        status=status,
    )
    older_than = positive_id(query.get("before", "").strip(), "before", errors)
    newer_than = positive_id(query.get("after", "").strip(), "after", errors)
    if older_than is not None and newer_than is not None:
        errors.append("before and after: give one of them, not both")
    return SearchForm(values, criteria, older_than, newer_than, errors)
