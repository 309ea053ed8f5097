"""``qiwi-gw`` as the operator runs it: in this process (``run_cli``) or as a process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from qiwi_gw import cli


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.strip().splitlines()


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dsn: str,
    *args: str,
    **env: str,
) -> Result:
    """``qiwi-gw ARGS`` in this process, on ``dsn``; the root logger is left as it was."""
    for name in list(os.environ):
        if name.startswith(("PG_", "QIWI_", "HTTP_AUTH")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", dsn)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m qiwi_gw ARGS`` as a real process, with only ``env`` configuring it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG_", "QIWI_", "HTTP_AUTH"))}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "qiwi_gw", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
