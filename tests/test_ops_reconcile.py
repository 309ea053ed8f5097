"""``qiwi-gw reconcile FILE``: QIWI's registry against qiwi_transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops_helpers import add_payment, run_cli, run_process


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
    """Payments before and after the registry's days (100, 105) are not "missing"."""
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(write(tmp_path, AGREEING)))
    assert result.code == 0, result.out + result.err
    lines = result.out.splitlines()
    assert lines[0].endswith("registry.csv: 4 payment(s), dates 2026-11-28 to 2026-11-29")
    assert lines[1] == "ours      4 payment(s) with txn_date 2026-11-28 to 2026-11-29"
    assert "missing on our side (in the registry, not in qiwi_transaction): none" in lines
    assert "missing on their side (in qiwi_transaction, not in the registry): none" in lines
    assert "different sums: none" in lines
    assert lines[-1] == "result: the registry and qiwi_transaction agree"


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
    assert (found["first_date"], found["last_date"], found["rows"]) == (
        "2026-11-28",
        "2026-11-29",
        4,
    )
    assert found["missing_on_our_side"] == [
        {"line": 5, "txn_id": "999", "account": "mallory", "sum": "12.00", "date": "2026-11-29"}
    ]
    assert [(item["txn_id"], item["sum"]) for item in found["missing_on_their_side"]] == [
        ("102", "500.00")
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
    assert "missing on our side (in the registry, not in qiwi_transaction): 1" in text
    assert "missing on their side (in qiwi_transaction, not in the registry): 1" in text
    assert "different sums: 1" in text
    assert "different accounts: 1" in text
    assert text.rstrip().endswith("result: 4 difference(s)")


def test_a_semicolon_registry_with_decimal_commas(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """What QIWI's registries often look like: ``;``, ``10,45``, ``DD.MM.YYYY``, a BOM,
    capitalised headers, extra columns, a time of day, blank lines."""
    seed(database_dsn)
    text = (
        "\ufeffTXN_ID;Date;Account;Sum;Comment\r\n"
        "101;28.11.2026 09:00:00;alice;10,45;first\r\n"
        "\r\n"
        "102;28.11.2026;bob;500,00;\r\n"
        '103;20261129100000;carol;"45,00";x\r\n'
        "104;2026-11-29T23:59:59;dave;1;\r\n"
    )
    path = write(tmp_path, text)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert result.code == 0, result.out + result.err


def test_an_empty_registry_compares_nothing(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    path = write(tmp_path, "txn_id,account,sum,date\n")
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(path))
    assert result.code == 0
    assert result.out.endswith("the registry lists no payments: nothing to compare\n")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the file is empty; a header row is needed"),
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
        (
            "txn_id,account,sum,date\n\n7,a,1.00,2026-11-28\n7,a,1.00,2026-11-28\n",
            "line 4: txn_id 7 repeats line 3",
        ),
    ],
)
def test_a_malformed_registry_is_one_line_and_exit_2(
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
