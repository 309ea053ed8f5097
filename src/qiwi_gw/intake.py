"""QIWI's listener, hardened: what a caller without credentials can hold is bounded.

aiohttp alone waits for a request's headers and body as long as the caller
likes, accepts connections until the process runs out of descriptors, writes an
ERROR with a traceback for every malformed request and answers it with a page
that echoes the bad input. Here each connection is a ``GuardedRequestHandler``:

- admitted only within the caps of ``admission`` (closed at once otherwise);
- given ``QIWI_READ_TIMEOUT`` from a request's first byte to its complete
  headers (closed otherwise); the body gets what is left of the same time
  (``read_deadline``, enforced where the body is read);
- closed after ``QIWI_KEEPALIVE_TIMEOUT`` idle between requests;
- answered with a short body of our own, and one rate-limited WARNING line, when
  aiohttp's parser refuses a request.

``run`` serves the app this way; it is ``web.run_app`` with this listener.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from http import HTTPStatus
from typing import Any, Final, cast

from aiohttp import hdrs, web
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from qiwi_gw import admission, keys
from qiwi_gw.errors import QiwiGwError
from qiwi_gw.metrics import Metrics
from qiwi_gw.middleware import SERVER_NAME
from qiwi_gw.settings import LimitSettings, Settings
from qiwi_gw.throttle import RateLimiter

logger = logging.getLogger(__name__)

# QIWI's requests carry a handful of short headers. aiohttp's defaults (128
# headers of 8 KiB each) let one request carry a megabyte of headers.
MAX_HEADERS: Final = 32
MAX_FIELD_SIZE: Final = 4096
# The request line holds a GET's whole query, extras included: aiohttp's default.
MAX_LINE_SIZE: Final = 8190
# Warnings about callers (caps hit, timeouts, malformed requests): per address
# and second, and for everyone together.
WARNINGS_PER_ADDRESS: Final = 1.0
WARNINGS_TOTAL: Final = 10.0


class ListenError(QiwiGwError):
    """QIWI's port cannot be opened (taken, or not ours to bind)."""


def server_options(limits: LimitSettings) -> dict[str, Any]:
    """aiohttp's per-connection options for QIWI's port."""
    return {
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": MAX_LINE_SIZE,
        "max_field_size": MAX_FIELD_SIZE,
        "max_headers": MAX_HEADERS,
        # A refused request's unread body is not drained (that would be reading it
        # after all): the connection is closed after the answer.
        "lingering_time": 0,
    }


