"""Typed keys for what the console application and each request hold."""

from __future__ import annotations

import asyncpg
from aiohttp import MultipartReader, web

from qiwi_gw.console.chart import ChartCache
from qiwi_gw.console.heavy import Gate
from qiwi_gw.console.scrape import Pacer, ScrapeCache
from qiwi_gw.console.security import LoginLimiter, Session, Sessions
from qiwi_gw.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
DSN = web.AppKey("dsn", str)
# The QIWI application, for its metrics and its dispatcher's state.
GATEWAY = web.AppKey("gateway", web.Application)
# The primary's pool (what writes), and the pool pages read from (PG_SLAVES first).
POOL = web.AppKey("pool", asyncpg.Pool)
READ_POOL = web.AppKey("read_pool", asyncpg.Pool)
SESSIONS = web.AppKey("sessions", Sessions)
LOGINS = web.AppKey("logins", LoginLimiter)
CHART = web.AppKey("chart", ChartCache)
# One export or registry comparison at a time.
HEAVY = web.AppKey("heavy", Gate)
SCRAPES = web.AppKey("scrapes", ScrapeCache)
SCRAPE_PACER = web.AppKey("scrape_pacer", Pacer)

# The visitor's session, set by the session middleware on every page request.
SESSION = web.RequestKey("session", Session)
# The registry upload's parts, after the token the session middleware read.
PARTS = web.RequestKey("parts", MultipartReader)
