"""Each migration applies, rolls back and applies again (the stairway)."""

from __future__ import annotations

import psycopg

from qiwi_gw import migrations


def columns(dsn: str, schema: str = "public") -> set[tuple[str, str, str]]:
    """Every column of the gateway's tables with its type: the schema's fingerprint."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name LIKE 'qiwi%%'",
            (schema,),
        ).fetchall()
    return {(row[0], row[1], row[2]) for row in rows}


def tables(dsn: str, schema: str = "public") -> set[str]:
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name LIKE 'qiwi%%'",
            (schema,),
        ).fetchall()
    return {row[0] for row in rows}


def test_stairway(empty_database_dsn: str) -> None:
    expected = migrations.expected_ids()
    assert expected == [
        "0001.initial-tables",
        "0002.webhook-delivery",
        "0003.operator-indexes",
        "0004.console-indexes",
        "0005.notify-channel",
        "0006.outage-hold",
    ]
    for step, migration_id in enumerate(expected, start=1):
        assert migrations.apply(empty_database_dsn, "public", limit=1) == [migration_id]
        after_up = columns(empty_database_dsn)
        assert migrations.rollback(empty_database_dsn, "public") == [migration_id]
        assert migrations.apply(empty_database_dsn, "public", limit=1) == [migration_id]
        assert columns(empty_database_dsn) == after_up, f"step {step}"
    assert tables(empty_database_dsn) == {
        "qiwi_http_log",
        "qiwi_transaction",
        "qiwi_webhook_attempt",
    }
    assert migrations.apply(empty_database_dsn, "public") == []


def test_tables_go_into_pg_schema(empty_database_dsn: str) -> None:
    assert migrations.apply(empty_database_dsn, "payments") == migrations.expected_ids()
    assert "qiwi_transaction" in tables(empty_database_dsn, "payments")
    assert tables(empty_database_dsn, "public") == set()
