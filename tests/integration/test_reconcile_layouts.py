"""``qiwi-gw reconcile`` reads each layout QIWI and its integrators send, and names it.

Every file is built here, byte for byte, against the same three payments of
28 November (Moscow time).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Result, run_cli
from tests.support.rows import add_payment

PAYMENTS = [
    ("1234567", "0957835959", "10.45", "2026-11-28 12:01:33"),
    ("1234580", "0957835959", "500.00", "2026-11-28 15:20:00"),
    ("1234601", "7701234567", "1500.00", "2026-11-28 21:45:10"),
]


@pytest.fixture
def dsn(database_dsn: str) -> str:
    for code, account, amount, when in PAYMENTS:
        add_payment(database_dsn, code, account=account, amount=amount, txn_date=when)
    return database_dsn


def reconcile(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: Path,
    *args: str,
) -> Result:
    return run_cli(monkeypatch, capsys, dsn, "reconcile", str(path), *args)


def standard(newline: str = "\r\n") -> str:
    """QIWI's standard registry of the three payments: no header, tabs, a Total line."""
    lines = [
        "1234567\t28.11.2026\t12:01:33\t0957835959\t10.45",
        "1234580\t28.11.2026\t15:20:00\t0957835959\t500.00",
        "1234601\t28.11.2026\t21:45:10\t7701234567\t1500.00",
        "Total: 3 2010.45",
    ]
    return newline.join(lines) + newline


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"], ids=["CRLF", "CR", "LF"])
def test_qiwis_standard_registry(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    newline: str,
) -> None:
    path = tmp_path / "QIWI_4242_202611281.csv"
    path.write_bytes(standard(newline).encode())
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines()[:4] == [
        f"registry  {path}: QIWI's standard registry (tab-separated, no header, Total line)",
        "payments  3 listed, sum 2010.45",
        "period    2026-11-28 (the day in the file's name)",
        "ours      3 payment(s) in the period, sum 2010.45",
    ]
    assert "total line: agrees\nline 4: 'Total: 3 2010.45' agrees with the rows above it" in (
        result.out
    )


@pytest.mark.parametrize(
    "ending",
    ["\r\n\x1a", "\r\n\x1a\r\n", "\x1a\r\n", "\x1a"],
    ids=["after the last line", "on a line of its own", "before the line break", "no break"],
)
def test_a_dos_end_of_file_mark_ends_the_file(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    ending: str,
) -> None:
    """DOS tools end a text file with ^Z: it read as a line of one field, exit 2."""
    path = tmp_path / "QIWI_4242_202611281.csv"
    text = standard().rstrip("\r\n") + ending
    path.write_bytes(text.encode())
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert result.code == 0, result.out + result.err


