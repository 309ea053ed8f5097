"""Typed keys for what the application holds."""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web

from qiwi_gw.dispatcher import Dispatcher
from qiwi_gw.group_commit import GroupCommitter
from qiwi_gw.metrics import DatabaseGauges, Metrics
from qiwi_gw.payments import Payments
from qiwi_gw.settings import Settings

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
