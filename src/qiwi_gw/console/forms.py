"""Reading what an operator typed: each bad value is one line naming the field."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from qiwi_gw.ops.arguments import day_range, iso_date
from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED
from qiwi_gw.store.reports import Search

MAX_TEXT = 256
MAX_ID = 2**63 - 1
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
    try:
        return iso_date(raw)
    except argparse.ArgumentTypeError as exc:
        errors.append(f"{name}: {exc}")
        return None


def text(raw: str, name: str, errors: list[str]) -> str | None:
    if not raw:
        return None
    if len(raw) > MAX_TEXT:
        errors.append(f"{name}: longer than {MAX_TEXT} characters")
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
