"""Chaos 4: three gateways on one database, one killed mid-run."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from tests.support.backend import Backend, Received
from tests.support.chaos import QUIET, TIMEOUT, assert_money_invariants, report, scale
from tests.support.gateway import Gateway
from tests.support.qiwi import Qiwi

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT), QUIET]


async def take_a_moment(_received: Received) -> web.StreamResponse:
    """A backend's own work: a delivery spans an await, so two deliveries of one payment
    in flight at once overlap in time and are counted (answered at once, they never
    could be)."""
    await asyncio.sleep(0.005)
    return web.Response(text="ok")


async def test_three_replicas_one_killed(database_dsn: str) -> None:
    qiwi = Qiwi()
    async with Backend(take_a_moment) as hook:
        replicas = [Gateway(database_dsn, hook.url) for _ in range(3)]
        await asyncio.gather(*(replica.start() for replica in replicas))
        stop = asyncio.Event()
        survivors = [replica.base for replica in replicas[1:]]
        load = asyncio.create_task(
            qiwi.load([r.base for r in replicas], seconds=600, concurrency=12, stop=stop)
        )
        await asyncio.sleep(scale(1, 5))
        replicas[0].kill()
        await replicas[0].wait()
        await asyncio.sleep(scale(1, 5))
        stop.set()
        await load
        await qiwi.repeat_unanswered(survivors[0])
        stored = await assert_money_invariants(qiwi, database_dsn)
        # The killed replica's claims expire by themselves (lease = timeout + 10 s).
        await hook.wait_delivered(set(stored), within=60)
        for replica in replicas[1:]:
            assert await replica.terminate() == 0
    overlapping = hook.overlapping()
    assert overlapping == 0, f"{overlapping} deliveries of one payment overlapped in time"
    report(
        "three replicas, one killed",
        load="12 connections, round-robin over 3 gateways",
        faults="SIGKILL of one replica mid-run",
        requests=qiwi.sent,
        answered_0=len(qiwi.answered),
        stored=len(stored),
        lost=0,
        doubled=0,
        delivered=len(hook.delivered()),
        overlapping_deliveries=overlapping,
        duplicate_deliveries=hook.duplicates(),
    )