class Intake:
    """What every connection of QIWI's port shares: the caps, the read timeout,
    the rate of warnings, the metrics."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        descriptor_limit: int,
        penalised: Callable[[str], bool] = lambda _address: False,
    ) -> None:
        self.read_timeout = settings.limits.read_timeout
        self.metrics = metrics
        self._held: dict[asyncio.Transport, asyncio.TimerHandle] = {}
        self.warnings = RateLimiter(WARNINGS_PER_ADDRESS, total_rate=WARNINGS_TOTAL)
        self.admission = admission.Admission(
            admission.caps_for(settings, descriptor_limit),
            allowed=settings.allowed_networks,
            trusted_proxies=settings.trusted_proxies,
            penalised=penalised,
            on_refused=self._refused,
        )

    def _refused(self, address: str, cap: str) -> None:
        self.metrics.connections_refused.labels(cap).inc()
        # The gate already said why it penalises an address.
        if cap != "penalty" and self.warnings.allow(address):
            caps = self.admission.caps
            why = {
                "per_address": f"{caps.per_address} open from this address "
                "(QIWI_MAX_CONNECTIONS_PER_IP)",
                "total": f"{caps.total} open in all (QIWI_MAX_CONNECTIONS, file descriptors)",
                "reserved": f"{caps.others} open from outside QIWI_ALLOWED_IPS; "
                f"the other {caps.total - caps.others} are kept for addresses on it",
            }.get(cap, cap)
            logger.warning("connection from %s refused: %s", address, why)

    def hold(self, transport: asyncio.Transport) -> None:
        """Keep a penalised caller's connection open, unread, for the read timeout."""
        loop = asyncio.get_running_loop()
        self._held[transport] = loop.call_later(self.read_timeout, transport.abort)

    def release(self, transport: asyncio.Transport) -> None:
        """Forget a held connection that closed."""
        timer = self._held.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def close_held(self) -> None:
        """At shutdown: aiohttp does not know these connections, so close them here."""
        for transport in list(self._held):
            transport.abort()

    def timed_out(self, address: str) -> None:
        self.metrics.read_timeouts.inc()
        if self.warnings.allow(address):
            logger.warning(
                "connection from %s closed: no complete request within %g s (QIWI_READ_TIMEOUT)",
                address,
                self.read_timeout,
            )

    def malformed(self, address: str, status: int, exc: BaseException | None) -> None:
        self.metrics.bad_requests.inc()
        if self.warnings.allow(address):
            # The exception's class says what was wrong; its text may quote the input.
            what = type(exc).__name__ if exc is not None else HTTPStatus(status).phrase
            logger.warning("malformed request from %s refused with %d: %s", address, status, what)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection handler within the intake's caps and timeouts."""

    def __init__(self, manager: web.Server, *, intake: Intake, **options: Any) -> None:
        super().__init__(manager, **options)
        self._intake = intake
        self._address = ""
        self._admitted = False
        # Loop time of the first byte of the request being read, while its headers
        # are incomplete or it has not reached the application yet.
        self._reading_since: float | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._in_application = False
        # Set when admission said HOLD: aiohttp never sees this connection.
        self._held: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        # (uvloop's transports are not asyncio.Transport subclasses: cast.)
        stream = cast(asyncio.Transport, transport)
        verdict = self._intake.admission.admit(self._address)
        if verdict is admission.Verdict.REFUSE:
            # Before aiohttp sees it: no task, no buffer, the descriptor freed now.
            stream.abort()
            return
        self._admitted = True
        if verdict is admission.Verdict.HOLD:
            stream.pause_reading()
            self._intake.hold(stream)
            self._held = stream
            return
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        self._stop_timer()
        self._intake.admission.release(self._address)
        if self._held is not None:
            self._intake.release(self._held)
            return  # aiohttp never saw it
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._reading_since is None and not self._in_application:
            loop = asyncio.get_running_loop()
            self._reading_since = loop.time()
            self._read_timer = loop.call_at(
                self._reading_since + self._intake.read_timeout, self._headers_timed_out
            )
        super().data_received(data)

    def read_deadline(self) -> float:
        """The request reached the application: the loop time by which its body must
        have arrived (the same read timeout, counted from its first byte)."""
        self._in_application = True
        self._stop_timer()
        started = self._reading_since
        if started is None:
            started = asyncio.get_running_loop().time()
        return started + self._intake.read_timeout

    async def finish_response(
        self, request: BaseRequest, resp: StreamResponse, start_time: float | None
    ) -> tuple[StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._in_application = False
            self._reading_since = None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        """Our short answer instead of aiohttp's page (which quotes the bad input), and
        one rate-limited WARNING instead of an ERROR with a traceback."""
        self._intake.malformed(self._address, status, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer is already on its way")
        phrase = HTTPStatus(status).phrase.lower()
        response = web.Response(
            status=status, text=f"{status}: {phrase}\n", headers={hdrs.SERVER: SERVER_NAME}
        )
        response.force_close()
        return response

    def _headers_timed_out(self) -> None:
        self._read_timer = None
        if self._in_application or self._reading_since is None:
            return
        self._intake.timed_out(self._address)
        self.force_close()

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None


def read_deadline(request: web.BaseRequest, read_timeout: float) -> float:
    """The loop time by which ``request``'s body must have arrived."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        return protocol.read_deadline()
    # Not behind the intake (tests' servers): the time counts from now.
    return asyncio.get_running_loop().time() + read_timeout


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are ``GuardedRequestHandler``s."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        protocol_factory: Callable[[], asyncio.Protocol],
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._factory = protocol_factory

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory, self._host, self._port, backlog=self._backlog, reuse_address=True
        )


def run(
    app: web.Application,
    settings: Settings,
    *,
    loop: asyncio.AbstractEventLoop,
    shutdown_timeout: float,
    access_log: logging.Logger,
) -> None:
    """Serve ``app`` on HOST:PORT until SIGTERM or SIGINT, as ``web.run_app`` would."""
    asyncio.set_event_loop(loop)
    main = loop.create_task(
        _serve(app, settings, shutdown_timeout=shutdown_timeout, access_log=access_log)
    )
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _serve(
    app: web.Application, settings: Settings, *, shutdown_timeout: float, access_log: logging.Logger
) -> None:
    options = {"access_log": access_log, **server_options(settings.limits)}
    runner = web.AppRunner(app, handle_signals=True, shutdown_timeout=shutdown_timeout, **options)
    await runner.setup()
    intake: Intake | None = None
    try:
        server = runner.server
        assert server is not None
        wanted = settings.limits.max_connections + admission.descriptors_needed(settings)
        intake = Intake(
            settings,
            app[keys.METRICS],
            descriptor_limit=admission.raise_descriptor_limit(wanted),
            penalised=app[keys.GATE].penalised,
        )
        loop = asyncio.get_running_loop()
        guard = intake

        def connection() -> asyncio.Protocol:
            return GuardedRequestHandler(server, intake=guard, loop=loop, **options)

        try:
            await GuardedSite(runner, settings.host, settings.port, connection).start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
        caps = guard.admission.caps
        logger.info(
            "QIWI's port: at most %d connections (%d per address), %g s to send a request",
            caps.total,
            caps.per_address,
            settings.limits.read_timeout,
        )
        await asyncio.Event().wait()  # until cancelled
    finally:
        if intake is not None:
            intake.close_held()
        await runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
