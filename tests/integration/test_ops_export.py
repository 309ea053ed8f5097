"""``qiwi-gw export``: the registry of payments by QIWI's date, as CSV or JSON."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.support.cli import run_cli, run_process
from tests.support.rows import add_payment, execute


def seed(dsn: str) -> None:
    add_payment(dsn, "1", txn_date="2026-10-31 23:59:59")  # the day before
    add_payment(dsn, "3", account="b", amount="500", txn_date="2026-11-01 18:30:00")
    add_payment(dsn, "2", account="a", amount="10.45", txn_date="2026-11-01 00:00:00")
    add_payment(
        dsn, "4", account="c;d", amount="0.5", txn_date="2026-11-02 23:59:59", delivered_ago=None
    )
    add_payment(dsn, "5", txn_date="2026-11-03 00:00:00")  # the day after


def test_csv_of_the_days_from_to_inclusive(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "export", "--from", "2026-11-01", "--to", "2026-11-02"
    )
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(result.out)))
    assert rows[0] == ["txn_id", "prv_txn", "account", "sum", "txn_date", "created_at", "status"]
    assert [(r[0], r[2], r[3], r[4], r[6]) for r in rows[1:]] == [
        ("2", "a", "10.45", "2026-11-01 00:00:00", "1"),
        ("3", "b", "500.00", "2026-11-01 18:30:00", "1"),
        ("4", "c;d", "0.50", "2026-11-02 23:59:59", "0"),
    ]
    assert all(len(r[5]) == len("2026-11-29 12:00:00") for r in rows[1:])
    assert result.err_lines == [
        "qiwi-gw export: 3 payment(s), sum 510.95, txn_date 2026-11-01 to 2026-11-02"
    ]


@pytest.mark.parametrize("flag", [("--format", "json"), ("--json",)])
def test_json(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: tuple[str, ...],
) -> None:
    seed(database_dsn)
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-01",
        *flag,
    )
    assert result.code == 0, result.err
    items = result.json()
    assert [item["txn_id"] for item in items] == ["2", "3"]
    first = items[0]
    assert set(first) == {"txn_id", "prv_txn", "account", "sum", "txn_date", "created_at", "status"}
    assert (first["sum"], first["txn_date"], first["status"]) == ("10.45", "2026-11-01T00:00:00", 1)
    assert first["created_at"].endswith("Z")
    assert isinstance(first["prv_txn"], int)


def test_no_payments_in_the_days(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("export", "--from", "2020-01-01", "--to", "2020-01-31")
    assert run_cli(monkeypatch, capsys, database_dsn, *args).out == (
        "txn_id,prv_txn,account,sum,txn_date,created_at,status\n"
    )
    assert run_cli(monkeypatch, capsys, database_dsn, *args, "--json").json() == []


def test_an_export_reconciles_with_itself(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(database_dsn)
    exported = run_cli(
        monkeypatch, capsys, database_dsn, "export", "--from", "2026-10-31", "--to", "2026-11-03"
    )
    registry = tmp_path / "ours.csv"
    registry.write_text(exported.out)
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(registry))
    assert result.code == 0, result.out
    assert "registry  " + str(registry) + ": a qiwi-gw export (CSV, commas)" in result.out
    assert result.out.rstrip().endswith(
        "result: the registry and qiwi_transaction agree over 2026-10-31 to 2026-11-03"
        " (period guessed from the rows)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--from", "2026-13-01", "--to", "2026-12-01"),
            "argument --from: '2026-13-01' is not a real date",
        ),
        (
            ("--from", "2026-02-01", "--to", "2026-02-30"),
            "argument --to: '2026-02-30' is not a real date",
        ),
        (
            ("--from", "yesterday", "--to", "2026-02-01"),
            "argument --from: 'yesterday' is not a date written YYYY-MM-DD",
        ),
        (("--from", "2026-11-01", "--to", "2026-11-01", "--format", "xml"), "argument --format"),
        (("--from", "2026-11-01"), "the following arguments are required: --to"),
    ],
)
def test_bad_arguments_are_one_line(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "export", *args)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"qiwi-gw export: {message}")


def test_from_after_to_is_a_bad_argument(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(
        monkeypatch, capsys, database_dsn, "export", "--from", "2026-11-02", "--to", "2026-11-01"
    )
    assert result.code == 2
    assert result.err_lines == ["qiwi-gw export: --from 2026-11-02 is after --to 2026-11-01"]


def test_as_a_process_the_bad_date_is_one_line(database_dsn: str) -> None:
    result = run_process(
        "export", "--from", "2026-13-01", "--to", "2026-12-01", env={"DATABASE_URL": database_dsn}
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "qiwi-gw export: argument --from: '2026-13-01' is not a real date"
        " (see qiwi-gw export --help)"
    ]


def test_qiwis_standard_layout(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What QIWI's side sends: tabs, DD.MM.YYYY and HH:MM:SS (Moscow time), CRLF, a Total."""
    seed(database_dsn)
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-02",
        "--format",
        "qiwi",
    )
    assert result.code == 0, result.err
    assert result.out == (
        "2\t01.11.2026\t00:00:00\ta\t10.45\r\n"
        "3\t01.11.2026\t18:30:00\tb\t500.00\r\n"
        "4\t02.11.2026\t23:59:59\tc;d\t0.50\r\n"
        "Total: 3 510.95\r\n"
    )


