"""The last line of defence: no traceback, no bare 500 ever reaches a caller, and
no answer says which software and versions run here."""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from qiwi_gw.handlers import xml_response
from qiwi_gw.protocol import Answer, ResultCode

logger = logging.getLogger(__name__)


@web.middleware
async def errors_as_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return xml_response(Answer(ResultCode.OTHER, "unknown path"), status=404)
    except web.HTTPException:
        raise
    except Exception:
        # A bug, not bad input. Code 1 makes QIWI repeat the call later, which is
        # safe: pay is idempotent, and the fix may be deployed by then.
        logger.exception("unexpected error handling %s %s", request.method, request.path)
        if request.path == "/payment":
            return xml_response(Answer(ResultCode.TEMPORARY, "temporary error"))
        return web.Response(status=503, text="503: internal error\n")


# aiohttp would send "Python/3.x aiohttp/3.x": a map of known vulnerabilities for
# whoever asks. A fixed name says nothing.
SERVER_NAME = "qiwi-gw"


async def without_banner(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_NAME
