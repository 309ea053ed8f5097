"""One cell of a registry: sums (which mark is the decimal one) and QIWI's day of a date."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from qiwi_gw.ops.registry import Source
from qiwi_gw.ops.registry_fields import (
    COMMA,
    POINT,
    DayReader,
    out_of_range,
    read_sum,
    whole_kopecks,
)


@pytest.mark.parametrize(
    ("text", "value", "shows"),
    [
        ("10.45", "10.45", POINT),
        ("10,45", "10.45", COMMA),
        ("1500", "1500", None),
        ("1 500,00", "1500.00", COMMA),
        ("1\u00a0500.00", "1500.00", POINT),
        ("1,234.56", "1234.56", POINT),
        ("1.234,56", "1234.56", COMMA),
        ("1,234,567", "1234567", POINT),  # repeated commas group thousands
        ("1.234.567", "1234567", COMMA),
        ("1234567.885", "1234567.885", POINT),  # seven digits cannot be a thousands group
        ("0,500", "0.500", COMMA),  # nor can a leading zero
        ("-25676786,28", "-25676786.28", COMMA),
    ],
)
def test_a_sum_that_shows_its_decimal_mark(text: str, value: str, shows: str | None) -> None:
    reading = read_sum(text, None)
    assert reading is not None
    assert (reading.value, reading.shows) == (Decimal(value), shows)


@pytest.mark.parametrize("text", ["1,500", "1.500", "500.004", "-12,345"])
def test_one_group_of_three_digits_is_settled_by_the_files_mark(text: str) -> None:
    reading = read_sum(text, None)
    assert reading is not None
    assert reading.value is None
    whole, fraction = text.replace(",", ".").split(".")
    assert read_sum(text, text[-4]).value == Decimal(f"{whole}.{fraction}")  # type: ignore[union-attr]
    other = COMMA if text[-4] == POINT else POINT
    assert read_sum(text, other).value == Decimal(whole + fraction)  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["ten", "", "1,2,3", "12,34,56", "1.234,567.8", "1e3", "NaN"])
def test_not_a_sum(text: str) -> None:
    assert read_sum(text, POINT) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("999999999999999.9999999999", None),
        ("1000000000000000", "has more than 15 digits before the decimal mark"),
        ("0.00000000001", "has more than 10 decimals"),
    ],
)
def test_a_sum_too_long_to_be_one(text: str, problem: str | None) -> None:
    assert out_of_range(Decimal(text)) == problem


def test_whole_kopecks() -> None:
    assert whole_kopecks(Decimal("1500.000"))
    assert not whole_kopecks(Decimal("500.004"))


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-11-28", date(2026, 11, 28)),
        ("28.11.2026", date(2026, 11, 28)),
        ("28.11.2026 9:59", date(2026, 11, 28)),
        ("20261128235959", date(2026, 11, 28)),
        ("2026-11-28T23:59:59", date(2026, 11, 28)),
        ("2026-11-28 23:59:59 MSK", date(2026, 11, 28)),
        ("2026-11-28T23:59:59+03:00", date(2026, 11, 28)),
        # Explicit offsets are converted to Moscow's day.
        ("2026-11-27T21:00:00Z", date(2026, 11, 28)),
        ("2026-11-28T20:59:59Z", date(2026, 11, 28)),
        ("2026-11-28T21:00:00Z", date(2026, 11, 29)),
        ("2026-11-28 16:00:00 -0500", date(2026, 11, 29)),
        ("28.11.2026 21:00 UTC", date(2026, 11, 29)),
    ],
)
def test_qiwis_day(text: str, day: date) -> None:
    assert DayReader().day(text) == day


@pytest.mark.parametrize(
    "text",
    [
        "28/11/2026",
        "2026-02-30",
        "28.11.2026 24:00",
        "28.11.2026 12:61",
        "yesterday",
        "",
        # Beyond the calendar once the zone is applied, or a zone of a day and more.
        "0001-01-01T00:00:00+03:00",
        "9999-12-31T23:30:00-05:00",
        "2026-11-28T12:00:00+99:00",
    ],
)
def test_not_a_date(text: str) -> None:
    assert DayReader().day(text) is None


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("QIWI_4242_202611281.csv", date(2026, 11, 28)),
        ("/srv/in/QIWI_shop_1_202611282.CSV", date(2026, 11, 28)),
        ("QIWI_4242_20261128.txt", date(2026, 11, 28)),
        ("QIWI_4242_202613011.csv", None),
        ("registry-2026-11-28.csv", None),
        ("QIWI_PAYER.csv", None),
    ],
)
def test_the_day_in_qiwis_file_name(name: str, day: date | None) -> None:
    assert Source.of(b"", name).file_day == day
