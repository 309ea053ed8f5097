"""``qiwi-gw reconcile FILE``: QIWI's registry against qiwi_transaction.

The layouts themselves are in test_reconcile_layouts.py; here are the rules: which
days are compared, what counts as a difference, what makes a file unreadable.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from qiwi_gw.ops import reconciliation
from qiwi_gw.ops.common import BadArgumentError
from tests.support.cli import Result, run_cli, run_process
from tests.support.rows import add_payment, execute


def seed(dsn: str) -> None:
    add_payment(dsn, "100", account="alice", amount="10.45", txn_date="2026-11-27 23:59:59")
    add_payment(dsn, "101", account="alice", amount="10.45", txn_date="2026-11-28 09:00:00")
    add_payment(dsn, "102", account="bob", amount="500.00", txn_date="2026-11-28 18:30:00")
    add_payment(dsn, "103", account="carol", amount="45.00", txn_date="2026-11-29 10:00:00")
    add_payment(
        dsn,
        "104",
        account="dave",
        amount="1.00",
        txn_date="2026-11-29 23:59:59",
        delivered_ago=None,
    )
    add_payment(dsn, "105", account="erin", amount="7.00", txn_date="2026-11-30 00:00:00")


def write(tmp_path: Path, text: str, name: str = "registry.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def reconcile(
    dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> Result:
    return run_cli(monkeypatch, capsys, dsn, "reconcile", *args)


AGREEING = """txn_id,account,sum,date
101,alice,10.45,2026-11-28
102,bob,500.00,2026-11-28
103,carol,45.00,2026-11-29
104,dave,1.00,2026-11-29
"""


def test_agreeing_registry_exits_0(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Payments before and after the declared days (100, 105) are not "missing"."""
    seed(database_dsn)
    path = write(tmp_path, AGREEING)
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "reconcile",
        str(path),
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-29",
    )
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[:4] == [
        f"registry  {path}: CSV with a header row (commas)",
        "payments  4 listed, sum 556.45",
        "period    2026-11-28 to 2026-11-29 (declared)",
        "ours      4 payment(s) in the period, sum 556.45",
    ]
    assert "missing on our side (in the registry, not in qiwi_transaction): none" in lines
    assert "missing on their side (in qiwi_transaction, not in the registry): none" in lines
    assert "different sums: none" in lines
    assert (
        lines[-1] == "result: the registry and qiwi_transaction agree over 2026-11-28 to 2026-11-29"
    )


# Each kind of mismatch once: 999 is not ours, 102 is not theirs, 103's sum and
# 104's account differ. 100 is ours too, but dated before the registry's days.
DIFFERING = """txn_id,account,sum,date
101,alice,10.45,2026-11-28
103,carol,54.00,2026-11-29
104,DAVE,1.00,2026-11-29
999,mallory,12.00,2026-11-29
"""


