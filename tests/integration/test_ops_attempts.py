"""``qiwi-gw attempts CODE``: one payment's delivery history."""

from __future__ import annotations

import pytest

from tests.support.cli import run_cli
from tests.support.rows import add_attempt, add_payment


def test_the_history_in_order(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    payment = add_payment(
        database_dsn,
        "5551",
        account="0957835959",
        amount="10.45",
        attempts=3,
        txn_date="2026-11-28 12:01:33",
    )
    add_attempt(
        database_dsn, payment, 2, ago="30 minutes", error="timeout after 15.0 s", duration_ms=15003
    )
    add_attempt(
        database_dsn, payment, 1, ago="40 minutes", http_status=503, response="Service\nUnavailable"
    )
    add_attempt(database_dsn, payment, 3, ago="20 minutes", http_status=200, response="ok")
    add_attempt(database_dsn, add_payment(database_dsn, "5552"), 1, ago="1 minute", http_status=500)
    result = run_cli(monkeypatch, capsys, database_dsn, "attempts", "5551")
    assert result.code == 0, result.err
    head, history = result.out.split("\n\n")
    fields = dict(
        line.split(None, 1) for line in head.replace("last error", "last_error").splitlines()
    )
    assert fields["txn_id"] == "5551"
    assert fields["prv_txn"] == str(payment)
    assert fields["account"] == "0957835959"
    assert fields["sum"] == "10.45"
    assert fields["txn_date"] == "2026-11-28 12:01:33 (QIWI's clock)"
    assert fields["status"].startswith("1 completed, delivered ")
    assert fields["attempts"] == "3"
    lines = history.splitlines()
    assert lines[0].split() == ["attempt", "started", "(UTC)", "duration", "result", "response"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3"]
    assert "HTTP 503" in lines[2]
    assert lines[2].endswith("Service Unavailable")
    assert "15003 ms" in lines[3]
    assert "timeout after 15.0 s" in lines[3]
    assert "HTTP 200 (delivered)" in lines[4]

    report = run_cli(monkeypatch, capsys, database_dsn, "attempts", "5551", "--json").json()
    assert report["payment"]["txn_id"] == "5551"
    assert report["payment"]["status"] == 1
    assert [item["attempt"] for item in report["attempts"]] == [1, 2, 3]
    assert report["attempts"][0]["response_excerpt"] == "Service\nUnavailable"
    assert report["attempts"][1]["error"] == "timeout after 15.0 s"


def test_a_pending_payment_without_attempts(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_payment(database_dsn, "7", delivered_ago=None, attempts=0, next_attempt_in="2 minutes")
    result = run_cli(monkeypatch, capsys, database_dsn, "attempts", "7")
    assert result.code == 0
    assert "status      0 received, next attempt " in result.out
    assert result.out.rstrip().endswith("kept QIWI_ATTEMPT_RETENTION_DAYS days)")


def test_an_unknown_code_is_one_line_and_exit_1(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "attempts", "404")
    assert result.code == 1
    assert result.out == ""
    assert result.err_lines == ["qiwi-gw attempts: no payment with txn_id 404"]


def test_an_empty_code_is_a_bad_argument(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "attempts", " ")
    assert result.code == 2
    assert result.err_lines == ["qiwi-gw attempts: CODE is empty; give QIWI's txn_id"]
