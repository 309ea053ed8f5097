"""``qiwi-gw status``: counts, the oldest pending payment, the last delivery and error."""

from __future__ import annotations

import pytest

from qiwi_gw.ops import status
from tests.support.cli import run_cli
from tests.support.rows import add_attempt, add_payment, execute


def test_an_empty_table(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "status")
    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0].split() == ["payments", "0"]
    assert "none: every payment is delivered" in lines[3]
    assert lines[4].endswith("none yet")
    assert lines[5].endswith("none recorded")
    assert "webhook URL     not set" in lines[6]


def seed(dsn: str) -> None:
    add_payment(dsn, "101", created_ago="3 days", delivered_ago="3 days")
    newest = add_payment(dsn, "102", created_ago="2 hours", delivered_ago="10 minutes")
    add_payment(dsn, "103", created_ago="5 minutes", delivered_ago="4 minutes", attempts=0)
    stuck = add_payment(
        dsn,
        "201",
        created_ago="3 hours",
        delivered_ago=None,
        attempts=4,
        next_attempt_in="5 minutes",
        last_error="HTTP 503",
    )
    add_payment(
        dsn,
        "202",
        created_ago="1 minute",
        delivered_ago=None,
        attempts=0,
        next_attempt_in="-1 second",
    )
    add_attempt(dsn, newest, 1, ago="11 minutes", error="timeout after 15.0 s")
    add_attempt(dsn, newest, 2, ago="10 minutes", http_status=200)
    add_attempt(dsn, stuck, 4, ago="1 minute", http_status=503, response="Service Unavailable")
    add_attempt(dsn, stuck, 3, ago="2 minutes", http_status=502)


def test_counts_oldest_pending_last_delivery_and_error(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "status", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["counts"] == {
        "total": {"value": 5, "estimate": False},
        "received": {"value": 2, "estimate": False, "due_now": 1},
        "completed": {"value": 3, "estimate": False},
    }
    oldest = report["oldest_pending"]
    assert (oldest["txn_id"], oldest["attempts"]) == ("201", 4)
    assert 3 * 3600 - 5 <= oldest["age_seconds"] <= 3 * 3600 + 5
    assert report["last_delivery"]["txn_id"] == "103"
    assert 235 <= report["last_delivery"]["age_seconds"] <= 245
    last_error = report["last_error"]
    assert (last_error["txn_id"], last_error["attempt"], last_error["http_status"]) == (
        "201",
        4,
        503,
    )
    assert report["webhook_url_configured"] is False


def test_the_table_says_what_is_exact(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(database_dsn)
    result = run_cli(monkeypatch, capsys, database_dsn, "status")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["payments", "5"]
    assert lines[1].split() == ["0", "received", "2", "(exact;", "1", "due", "now)"]
    assert lines[2].split() == ["1", "completed", "3", "(exact)"]
    assert lines[3].startswith("oldest pending  txn_id 201 (prv_txn ")
    assert "3h 00m ago; 4 attempt(s)" in lines[3]
    assert lines[4].startswith("last delivery   txn_id 103 ")
    assert lines[5].startswith("last error      txn_id 201 ")
    assert lines[5].endswith(": HTTP 503 (attempt 4)")


def test_a_failure_by_error_text(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    payment = add_payment(database_dsn, "301", delivered_ago=None, next_attempt_in="1 minute")
    add_attempt(database_dsn, payment, 1, ago="30 seconds", error="ConnectionRefusedError")
    add_attempt(database_dsn, payment, 2, ago="2 hours", http_status=500)
    result = run_cli(monkeypatch, capsys, database_dsn, "status", "--json")
    assert result.json()["last_error"]["error"] == "ConnectionRefusedError"


def test_the_webhook_url_is_shown_without_credentials(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://user:secret@hooks.example/qiwi?token=abc"
    result = run_cli(monkeypatch, capsys, database_dsn, "status", QIWI_WEBHOOK_URL=url)
    assert "webhook URL     configured: https://hooks.example/qiwi" in result.out
    assert "secret" not in result.out
    assert "abc" not in result.out
    as_json = run_cli(
        monkeypatch, capsys, database_dsn, "status", "--json", QIWI_WEBHOOK_URL=url
    ).json()
    assert as_json["webhook_url_configured"] is True
    assert as_json["webhook_url"] == "https://hooks.example/qiwi"


def test_past_the_bound_the_total_is_the_planners_estimate(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(
        database_dsn,
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
        " SELECT '1', g::text, 1, 1, now() FROM generate_series(1, 300) AS g",
    )
    add_payment(database_dsn, "999", delivered_ago=None, next_attempt_in="1 minute")
    execute(database_dsn, "VACUUM ANALYZE qiwi_transaction")
    monkeypatch.setattr(status, "EXACT_TOTAL_UP_TO", 100)
    report = run_cli(monkeypatch, capsys, database_dsn, "status", "--json").json()
    counts = report["counts"]
    assert counts["total"]["estimate"] is True
    assert 250 <= counts["total"]["value"] <= 350
    assert counts["received"] == {"value": 1, "estimate": False, "due_now": 0}
    assert counts["completed"] == {"value": counts["total"]["value"] - 1, "estimate": True}
    table = run_cli(monkeypatch, capsys, database_dsn, "status").out.splitlines()
    assert table[0].startswith("payments        ~")
    assert table[0].endswith("(estimate: planner statistics)")
    assert table[2].split()[2].startswith("~")
