"""``/``: counts, the oldest pending payment, the last delivery and error, the
dispatcher's state, and the last 24 hours as a chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from qiwi_gw import keys as gateway_keys
from qiwi_gw.console import chart as geometry
from qiwi_gw.console import keys, pages
from qiwi_gw.ops import status
from qiwi_gw.settings import mask_url


@dataclass(frozen=True)
class Delivery:
    """What the overview says about webhook delivery in this process."""

    webhook_url: str | None
    listener_connected: bool
    # From the dispatcher's own summary, when it gives one; None: not known.
    backend_up: bool | None = None
    outage_since: datetime | None = None
    in_flight: int | None = None
    held: int | None = None


def delivery_state(gateway: web.Application) -> Delivery:
    settings = gateway[gateway_keys.SETTINGS]
    url = None if settings.webhook.url is None else mask_url(settings.webhook.url)
    dispatcher = gateway.get(gateway_keys.DISPATCHER)
    if dispatcher is None:
        return Delivery(webhook_url=url, listener_connected=False)
    # The dispatcher's ``state`` (backend up or in an outage, deliveries in flight,
    # rows held back); read through getattr so the console shows what there is.
    state = getattr(dispatcher, "state", None)
    return Delivery(
        webhook_url=url,
        listener_connected=dispatcher.listener.connected,
        backend_up=getattr(state, "backend_up", None),
        outage_since=getattr(state, "outage_since", None),
        in_flight=getattr(state, "in_flight", None),
        held=getattr(state, "held", None),
    )


async def overview(request: web.Request) -> web.Response:
    app = request.app
    async with pages.connection(request) as connection:
        summary = await status.collect(connection, app[keys.SETTINGS])
        chart = await app[keys.CHART].get(connection)
    return pages.render(
        request,
        "overview.html",
        {
            "status": summary,
            "delivery": delivery_state(app[keys.GATEWAY]),
            "chart": chart,
            "failure_text": status.failure_text,
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
