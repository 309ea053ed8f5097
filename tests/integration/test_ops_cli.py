"""The operator commands as an operator runs them: real processes, one-line errors."""

from __future__ import annotations

import re

import pytest

from tests.support.cli import run_process
from tests.support.rows import add_payment

UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none"


def test_status_and_pending_as_processes(database_dsn: str) -> None:
    add_payment(database_dsn, "1")
    add_payment(database_dsn, "2", delivered_ago=None, next_attempt_in="1 minute")
    status = run_process("status", env={"DATABASE_URL": database_dsn})
    assert status.returncode == 0, status.stderr
    assert status.stderr == ""
    assert status.stdout.splitlines()[0].split() == ["payments", "2"]
    pending = run_process("pending", "--limit", "5", env={"DATABASE_URL": database_dsn})
    assert pending.returncode == 0, pending.stderr
    assert pending.stdout.splitlines()[2].split()[0] == "2"


def test_every_command_is_listed_in_help() -> None:
    result = run_process("--help", env={})
    assert result.returncode == 0
    for command in ("status", "pending", "attempts", "resend", "export", "reconcile", "prune-log"):
        assert re.search(rf"^    {command}\b", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--verbose"),
        ("pending", "--limit", "0"),
        ("attempts",),
        ("resend",),
        ("resend", "1", "--all-pending"),
        ("export", "--from", "2026-13-01", "--to", "2026-12-01"),
        ("export", "--from", "2026-12-02", "--to", "2026-12-01"),
        ("reconcile",),
        ("reconcile", "/nonexistent/registry.csv"),
        ("prune-log",),
        ("prune-log", "--older-than", "soon"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    """Checked before any database is asked: here none is reachable."""
    result = run_process(*args, env={"DATABASE_URL": UNREACHABLE})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    # argparse names the sub-command, except for an option no parser knows.
    assert lines[0].startswith(f"qiwi-gw {args[0]}: " if args[0] != "status" else "qiwi-gw: ")


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("pending",),
        ("attempts", "1"),
        ("resend", "--all-pending"),
        ("export", "--from", "2026-11-01", "--to", "2026-11-30"),
        ("prune-log", "--older-than", "90d"),
    ],
)
def test_an_unreachable_database_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    result = run_process(*args, env={"DATABASE_URL": UNREACHABLE, "QIWI_DB_TIMEOUT": "2"})
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qiwi-gw: cannot connect to postgresql://nobody@127.0.0.1:9/none:")


def test_a_database_without_the_tables_says_to_migrate(empty_database_dsn: str) -> None:
    result = run_process("status", env={"DATABASE_URL": empty_database_dsn})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qiwi-gw: UndefinedTableError: relation ")
    assert lines[0].endswith("(is schema 'public' migrated? run: qiwi-gw migrate)")


def test_a_bad_setting_is_a_configuration_error(database_dsn: str) -> None:
    result = run_process("status", env={"DATABASE_URL": database_dsn, "PG_SCHEMA": "Bad-Name"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "qiwi-gw: configuration error: PG_SCHEMA: 'Bad-Name' is not a plain lower-case identifier"
    ]


def test_the_schema_of_pg_schema_is_used(empty_database_dsn: str) -> None:
    from qiwi_gw import migrations

    migrations.apply(empty_database_dsn, "payments")
    joiner = "&" if "?" in empty_database_dsn else "?"  # the embedded DSN has a query
    add_payment(f"{empty_database_dsn}{joiner}options=-csearch_path%3Dpayments", "9")
    result = run_process(
        "status", "--json", env={"DATABASE_URL": empty_database_dsn, "PG_SCHEMA": "payments"}
    )
    assert result.returncode == 0, result.stderr
    assert '"value": 1' in result.stdout
