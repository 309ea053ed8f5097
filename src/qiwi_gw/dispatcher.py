"""Delivers every stored payment to the merchant's webhook, at once and without limit.

NOTIFY is a wake-up hint and the table is the truth: the loop wakes on a
notification, on a completed delivery, or on the sweep timer, and each time
claims whatever rows are due. A lost notification delays a delivery by one
sweep interval at most; it never loses one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Final

import aiohttp
import asyncpg

from qiwi_gw import db
from qiwi_gw.backoff import Breaker, retry_delay
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe
from qiwi_gw.listener import Listener
from qiwi_gw.metrics import Metrics
from qiwi_gw.recorder import OutcomeRecorder
from qiwi_gw.settings import Settings
from qiwi_gw.store import attempts, transactions
from qiwi_gw.store.transactions import DueRow, Outcome
from qiwi_gw.webhook import WebhookSender

logger = logging.getLogger(__name__)

# A claim outlives the attempt's own timeout by this much, so a live owner always
# finishes (and records) before anyone else may take the row.
LEASE_MARGIN: Final = 10.0
MAINTENANCE_INTERVAL: Final = 3600.0


def channel_for(schema: str) -> str:
    """The channel the migration's trigger notifies on."""
    return f"qiwi_gw:{schema}"


class Dispatcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        listen_dsn: str,
        http_client: aiohttp.ClientSession,
        owner: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        webhook = settings.webhook
        assert webhook.url is not None
        self._pool = pool
        self._metrics = metrics or Metrics()
        self._settings = webhook
        self._db_timeout = settings.database.timeout
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._sender = WebhookSender(
            http_client,
            webhook.url,
            secret=webhook.secret,
            timeout=webhook.timeout,
            zone=settings.timezone,
        )
        self._lease = webhook.timeout + LEASE_MARGIN
        self._recorder = OutcomeRecorder(
            pool, owner=self.owner, db_timeout=self._db_timeout, on_written=self._schedule_retries
        )
        self._breaker = Breaker(
            probe_size=webhook.concurrency, minimum=webhook.retry_min, maximum=webhook.retry_max
        )
        self.listener = Listener(
            lambda: db.connect(settings.database, listen_dsn),
            channel_for(settings.database.schema),
            on_notify=self.wake,
            on_connect=self.wake,
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._saturated = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._next_maintenance = 0.0
        # When the earliest retry this process scheduled falls due (monotonic clock).
        self._next_retry_at = float("inf")

    async def start(self) -> None:
        await self._recorder.start()
        self._tasks = [
            asyncio.create_task(self.listener.run(), name="qiwi-gw-listener"),
            asyncio.create_task(self._run(), name="qiwi-gw-dispatcher"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_death)
        logger.info("dispatcher %s started", self.owner)

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming, let deliveries in flight finish (up to the webhook timeout),
        cancel the rest, and hand their rows back so another process can take them."""
        self._stopping = True
        self._wake.set()
        main = self._tasks[1]
        await asyncio.wait([main], timeout=self._db_timeout * 2)
        if self._in_flight:
            logger.info("waiting for %d deliveries in flight", len(self._in_flight))
            _done, pending = await asyncio.wait(self._in_flight, timeout=self._settings.timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._recorder.stop()
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                released = await transactions.release_claims(connection, self.owner)
        except DATABASE_ERRORS as exc:
            logger.warning(
                "could not release claims (they expire by themselves): %s", describe(exc)
            )
        else:
            logger.info("dispatcher stopped; %d claims released", released)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._maintain()
                await self._claim_and_send()
            except Exception:
                # A bug must not stop deliveries for good: log it, try again next round.
                logger.exception("dispatcher round failed")
            await self._sleep()

    async def _sleep(self) -> None:
        now = time.monotonic()
        timeout = min(self._settings.sweep_interval, max(0.0, self._next_retry_at - now))
        until_round = self._breaker.seconds_until_round()
        if until_round is not None:
            timeout = min(timeout, until_round)
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()
        if self._next_retry_at <= time.monotonic():
            self._next_retry_at = float("inf")

    async def _claim_and_send(self) -> None:
        free = self._settings.concurrency - len(self._in_flight)
        if self._saturated and free < self._settings.concurrency // 2:
            # Draining a backlog: claim in half-batches rather than a round trip
            # per finished delivery. Not when idle, so a new payment goes at once.
            return
        allowed = self._breaker.budget(free)
        if allowed <= 0 or self._stopping:
            return
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                rows = await transactions.claim_due(connection, allowed, self._lease, self.owner)
        except DATABASE_ERRORS as exc:
            logger.warning("cannot claim due payments: %s", describe(exc))
            return
        self._breaker.started(len(rows))
        self._saturated = len(rows) == allowed
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"qiwi-gw-deliver-{row.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        _report_death(task)
        if self._saturated:
            self._wake.set()

    async def _deliver(self, row: DueRow) -> None:
        delivery = await self._sender.send(row)
        record = delivery.record
        self._metrics.attempt_seconds.observe(record.duration_ms / 1000)
        self._metrics.deliveries.labels("delivered" if delivery.delivered else "failed").inc()
        context = {"txn_id": row.code, "prv_txn": row.id, "attempt": record.attempt}
        if delivery.delivered:
            lag = datetime.now(UTC).replace(tzinfo=None) - row.created_at
            self._metrics.delivery_lag_seconds.observe(max(0.0, lag.total_seconds()))
            # DEBUG: the attempt table holds every delivery; one INFO line per
            # payment (when it is stored) keeps the log's cost per payment low.
            logger.debug("webhook delivered", extra=context)
            self._recorder.add(Outcome(record, delivered=True))
        else:
            delay = retry_delay(record.attempt, self._settings.retry_min, self._settings.retry_max)
            logger.warning(
                "webhook failed: %s; retry in %.1f s", record.summary, delay, extra=context
            )
            self._recorder.add(Outcome(record, delivered=False, retry_in=delay))
        if self._breaker.record(delivery.delivered):
            await self._end_outage()

    def _schedule_retries(self, outcomes: list[Outcome]) -> None:
        """Wake when the earliest retry just written falls due: only now does the
        table say when it is due, so waking earlier would find nothing."""
        delays = [outcome.retry_in for outcome in outcomes if not outcome.delivered]
        if not delays:
            return
        retry_at = time.monotonic() + min(delays)
        if retry_at < self._next_retry_at:
            self._next_retry_at = retry_at
            self._wake.set()  # the loop is asleep on a longer timeout

    async def _end_outage(self) -> None:
        # Failures recorded after this would keep their long backoff: write them first.
        await self._recorder.drained()
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                count = await transactions.make_backed_off_due(connection)
        except DATABASE_ERRORS as exc:
            logger.warning("cannot reschedule backed-off payments: %s", describe(exc))
            return
        if count:
            logger.info("webhook backend is back: %d backed-off payments are due now", count)
        self._wake.set()

    async def _maintain(self) -> None:
        now = time.monotonic()
        if now < self._next_maintenance:
            return
        self._next_maintenance = now + MAINTENANCE_INTERVAL
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                pruned = await attempts.prune_delivered(
                    connection, self._settings.attempt_retention_days
                )
        except DATABASE_ERRORS as exc:
            logger.warning("cannot prune webhook attempts: %s", describe(exc))
            self._next_maintenance = now + self._settings.sweep_interval
            return
        if pruned:
            logger.info("pruned %d webhook attempts of delivered payments", pruned)


def _report_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.error("task %s died", task.get_name(), exc_info=exc)
