"""Access before work: who may call ``/payment`` and ``/metrics`` is decided from
the connection and the headers, before the body is read.

A refused request costs the gateway a header parse and a short answer. It is
still logged in ``qiwi_http_log`` (the table keeps every request to
``/payment``), as a bounded summary and at most ``QIWI_REFUSED_LOG_RATE`` rows
per second per address (and four times that for all addresses together); the
rest are counted in ``qiwi_refused_unlogged_total``. An address refused more
than ``STRIKES_PER_SECOND`` times a second is shut out for ``PENALTY_SECONDS``
(on QIWI's listener): its new connections are held unread until the read
timeout, so a storm of refused requests stalls instead of costing an HTTP
exchange each. A trusted proxy is never penalised (every client behind it
shares its address). An accepted request's
body is then read, within what is left of ``QIWI_READ_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from qiwi_gw import access, intake, keys
from qiwi_gw.incoming import BODY, CLIENT_IP, read_body, refused_entry
from qiwi_gw.metrics import Metrics
from qiwi_gw.settings import Settings
from qiwi_gw.throttle import RateLimiter

logger = logging.getLogger(__name__)

PAYMENT: Final = "/payment"
GUARDED: Final = frozenset({PAYMENT, "/metrics"})
# How many times the per-address rate all refused callers together may log.
TOTAL_RATE_FACTOR: Final = 4
_COMMAND_LABELS: Final = frozenset({"check", "pay", "getInfo"})
# QIWI refused 20 times within a second is misconfigured anyway; anyone else is
# flooding.
STRIKES_PER_SECOND: Final = 20.0
PENALTY_SECONDS: Final = 10.0
_MAX_PENALISED: Final = 10_000


class Gate:
    """What the gate writes about callers, each within its rate: refused requests
    (rows and log lines), bodies that did not arrive in time (log lines)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        rate = settings.limits.refused_log_rate
        self._refused = RateLimiter(rate, total_rate=rate * TOTAL_RATE_FACTOR, clock=clock)
        self._warnings = RateLimiter(
            intake.WARNINGS_PER_ADDRESS, total_rate=intake.WARNINGS_TOTAL, clock=clock
        )
        self._strikes = RateLimiter(STRIKES_PER_SECOND, clock=clock)
        self._penalised: dict[str, float] = {}
        self._trusted = settings.trusted_proxies
        # QIWI's own addresses: a storm of refusals from one (a wrong password after a
        # change, or a neighbour behind the same NAT) must never shut QIWI out.
        self._allowed = settings.allowed_networks
        self._read_timeout = settings.limits.read_timeout
        self._metrics = metrics
        self._clock = clock

    def penalised(self, peer: str) -> bool:
        """Whether connections from ``peer`` are to be closed at connect."""
        until = self._penalised.get(peer)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._penalised[peer]
        return False

    def strike(self, peer: str | None) -> None:
        """``peer`` (the connection's address, not X-Forwarded-For's) was refused."""
        if (
            peer is None
            or access.is_in(peer, self._trusted)
            or access.is_in(peer, self._allowed)
            or self._strikes.allow(peer)
        ):
            return
        if len(self._penalised) >= _MAX_PENALISED:
            self._penalised.pop(next(iter(self._penalised)))
        self._penalised[peer] = self._clock() + PENALTY_SECONDS
        if self._warnings.allow(peer):
            logger.warning(
                "shutting out %s for %g s (its connections held unread): over %g refused "
                "requests a second",
                peer,
                PENALTY_SECONDS,
                STRIKES_PER_SECOND,
            )

    def timed_out(self, ip: str | None) -> None:
        self._metrics.read_timeouts.inc()
        if self._warnings.allow(ip or "unknown"):
            logger.warning(
                "request from %s closed: body not received within %g s (QIWI_READ_TIMEOUT)",
                ip,
                self._read_timeout,
            )

    async def refused(self, request: web.Request, ip: str | None, refusal: web.Response) -> None:
        logged = self._refused.allow(ip or "unknown")
        if request.path == PAYMENT:
            command = request.rel_url.query.get("command")
            label = command if command in _COMMAND_LABELS else "other"
            self._metrics.requests.labels(label, f"http_{refusal.status}").inc()
            if not logged:
                self._metrics.refused_unlogged.inc()
                return
            await request.app[keys.PAYMENTS].log_quietly(refused_entry(request, ip))
        if logged:
            why = (
                "Basic authentication failed"
                if refusal.status == 401
                else "not in QIWI_ALLOWED_IPS"
            )
            logger.warning("refused caller %s on %s: %s", ip, request.path, why)


def client_ip(request: web.BaseRequest, settings: Settings) -> str | None:
    # A proxy may append its own header line instead of extending the first one:
    # all lines together are the one list of hops.
    forwarded = ", ".join(request.headers.getall(hdrs.X_FORWARDED_FOR, [])) or None
    return access.client_ip(request.remote, forwarded, settings.trusted_proxies)


def refusal_for(
    request: web.BaseRequest, ip: str | None, settings: Settings
) -> web.Response | None:
    if not access.is_allowed(ip, settings.allowed_networks):
        return web.Response(status=403, text="403: Forbidden\n")
    if settings.auth_username is not None and settings.auth_password is not None:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if not access.basic_auth_matches(header, settings.auth_username, settings.auth_password):
            return web.Response(
                status=401,
                text="401: Unauthorized\n",
                headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="qiwi-gw", charset="UTF-8"'},
            )
    return None


@web.middleware
async def access_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    ip = client_ip(request, settings)
    if ip is not None:
        request[CLIENT_IP] = ip
    if request.path in GUARDED:
        refusal = refusal_for(request, ip, settings)
        if refusal is not None:
            refusal.force_close()  # its body stays unread
            gate = request.app[keys.GATE]
            gate.strike(request.remote)
            await gate.refused(request, ip, refusal)
            return refusal
    deadline = intake.read_deadline(request, settings.limits.read_timeout)
    try:
        async with asyncio.timeout_at(deadline):
            request[BODY] = await read_body(request)
    except TimeoutError:
        request.app[keys.GATE].timed_out(ip)
        return _closing(408, "request timeout")
    except ConnectionError:
        # The caller went away mid-body: nobody reads this answer.
        return _closing(400, "bad request")
    return await handler(request)


def _closing(status: int, phrase: str) -> web.Response:
    response = web.Response(status=status, text=f"{status}: {phrase}\n")
    response.force_close()
    return response
