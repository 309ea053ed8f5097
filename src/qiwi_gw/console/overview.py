"""``/``: counts, the oldest pending payment, the last delivery and error, the
dispatcher's state, and the last 24 hours as a chart."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from qiwi_gw import keys as gateway_keys
from qiwi_gw.console import chart as geometry
from qiwi_gw.console import keys, pages, reads
from qiwi_gw.dispatcher import DispatcherState
from qiwi_gw.ops import status
from qiwi_gw.settings import mask_url
from qiwi_gw.store import queue


@dataclass(frozen=True)
class Delivery:
    """What the overview says about webhook delivery."""

    webhook_url: str | None
    # The dispatcher's own summary; None when there is no dispatcher (no webhook URL).
    state: DispatcherState | None
    # Undelivered payments held back by an outage, and those waiting out their own backoff.
    backlog: queue.DeliveryBacklog


def dispatcher_state(gateway: web.Application) -> tuple[str | None, DispatcherState | None]:
    settings = gateway[gateway_keys.SETTINGS]
    url = None if settings.webhook.url is None else mask_url(settings.webhook.url)
    dispatcher = gateway.get(gateway_keys.DISPATCHER)
    return url, None if dispatcher is None else dispatcher.state


async def overview(request: web.Request) -> web.Response:
    app = request.app
    async with reads.reading(request) as connection:
        summary = await status.collect(connection, app[keys.SETTINGS])
        backlog = await queue.delivery_backlog(connection)
        chart = await app[keys.CHART].get(connection)
        source = reads.source_of(request, connection)
    url, state = dispatcher_state(app[keys.GATEWAY])
    return pages.render(
        request,
        "overview.html",
        {
            "status": summary,
            "delivery": Delivery(url, state, backlog),
            "chart": chart,
            "failure_text": status.failure_text,
            # With PG_SLAVES: which server these figures come from, and how stale.
            "source": source,
            "chart_width": geometry.WIDTH,
            "chart_height": geometry.HEIGHT,
            "plot_left": geometry.PLOT_LEFT,
            "plot_right": geometry.PLOT_RIGHT,
            "counts_top": geometry.COUNTS_TOP,
            "counts_bottom": geometry.COUNTS_BOTTOM,
            "lag_top": geometry.LAG_TOP,
            "lag_bottom": geometry.LAG_BOTTOM,
        },
    )
