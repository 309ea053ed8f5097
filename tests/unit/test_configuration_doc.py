"""docs/configuration.md and ``qiwi-gw serve --help`` are generated from settings.VARIABLES."""

from __future__ import annotations

from pathlib import Path

import pytest

from qiwi_gw import cli
from qiwi_gw.settings import VARIABLES, WebhookSettings, configuration_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_doc_is_generated_from_the_settings_table() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == configuration_markdown(), (
        "docs/configuration.md differs from src/qiwi_gw/settings.py's VARIABLES; "
        "regenerate it: .venv/bin/python -m qiwi_gw.settings > docs/configuration.md"
    )


def test_serve_help_lists_every_variable_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["serve", "--help"]) == 0
    shown = capsys.readouterr().out
    for variable in VARIABLES:
        assert f"{variable.name} (default: {variable.shown_default})" in shown


def test_dataclass_defaults_are_the_tables() -> None:
    # One home for a default: a changed table entry changes the dataclass too.
    by_name = {variable.name: variable.default for variable in VARIABLES}
    assert WebhookSettings().retry_max == by_name["QIWI_WEBHOOK_RETRY_MAX"]
    assert WebhookSettings().concurrency == by_name["QIWI_WEBHOOK_CONCURRENCY"]


def test_every_variable_is_declared_once() -> None:
    names = [variable.name for variable in VARIABLES]
    assert len(names) == len(set(names))
