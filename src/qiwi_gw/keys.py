"""Typed keys for what the application holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import asyncpg
from aiohttp import web

from qiwi_gw.dispatcher import Dispatcher
from qiwi_gw.group_commit import GroupCommitter
from qiwi_gw.metrics import DatabaseGauges, Metrics
from qiwi_gw.metrics_page import MetricsPage
from qiwi_gw.payments import Payments
from qiwi_gw.readiness import Readiness
from qiwi_gw.settings import Settings

if TYPE_CHECKING:
    # The gate reads its keys from here: imported for the type checker only.
    from qiwi_gw.gate import Gate

SETTINGS = web.AppKey("settings", Settings)
DSN = web.AppKey("dsn", str)
POOL = web.AppKey("pool", asyncpg.Pool)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
PAYMENTS = web.AppKey("payments", Payments)
COMMITTER = web.AppKey("committer", GroupCommitter)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
METRICS = web.AppKey("metrics", Metrics)
GAUGES = web.AppKey("gauges", DatabaseGauges)
EXPECTED_MIGRATIONS = web.AppKey("expected_migrations", list[str])
GATE: web.AppKey[Gate] = web.AppKey("gate")
READINESS = web.AppKey("readiness", Readiness)
METRICS_PAGE = web.AppKey("metrics_page", MetricsPage)
