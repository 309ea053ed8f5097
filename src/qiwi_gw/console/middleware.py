"""The console's middlewares: headers, errors as pages, sessions, login, CSRF."""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from qiwi_gw.console import keys, pages
from qiwi_gw.console.security import COOKIE, CSRF_FIELD, SECURITY_HEADERS, csrf_matches
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe

logger = logging.getLogger(__name__)

# Reachable without a login: the login page itself, the stylesheet and script.
OPEN_PATHS = ("/login", "/static/")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    # A streamed response (the CSV) has sent its headers already.
    if not response.prepared:
        response.headers.update(SECURITY_HEADERS)
    return response


@web.middleware
async def errors_as_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return pages.problem(request, 404, "Not found", f"Nothing at {request.path[:100]}.")
    except web.HTTPMethodNotAllowed as exc:
        return pages.problem(request, exc.status, "Not allowed", f"{request.method} is not.")
    except web.HTTPException:
        raise
    except DATABASE_ERRORS as exc:
        logger.warning("console: database unavailable: %s", describe(exc))
        return pages.problem(
            request, 503, "Database unavailable", f"The database did not answer: {describe(exc)}"
        )
    except Exception:
        logger.exception("console: unexpected error on %s %s", request.method, request.path)
        return pages.problem(request, 503, "Internal error", "Something failed; see the log.")


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page has a session (its CSRF token); with a login configured, only a
    logged-in session sees anything but the login page; every POST carries its
    session's CSRF token."""
    if request.path.startswith("/static/") or request.path in ("/metrics", "/favicon.ico"):
        return await handler(request)
    store = request.app[keys.SESSIONS]
    given = store.get(request.cookies.get(COOKIE))
    session = given or store.new()
    request[keys.SESSION] = session
    if request.method == hdrs.METH_POST:
        form = await request.post()
        token = form.get(CSRF_FIELD)
        if given is None or not csrf_matches(session, token if isinstance(token, str) else None):
            logger.warning("console: POST %s refused: no valid CSRF token", request.path)
            response: web.StreamResponse = pages.problem(
                request,
                403,
                "Form expired",
                "This form's security token is missing or stale: reload the page and try again.",
            )
            return _with_cookie(request, response, given)
    login_required = request.app[keys.SETTINGS].console.login_required
    if login_required and session.user is None and not request.path.startswith(OPEN_PATHS):
        return _with_cookie(request, pages.see_other("/login"), given)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _with_cookie(request, exc, given)
        raise
    finally:
        store.keep(request[keys.SESSION])
    return _with_cookie(request, response, given)


def _with_cookie(
    request: web.Request, response: web.StreamResponse, given: object
) -> web.StreamResponse:
    """Set the cookie when the session is new (or replaced at login)."""
    session = request[keys.SESSION]
    if given is not session and not response.prepared:
        response.set_cookie(
            COOKIE,
            session.id,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
    return response
