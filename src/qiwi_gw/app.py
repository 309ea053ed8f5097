"""The application factory: synchronous and I/O-free; resources live in cleanup contexts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import aiohttp
from aiohttp import web

from qiwi_gw import db, handlers, keys, migrations
from qiwi_gw.checker import AccountChecker
from qiwi_gw.dispatcher import Dispatcher
from qiwi_gw.gate import Gate, access_first
from qiwi_gw.group_commit import GroupCommitter
from qiwi_gw.incoming import MAX_BODY_BYTES
from qiwi_gw.metrics import DatabaseGauges, Metrics
from qiwi_gw.metrics_page import MetricsPage
from qiwi_gw.middleware import errors_as_answers, without_banner
from qiwi_gw.payments import Payments
from qiwi_gw.protocol import Limits
from qiwi_gw.readiness import Readiness
from qiwi_gw.settings import Settings

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings, dsn: str, *, http_client: aiohttp.ClientSession | None = None
) -> web.Application:
    """``dsn`` is the database to use (the embedded one's, or the configured one's).
    ``http_client`` lets tests hand in a session of their own for outbound calls."""
    # The gate decides access before any body is read (docs/security.md).
    app = web.Application(
        client_max_size=MAX_BODY_BYTES, middlewares=[errors_as_answers, access_first]
    )
    app.on_response_prepare.append(without_banner)
    app[keys.SETTINGS] = settings
    app[keys.DSN] = dsn
    app[keys.EXPECTED_MIGRATIONS] = migrations.expected_ids()
    app[keys.METRICS] = Metrics()
    app[keys.GATE] = Gate(settings, app[keys.METRICS])
    app[keys.READINESS] = Readiness(
        lambda: app[keys.POOL], app[keys.EXPECTED_MIGRATIONS], timeout=settings.database.timeout
    )
    app.on_startup.append(_warn_if_open)
    # Straight to the database (not PgBouncer), like the listener: a session of its own.
    gauges_dsn = settings.database.direct_dsn or dsn
    app[keys.GAUGES] = DatabaseGauges(
        app[keys.METRICS], partial(db.connect, settings.database, gauges_dsn)
    )
    # The gauges are looked up at each rendering: tests put their own in place.
    app[keys.METRICS_PAGE] = MetricsPage(
        app[keys.METRICS], lambda: app[keys.GAUGES], partial(_listening, app)
    )
    app.on_cleanup.append(_close_gauges)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_http_client(http_client))
    app.cleanup_ctx.append(_services)
    app.router.add_route("*", "/payment", handlers.payment)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    return app


async def _warn_if_open(app: web.Application) -> None:
    settings = app[keys.SETTINGS]
    if not settings.auth_required and not settings.allowed_networks:
        logger.warning(
            "/payment is open to any caller: set HTTP_AUTH_USERNAME/HTTP_AUTH_PASSWORD "
            "and QIWI_ALLOWED_IPS (docs/security.md)"
        )


def _listening(app: web.Application) -> bool:
    dispatcher = app.get(keys.DISPATCHER)
    return dispatcher is not None and dispatcher.listener.connected


async def _close_gauges(app: web.Application) -> None:
    await app[keys.GAUGES].close()


async def _database(app: web.Application) -> AsyncIterator[None]:
    pool = await db.create_pool(app[keys.SETTINGS].database, app[keys.DSN])
    app[keys.POOL] = pool
    yield
    await pool.close()


def _http_client(
    given: aiohttp.ClientSession | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            app[keys.HTTP_CLIENT] = given
            yield
            return
        async with aiohttp.ClientSession(
            headers={"User-Agent": "qiwi-gw"}, raise_for_status=False
        ) as session:
            app[keys.HTTP_CLIENT] = session
            yield

    return context


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    checker = AccountChecker(app[keys.HTTP_CLIENT], settings.check_url, settings.check_timeout)
    committer = GroupCommitter(
        app[keys.POOL], db_timeout=settings.database.timeout, metrics=app[keys.METRICS]
    )
    await committer.start()
    app[keys.COMMITTER] = committer
    app[keys.PAYMENTS] = Payments(
        checker,
        committer,
        limits=Limits(settings.account_pattern, settings.min_sum, settings.max_sum),
        deliver_webhooks=settings.webhook.url is not None,
        check_on_pay=settings.check_on_pay,
    )
    try:
        if settings.webhook.url is None:
            yield
        else:
            async with _dispatching(app):
                yield
    finally:
        await committer.stop()


@asynccontextmanager
async def _dispatching(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    dispatcher = Dispatcher(
        pool=app[keys.POOL],
        settings=settings,
        direct_dsn=settings.database.direct_dsn or app[keys.DSN],
        http_client=app[keys.HTTP_CLIENT],
        metrics=app[keys.METRICS],
    )
    app[keys.DISPATCHER] = dispatcher
    await dispatcher.start()
    # New payments are stored already claimed by this dispatcher while it has room.
    app[keys.COMMITTER].claimer = dispatcher
    try:
        yield
    finally:
        app[keys.COMMITTER].claimer = None
        await dispatcher.stop()
