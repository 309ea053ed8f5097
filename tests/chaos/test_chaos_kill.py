"""Chaos 1: the gateway is killed with SIGKILL under load, five times in a row."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.backend import Backend
from tests.support.chaos import QUIET, TIMEOUT, assert_money_invariants, report, scale
from tests.support.gateway import Gateway
from tests.support.qiwi import Qiwi

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT), QUIET]


async def test_kill_9_under_load_five_times(database_dsn: str) -> None:
    qiwi = Qiwi()
    worst_recovery = 0.0
    async with Backend() as hook:
        gateway = Gateway(database_dsn, hook.url)
        await gateway.start()
        for _ in range(5):
            stop = asyncio.Event()
            load = asyncio.create_task(
                qiwi.load([gateway.base], seconds=60, concurrency=16, stop=stop)
            )
            # The fault is time-based on purpose: kill while requests are in flight.
            await asyncio.sleep(scale(0.7, 4.0))
            gateway.kill()
            await gateway.wait()
            killed_at = time.monotonic()
            stop.set()
            await load
            await gateway.start()
            worst_recovery = max(worst_recovery, time.monotonic() - killed_at)
        unanswered = len(qiwi.unanswered)
        # QIWI repeats every pay that got no 0; each must now get one.
        await qiwi.repeat_unanswered(gateway.base)
        stored = await assert_money_invariants(qiwi, database_dsn)
        assert set(qiwi.answered) == set(stored)
        # A killed process's claims come back after their lease: the webhook timeout
        # + 6 x QIWI_DB_TIMEOUT + 10 s, 37 s with the harness's settings.
        await hook.wait_delivered(set(stored), within=scale(60, 120))
        assert await gateway.terminate() == 0
    report(
        "kill -9 under load, 5 times",
        load="16 connections, closed loop",
        faults="SIGKILL x5",
        requests=qiwi.sent,
        answered_0=len(qiwi.answered),
        unanswered_then_repeated=unanswered,
        stored=len(stored),
        lost=0,
        doubled=0,
        delivered=len(hook.delivered()),
        duplicate_deliveries=hook.duplicates(),
        worst_recovery_s=round(worst_recovery, 2),
    )
