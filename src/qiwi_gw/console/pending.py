"""``/pending``: what ``qiwi-gw pending`` shows, with Resend all pending."""

from __future__ import annotations

from aiohttp import web

from qiwi_gw.console import keys, pages, reads
from qiwi_gw.ops import pending as ops_pending
from qiwi_gw.ops import resend

LIMIT = 200


async def pending(request: web.Request) -> web.Response:
    async with reads.reading(request) as connection:
        found = await ops_pending.fetch(connection, LIMIT)
    return pages.render(
        request,
        "pending.html",
        {"pending": found, "next_attempt": ops_pending.next_attempt, "limit": LIMIT},
    )


async def confirm_resend_all(request: web.Request) -> web.Response:
    async with reads.reading(request) as connection:
        found = await ops_pending.fetch(connection, 1)
    return pages.render(request, "confirm_resend_all.html", {"counted": found.counted})


async def do_resend_all(request: web.Request) -> web.Response:
    """The same scheduling as ``qiwi-gw resend --all-pending``."""
    async with reads.writing(request) as connection:
        made_due = await resend.make_all_pending_due(connection)
    request[keys.SESSION].flash = (
        f"{made_due:,} pending payment(s) made due now (rows being sent right now are left"
        " to that attempt)."
    )
    return pages.see_other("/pending")
