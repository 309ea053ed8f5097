"""Chaos 2: PostgreSQL restarts under load, then every gateway connection is cut."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest

from tests.support.backend import Backend
from tests.support.chaos import QUIET, TIMEOUT, assert_money_invariants, report, scale
from tests.support.gateway import Gateway
from tests.support.postgres import disposable_postgres
from tests.support.qiwi import Qiwi

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT), QUIET]


async def first_zero_after(qiwi: Qiwi, base: str, since: float, within: float) -> float:
    """Seconds from ``since`` until a new pay is answered 0."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(within):
        while True:
            answer = await qiwi.pay(session, base, qiwi.new_txn())
            if answer is not None and answer.result == "0":
                return time.monotonic() - since
            await asyncio.sleep(0.05)  # the database is coming back: poll


async def test_database_restart_and_cut_connections_under_load() -> None:
    qiwi = Qiwi()
    with disposable_postgres() as postgres:
        async with Backend() as hook:
            gateway = Gateway(postgres.dsn(), hook.url, QIWI_DB_TIMEOUT="1")
            await gateway.start()
            stop = asyncio.Event()
            load = asyncio.create_task(
                qiwi.load([gateway.base], seconds=600, concurrency=8, stop=stop)
            )
            await asyncio.sleep(scale(1, 5))
            answers_before = len(qiwi.answered)

            # 1. A fast shutdown, an outage, a start.
            await asyncio.to_thread(postgres.stop, "fast")
            outage_started = len(qiwi.answered)
            await asyncio.sleep(scale(2, 10))
            answered_during_outage = len(qiwi.answered) - outage_started
            await asyncio.to_thread(postgres.start)
            back = time.monotonic()
            recovery = await first_zero_after(qiwi, gateway.base, back, within=30)
            assert recovery <= 5, f"service back {recovery:.1f} s after the database"

            # 2. Every connection of the gateway's cut at once, the listener's included.
            await asyncio.sleep(scale(1, 5))
            admin = await asyncpg.connect(postgres.dsn())
            try:
                cut = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 'qiwi-gw'"
                )
            finally:
                await admin.close()
            cut_at = time.monotonic()
            recovery_cut = await first_zero_after(qiwi, gateway.base, cut_at, within=30)
            await asyncio.sleep(scale(1, 5))
            stop.set()
            await load

            await qiwi.repeat_unanswered(gateway.base)
            stored = await assert_money_invariants(qiwi, postgres.dsn())
            # Claims cut off with the database come back after their lease: the webhook
            # timeout + 6 x QIWI_DB_TIMEOUT + 10 s, 37 s with the harness's settings.
            await hook.wait_delivered(set(stored), within=scale(60, 120))
            assert await gateway.terminate() == 0
    # Answers 0 can only come from before the outage or from requests that
    # committed before the shutdown completed; none after it.
    assert answered_during_outage <= 8
    report(
        "PostgreSQL fast restart, then pg_terminate_backend of every gateway connection",
        load="8 connections, closed loop",
        faults=f"fast shutdown, {scale(2, 10):g} s outage, start; {cut} connections cut",
        requests=qiwi.sent,
        answered_0=len(qiwi.answered),
        answered_0_before_fault=answers_before,
        stored=len(stored),
        lost=0,
        doubled=0,
        delivered=len(hook.delivered()),
        duplicate_deliveries=hook.duplicates(),
        worst_recovery_s=round(max(recovery, recovery_cut), 2),
    )
