"""Chaos 3: the merchant's backend misbehaves; /payment must not notice."""

from __future__ import annotations

import asyncio
import random

import pytest
from aiohttp import web

from tests.support.backend import Backend, Received, accept
from tests.support.chaos import QUIET, TIMEOUT, assert_money_invariants, report, scale
from tests.support.gateway import Gateway
from tests.support.qiwi import Qiwi

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(TIMEOUT), QUIET]


async def flapping(_received: Received) -> web.StreamResponse:
    return web.Response(status=random.choice([200, 500, 503]))


async def slow(_received: Received) -> web.StreamResponse:
    await asyncio.sleep(scale(1, 5))  # a slow backend is the fault being injected
    return web.Response()


async def hanging(_received: Received) -> web.StreamResponse:
    await asyncio.sleep(scale(3, 20))  # past QIWI_WEBHOOK_TIMEOUT
    return web.Response()


async def redirecting(_received: Received) -> web.StreamResponse:
    raise web.HTTPFound("/elsewhere")


async def test_backend_down_flapping_slow_hanging_redirecting(database_dsn: str) -> None:
    phase_seconds = scale(1.5, 10)
    async with Backend() as hook:
        gateway = Gateway(database_dsn, hook.url, QIWI_WEBHOOK_TIMEOUT=str(scale(1, 10)))
        await gateway.start()

        async def phase(qiwi: Qiwi, seconds: float) -> None:
            await qiwi.load([gateway.base], seconds=seconds, concurrency=8)

        healthy = Qiwi()
        await phase(healthy, phase_seconds)

        troubled = Qiwi(next_txn=10**9)
        await hook.stop()
        await phase(troubled, scale(3, 30))  # backend down
        await hook.start()
        for behaviour in (flapping, slow, hanging, redirecting):
            hook.respond = behaviour
            await phase(troubled, phase_seconds)
        hook.respond = accept
        requests_while_troubled = len(hook.received)

        stored = await assert_money_invariants(healthy, database_dsn)
        await assert_money_invariants(troubled, database_dsn)
        await hook.wait_delivered(set(stored), within=scale(60, 180))
        assert await gateway.terminate() == 0
    assert set(stored) == set(healthy.answered) | set(troubled.answered)
    report(
        "backend down, flapping, slow, hanging, redirecting",
        load="8 connections, closed loop",
        faults=f"down {scale(3, 30):g} s; flapping, slow, hanging, 302 {phase_seconds:g} s each",
        requests=healthy.sent + troubled.sent,
        answered_0=len(healthy.answered) + len(troubled.answered),
        stored=len(stored),
        lost=0,
        doubled=0,
        delivered=len(hook.delivered()),
        webhook_requests_during_trouble=requests_while_troubled,
        pay_p99_ms_backend_healthy=round(healthy.p99_ms(), 1),
        pay_p99_ms_backend_troubled=round(troubled.p99_ms(), 1),
    )
