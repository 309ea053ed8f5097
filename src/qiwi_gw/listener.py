"""A dedicated LISTEN connection that reconnects by itself.

asyncpg drops a pooled connection's listeners when it returns to the pool, so
this connection is never pooled. It is watched two ways: asyncpg's termination
callback (the server closed it) and a periodic probe (the network ate it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from qiwi_gw.backoff import retry_delay
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe

logger = logging.getLogger(__name__)

# Named so that pg_stat_activity shows which backend is the listener.
PROBE = "SELECT 1 /* qiwi-gw listener probe */"
RECONNECT_MIN = 0.05
RECONNECT_MAX = 10.0


class Listener:
    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        *,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
        probe_interval: float = 5.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._on_notify = on_notify
        self._on_connect = on_connect
        self._probe_interval = probe_interval
        self.connected = False
        # Set while listening: what a caller awaits to know notifications will arrive.
        self.up = asyncio.Event()
        self.reconnects = 0

    async def run(self) -> None:
        """Listen until cancelled."""
        failures = 0
        while True:
            try:
                connection = await self._connect()
            except DATABASE_ERRORS as exc:
                failures += 1
                # Jittered: replicas that lost the database together do not return together.
                delay = retry_delay(failures, RECONNECT_MIN, RECONNECT_MAX)
                logger.warning(
                    "listener cannot connect (%s); retrying in %.2f s", describe(exc), delay
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            try:
                await self._listen(connection)
            finally:
                self.connected = False
                self.up.clear()
                connection.terminate()
            self.reconnects += 1
            logger.warning("listener connection lost; reconnecting")

    async def _listen(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(self._channel, self._notified)
        except DATABASE_ERRORS as exc:
            logger.warning("LISTEN failed: %s", describe(exc))
            return
        self.connected = True
        self.up.set()
        logger.info("listening on channel %s", self._channel)
        # Whatever was notified while nobody listened is found by a sweep.
        self._on_connect()
        while not lost.is_set():
            try:
                async with asyncio.timeout(self._probe_interval):
                    await lost.wait()
            except TimeoutError:
                try:
                    await connection.fetchval(PROBE, timeout=self._probe_interval)
                except DATABASE_ERRORS as exc:
                    logger.warning("listener probe failed: %s", describe(exc))
                    return

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: object) -> None:
        self._on_notify(str(payload))
