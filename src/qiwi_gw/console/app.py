"""The console's application factory: synchronous and I/O-free, like the gateway's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from qiwi_gw import access, handlers
from qiwi_gw.console import (
    keys,
    login,
    middleware,
    overview,
    pages,
    payments,
    pending,
    reads,
    registry,
)
from qiwi_gw.console.chart import ChartCache
from qiwi_gw.console.heavy import Gate
from qiwi_gw.console.scrape import Pacer, ScrapeCache
from qiwi_gw.console.security import SECURITY_HEADERS, SERVER, LoginLimiter, Sessions
from qiwi_gw.settings import Settings

logger = logging.getLogger(__name__)

# A form of the console (a login, a Resend) is a few hundred bytes; nobody's body is
# read before the sender is known, and then only this much. The registry upload
# streams to disk instead (``upload``), with its own limit.
MAX_FORM_BYTES = 64 * 1024

_CODE = r"{code:[^/]+}"


def create_console_app(settings: Settings, dsn: str, gateway: web.Application) -> web.Application:
    """``gateway`` is the QIWI application served beside it (its metrics, its dispatcher)."""
    app = web.Application(
        client_max_size=MAX_FORM_BYTES,
        middlewares=[middleware.errors_as_pages, middleware.same_origin, middleware.sessions],
    )
    app[keys.SETTINGS] = settings
    app[keys.DSN] = dsn
    app[keys.GATEWAY] = gateway
    app[keys.SESSIONS] = Sessions()
    app[keys.LOGINS] = LoginLimiter()
    app[keys.CHART] = ChartCache()
    app[keys.HEAVY] = Gate()
    app[keys.SCRAPES] = ScrapeCache(partial(handlers.metrics_response, gateway))
    app[keys.SCRAPE_PACER] = Pacer()
    app.cleanup_ctx.append(_pools)
    app.on_response_prepare.append(_headers)
    pages.setup(app)
    router = app.router
    router.add_get("/", overview.overview)
    router.add_get("/payments", payments.search)
    router.add_get(f"/payments/{_CODE}", payments.payment)
    router.add_get(f"/payments/{_CODE}/resend", payments.confirm_resend)
    router.add_post(f"/payments/{_CODE}/resend", payments.do_resend)
    router.add_get("/pending", pending.pending)
    router.add_get("/pending/resend", pending.confirm_resend_all)
    router.add_post("/pending/resend", pending.do_resend_all)
    router.add_get("/registry", registry.registry)
    router.add_post("/registry", registry.compare)
    router.add_get("/registry/export.csv", registry.export_csv)
    router.add_get("/login", login.login_form)
    router.add_post("/login", login.log_in)
    router.add_post("/logout", login.log_out)
    router.add_get("/metrics", _metrics)
    router.add_get("/favicon.ico", _no_icon)
    router.add_static("/static/", pages.STATIC, name="static", append_version=True)
    return app


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response as its headers go out: pages, the streamed CSV, static files,
    and the errors aiohttp itself answers (413)."""
    response.headers.update(SECURITY_HEADERS)
    response.headers["Server"] = SERVER


async def _no_icon(request: web.Request) -> web.Response:
    """Browsers ask for it on every visit; a 404 each time would only be noise."""
    return web.Response(status=204)


async def _metrics(request: web.Request) -> web.Response:
    """The gateway's metrics. With a console login, Prometheus sends the same
    credentials as Basic auth (``basic_auth`` in its scrape config), and wrong ones
    count against the login form's limits: this is a way to guess the password too."""
    # First, before any other work: a storm of callers waits here on timers.
    await request.app[keys.SCRAPE_PACER].turn()
    console = request.app[keys.SETTINGS].console
    if console.login_required:
        assert console.username is not None
        assert console.password is not None
        limiter = request.app[keys.LOGINS]
        address = request.remote or "unknown"
        if limiter.blocked(address):
            return web.Response(status=429, text="429: too many failed logins; wait a minute\n")
        await limiter.pause()
        header = request.headers.get("Authorization")
        if not access.basic_auth_matches(header, console.username, console.password):
            if limiter.failed(address):
                logger.warning("console /metrics: %s blocked for a minute", address)
            logger.warning("console /metrics: wrong Basic auth from %s", address)
            return web.Response(
                status=401,
                text="401: Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="qiwi-gw console", charset="UTF-8"'},
            )
    return (await request.app[keys.SCRAPES].get()).response()


async def _pools(app: web.Application) -> AsyncIterator[None]:
    settings, dsn = app[keys.SETTINGS], app[keys.DSN]
    primary = await reads.primary_pool(settings, dsn)
    reading = primary
    try:
        if settings.database.replica_dsns:
            reading = await reads.reading_pool(settings, dsn)
        app[keys.POOL] = primary
        app[keys.READ_POOL] = reading
        yield
    finally:
        if reading is not primary:
            await reading.close()
        await primary.close()
