"""``qiwi-gw pending``: undelivered payments, oldest first, with their delivery state."""

from __future__ import annotations

import pytest

from tests.support.cli import run_cli
from tests.support.rows import add_payment


def seed(dsn: str) -> None:
    add_payment(dsn, "100", created_ago="1 day")  # delivered: never listed
    add_payment(
        dsn,
        "201",
        account="acc-201",
        amount="1500.5",
        created_ago="3 hours",
        delivered_ago=None,
        attempts=7,
        next_attempt_in="10 minutes",
        last_error="HTTP 503",
    )
    add_payment(
        dsn, "202", created_ago="2 hours", delivered_ago=None, attempts=0, next_attempt_in="-1 s"
    )
    add_payment(
        dsn,
        "203",
        created_ago="1 hour",
        delivered_ago=None,
        attempts=2,
        next_attempt_in="30 seconds",
        locked_for="25 seconds",
        last_error="timeout after 15.0 s",
    )


def test_the_pending_payments_oldest_first(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "pending")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "txn_id",
        "prv_txn",
        "account",
        "sum",
        "stored",
        "(UTC)",
        "age",
        "attempts",
        "next",
        "attempt",
        "last",
        "error",
    ]
    assert [line.split()[0] for line in lines[2:5]] == ["201", "202", "203"]
    first = lines[2]
    assert "acc-201" in first
    assert "1500.50" in first
    assert " 3h 00m " in first
    assert "in 9m 5" in first
    assert first.endswith("HTTP 503")
    assert "due now" in lines[3]
    assert "sending now" in lines[4]
    assert lines[5] == "3 pending (1 due now); showing 3"


def test_limit_shows_the_oldest(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "pending", "--limit", "1")
    lines = result.out.splitlines()
    assert len(lines) == 4
    assert lines[2].split()[0] == "201"
    assert lines[3] == "3 pending (1 due now); showing the oldest 1"


def test_json(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "pending", "--json", "--limit", "2")
    report = result.json()
    assert (report["total"], report["due_now"], report["shown"]) == (3, 1, 2)
    first, second = report["payments"]
    assert first["txn_id"] == "201"
    assert first["sum"] == "1500.50"
    assert first["attempts"] == 7
    assert first["last_error"] == "HTTP 503"
    assert first["in_flight"] is False
    assert first["created_at"].endswith("Z")
    assert second["txn_id"] == "202"
    assert second["last_attempt_at"] is None


def test_nothing_pending(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_payment(database_dsn, "100")
    result = run_cli(monkeypatch, capsys, database_dsn, "pending")
    assert result.code == 0
    assert result.out == "no pending payments: every payment is delivered\n"
    report = run_cli(monkeypatch, capsys, database_dsn, "pending", "--json").json()
    assert report["payments"] == []
    assert report["total"] == 0


@pytest.mark.parametrize("limit", ["0", "-3", "ten", "1.5"])
def test_a_bad_limit_is_one_line(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    limit: str,
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "pending", "--limit", limit)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("qiwi-gw pending: argument --limit:")
