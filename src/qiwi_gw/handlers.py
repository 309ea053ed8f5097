"""HTTP endpoints: ``/payment`` for QIWI, ``/healthz`` and ``/readyz`` for the platform,
``/metrics`` for QIWI's port (the operator listener serves it too).

The gate (``qiwi_gw.gate``) has run before any of these: the caller of ``/payment``
and ``/metrics`` is allowed, and the body is read.
"""

from __future__ import annotations

import logging
import time

from aiohttp import hdrs, web

from qiwi_gw import keys
from qiwi_gw.errors import BackendUnavailableError, DatabaseUnavailableError
from qiwi_gw.incoming import BODY, CLIENT_IP, Incoming, read_incoming
from qiwi_gw.metrics import CONTENT_TYPE_LATEST
from qiwi_gw.protocol import Answer, Pay, ProtocolError, ResultCode, parse_syntax

logger = logging.getLogger(__name__)

XML_CONTENT_TYPE = "text/xml"
_ALLOWED_METHODS = ("GET", "POST")


def xml_response(answer: Answer, status: int = 200) -> web.Response:
    return web.Response(
        text=answer.to_xml(), status=status, content_type=XML_CONTENT_TYPE, charset="utf-8"
    )


async def payment(request: web.Request) -> web.StreamResponse:
    response, command, result = await _answer(request)
    request.app[keys.METRICS].requests.labels(command, result).inc()
    return response


_COMMAND_LABELS = frozenset({"check", "pay", "getInfo"})


async def _answer(request: web.Request) -> tuple[web.StreamResponse, str, str]:
    """The response, and the command and result it counts under in the metrics."""
    incoming = read_incoming(request, request.get(CLIENT_IP), request[BODY])
    sent_command = dict(incoming.pairs).get("command")
    label = sent_command if sent_command in _COMMAND_LABELS else "other"
    payments = request.app[keys.PAYMENTS]
    if request.method not in _ALLOWED_METHODS:
        await payments.log_quietly(incoming.entry)
        answer = Answer(result=ResultCode.OTHER, comment=f"method {request.method} not allowed")
        response = xml_response(answer, status=405)
        response.headers[hdrs.ALLOW] = ", ".join(_ALLOWED_METHODS)
        return response, label, "http_405"
    txn_id = _echoed_txn_id(incoming)
    try:
        if incoming.error is not None:
            raise incoming.error
        # The protocol's syntax only: the account rules and the merchant's limits
        # are the payments' to apply, after a stored pay's row has had its say.
        command = parse_syntax(incoming.pairs)
    except ProtocolError as error:
        await payments.log_quietly(incoming.entry)
        logger.info("rejected request: %s", error, extra={"txn_id": txn_id})
        return xml_response(Answer.from_error(error, txn_id)), label, str(int(error.code))
    started = time.perf_counter()
    try:
        answer = await payments.handle(command, incoming.entry)
    except ProtocolError as error:
        answer = Answer.from_error(error, txn_id)
    except DatabaseUnavailableError as error:
        logger.warning("database unavailable, answering 1: %s", error, extra={"txn_id": txn_id})
        answer = Answer(ResultCode.TEMPORARY, "temporary error: database unavailable", txn_id)
    except BackendUnavailableError:
        answer = Answer(ResultCode.TEMPORARY, "temporary error: backend unavailable", txn_id)
    if isinstance(command, Pay):
        request.app[keys.METRICS].pay_seconds.observe(time.perf_counter() - started)
    return xml_response(answer), label, str(int(answer.result))


def _echoed_txn_id(incoming: Incoming) -> str | None:
    """QIWI matches answers by ``osmp_txn_id``: echo what it sent, whatever it is."""
    for name, value in incoming.pairs:
        if name == "txn_id":
            return value[:40]
    return None


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """From cached state, with a generic reason (``qiwi_gw.readiness``)."""
    reason = await request.app[keys.READINESS].reason()
    if reason is not None:
        return web.Response(status=503, text=f"not ready: {reason}\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    """On QIWI's port, only for callers that /payment would accept (the gate checks):
    the figures tell an outsider the traffic and the backlog. The operator listener
    serves them to whoever reaches it (``metrics_response``)."""
    return await metrics_response(request.app)


async def metrics_response(app: web.Application) -> web.Response:
    """Prometheus text format for the gateway ``app``, at most a second old; the
    figures read from the table at most a few seconds old (``DatabaseGauges``)."""
    response = web.Response(body=await app[keys.METRICS_PAGE].body())
    response.headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE_LATEST
    return response
