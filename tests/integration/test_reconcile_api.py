"""``reconciliation.reconcile``: what the operator console calls with an uploaded file,
and ``reconcile.render`` / ``as_json_object``, which print its result the CLI's way."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import asyncpg
import pytest

from qiwi_gw.ops import reconcile as cli
from qiwi_gw.ops.common import BadArgumentError
from qiwi_gw.ops.reconciliation import FILE_NAME, Period, Reconciliation, reconcile
from tests.support.rows import add_payment

REGISTRY = (
    b"1\t28.11.2026\t10:00:00\t42\t10.00\r\n"
    b"2\t28.11.2026\t11:00:00\t42\t20.50\r\n"
    b"3\t28.11.2026\t12:00:00\t42\t7.00\r\n"
    b"Total: 3 37.50\r\n"
)


class OneWay(io.RawIOBase):
    """An upload's body: read once, front to back, no seeking."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 7))
        buffer[: len(chunk)] = chunk
        return len(chunk)


async def run(dsn: str, data: object, period: Period | None, name: str) -> Reconciliation:
    connection = await asyncpg.connect(dsn)
    try:
        return await reconcile(data, period, connection, name=name)  # type: ignore[arg-type]
    finally:
        await connection.close()


@pytest.mark.parametrize("kind", ["bytes", "stream", "one-way stream"])
async def test_the_console_gets_a_typed_result(database_dsn: str, kind: str) -> None:
    add_payment(database_dsn, "1", amount="10.00", txn_date="2026-11-28 10:00:00")
    add_payment(database_dsn, "2", amount="20.05", txn_date="2026-11-28 11:00:00")
    add_payment(database_dsn, "4", amount="1.00", txn_date="2026-11-28 13:00:00")
    data: object = {
        "bytes": REGISTRY,
        "stream": io.BytesIO(REGISTRY),
        "one-way stream": io.BufferedReader(OneWay(REGISTRY)),
    }[kind]
    result = await run(database_dsn, data, None, "QIWI_9_202611281.csv")
    assert result.period == Period(date(2026, 11, 28), date(2026, 11, 28), FILE_NAME)
    assert (result.rows, result.amount, result.ours, result.our_amount) == (
        3,
        Decimal("37.50"),
        3,
        Decimal("31.05"),
    )
    assert [row.txn_id for row in result.missing_ours.items] == ["3"]
    assert [ours.txn_id for ours in result.missing_theirs.items] == ["4"]
    assert [(pair.ours.sum_text, pair.theirs.sum_text) for pair in result.different_sums.items] == [
        ("20.05", "20.50")
    ]
    assert (result.differences, result.agree) == (3, False)
    # The CLI's two renderings of the same object.
    assert cli.render(result).endswith("result: 3 difference(s) over 2026-11-28")
    assert cli.as_json_object(result)["differences"] == 3


async def test_a_declared_period_and_an_unreadable_file(database_dsn: str) -> None:
    result = await run(
        database_dsn,
        REGISTRY,
        Period(date(2026, 11, 29), date(2026, 11, 29)),
        "QIWI_9_202611281.csv",
    )
    # Its rows are of the 28th, hours before the declared day: differences.
    assert (result.period.first, result.outside_period.count, result.ours) == (
        date(2026, 11, 29),
        3,
        0,
    )
    assert (result.near_edge.count, result.differences) == (0, 3 + 3)
    assert cli.describe_period(result.period, result.name_day) == (
        "2026-11-29 (declared; the file's name says 2026-11-28)"
    )
    with pytest.raises(BadArgumentError, match=r"^upload\.csv: line 2: sum 'x' is not an amount"):
        await run(database_dsn, b"txn_id;sum;date\n1;x;2026-11-28\n", None, "upload.csv")
