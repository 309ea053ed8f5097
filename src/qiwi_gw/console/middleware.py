"""The console's middlewares: errors as pages, the host it answers to, sessions,
login, CSRF. The headers every response carries are set by a response signal (see
``app``), so that streamed responses and aiohttp's own errors get them too.

Nothing reads a request's body before knowing who sent it: a POST without a session,
or before logging in, is refused on its headers alone, and a body is read only up to
``app.MAX_FORM_BYTES`` (the registry upload streams, see ``upload``).
"""

from __future__ import annotations

import logging
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from qiwi_gw.console import keys, pages, upload
from qiwi_gw.console.origin import host_allowed, origin_matches
from qiwi_gw.console.security import COOKIE, CSRF_FIELD, csrf_matches
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe

logger = logging.getLogger(__name__)

# Reachable without a login: the login page itself, the stylesheet and script.
OPEN_PATHS = ("/login", "/static/")
# No session: nothing on them needs one (/metrics has its own check).
SESSIONLESS = ("/metrics", "/favicon.ico")


class _Sparse:
    """At most one log line a second for refusals anyone can cause, with a count of
    those left out: a flood of forged posts must not become a flood of log lines."""

    def __init__(self, seconds: float = 1.0) -> None:
        self._seconds = seconds
        self._next = 0.0
        self._skipped = 0

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        skipped, self._skipped, self._next = self._skipped, 0, now + self._seconds
        suffix = f" ({skipped} more like it not logged)" if skipped else ""
        logger.warning(message + suffix, *args)


_refusals = _Sparse()


@web.middleware
async def errors_as_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return pages.problem(request, 404, "Not found", f"Nothing at {request.path[:100]}.")
    except web.HTTPMethodNotAllowed as exc:
        return pages.problem(request, exc.status, "Not allowed", f"{request.method} is not.")
    except web.HTTPRequestEntityTooLarge as exc:
        return pages.problem(
            request, exc.status, "Too large", "That request is larger than this form takes."
        )
    except web.HTTPClientError as exc:
        return pages.problem(request, exc.status, "Bad request", exc.reason)
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
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Without a login, only the console's own names (DNS rebinding); on every POST,
    an ``Origin`` that names the host (a form on another site)."""
    console = request.app[keys.SETTINGS].console
    if not console.login_required and not host_allowed(request, console.host):
        _refusals.warn(
            "console: %s %s refused: Host %r is not the console's",
            request.method,
            request.path[:100],
            request.headers.get("Host", "")[:100],
        )
        return pages.problem(
            request,
            421,
            "Unknown host",
            "Without a login this console answers only to 127.0.0.1, localhost, [::1] "
            "and QIWI_CONSOLE_HOST.",
        )
    if request.method == hdrs.METH_POST and not origin_matches(request):
        _refusals.warn(
            "console: POST %s refused: Origin %r is not this host",
            request.path[:100],
            request.headers.get("Origin", "")[:100],
        )
        return pages.problem(
            request, 403, "Another site's form", "This form was not sent from this console."
        )
    return await handler(request)


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page has a session (its CSRF token); with a login configured, only a
    logged-in session sees anything but the login page; every POST carries its
    session's CSRF token. Who may post is decided before the body is read."""
    if request.path.startswith("/static/") or request.path in SESSIONLESS:
        return await handler(request)
    store = request.app[keys.SESSIONS]
    given = store.get(request.cookies.get(COOKIE))
    session = given or store.new()
    request[keys.SESSION] = session
    login_required = request.app[keys.SETTINGS].console.login_required
    logged_out = login_required and session.user is None
    response: web.StreamResponse
    if request.method == hdrs.METH_POST:
        if given is None:
            response = _refused(request, "no session cookie")
            return _with_cookie(request, response, given)
        if logged_out and request.path != "/login":
            response = _refused(request, "not logged in")
            return _with_cookie(request, response, given)
        if not csrf_matches(session, await _posted_token(request)):
            return _refused(request, "no valid CSRF token")
    elif logged_out and not request.path.startswith(OPEN_PATHS):
        return _with_cookie(request, pages.see_other("/login"), given)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _with_cookie(request, exc, given)
        raise
    finally:
        store.keep(request[keys.SESSION])
    return _with_cookie(request, response, given)


async def _posted_token(request: web.Request) -> str | None:
    """The form's CSRF token: from the form (at most ``MAX_FORM_BYTES``), or, for the
    registry upload, from its first part, leaving the file to its handler."""
    if request.path == "/registry" and request.content_type == "multipart/form-data":
        return await upload.first_field(request, CSRF_FIELD)
    form = await request.post()
    token = form.get(CSRF_FIELD)
    return token if isinstance(token, str) else None


def _refused(request: web.Request, why: str) -> web.Response:
    _refusals.warn("console: POST %s refused: %s", request.path[:100], why)
    return pages.problem(
        request,
        403,
        "Form expired",
        "This form's security token is missing or stale: reload the page and try again.",
    )


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
