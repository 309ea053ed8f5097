"""``/login`` and ``/logout``, when QIWI_CONSOLE_USERNAME/PASSWORD are set."""

from __future__ import annotations

import logging

from aiohttp import web

from qiwi_gw.console import keys, pages
from qiwi_gw.console.security import COOKIE, credentials_match

logger = logging.getLogger(__name__)


async def login_form(request: web.Request) -> web.Response:
    if not request.app[keys.SETTINGS].console.login_required:
        return pages.see_other("/")
    return pages.render(request, "login.html", {"error": None})


async def log_in(request: web.Request) -> web.Response:
    console = request.app[keys.SETTINGS].console
    if not console.login_required:
        return pages.see_other("/")
    limiter = request.app[keys.LOGINS]
    address = request.remote or "unknown"
    if limiter.blocked(address):
        # Not logged: the line saying it was blocked is enough.
        context = {"error": "Too many failed logins: wait a minute and try again."}
        return pages.render(request, "login.html", context, status=429)
    await limiter.pause()
    form = await request.post()
    username, password = form.get("username"), form.get("password")
    if not (
        isinstance(username, str)
        and isinstance(password, str)
        and credentials_match(username, password, console.username, console.password)
    ):
        logger.warning("console login failed from %s", address)
        if limiter.failed(address):
            logger.warning("console login: %s blocked for a minute (too many failures)", address)
        return pages.render(
            request, "login.html", {"error": "Wrong user name or password."}, status=401
        )
    sessions = request.app[keys.SESSIONS]
    session = sessions.log_in(request[keys.SESSION], username)
    request[keys.SESSION] = session
    logger.info("console login: %s from %s", username, address)
    return pages.see_other("/")


async def log_out(request: web.Request) -> web.Response:
    request.app[keys.SESSIONS].drop(request[keys.SESSION])
    response = pages.see_other("/login")
    response.del_cookie(COOKIE, path="/")
    return response
