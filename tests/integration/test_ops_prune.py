"""``qiwi-gw prune-log``: old qiwi_http_log rows go in batches; payments stay."""

from __future__ import annotations

import pytest

from tests.support.cli import run_cli
from tests.support.rows import add_payment, execute


def add_log(dsn: str, age: str, count: int = 1) -> list[int]:
    rows = execute(
        dsn,
        "INSERT INTO qiwi_http_log (ip, url, method, headers, body, created_at)"
        " SELECT '79.142.16.1', '/payment', 'GET', '{}', '',"
        " (now() AT TIME ZONE 'UTC') - %s::interval FROM generate_series(1, %s)"
        " RETURNING id",
        age,
        count,
    )
    return [found[0] for found in rows]


def remaining(dsn: str) -> int:
    count: int = execute(dsn, "SELECT count(*) FROM qiwi_http_log")[0][0]
    return count


def test_only_rows_older_than_the_age_go(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = add_log(database_dsn, "200 days", 3)
    add_log(database_dsn, "91 days")
    add_log(database_dsn, "89 days")
    add_log(database_dsn, "1 minute", 2)
    payment = add_payment(database_dsn, "1")
    execute(database_dsn, "UPDATE qiwi_transaction SET http_log_id = %s", old[0])
    result = run_cli(monkeypatch, capsys, database_dsn, "prune-log", "--older-than", "90d")
    assert result.code == 0, result.err
    assert result.out.startswith("deleted 4 qiwi_http_log row(s) older than 90d (created before")
    assert result.out.rstrip().endswith("in 1 batch(es)")
    assert remaining(database_dsn) == 3
    # No foreign key: the payment stays, pointing at a row that is gone.
    assert execute(database_dsn, "SELECT id, http_log_id FROM qiwi_transaction") == [
        (payment, old[0])
    ]


def test_in_batches(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_log(database_dsn, "3 hours", 5)
    add_log(database_dsn, "1 hour")
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "prune-log",
        "--older-than",
        "2h",
        "--batch-size",
        "2",
        "--json",
    )
    assert result.code == 0, result.err
    report = result.json()
    assert (report["deleted"], report["batches"], report["older_than_seconds"]) == (5, 3, 7200)
    assert report["created_before"].endswith("Z")
    assert remaining(database_dsn) == 1


def test_minutes(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_log(database_dsn, "31 minutes")
    add_log(database_dsn, "29 minutes")
    result = run_cli(monkeypatch, capsys, database_dsn, "prune-log", "--older-than", "30m")
    assert result.out.startswith("deleted 1 qiwi_http_log row(s) older than 30m")
    assert remaining(database_dsn) == 1


@pytest.mark.parametrize("age", ["90", "0d", "1y", "-5d", "d", "1.5d", "90 days"])
def test_a_bad_age_is_one_line(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    age: str,
) -> None:
    add_log(database_dsn, "1000 days")
    result = run_cli(monkeypatch, capsys, database_dsn, "prune-log", "--older-than", age)
    assert result.code == 2
    assert result.out == ""
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith("qiwi-gw prune-log: argument --older-than:")
    assert remaining(database_dsn) == 1
