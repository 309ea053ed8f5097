"""``qiwi-gw resend``: make payments due now; a delivered one is sent once more."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from qiwi_gw.ops import resend
from tests.support.app import ClientFactory
from tests.support.backend import Backend
from tests.support.cli import run_cli
from tests.support.rows import add_payment, execute, row


def test_pending_and_delivered_rows_become_due(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_payment(database_dsn, "11", delivered_ago=None, attempts=5, next_attempt_in="10 minutes")
    add_payment(database_dsn, "12", delivered_ago="1 hour", attempts=1)
    add_payment(database_dsn, "13", delivered_ago=None, next_attempt_in="20 s", locked_for="20 s")
    untouched = row(database_dsn, "13")
    result = run_cli(
        monkeypatch, capsys, database_dsn, "resend", "11", "12", "13", QIWI_WEBHOOK_URL="http://h/"
    )
    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0].split() == ["txn_id", "prv_txn", "was", "now"]
    assert lines[2].startswith("11")
    assert lines[2].endswith("pending    due now")
    assert lines[3].endswith("completed  due now: will be sent once more")
    assert lines[4].endswith("pending    being sent now")

    pending = row(database_dsn, "11")
    assert (pending["status"], pending["due"], pending["attempts"]) == (0, True, 5)
    delivered = row(database_dsn, "12")
    assert (delivered["status"], delivered["due"], delivered["delivered_at"]) == (0, True, None)
    assert delivered["attempts"] == 1  # the history goes on: the next attempt is number 2
    assert row(database_dsn, "13") == untouched


def test_resend_notifies_the_gateways_channel(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    payment = add_payment(database_dsn, "21", delivered_ago="1 minute")
    with psycopg.connect(database_dsn, autocommit=True) as listener:
        listener.execute('LISTEN "qiwi_gw:public"')
        result = run_cli(monkeypatch, capsys, database_dsn, "resend", "21")
        assert result.code == 0, result.err
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [(note.channel, note.payload) for note in notes] == [("qiwi_gw:public", str(payment))]


def test_unknown_codes_are_listed_and_exit_1(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_payment(database_dsn, "31", delivered_ago="1 minute")
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "resend",
        "31",
        "404",
        "405",
        "--json",
        QIWI_WEBHOOK_URL="http://h/",
    )
    assert result.code == 1
    report = result.json()
    assert report["not_found"] == ["404", "405"]
    assert [item["now"] for item in report["payments"]] == [
        "due now: will be sent once more",
        "-",
        "-",
    ]
    assert result.err_lines == ["qiwi-gw resend: no payment with txn_id 404, 405"]
    assert row(database_dsn, "31")["status"] == 0  # the known one is resent all the same


def test_without_a_webhook_url_here_it_says_so(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_payment(database_dsn, "41", delivered_ago="1 minute")
    result = run_cli(monkeypatch, capsys, database_dsn, "resend", "41")
    assert result.code == 0
    assert len(result.err_lines) == 1
    assert "QIWI_WEBHOOK_URL is not set here" in result.err


def test_all_pending_in_batches(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(resend, "BATCH", 2)
    for code in ("51", "52", "53", "54", "55"):
        add_payment(database_dsn, code, delivered_ago=None, attempts=3, next_attempt_in="1 hour")
    add_payment(database_dsn, "56", delivered_ago=None, attempts=0, next_attempt_in="-1 minute")
    add_payment(database_dsn, "57", delivered_ago=None, next_attempt_in="20 s", locked_for="20 s")
    execute(
        database_dsn,
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, next_attempt_at)"
        " VALUES ('a', '58', 1, 0, now(), NULL)",
    )
    add_payment(database_dsn, "59", delivered_ago="1 hour")
    result = run_cli(
        monkeypatch,
        capsys,
        database_dsn,
        "resend",
        "--all-pending",
        "--json",
        QIWI_WEBHOOK_URL="http://h/",
    )
    assert result.code == 0, result.err
    assert result.json() == {"made_due": 6, "pending": 8, "due_now": 7}
    for code in ("51", "52", "53", "54", "55", "56", "58"):
        assert row(database_dsn, code)["due"] is True, code
    assert row(database_dsn, "57")["due"] is False  # being sent: left to that attempt
    assert row(database_dsn, "59")["status"] == 1  # delivered ones only by name

    table = run_cli(monkeypatch, capsys, database_dsn, "resend", "--all-pending")
    assert table.out.startswith("0 payment(s) made due now; 8 pending, 7 of them due")


@pytest.mark.parametrize("how", [("61",), ("--all-pending",)])
def test_a_row_held_by_an_outage_is_held_no_longer_once_resent(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: tuple[str, ...],
) -> None:
    """Made due by the operator, by name or with every pending row: the held gauge
    (qiwi_webhook_held_payments) no longer counts it."""
    add_payment(database_dsn, "61", delivered_ago=None, attempts=2, next_attempt_in="1 hour")
    execute(database_dsn, "UPDATE qiwi_transaction SET held_by_outage = true WHERE code = '61'")
    result = run_cli(
        monkeypatch, capsys, database_dsn, "resend", *how, QIWI_WEBHOOK_URL="http://h/"
    )
    assert result.code == 0, result.err
    held = row(database_dsn, "61")
    assert (held["due"], held["held_by_outage"]) == (True, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give the txn_ids to resend, or --all-pending"),
        (("1", "--all-pending"), "give CODEs or --all-pending, not both"),
        (("",), "give the txn_ids to resend, or --all-pending"),
    ],
)
def test_what_to_resend_must_be_said_once(
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    result = run_cli(monkeypatch, capsys, database_dsn, "resend", *args)
    assert result.code == 2
    assert result.err_lines == [f"qiwi-gw resend: {message}"]


async def completed(db: Any) -> None:
    """Until the dispatcher has recorded the delivery (status 1)."""
    for _ in range(500):
        if await db.fetchval("SELECT status FROM qiwi_transaction") == 1:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the delivery was not recorded")


async def test_a_running_gateway_sends_a_resent_payment_once_more_at_once(
    make_client: ClientFactory,
    db: Any,
    database_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The sweep is an hour away: only the NOTIFY can bring the second delivery."""
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_SWEEP_INTERVAL="3600")
        params = {
            "command": "pay",
            "txn_id": "777",
            "txn_date": "20261129120000",
            "account": "42",
            "sum": "45.00",
        }
        await client.get("/payment", params=params)
        await backend.wait_delivered({"777"})
        await completed(db)
        result = await asyncio.to_thread(
            run_cli,
            monkeypatch,
            capsys,
            database_dsn,
            "resend",
            "777",
            QIWI_WEBHOOK_URL=backend.url,
        )
        assert result.code == 0, result.err
        await backend.wait_received(2, within=5)
        await completed(db)
        await asyncio.sleep(0.3)
        await client.close()
    assert [item.body["code"] for item in backend.received] == ["777", "777"]
    row = await db.fetchrow("SELECT status, attempts, delivered_at FROM qiwi_transaction")
    assert (row["status"], row["attempts"]) == (1, 2)
    assert row["delivered_at"] is not None
