"""The operator listener: the console app on its own host and port, started and
stopped with the gateway (a cleanup context of the QIWI application)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from qiwi_gw.console.app import create_console_app
from qiwi_gw.settings import Settings

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 5.0
# After answering a request whose body was not read (a POST refused on its headers, a
# form over the limit), close the connection at once. aiohttp's default is to read and
# throw away the rest for up to 10 s: four clients sending 30 MB bodies kept the event
# loop busy doing just that (pay median 5 ms to 370 ms). A browser that sent a body it
# should not have may see the connection reset instead of the page.
LINGERING_SECONDS = 0.0


def console_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def operator_listener(
    settings: Settings, dsn: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """For ``gateway.cleanup_ctx``: serve the console while the gateway runs."""

    async def context(gateway: web.Application) -> AsyncIterator[None]:
        console = settings.console
        runner = web.AppRunner(
            create_console_app(settings, dsn, gateway),
            access_log=logging.getLogger("aiohttp.access"),
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=False,
            lingering_time=LINGERING_SECONDS,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, console.host, console.port).start()
            logger.info(
                "operator console and /metrics on %s%s",
                console_url(console.host, console.port),
                " (login required)" if console.login_required else "",
            )
            yield
        finally:
            await runner.cleanup()

    return context