def test_a_payment_after_the_end_of_file_mark_is_refused(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "QIWI_4242_202611281.csv"
    path.write_bytes((standard() + "\x1a1234999\t28.11.2026\t12:00:00\t42\t5.00\r\n").encode())
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert (result.code, result.out) == (2, "")
    assert result.err_lines == [
        f"qiwi-gw reconcile: {path}: line 5: text after the end-of-file mark (^Z)"
    ]


def test_a_day_without_payments_agrees_only_if_we_have_none(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    empty_29th = tmp_path / "QIWI_4242_202611291.csv"
    empty_29th.write_bytes(b"Total: 0 0.00\r\n")
    result = reconcile(dsn, monkeypatch, capsys, empty_29th)
    assert result.code == 0, result.out + result.err
    # Sums in kopecks on both sides, none at all too (our side printed "0").
    assert "ours      0 payment(s) in the period, sum 0.00" in result.out
    found = reconcile(dsn, monkeypatch, capsys, empty_29th, "--json").json()
    assert (found["sum"], found["our_sum"], found["total_lines"][0]["sum_above"]) == (
        "0.00",
        "0.00",
        "0.00",
    )
    assert result.out.splitlines()[-1] == (
        "result: the registry and qiwi_transaction agree over 2026-11-29"
    )

    empty_28th = tmp_path / "QIWI_4242_202611281.csv"
    empty_28th.write_bytes(b"Total: 0 0.00\r\n")
    differing = reconcile(dsn, monkeypatch, capsys, empty_28th, "--json")
    assert differing.code == 1
    found = differing.json()
    assert (found["rows"], found["ours_in_period"], found["our_sum"]) == (0, 3, "2010.45")
    assert [item["txn_id"] for item in found["missing_on_their_side"]] == [
        "1234567",
        "1234580",
        "1234601",
    ]


# QIWI's payments daily report: the columns of its documentation, a SETTLEMENT row
# (the day's transfer, not a payment), decimal commas, a sum without decimals,
# times as "d.m.yyyy h:mm".
REPORT_HEADER = (
    "BANK_DATA_DOC;BANK_VALUE_DOC;BANK_AGR_CODE;SUM_BANK;TRANS_DATE;TRANSACTION_ID;SUM;"
    "COMMISSION;USER_INFO;ID;MERCH;MERCH_SITE;PARENT_TRANSACTION_ID;BILL;PURPOSE;"
    "MERCHANT_SITE_NAME;PAYMENT_METHOD_TYPE;MMVB;CLIENT_AMOUNT;CLIENT_CUR_CODE;"
    "SETTLEMENT_AMOUNT;PAYMENTDETAILS"
)


def report_row(
    when: str, txn_id: str, amount: str, purpose: str = "payment", parent: str = ""
) -> str:
    return (
        f"29.11.2026;29.11.2026;34562014;1960,45;{when};{txn_id};{amount};25;533669******4030;"
        f"68860745;shop;shop-1;{parent};bill-{txn_id};{purpose};site;Bank card;null;{amount};643;"
        "1960,45;Transfer under the agreement"
    )


def test_qiwis_payments_daily_report(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    text = "\r\n".join(
        [
            REPORT_HEADER,
            "29.11.2026;29.11.2026;3456144;-1960,45;;;1960,45;;;;;;;;SETTLEMENT;;;null;;;;",
            report_row("28.11.2026 12:01", "1234567", "10,45"),
            report_row("28.11.2026 15:20", "1234580", "500"),
            report_row("28.11.2026 21:45", "1234601", "1500,00"),
        ]
    )
    path = tmp_path / "report.csv"
    path.write_bytes(text.encode() + b"\r\n")
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[0] == f"registry  {path}: QIWI's payments daily report (semicolons)"
    assert "skipped   1 SETTLEMENT (not payments)" in lines
    assert "accounts  not compared: the file has no account column" in lines
    assert "different accounts: none" not in lines


def test_only_the_reports_settlement_rows_are_skipped(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A refund of our 1234580 and a PAYMENT_CARD row we do not hold are compared like
    payments (missing on our side), not skipped as "not payments"."""
    text = "\r\n".join(
        [
            REPORT_HEADER,
            "29.11.2026;29.11.2026;3456144;-1960,45;;;1960,45;;;;;;;;SETTLEMENT;;;null;;;;",
            report_row("28.11.2026 12:01", "1234567", "10,45"),
            report_row("28.11.2026 15:20", "1234580", "500"),
            report_row("28.11.2026 21:45", "1234601", "1500,00", purpose="Payment "),
            report_row("28.11.2026 16:00", "1234599", "500", "refund", parent="1234580"),
            report_row("28.11.2026 17:30", "7777778", "26000", "PAYMENT_CARD"),
        ]
    )
    path = tmp_path / "QIWI_4242_202611281.csv"
    path.write_bytes(text.encode() + b"\r\n")
    result = reconcile(dsn, monkeypatch, capsys, path, "--json")
    assert result.code == 1, result.out + result.err
    found = result.json()
    assert found["skipped"] == {"SETTLEMENT": 1}
    assert [(item["line"], item["txn_id"]) for item in found["missing_on_our_side"]] == [
        (6, "1234599"),
        (7, "7777778"),
    ]


def test_a_purpose_column_skips_nothing_in_other_layouts(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A free-text purpose is no payment type: the payment we never stored is found."""
    text = (
        "txn_id;date;account;sum;purpose\r\n"
        "1234567;28.11.2026 12:01:33;0957835959;10,45;\r\n"
        "1234580;28.11.2026 15:20:00;0957835959;500,00;\r\n"
        "1234601;28.11.2026 21:45:10;7701234567;1500,00;SETTLEMENT\r\n"
        "7777777;28.11.2026 22:00:00;0957835959;25000,00;Оплата заказа 55\r\n"
    )
    path = tmp_path / "QIWI_4242_202611281.csv"
    path.write_text(text, "utf-8")
    result = reconcile(dsn, monkeypatch, capsys, path, "--json")
    assert result.code == 1, result.out + result.err
    found = result.json()
    assert (found["skipped"], found["rows"]) == ({}, 4)
    assert [item["txn_id"] for item in found["missing_on_our_side"]] == ["7777777"]


RUSSIAN = (
    "Реестр платежей за 28.11.2026\r\n"
    "\r\n"
    "Номер платежа;Дата;Время;Лицевой счёт;Сумма\r\n"
    "1234567;28.11.2026;12:01:33;0957835959;10,45\r\n"
    "1234580;28.11.2026;15:20:00;0957835959;500,00\r\n"
    "1234601;28.11.2026;21:45:10;7701234567;1 500,00\r\n"
    "Итого: 3;;;;2 010,45\r\n"
)


@pytest.mark.parametrize("encoding", ["cp1251", "utf-16", "utf-8-sig"])
def test_russian_column_names_a_title_line_and_itogo(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    encoding: str,
) -> None:
    path = tmp_path / "реестр.csv"
    path.write_bytes(RUSSIAN.encode(encoding))
    result = reconcile(dsn, monkeypatch, capsys, path, "--json")
    assert result.code == 0, result.out + result.err
    found = result.json()
    assert found["layout_title"] == (
        "CSV with a header row (semicolons, Russian column names, title line 1 skipped)"
    )
    assert (found["encoding"], found["decimal_mark"]) == (encoding.replace("-sig", ""), "comma")
    assert found["total_lines"] == [
        {
            "line": 7,
            "text": "Итого: 3 2 010,45",
            "count": 3,
            "amount": "2 010,45",
            "rows_above": 3,
            "sum_above": "2010.45",
            "agrees": True,
        }
    ]


def test_an_itogo_line_that_disagrees_is_a_difference(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "реестр.csv"
    path.write_text(RUSSIAN.replace("Итого: 3;;;;2 010,45", "Итого;;;;2 100,45"), "utf-8")
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert result.code == 1
    assert "line 7: 'Итого 2 100,45' disagrees: the rows above it make 3 / 2010.45" in result.out


def test_a_header_added_by_hand_to_the_standard_registry(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "QIWI_4242_202611281.csv"
    path.write_text("txn_id\tdate\ttime\taccount\tsum\r\n" + standard(), "utf-8")
    result = reconcile(dsn, monkeypatch, capsys, path)
    assert result.code == 0, result.out + result.err
    assert f"registry  {path}: CSV with a header row (tabs)" in result.out


def test_two_days_of_standard_registries_read_as_one(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Concatenated files: each Total line counts the rows since the one before."""
    add_payment(dsn, "1234700", amount="5.00", txn_date="2026-11-29 10:00:00")
    second = "1234700\t29.11.2026\t10:00:00\t42\t5.00\r\nTotal: 1 5.00\r\n"
    path = tmp_path / "both.txt"
    path.write_text(standard() + second, "utf-8")
    result = reconcile(dsn, monkeypatch, capsys, path, "--from", "2026-11-28", "--to", "2026-11-29")
    assert result.code == 0, result.out + result.err
    assert "line 6: 'Total: 1 5.00' agrees with the rows above it" in result.out