def test_each_kind_of_mismatch(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    path = write(tmp_path, DIFFERING)
    report = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert report.code == 1
    found = report.json()
    assert found["agree"] is False
    assert found["differences"] == 4
    assert (found["first_date"], found["last_date"], found["period_from"], found["rows"]) == (
        "2026-11-28",
        "2026-11-29",
        "rows",
        4,
    )
    assert found["missing_on_our_side"] == [
        {
            "line": 5,
            "txn_id": "999",
            "account": "mallory",
            "sum": "12.00",
            "date": "2026-11-29",
            "written": "2026-11-29",
        }
    ]
    assert found["missing_on_their_side"] == [
        {
            "txn_id": "102",
            "prv_txn": 3,
            "account": "bob",
            "sum": "500.00",
            "qiwi_time": "2026-11-28T18:30:00",
            "status": 1,
        }
    ]
    assert [
        (item["line"], item["txn_id"], item["our_sum"], item["their_sum"])
        for item in found["different_sums"]
    ] == [(3, "103", "45.00", "54.00")]
    assert [
        (item["txn_id"], item["our_account"], item["their_account"])
        for item in found["different_accounts"]
    ] == [("104", "dave", "DAVE")]

    table = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert table.code == 1
    text = table.out
    assert "period    2026-11-28 to 2026-11-29 (the rows' dates: no period declared" in text
    assert "missing on our side (in the registry, not in qiwi_transaction): 1" in text
    assert "missing on their side (in qiwi_transaction, not in the registry): 1" in text
    assert "different sums: 1" in text
    assert "different accounts: 1" in text
    assert text.rstrip().endswith(
        "result: 4 difference(s) over 2026-11-28 to 2026-11-29 (period guessed from the rows)"
    )


def test_a_semicolon_registry_with_decimal_commas(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """``;``, ``10,45``, ``DD.MM.YYYY``, a BOM, capitalised headers, extra columns, a
    time of day, blank lines, quotes."""
    seed(database_dsn)
    text = (
        "\ufeffTXN_ID;Date;Account;Sum;Comment\r\n"
        "101;28.11.2026 09:00:00;alice;10,45;first\r\n"
        "\r\n"
        "102;28.11.2026;bob;500,00;\r\n"
        '103;20261129100000;carol;"45,00";x\r\n'
        "104;2026-11-29T23:59:59;dave;1;\r\n"
    )
    result = reconcile(database_dsn, monkeypatch, capsys, str(write(tmp_path, text)))
    assert result.code == 0, result.out + result.err


# --- the period -----------------------------------------------------------------------


HEADER_ONLY = "txn_id,account,sum,date\n"


def test_an_empty_registry_for_a_day_we_have_payments_on_differs(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """It used to "agree": every payment of ours that day is missing on their side."""
    seed(database_dsn)
    path = write(tmp_path, HEADER_ONLY)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(path), "--date", "2026-11-28", "--json"
    )
    assert result.code == 1
    found = result.json()
    assert (found["rows"], found["ours_in_period"], found["agree"]) == (0, 2, False)
    assert [item["txn_id"] for item in found["missing_on_their_side"]] == ["101", "102"]


def test_an_empty_registry_for_a_day_without_payments_agrees(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    path = write(tmp_path, HEADER_ONLY)
    result = reconcile(database_dsn, monkeypatch, capsys, str(path), "--date", "2026-12-01")
    assert result.code == 0
    assert result.out.splitlines()[-1] == (
        "result: the registry and qiwi_transaction agree over 2026-12-01"
    )


def test_an_empty_registry_without_a_period_cannot_be_compared(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    path = write(tmp_path, HEADER_ONLY)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert result.code == 2
    assert result.out == ""
    assert result.err_lines == [
        f"qiwi-gw reconcile: {path}: the file lists no payments and its name gives no day:"
        " declare the period (--date DAY, or --from DAY --to DAY)"
    ]


def test_a_declared_period_reports_a_day_the_file_has_no_rows_for(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The registry for the 27th to the 29th lists nothing on the 29th: our payments of
    the 29th are missing on their side. Guessed from the rows, the period would have
    ended on the 28th and they would have gone unreported."""
    seed(database_dsn)
    text = "txn_id,account,sum,date\n100,alice,10.45,2026-11-27\n101,alice,10.45,2026-11-28\n"
    text += "102,bob,500.00,2026-11-28\n"
    path = write(tmp_path, text)
    declared = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "reconcile",
        str(path),
        "--from",
        "2026-11-27",
        "--to",
        "2026-11-29",
        "--json",
    )
    assert declared.code == 1
    assert [item["txn_id"] for item in declared.json()["missing_on_their_side"]] == ["103", "104"]

    guessed = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert "(the rows' dates: no period declared, no day in the file's name)" in guessed.out
    assert guessed.code == 0
    assert guessed.out.rstrip().endswith(
        "agree over 2026-11-27 to 2026-11-28 (period guessed from the rows)"
    )


def test_the_day_in_qiwis_file_name_is_the_period(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A late payment QIWI dated 27.11 23:59:59 in the 28th's file is looked up like
    any other; our other payments of the 27th are not "missing on their side"."""
    seed(database_dsn)
    add_payment(database_dsn, "099", account="zoe", amount="3.00", txn_date="2026-11-27 12:00:00")
    text = (
        "100\t27.11.2026\t23:59:59\talice\t10.45\r\n"
        "101\t28.11.2026\t09:00:00\talice\t10.45\r\n"
        "102\t28.11.2026\t18:30:00\tbob\t500.00\r\n"
        "Total: 3 520.90\r\n"
    )
    path = write(tmp_path, text, "QIWI_4242_202611281.csv")
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    out = result.out
    assert result.code == 0, out
    assert "period    2026-11-28 (the day in the file's name)" in out
    assert (
        "edge      1 listed payment(s) dated within 5 minutes of the period's edge (line 1):"
        " looked up, not a difference"
    ) in out
    # A declared period wins over the file's name.
    declared = reconcile(database_dsn, monkeypatch, capsys, str(path), "--date", "2026-11-27")
    assert declared.code == 1
    # ... and is said to contradict it.
    assert "period    2026-11-27 (declared; the file's name says 2026-11-28)" in declared.out
    agreeing = reconcile(database_dsn, monkeypatch, capsys, str(path), "--date", "2026-11-28")
    assert "period    2026-11-28 (declared)\n" in agreeing.out
    assert "\n099      " in declared.out


def test_rows_dated_well_outside_the_period_are_differences(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The 28th's file saved under the 29th's name used to "agree over 2026-11-29":
    its rows were looked up and matched, and our 102, which it leaves out, is not of
    the 29th. Rows hours away from the period are differences now, listed."""
    seed(database_dsn)
    text = (
        "101\t28.11.2026\t09:00:00\talice\t10.45\r\n"
        "102\t28.11.2026\t23:59:00\tbob\t500.00\r\n"
        "Total: 2 510.45\r\n"
    )
    path = write(tmp_path, text, "QIWI_4242_202611291.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 1, result.out
    found = result.json()
    # 102, a minute before the 29th, may be a late listing; 101 cannot be.
    assert (found["counts"]["dated_outside_period"], found["near_period_edge"]) == (1, 1)
    assert [(item["line"], item["txn_id"]) for item in found["dated_outside_period"]] == [
        (1, "101")
    ]
    table = reconcile(database_dsn, monkeypatch, capsys, str(path)).out
    assert "dated outside the period (more than 5 minutes from its edge): 1" in table
    assert "edge      1 listed payment(s) dated within 5 minutes of the period's edge" in table
    # A row without a time of day cannot be shown to be near the edge.
    dated = write(tmp_path, "txn_id,sum,date\n104,1.00,2026-11-29\n", "dated.csv")
    alone = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(dated), "--date", "2026-11-30"
    )
    assert alone.code == 1
    assert "dated outside the period (more than 5 minutes from its edge): 1" in alone.out


def test_utc_stamped_rows_count_on_moscows_day(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """21:30 UTC on the 27th is 00:30 on the 28th in Moscow; 21:00 UTC on the 28th is
    already the 29th."""
    add_payment(database_dsn, "1", txn_date="2026-11-28 00:30:00")
    add_payment(database_dsn, "2", txn_date="2026-11-28 23:59:59")
    add_payment(database_dsn, "3", txn_date="2026-11-29 00:00:00")
    text = (
        "txn_id,account,sum,date\n"
        "1,42,10.00,2026-11-27T21:30:00Z\n"
        "2,42,10.00,2026-11-28 20:59:59+00:00\n"
        "3,42,10.00,2026-11-28T21:00:00 UTC\n"
    )
    path = write(tmp_path, text)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(path), "--date", "2026-11-28", "--json"
    )
    assert result.code == 0, result.out
    found = result.json()
    # 00:00:00 on the 29th is within minutes of the period's end: not a difference.
    assert (found["ours_in_period"], found["near_period_edge"]) == (2, 1)


def test_rows_the_original_image_stored_count_by_created_at_in_moscow_time(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Migration 0001 gave them txn_date = created_at (UTC): 22:30 UTC on the 27th is
    01:30 on the 28th in Moscow, so the 28th's registry lists it."""
    execute(
        database_dsn,
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, created_at)"
        " VALUES ('old', '7', 5.00, 1, '2026-11-27 22:30:00', '2026-11-27 22:30:00')",
    )
    empty = write(tmp_path, HEADER_ONLY)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(empty), "--date", "2026-11-28", "--json"
    )
    assert result.code == 1
    assert [
        (item["txn_id"], item["qiwi_time"]) for item in result.json()["missing_on_their_side"]
    ] == [("7", "2026-11-28T01:30:00")]
    listed = write(tmp_path, "7\t28.11.2026\t01:30:00\told\t5.00\r\nTotal: 1 5.00\r\n", "q.txt")
    agreeing = reconcile(database_dsn, monkeypatch, capsys, str(listed), "--date", "2026-11-28")
    assert agreeing.code == 0, agreeing.out
    previous_day = reconcile(database_dsn, monkeypatch, capsys, str(empty), "--date", "2026-11-27")
    assert previous_day.code == 0, previous_day.out


# --- sums, repeats, totals ------------------------------------------------------------


def test_sums_are_shown_as_written_and_odd_decimals_reported(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    add_payment(database_dsn, "1", amount="500.00")
    add_payment(database_dsn, "2", amount="1234567.88")
    add_payment(database_dsn, "3", amount="1500.00")
    text = (
        "1\t28.11.2026\t12:00:00\t42\t500.004\r\n"
        "2\t28.11.2026\t12:00:00\t42\t1234567.885\r\n"
        "3\t28.11.2026\t12:00:00\t42\t1 500.000\r\n"
        "Total: 3 1236567.889\r\n"
    )
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 1
    found = result.json()
    assert [(item["our_sum"], item["their_sum"]) for item in found["different_sums"]] == [
        ("500.00", "500.004"),
        ("1234567.88", "1234567.885"),
    ]
    # 1 500.000 is a whole number of kopecks, written with a third zero.
    assert [item["sum"] for item in found["sums_with_more_than_two_decimals"]] == [
        "500.004",
        "1234567.885",
    ]
    assert found["total_lines"][0]["agrees"] is True
    table = reconcile(database_dsn, monkeypatch, capsys, str(path)).out
    cells = [line.split() for line in table.splitlines()]
    assert ["1", "1", "1", "500.00", "500.004"] in cells
    assert ["2", "2", "2", "1234567.88", "1234567.885"] in cells


def test_a_files_sums_add_up_exactly(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The longest sums a file may hold (15 digits and 10 decimals) add up past the
    28 digits of Decimal's default precision, which rounded the total of the rows."""
    amount = "999999999999999.9999999999"
    lines = 10_000  # their sum: 9999999999999999999.999999, 29 digits with the zeros
    body = "".join(f"{n}\t28.11.2026\t12:00:00\t42\t{amount}\r\n" for n in range(lines))
    total = "Total: 10000 9999999999999999999.999999\r\n"
    path = write(tmp_path, body + total, "QIWI_1_202611281.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    found = result.json()
    assert found["sum"] == "9999999999999999999.9999990000"
    assert found["total_lines"][0]["sum_above"] == "9999999999999999999.9999990000"
    assert found["total_lines"][0]["agrees"] is True


def test_a_txn_id_listed_twice_is_a_difference_not_a_malformed_file(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The rest of the file is compared all the same (999 is still found missing)."""
    seed(database_dsn)
    text = (
        "txn_id,account,sum,date\n"
        "101,alice,10.45,2026-11-28\n"
        "102,bob,500.00,2026-11-28\n"
        "101,alice,10.54,2026-11-28\n"
        "102,bob,500.00,2026-11-28\n"
        "999,x,1.00,2026-11-28\n"
        "999,x,1.00,2026-11-28\n"
    )
    path = write(tmp_path, text)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(path), "--date", "2026-11-28", "--json"
    )
    assert result.code == 1
    found = result.json()
    assert found["listed_twice"] == [
        {
            "txn_id": "101",
            "lines": [2, 4],
            "listed": 2,
            "their_sums": ["10.45", "10.54"],
            "same_sums": False,
            "our_sum": "10.45",
        },
        {
            "txn_id": "102",
            "lines": [3, 5],
            "listed": 2,
            "their_sums": ["500.00", "500.00"],
            "same_sums": True,
            "our_sum": "500.00",
        },
        {
            "txn_id": "999",
            "lines": [6, 7],
            "listed": 2,
            "their_sums": ["1.00", "1.00"],
            "same_sums": True,
            "our_sum": None,
        },
    ]
    assert [(item["line"], item["their_sum"]) for item in found["different_sums"]] == [(4, "10.54")]
    assert [item["line"] for item in found["missing_on_our_side"]] == [6, 7]
    assert found["missing_on_their_side"] == []


def test_a_txn_id_listed_many_times_keeps_the_first_lines_and_counts_all(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Every line of a repeated txn_id used to be kept (a million-line file of repeats
    took 753 MB): now the first 10 lines of each, and the first groups only."""
    monkeypatch.setattr(reconciliation, "SHOWN", 2)
    lines = ["7\t28.11.2026\t10:00:00\t42\t1.00\r\n" for _ in range(24)]
    lines.append("7\t28.11.2026\t10:00:00\t42\t9.00\r\n")  # line 25: past the lines kept
    lines += [f"{n}\t28.11.2026\t10:00:00\t42\t1.00\r\n" for n in (8, 8, 9, 9)]
    path = write(tmp_path, "".join(lines) + "Total: 29 37.00\r\n", "QIWI_1_202611281.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 1
    found = result.json()
    assert found["counts"]["listed_twice"] == 3
    first, second = found["listed_twice"]
    assert (first["txn_id"], first["listed"], first["same_sums"]) == ("7", 25, False)
    assert first["lines"] == list(range(1, 11))
    assert (second["txn_id"], second["lines"], second["listed"]) == ("8", [26, 27], 2)
    table = reconcile(database_dsn, monkeypatch, capsys, str(path)).out
    assert "listed twice (one txn_id on several lines): 3 (the first 2 listed)" in table
    lines_shown = ", ".join(map(str, range(1, 11)))
    assert f"{lines_shown}, ... (25 lines)" in table


def _peak_memory(run: Callable[[], Result]) -> tuple[Result, int]:
    tracemalloc.start()
    try:
        result = run()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_repeats_cost_no_more_memory_than_distinct_lines(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """The same number of lines, every txn_id twice, against a baseline of distinct
    txn_ids measured in the same test. What is kept to show is bounded by SHOWN (100
    here), so the peaks differ by little; keeping every repeated row made it 5 times."""
    monkeypatch.setattr(reconciliation, "SHOWN", 100)
    lines = 60_000

    def registry(name: str, code: Callable[[int], int]) -> Path:
        body = "".join(
            f"{code(n)}\t28.11.2026\t12:00:00\t0957835959\t10.00\r\n" for n in range(lines)
        )
        return write(tmp_path, body + f"Total: {lines} {lines * 10}.00\r\n", name)

    distinct = registry("QIWI_1_202611281.csv", lambda n: 10_000_000 + n)
    twice = registry("QIWI_2_202611281.csv", lambda n: 10_000_000 + n % (lines // 2))

    def run(path: Path) -> Result:
        return run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))

    base, base_peak = _peak_memory(lambda: run(distinct))
    repeated, repeated_peak = _peak_memory(lambda: run(twice))
    assert (base.code, repeated.code) == (1, 1)
    assert "listed twice (one txn_id on several lines): 30,000 (the first 100 listed)" in (
        repeated.out
    )
    assert repeated_peak < 1.5 * base_peak, (repeated_peak, base_peak)


@pytest.mark.parametrize(
    ("total", "agrees"),
    [
        ("Total: 2 510.45", True),
        ("Total: 3 510.45", False),
        ("Total: 2 510.46", False),
        ("TOTAL:\t2\t510.45", True),
    ],
)
def test_the_total_line_is_checked_against_the_rows(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    total: str,
    agrees: bool,
) -> None:
    seed(database_dsn)
    text = (
        f"101\t28.11.2026\t09:00:00\talice\t10.45\r\n"
        f"102\t28.11.2026\t18:30:00\tbob\t500.00\r\n{total}\r\n"
    )
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    out = result.out
    assert result.code == (0 if agrees else 1), out
    if agrees:
        assert "total line: agrees" in out
    else:
        assert "total line: 1\nline 3: " in out
        assert "disagrees: the rows above it make 2 / 510.45" in out
        assert out.rstrip().endswith("result: 1 difference(s) over 2026-11-28")


@pytest.mark.parametrize(
    ("total", "declared"),
    [
        # The count under the date column, the amount under the sum column.
        (",7,510.45", "'Total 7 510.45' disagrees"),
        # A count alone after the label.
        ("Итого: 5", "'Итого: 5' disagrees"),
        (",2,510.46", "'Total 2 510.46' disagrees"),
        (",2,510.45", "'Total 2 510.45' agrees"),
        ("Итого: 2 510.45", "'Итого: 2 510.45' agrees"),
    ],
)
def test_every_number_of_a_csv_total_line_is_checked(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    total: str,
    declared: str,
) -> None:
    """A count used to be read only where one place was looked at: elsewhere it was
    ignored, and a total line of 7 over 2 rows agreed."""
    seed(database_dsn)
    line = ("Total" + total) if total.startswith(",") else total
    text = f"txn_id,date,sum\n101,2026-11-28,10.45\n102,2026-11-28,500.00\n{line}\n"
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    assert f"line 4: {declared}" in result.out, result.out + result.err
    assert result.code == (1 if declared.endswith("disagrees") else 0)


def test_a_standard_registry_without_its_total_line_may_be_cut_short(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    text = "101\t28.11.2026\t09:00:00\talice\t10.45\r\n102\t28.11.2026\t18:30:00\tbob\t500.00\r\n"
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    assert result.code == 1
    assert "missing: the file does not end with one (cut short?)" in result.out


def test_what_a_terminal_would_act_on_is_printed_escaped(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Cells came out raw: an account holding cursor-up and erase-line sequences could
    wipe the lines above it off the operator's screen, a right-to-left override turn
    a txn_id around."""
    add_payment(database_dsn, "1", account="7701234567", amount="1.00")
    erase = "\x1b[1A\x1b[2K" * 3
    text = (
        "txn_id,date,account,sum\r\n"
        f'1,2026-11-28 12:00:00,"7701234567{erase}",1.00\r\n'
        "2\u202e9,2026-11-28 12:00:00,42\u200b\x00,1.00\r\n"
    )
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    assert result.code == 1
    assert all(character.isprintable() or character == "\n" for character in result.out)
    assert "7701234567\\x1b[1A\\x1b[2K\\x1b[1A" in result.out
    assert "2\\u202e9  42\\u200b\\x00" in result.out
    header = write(tmp_path, "txn_id,\x1b[2Jdate\r\n1,2\r\n")
    refused = reconcile(database_dsn, monkeypatch, capsys, str(header))
    assert refused.code == 2
    assert refused.err_lines[0].endswith("(it has: txn_id, \\x1b[2jdate)")


# --- ambiguous numbers ------------------------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["mark shown first", "mark shown last"])
@pytest.mark.parametrize(
    ("other", "ours"),
    [("10,45", "1.50"), ("10.45", "1500.00")],
    ids=["comma-decimal file", "point-decimal file"],
)
def test_1_500_is_read_by_the_files_own_decimal_mark(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    other: str,
    ours: str,
    first: bool,
) -> None:
    """Wherever the sum that shows the mark comes, before or after ``1,500``."""
    add_payment(database_dsn, "1", amount="10.45")
    add_payment(database_dsn, "2", amount=ours)
    add_payment(database_dsn, "3", amount="7.00")
    rows = [f"1;42;{other};28.11.2026", '2;42;"1,500";28.11.2026']
    rows = rows if first else rows[::-1]
    text = "txn_id;account;sum;date\n" + "\n".join(rows) + "\n3;42;7;28.11.2026\n"
    path = write(tmp_path, text)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 0, result.out
    found = result.json()
    assert found["decimal_mark"] == ("comma" if "," in other else "point")
    assert Decimal(found["sum"]) == Decimal("17.45") + Decimal(ours)


@pytest.mark.parametrize(
    ("others", "ours", "mark"),
    [
        (("1,50", "10,45"), "1.50", "comma"),  # the file shows commas: 1,500 is 1.5
        (("1.50", "10.45"), "1500.00", "point"),
        (("2", "10"), "1500.00", "point"),  # no other sum says: QIWI's layout, a point
    ],
    ids=["comma-decimal", "point-decimal", "no mark shown"],
)
def test_a_standard_registry_takes_its_decimal_mark_from_its_sums(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    others: tuple[str, str],
    ours: str,
    mark: str,
) -> None:
    """QIWI's layout takes a decimal point, but a file written with decimal commas
    had its 1,500 read as fifteen hundred all the same."""
    add_payment(database_dsn, "1", amount=ours)
    add_payment(database_dsn, "2", amount=others[0].replace(",", "."))
    add_payment(database_dsn, "3", amount=others[1].replace(",", "."))
    text = "".join(
        f"{code}\t28.11.2026\t12:00:00\t42\t{amount}\r\n"
        for code, amount in (("1", "1,500"), ("2", others[0]), ("3", others[1]))
    )
    path = write(tmp_path, text, "QIWI_1_202611281.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    found = result.json()
    assert (found["decimal_mark"], found["different_sums"]) == (mark, [])
    assert Decimal(found["sum"]) == Decimal(ours) + sum(
        Decimal(other.replace(",", ".")) for other in others
    )


def test_a_sum_settled_late_is_compared_all_the_same(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """1,500 on line 1 is fifteen hundred only once line 3 shows a decimal point: it
    differs from our 1.50, and the total line counts it."""
    add_payment(database_dsn, "1", amount="1.50")
    add_payment(database_dsn, "2", amount="10.45")
    text = (
        "txn_id;date;time;account;sum\r\n"
        "1;28.11.2026;10:00:00;42;1,500\r\n"
        "2;28.11.2026;11:00:00;42;10.45\r\n"
        "Итого: 2;;;;1 510.45\r\n"
    )
    path = write(tmp_path, text)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 1, result.out
    found = result.json()
    assert [
        (item["line"], item["our_sum"], item["their_sum"]) for item in found["different_sums"]
    ] == [(2, "1.50", "1,500")]
    assert found["total_lines"][0]["agrees"] is True


def test_a_sum_that_stays_ambiguous_is_refused_with_its_line(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    add_payment(database_dsn, "1", amount="1.50")
    add_payment(database_dsn, "2", amount="20.00")
    path = write(tmp_path, "txn_id;account;sum;date\n2;42;20;28.11.2026\n1;42;1.500;28.11.2026\n")
    refused = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert refused.code == 2
    assert refused.err_lines == [
        f"qiwi-gw reconcile: {path}: line 3: sum '1.500' could be 1.500 or 1500, and the"
        " file's other sums do not show whether its decimal mark is a point or a comma;"
        " declare it (--decimal point|comma)"
    ]
    declared = reconcile(database_dsn, monkeypatch, capsys, str(path), "--decimal", "point")
    assert declared.code == 0, declared.out


# --- unreadable files and bad arguments -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty: no header, no payments, no Total line"),
        ("\r\n\r\n", "the file is empty: no header, no payments, no Total line"),
        ("txn_id,account,amount\n1,a,1.00\n", "line 1: the header has no date column"),
        (
            "txn_id,account,sum,date\n1,a,1.00,2026-11-28\n2,b,ten,2026-11-28\n",
            "line 3: sum 'ten' is not an amount like 10.45",
        ),
        (
            "txn_id,account,sum,date\n1,a,1.00,28/11/2026\n",
            "line 2: date '28/11/2026' is not a date",
        ),
        ("txn_id,account,sum,date\n1,a,1.00\n", "line 2: 3 fields, the header has 4"),
        (
            "txn_id,account,sum,date\n1,a,1.00,2026-11-28,extra\n",
            "line 2: 5 fields, the header has 4",
        ),
        ("txn_id,account,sum,date\n,a,1.00,2026-11-28\n", "line 2: txn_id is empty"),
        ("hello,world\n1,2\n", "line 1: cannot tell the file's layout"),
        # An account starting "Total 1" makes a total line of a payment: its txn_id
        # cannot be placed as a count beside the label's 1.
        (
            "account,txn_id,sum,date\n42,1,10.45,2026-11-28\n"
            "Total 1,7777777,10.45,2026-11-28 12:05:00\n",
            "line 3: the total line 'Total 1 7777777 10.45 2026-11-28 12:05:00' holds more"
            " numbers than a count and a sum",
        ),
        (
            "txn_id;date;sum\n1;28.11.2026;10,45\nTotal: 1 2 010,45\n",
            "line 3: the total line 'Total: 1 2 010,45' holds more numbers than a count and a sum",
        ),
        # A payment sorted above the header is no title line to skip.
        (
            "7777777,2026-11-28 11:00:00,42,25000.00\ntxn_id,date,account,sum\n"
            "1,2026-11-28,42,1.00\n",
            "line 1: above the header (line 2), yet 4 fields separated by commas, like a row",
        ),
        (
            "\n".join(
                ["1;28.11.2026;42;10,45", "2;28.11.2026;42;1,50", "Номер платежа;Дата;Счёт;Сумма"]
            ),
            "line 1: above the header (line 3), yet 4 fields separated by semicolons",
        ),
        (
            "1\t28.11.2026\t12:00:00\t42\t1.00\r\n2\t28.11.2026\t12:00:00\t1.00\r\n",
            "line 2: 4 field(s); a line of QIWI's standard registry has 5",
        ),
        (
            "1\t28.11.2026\t25:00:00\t42\t1.00\r\n",
            "line 1: date '28.11.2026 25:00:00' is not a date",
        ),
        (
            "1\t28.11.2026\t12:00:00\t42\t1.00\r\nTotal: one 1.00\r\n",
            "line 2: the total line's count 'one' is not a number",
        ),
        (
            "1\t28.11.2026\t12:00:00\t42\t1.00\r\nTotal: 1\r\n",
            "line 2: the Total line reads 'Total: 1', not 'Total: <count> <amount>'",
        ),
    ],
)
def test_an_unreadable_registry_is_one_line_and_exit_2(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    text: str,
    problem: str,
) -> None:
    path = write(tmp_path, text)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"qiwi-gw reconcile: {path}: {problem}")


def _standard_bytes(sum_text: str, total: str = "Total: 2 11.00") -> bytes:
    return (
        f"1\t28.11.2026\t12:00:00\t42\t10.00\r\n2\t28.11.2026\t12:00:00\t42\t{sum_text}\r\n"
        f"{total}\r\n"
    ).encode()


_UTF16 = codecs.BOM_UTF16_LE + "1\t28.11.2026\t12:00:00\t42\t1.00\r\n".encode("utf-16-le")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            _standard_bytes("123456789012345678901234567890"),
            "line 2: sum '123456789012345678901234567890' has more than 15 digits before"
            " the decimal mark",
        ),
        (
            _standard_bytes("1 000 000 000 000 000,00"),
            "line 2: sum '1 000 000 000 000 000,00' has more than 15 digits before",
        ),
        (
            _standard_bytes("1.00000000001"),
            "line 2: sum '1.00000000001' has more than 10 decimals",
        ),
        (
            _standard_bytes("1.00", "Total: 2 1" + "0" * 29),
            f"line 3: the total '1{'0' * 29}' has more than 24 digits before the decimal mark",
        ),
        (
            b"txn_id,date,sum\n1,0001-01-01T00:00:00+03:00,10.45\n",
            "line 2: date '0001-01-01T00:00:00+03:00' is not a date",
        ),
        (
            b"txn_id,date,sum\n1,9999-12-31T23:30:00-05:00,10.45\n",
            "line 2: date '9999-12-31T23:30:00-05:00' is not a date",
        ),
        (
            b"txn_id,date,sum\n1,2026-11-28T12:00:00+99:00,10.45\n",
            "line 2: date '2026-11-28T12:00:00+99:00' is not a date",
        ),
        # A quoted field over the csv module's limit of 131,072 characters.
        (
            b'txn_id,date,account,sum\n1,2026-11-28,"' + b"9\n" * 70_000 + b'",1.00\n',
            "line 2: cannot read it: field larger than field limit (131072)",
        ),
        (
            _UTF16[:-1],
            "the file starts with UTF-16's byte-order mark but is not UTF-16 from byte 62"
            " (counted from 0) on",
        ),
        (
            _UTF16 + b"\x00\xd8" + "\r\n".encode("utf-16-le"),
            "the file starts with UTF-16's byte-order mark but is not UTF-16 from byte 64"
            " (counted from 0) on",
        ),
        (
            codecs.BOM_UTF8
            + "txn_id;date;sum\n1;28.11.2026;1,00\n".encode("cp1251")
            + "Итого\n".encode("cp1251"),
            "the file starts with UTF-8's byte-order mark but is not UTF-8 from byte 37",
        ),
        (
            b"5\t28.11.2026\t12:00:00\t42\t1.00\r\n1\x002\t28.11.2026\t12:00:00\t42\t1.00\r\n",
            "line 2: txn_id '1\\x002' holds a NUL character",
        ),
    ],
)
async def test_what_was_a_traceback_is_one_line_through_the_cli_and_the_api(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data: bytes,
    problem: str,
) -> None:
    path = tmp_path / "QIWI_1_202611281.csv"
    path.write_bytes(data)
    result = await asyncio.to_thread(
        run_cli, monkeypatch, capsys, database_dsn, "reconcile", str(path)
    )
    assert (result.code, result.out) == (2, ""), result.err
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"qiwi-gw reconcile: {path}: {problem}")
    # The console calls reconcile() with the upload's bytes: a typed error, not a 500.
    connection = await asyncpg.connect(database_dsn)
    try:
        with pytest.raises(BadArgumentError, match=re.escape(f"upload.csv: {problem}")):
            await reconciliation.reconcile(data, None, connection, name="upload.csv")
    finally:
        await connection.close()


@pytest.mark.parametrize(
    "data",
    [
        b"1\t28.11.2026\t12:00:00\t" + b"9" * 20_000_000 + b"\t1.00\r\nTotal: 1 1.00\r\n",
        b"txn_id,date,account,sum\r\n1,2026-11-28," + b"9" * 20_000_000 + b",1.00\r\n",
    ],
    ids=["standard", "csv"],
)
def test_a_line_too_long_is_refused_before_it_is_held_whole(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    data: bytes,
) -> None:
    """A line of a registry is a few hundred characters; one of 20 MB (or 300) was
    read whole into memory before the csv module gave up on it with a traceback."""
    path = tmp_path / "QIWI_1_202611281.csv"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (result.code, result.out) == (2, "")
    number = 1 if data.startswith(b"1") else 2
    assert result.err_lines == [
        f"qiwi-gw reconcile: {path}: line {number}: longer than 4,096 characters,"
        " which no line of a registry is"
    ]
    assert peak < 10_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--date", "2026-11-28", "--from", "2026-11-27"), "--date or --from/--to, not both"),
        (("--from", "2026-11-27"), "--from and --to go together (for one day: --date)"),
        (("--from", "2026-11-29", "--to", "2026-11-28"), "--from 2026-11-29 is after --to"),
        (("--date", "2026-02-30"), "argument --date: '2026-02-30' is not a real date"),
        (("--decimal", "dot"), "argument --decimal: invalid choice: 'dot'"),
    ],
)
def test_bad_arguments_are_one_line(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    path = write(tmp_path, AGREEING)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), *args)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"qiwi-gw reconcile: {message}")


def test_a_missing_file_needs_no_database(tmp_path: Path) -> None:
    """The file is read before any database is asked: here there is none at all."""
    result = run_process(
        "reconcile",
        str(tmp_path / "nope.csv"),
        env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"qiwi-gw reconcile: {tmp_path / 'nope.csv'}: no such file"
    ]


def test_a_pipe_is_read_like_a_file(database_dsn: str, tmp_path: Path) -> None:
    """``reconcile <(unzip -p ...)``: a pipe can be read once, and was opened again for
    each reading, the second of which found it empty."""
    add_payment(database_dsn, "1", amount="10.00")
    path = write(tmp_path, "1\t28.11.2026\t12:00:00\t42\t10.00\r\nTotal: 1 10.00\r\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_"))}
    script = '"$0" -m qiwi_gw reconcile <(cat "$1") --date 2026-11-28'
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, "-c", script, sys.executable, str(path)],
        env={**env, "DATABASE_URL": database_dsn},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "QIWI's standard registry" in result.stdout
    assert result.stdout.rstrip().endswith("agree over 2026-11-28")


def test_a_device_is_not_a_registry(tmp_path: Path) -> None:
    result = run_process(
        "reconcile", "/dev/zero", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "qiwi-gw reconcile: /dev/zero: not a file or a pipe to read a registry from"
    ]


def test_a_file_of_no_known_layout_needs_no_database(tmp_path: Path) -> None:
    """Its encoding and first lines are checked before any database is asked."""
    path = write(tmp_path, "hello,world\n1,2\n")
    result = run_process(
        "reconcile", str(path), env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"qiwi-gw reconcile: {path}: line 1: cannot tell the file's")


def test_it_only_reads_so_it_runs_on_a_standby(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A hot standby refuses every write, temporary tables included; a database whose
    transactions are all read-only refuses the same."""
    seed(database_dsn)
    name = execute(database_dsn, "SELECT current_database()")[0][0]
    execute(database_dsn, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    path = write(tmp_path, DIFFERING)
    result = reconcile(database_dsn, monkeypatch, capsys, str(path))
    assert result.code == 1, result.err
    assert "result: 4 difference(s)" in result.out


def test_every_difference_is_counted_the_first_ones_listed(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A file compared with the wrong database differs on every line: all are counted,
    the first ones listed (10,000 of each kind; 5 here)."""
    monkeypatch.setattr(reconciliation, "SHOWN", 5)
    for number in range(1, 13):
        add_payment(database_dsn, f"9{number:03d}", txn_date=f"2026-11-28 {number:02d}:00:00")
    lines = [f"{number}\t28.11.2026\t10:00:00\t42\t1.00\r\n" for number in range(1, 21)]
    path = write(tmp_path, "".join(lines) + "Total: 20 20.00\r\n", "QIWI_1_202611281.csv")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path), "--json")
    assert result.code == 1
    found = result.json()
    assert found["counts"]["missing_on_our_side"] == 20
    assert found["counts"]["missing_on_their_side"] == 12
    assert found["differences"] == 32
    assert [item["line"] for item in found["missing_on_our_side"]] == [1, 2, 3, 4, 5]
    assert [item["txn_id"] for item in found["missing_on_their_side"]] == [
        "9001",
        "9002",
        "9003",
        "9004",
        "9005",
    ]
    table = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path)).out
    assert (
        "missing on our side (in the registry, not in qiwi_transaction): 20 (the first 5 listed)"
    ) in table
    assert table.rstrip().endswith("result: 32 difference(s) over 2026-11-28")
