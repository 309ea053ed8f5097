"""HTTP endpoints: ``/payment`` for QIWI, ``/healthz`` and ``/readyz`` for the platform."""

from __future__ import annotations

import logging
import time

from aiohttp import hdrs, web

from qiwi_gw import access, keys
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import BackendUnavailableError, DatabaseUnavailableError, describe
from qiwi_gw.incoming import Incoming, read_incoming
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
    settings = request.app[keys.SETTINGS]
    # A proxy may append its own header line instead of extending the first one:
    # all lines together are the one list of hops.
    forwarded = ", ".join(request.headers.getall(hdrs.X_FORWARDED_FOR, [])) or None
    ip = access.client_ip(request.remote, forwarded, settings.trusted_proxies)
    incoming = await read_incoming(request, ip)
    sent_command = dict(incoming.pairs).get("command")
    label = sent_command if sent_command in _COMMAND_LABELS else "other"
    payments = request.app[keys.PAYMENTS]
    rejection = _access_rejection(request, ip)
    if rejection is not None:
        await payments.log_quietly(incoming.entry)
        return rejection, label, f"http_{rejection.status}"
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


def _access_rejection(request: web.Request, ip: str | None) -> web.Response | None:
    settings = request.app[keys.SETTINGS]
    if not access.is_allowed(ip, settings.allowed_networks):
        logger.warning("refused caller %s: not in QIWI_ALLOWED_IPS", ip)
        return web.Response(status=403, text="403: Forbidden\n")
    if settings.auth_username is not None and settings.auth_password is not None:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if not access.basic_auth_matches(header, settings.auth_username, settings.auth_password):
            logger.warning("refused caller %s: Basic authentication failed", ip)
            return web.Response(
                status=401,
                text="401: Unauthorized\n",
                headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="qiwi-gw", charset="UTF-8"'},
            )
    return None


def _echoed_txn_id(incoming: Incoming) -> str | None:
    """QIWI matches answers by ``osmp_txn_id``: echo what it sent, whatever it is."""
    for name, value in incoming.pairs:
        if name == "txn_id":
            return value[:40]
    return None


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


READY_QUERY = "SELECT migration_id FROM _yoyo_migration"


async def readyz(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    try:
        async with request.app[keys.POOL].acquire(timeout=settings.database.timeout) as connection:
            applied = {row["migration_id"] for row in await connection.fetch(READY_QUERY)}
    except DATABASE_ERRORS as exc:
        return web.Response(status=503, text=f"database unavailable: {describe(exc)}\n")
    missing = [m for m in request.app[keys.EXPECTED_MIGRATIONS] if m not in applied]
    if missing:
        return web.Response(status=503, text=f"schema not current: missing {', '.join(missing)}\n")
    return web.Response(text="ready\n")


async def metrics(request: web.Request) -> web.Response:
    """On QIWI's port, only for callers that /payment would accept: the figures tell
    an outsider the traffic and the backlog. The operator listener serves them to
    whoever reaches it (``metrics_response``)."""
    settings = request.app[keys.SETTINGS]
    forwarded = ", ".join(request.headers.getall(hdrs.X_FORWARDED_FOR, [])) or None
    ip = access.client_ip(request.remote, forwarded, settings.trusted_proxies)
    rejection = _access_rejection(request, ip)
    if rejection is not None:
        return rejection
    return await metrics_response(request.app)


async def metrics_response(app: web.Application) -> web.Response:
    """Prometheus text format for the gateway ``app``; the figures read from the table
    are at most a few seconds old (``DatabaseGauges``)."""
    registry = app[keys.METRICS]
    await app[keys.GAUGES].refresh()
    dispatcher = app.get(keys.DISPATCHER)
    registry.listener_connected.set(1 if dispatcher and dispatcher.listener.connected else 0)
    response = web.Response(body=registry.render())
    response.headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE_LATEST
    return response