def test_no_payments_is_a_zero_total(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("export", "--from", "2020-01-01", "--to", "2020-01-01", "--format", "qiwi")
    assert run_cli(monkeypatch, capsys, database_dsn, *args).out == "Total: 0 0.00\r\n"


def test_a_qiwi_layout_export_reconciles_with_itself(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Named as QIWI names its files, it is read as QIWI's standard registry of that day."""
    seed(database_dsn)
    exported = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-01",
        "--format",
        "qiwi",
    )
    registry = tmp_path / "QIWI_4242_202611011.csv"
    registry.write_bytes(exported.out.encode())
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(registry))
    assert result.code == 0, result.out
    assert "QIWI's standard registry" in result.out
    assert "period    2026-11-01 (the day in the file's name)" in result.out


def test_the_original_images_rows_go_by_created_at_in_moscow_time(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Migration 0001 gave them txn_date = created_at (UTC): 22:30 UTC on 31 October is
    01:30 on 1 November in Moscow, QIWI's day of the payment."""
    execute(
        database_dsn,
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, created_at)"
        " VALUES ('old', '7', 5.00, 1, '2026-10-31 22:30:00', '2026-10-31 22:30:00')",
    )
    args = ("export", "--from", "2026-11-01", "--to", "2026-11-01")
    qiwi = run_cli(monkeypatch, capsys, database_dsn, *args, "--format", "qiwi")
    assert qiwi.out == "7\t01.11.2026\t01:30:00\told\t5.00\r\nTotal: 1 5.00\r\n"
    as_json = run_cli(monkeypatch, capsys, database_dsn, *args, "--json").json()
    assert [(item["txn_date"], item["created_at"]) for item in as_json] == [
        ("2026-11-01T01:30:00", "2026-10-31T22:30:00Z")
    ]
    previous = ("export", "--from", "2026-10-31", "--to", "2026-10-31", "--json")
    assert run_cli(monkeypatch, capsys, database_dsn, *previous).json() == []


@pytest.mark.parametrize("layout", ["qiwi", "csv"])
def test_an_account_with_spaces_around_it_reconciles_with_its_own_export(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    layout: str,
) -> None:
    """The file's cells are read without the spaces around them; ours were compared
    with them, so our own export showed " 0957835959 " as a different account."""
    add_payment(database_dsn, "1", account=" 0957835959 ", txn_date="2026-11-28 12:00:00")
    add_payment(database_dsn, "2", account="42", txn_date="2026-11-28 13:00:00")
    args = ("export", "--from", "2026-11-28", "--to", "2026-11-28", "--format", layout)
    exported = run_cli(monkeypatch, capsys, database_dsn, *args)
    registry = tmp_path / "QIWI_4242_202611281.csv"
    registry.write_bytes(exported.out.encode())
    result = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(registry))
    assert result.code == 0, result.out
    # Spaces inside an account are no spaces around it.
    cell = "\t{}\t" if layout == "qiwi" else ",{},"
    registry.write_bytes(exported.out.replace(cell.format("42"), cell.format("4 2")).encode())
    differing = run_cli(monkeypatch, capsys, database_dsn, "reconcile", str(registry), "--json")
    assert [
        (item["our_account"], item["their_account"])
        for item in differing.json()["different_accounts"]
    ] == [("42", "4 2")]


FORMULAS = ['=HYPERLINK("http://x","click")', "+1", "-2+3", "@SUM(1)", "\tcmd", "'quoted"]


def test_csv_cells_a_spreadsheet_would_run_are_quoted(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A spreadsheet runs a cell starting with = + - @ (or a tab, a CR) as a formula:
    the CSV export wrote an account '=HYPERLINK(...)' raw. Such a cell now starts with
    a single quote (a leading quote too, so the quote can be taken off again), and the
    export still reconciles with the table."""
    for number, account in enumerate(FORMULAS, start=1):
        add_payment(database_dsn, str(number), account=account, txn_date="2026-11-28 12:00:00")
    add_payment(database_dsn, "=7", account="42", txn_date="2026-11-28 12:00:00")
    args = ("export", "--from", "2026-11-28", "--to", "2026-11-28")
    exported = run_cli(monkeypatch, capsys, database_dsn, *args)
    rows = list(csv.reader(io.StringIO(exported.out)))[1:]
    assert sorted(row[2] for row in rows) == sorted(
        ["'" + account for account in FORMULAS] + ["42"]
    )
    assert "'=7" in [row[0] for row in rows]
    # JSON and QIWI's layout are for programs: written as stored.
    as_json = run_cli(monkeypatch, capsys, database_dsn, *args, "--json").json()
    assert sorted(item["account"] for item in as_json) == sorted([*FORMULAS, "42"])
    qiwi = run_cli(monkeypatch, capsys, database_dsn, *args, "--format", "qiwi").out
    assert '\t=HYPERLINK("http://x","click")\t' in qiwi
    registry = tmp_path / "ours.csv"
    registry.write_text(exported.out)
    result = run_cli(
        monkeypatch, capsys, database_dsn, "reconcile", str(registry), "--date", "2026-11-28"
    )
    assert result.code == 0, result.out
