"""``qiwi-gw`` as an operator runs it: one-line errors, working commands."""

from __future__ import annotations

import pytest

from qiwi_gw import migrations
from tests.support.cli import run_process as run


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"QIWI_CHECK_URL": "not a url"}, "QIWI_CHECK_URL"),
        ({"QIWI_MAX_SUM": "lots"}, "QIWI_MAX_SUM"),
        ({"QIWI_ALLOWED_IPS": "10.0.0.0/33"}, "QIWI_ALLOWED_IPS"),
        ({"QIWI_ACCOUNT_REGEX": "[0-9"}, "QIWI_ACCOUNT_REGEX"),
        ({"MS_TIMEZONE": "Mars/Olympus"}, "MS_TIMEZONE"),
        ({"HTTP_AUTH_USERNAME": "qiwi"}, "HTTP_AUTH_PASSWORD"),
        ({"QIWI_WEBHOOK_SECRET": "plain"}, "QIWI_WEBHOOK_SECRET"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    # The embedded database asked for: "no database configured" is not the error here.
    result = run("serve", env={"QIWI_EMBEDDED_DB": "true", **env})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]


def test_unreachable_database_is_one_line(empty_database_dsn: str) -> None:
    result = run("migrate", env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("qiwi-gw: cannot migrate")


def test_migrate_applies_then_has_nothing_to_do(empty_database_dsn: str) -> None:
    first = run("migrate", env={"DATABASE_URL": empty_database_dsn})
    assert first.returncode == 0, first.stderr
    assert f"applied {len(migrations.expected_ids())} migration(s)" in first.stdout
    second = run("migrate", env={"DATABASE_URL": empty_database_dsn})
    assert "none pending" in second.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run("fly", env={})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
