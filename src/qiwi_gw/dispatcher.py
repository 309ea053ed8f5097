"""Delivers every stored payment to the merchant's webhook, at once and without limit.

NOTIFY is a wake-up hint and the table is the truth: the loop wakes on a
notification, on a finished delivery, on a retry falling due, on the next probe
round or on the sweep timer, and each time claims whatever rows are due. A lost
notification delays a delivery by one sweep interval at most; it never loses one.

The delivery policy (docs/webhooks.md, "Retries"): a payment the backend rejects backs off
on its own and changes nothing for the others; only signs that the backend is
down open the breaker, and only the end of such an outage makes the rows it held
back due at once. The loop does database work only when there may be work: it
sleeps while every slot is busy, while the breaker waits for its next round, and
after a claim that found nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiohttp
import asyncpg

from qiwi_gw import db, recorder
from qiwi_gw.backoff import Breaker, retry_delay
from qiwi_gw.channel import channel_for
from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.errors import describe
from qiwi_gw.listener import Listener
from qiwi_gw.metrics import Metrics
from qiwi_gw.recorder import OutcomeRecorder
from qiwi_gw.settings import Settings
from qiwi_gw.store import attempts, queue
from qiwi_gw.store.payments import DueRow
from qiwi_gw.store.queue import DeliveryOutcome
from qiwi_gw.webhook import Delivery, Verdict, WebhookSender

logger = logging.getLogger(__name__)

# A claim outlives the attempt's timeout and the outcome recorder's worst case by
# this much, so a live owner always finishes (and records) before anyone else may
# take the row.
LEASE_MARGIN: Final = 10.0
MAINTENANCE_INTERVAL: Final = 3600.0
# Rows an outage held back are made due this many at a time, each batch its own
# statement: the first deliveries start after one batch, not after the whole backlog.
RELEASE_BATCH: Final = 5000
# While draining a backlog, wait at most this long for half the slots to free up
# before claiming for the free ones: batches without stalling behind slow deliveries.
DRAIN_BATCH_WAIT: Final = 0.05
# A payment claimed as it was stored is sent when its NOTIFY arrives; should the
# notification be lost, it is sent this long after the commit all the same.
NOTIFY_GRACE: Final = 1.0
# Notifications remembered for payments whose commit this process has not seen yet
# (the NOTIFY can overtake the committer's result on another connection).
RECENT_NOTIFIES: Final = 4096


@dataclass(frozen=True)
class DispatcherState:
    """What the operator sees: is the backend up, and what is in flight."""

    backend_up: bool
    outage_since: datetime | None
    in_flight: int
    listener_connected: bool


class Dispatcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        settings: Settings,
        direct_dsn: str,
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
        self.lease = webhook.timeout + recorder.worst_case_seconds(self._db_timeout) + LEASE_MARGIN
        self._recorder = OutcomeRecorder(
            pool, owner=self.owner, db_timeout=self._db_timeout, on_written=self._written
        )
        self._breaker = Breaker(
            probe_size=webhook.concurrency, minimum=webhook.retry_min, maximum=webhook.retry_max
        )
        self.listener = Listener(
            lambda: db.connect(settings.database, direct_dsn),
            channel_for(settings.database.schema),
            on_notify=self._notified,
            on_connect=self.wake,
        )
        self._wake = asyncio.Event()
        self._stopping = False
        # Whether a claim now may find rows: set by every event that can make a row
        # due, cleared by a claim that took fewer rows than it asked for.
        self._maybe_due = True
        # Counts wake-ups, so one that arrives while a claim is in flight is not lost.
        self._wakes = 0
        # Claiming a backlog: wait for half the slots to be free, so a batch of rows
        # costs one round trip rather than one per finished delivery.
        self._draining = False
        # ... but never for long: slow deliveries must not hold back what is due.
        self._draining_until = 0.0
        self._in_flight: set[asyncio.Task[None]] = set()
        # Slots lent to the committer for payments it is inserting claimed, and the
        # rows it inserted so, waiting for their NOTIFY.
        self._reserved = 0
        self._preclaimed: dict[int, DueRow] = {}
        # An insertion-ordered dict as a bounded set: O(1) look-ups, oldest dropped first.
        self._recent_notifies: dict[int, None] = {}
        self._listener_task: asyncio.Task[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._next_maintenance = 0.0
        # When the retries this process scheduled fall due (monotonic clock), a heap:
        # each wakes the loop, not only the earliest.
        self._retries: list[float] = []
        # Rows held by an outage survive a restart: the first sign of life after
        # start releases them, as the end of an outage would.
        self._release_on_next_answer = True
        self._outage_since: datetime | None = None
        self._metrics.backend_up.set(1)

    @property
    def state(self) -> DispatcherState:
        return DispatcherState(
            backend_up=not self._breaker.is_open,
            outage_since=self._outage_since,
            in_flight=len(self._in_flight),
            listener_connected=self.listener.connected,
        )

    async def start(self) -> None:
        await self._recorder.start()
        self._listener_task = asyncio.create_task(self.listener.run(), name="qiwi-gw-listener")
        self._loop_task = asyncio.create_task(self._run(), name="qiwi-gw-dispatcher")
        for task in (self._listener_task, self._loop_task):
            task.add_done_callback(_report_death)
        logger.info("dispatcher %s started", self.owner)

    def wake(self) -> None:
        self._wakes += 1
        self._maybe_due = True
        self._wake.set()

    # --- claiming as the committer stores (group_commit.Claimer) -------------------

    def reserve(self, wanted: int) -> int:
        """Lend up to ``wanted`` delivery slots for payments being stored now, while the
        backend takes payments and slots are free."""
        if self._stopping or self._breaker.is_open:
            return 0
        granted = max(0, min(wanted, self._free_slots()))
        self._reserved += granted
        return granted

    def unreserve(self, count: int) -> None:
        self._reserved -= count
        if count and self._maybe_due:
            self._wake.set()

    def claimed(self, rows: Sequence[DueRow]) -> None:
        """Rows committed already claimed by this process: each is sent when its
        NOTIFY arrives (or has arrived), or after ``NOTIFY_GRACE`` at the latest."""
        self._reserved -= len(rows)
        loop = asyncio.get_running_loop()
        for row in rows:
            self._preclaimed[row.id] = row
            if row.id in self._recent_notifies:
                self._send_preclaimed(row.id)
            else:
                loop.call_later(NOTIFY_GRACE, self._send_preclaimed, row.id)

    def _notified(self, payload: str) -> None:
        try:
            transaction_id = int(payload)
        except ValueError:
            transaction_id = 0
        if transaction_id in self._preclaimed:
            self._send_preclaimed(transaction_id)
            return
        self._recent_notifies[transaction_id] = None
        if len(self._recent_notifies) > RECENT_NOTIFIES:
            del self._recent_notifies[next(iter(self._recent_notifies))]
        self.wake()

    def _send_preclaimed(self, transaction_id: int) -> None:
        if self._stopping:
            return  # the claim is handed back with the others when the dispatcher stops
        row = self._preclaimed.pop(transaction_id, None)
        if row is not None:
            self._recent_notifies.pop(transaction_id, None)
            self._start(row)

    async def stop(self) -> None:
        """Stop claiming, let deliveries in flight finish (up to the webhook timeout),
        cancel the rest, and hand their rows back so another process can take them."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.wait([self._loop_task], timeout=self._db_timeout * 2)
        if self._in_flight:
            logger.info("waiting for %d deliveries in flight", len(self._in_flight))
            _done, pending = await asyncio.wait(self._in_flight, timeout=self._settings.timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        background = [
            task
            for task in (self._listener_task, self._loop_task, self._release_task)
            if task is not None
        ]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self._recorder.stop()
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                released = await queue.release_claims(connection, self.owner)
        except DATABASE_ERRORS as exc:
            logger.warning(
                "could not release claims (they expire by themselves): %s", describe(exc)
            )
        else:
            logger.info("dispatcher stopped; %d claims released", released)

    async def _run(self) -> None:
        await self._probe_held()
        while not self._stopping:
            try:
                await self._maintain()
                await self._claim_and_send()
            except Exception:
                # A bug must not stop deliveries for good: log it, try again next round.
                logger.exception("dispatcher round failed")
                self._maybe_due = False
            await self._sleep()

    def _free_slots(self) -> int:
        # An outcome not yet written still holds its claim: counting it keeps the
        # recorder's queue, hence its worst case, within the lease.
        return (
            self._settings.concurrency
            - len(self._in_flight)
            - self._recorder.unrecorded
            - self._reserved
            - len(self._preclaimed)
        )

    def _seconds_until_claim(self) -> float | None:
        """When a claim is worth making: now (0), after the breaker's wait, or only
        when an event says so (None)."""
        if not self._maybe_due:
            return None
        free = self._free_slots()
        if free <= 0:
            return None  # a finished delivery wakes the loop
        if self._draining and free < self._settings.concurrency // 2:
            # Batch a backlog, but never wait on slow deliveries for long.
            wait = self._draining_until - time.monotonic()
            if wait > 0:
                return wait
        return self._breaker.seconds_until_round() or 0.0

    async def _sleep(self) -> None:
        now = time.monotonic()
        next_retry = self._retries[0] if self._retries else float("inf")
        timeout = min(self._settings.sweep_interval, max(0.0, next_retry - now))
        until_claim = self._seconds_until_claim()
        if until_claim is not None:
            timeout = min(timeout, until_claim)
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            # The sweep, a retry falling due or the breaker's next round.
            self._maybe_due = True
        self._wake.clear()
        now = time.monotonic()
        while self._retries and self._retries[0] <= now:
            heapq.heappop(self._retries)
            self._maybe_due = True

    async def _claim_and_send(self) -> None:
        if self._stopping or self._seconds_until_claim() != 0.0:
            return
        allowed = self._breaker.budget(self._free_slots())
        if allowed <= 0:
            return
        wakes = self._wakes
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                rows = await queue.claim_due(connection, allowed, self.lease, self.owner)
        except DATABASE_ERRORS as exc:
            logger.warning("cannot claim due payments: %s", describe(exc))
            self._maybe_due = False  # the sweep tries again
            return
        self._breaker.started(len(rows))
        self._draining = len(rows) == allowed
        self._draining_until = time.monotonic() + DRAIN_BATCH_WAIT
        # Rows stored while the claim ran were not seen by it.
        self._maybe_due = self._draining or self._wakes != wakes
        for row in rows:
            self._start(row)

    def _start(self, row: DueRow) -> None:
        task = asyncio.create_task(self._deliver(row), name=f"qiwi-gw-deliver-{row.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        _report_death(task)
        if self._maybe_due:
            self._wake.set()

    async def _deliver(self, row: DueRow) -> None:
        delivery = await self._sender.send(row)
        # Held only by an outage already under way: a failure that opens the breaker
        # (or happens while it is closed) keeps its own backoff.
        was_open = self._breaker.is_open
        try:
            self._account(row, delivery)
        finally:
            # Whatever happened above, the outcome is recorded: a lost one would
            # bring the row back every lease with no backoff.
            self._recorder.add(self._outcome(delivery, was_open))

    def _outcome(self, delivery: Delivery, was_open: bool) -> DeliveryOutcome:
        if delivery.delivered:
            return DeliveryOutcome(delivery.record, delivered=True)
        delay = retry_delay(
            delivery.record.attempt, self._settings.retry_min, self._settings.retry_max
        )
        return DeliveryOutcome(
            delivery.record,
            delivered=False,
            retry_in=delay,
            held=delivery.verdict is Verdict.DOWN and was_open,
        )

    def _account(self, row: DueRow, delivery: Delivery) -> None:
        """Metrics, the log line and the breaker for one finished attempt."""
        record = delivery.record
        self._metrics.attempt_seconds.observe(record.duration_ms / 1000)
        self._metrics.deliveries.labels(delivery.verdict.value).inc()
        context = {"txn_id": row.code, "prv_txn": row.id, "attempt": record.attempt}
        if delivery.delivered:
            lag = datetime.now(UTC).replace(tzinfo=None) - row.created_at
            self._metrics.delivery_lag_seconds.observe(max(0.0, lag.total_seconds()))
            # DEBUG: the attempt table holds every delivery; one INFO line per
            # payment (when it is stored) keeps the log's cost per payment low.
            logger.debug("webhook delivered", extra=context)
        else:
            logger.warning(
                "webhook %s: %s; attempt %d",
                delivery.verdict.value,
                record.summary,
                record.attempt,
                extra=context,
            )
        if delivery.verdict is Verdict.DOWN:
            self._note_down()
        elif delivery.verdict is not Verdict.FAILED:
            self._note_up()

    def _note_down(self) -> None:
        was_open = self._breaker.is_open
        self._breaker.backend_down()
        if self._breaker.is_open and not was_open:
            self._outage_since = datetime.now(UTC)
            self._metrics.backend_up.set(0)
            logger.warning("webhook backend is down: sending probes only until it answers")

    def _note_up(self) -> None:
        ended = self._breaker.backend_up()
        if ended:
            logger.info("webhook backend is back after an outage since %s", self._outage_since)
            self._outage_since = None
            self._metrics.backend_up.set(1)
        if ended or self._release_on_next_answer:
            self._release_on_next_answer = False
            self._maybe_due = True
            self._wake.set()
            if self._release_task is None or self._release_task.done():
                self._release_task = asyncio.create_task(
                    self._release_held(), name="qiwi-gw-release-held"
                )
                self._release_task.add_done_callback(_report_death)

    async def _probe_held(self) -> None:
        """After a restart during an outage the held rows wait out their backoff: one
        of them is made due now, a probe whose answer releases the rest."""
        try:
            async with self._pool.acquire(timeout=self._db_timeout) as connection:
                await queue.release_held(connection, 1)
        except DATABASE_ERRORS as exc:
            logger.warning("cannot probe with a held payment: %s", describe(exc))

    async def _release_held(self) -> None:
        """Make the rows held back by the outage due, batch by batch, waking the
        loop after each so deliveries start while the rest is released."""
        # Failures recorded after this would stay held: write them first.
        await self._recorder.drained()
        total = 0
        while not self._stopping:
            try:
                async with self._pool.acquire(timeout=self._db_timeout) as connection:
                    count = await queue.release_held(connection, RELEASE_BATCH)
            except DATABASE_ERRORS as exc:
                logger.warning("cannot release payments held by the outage: %s", describe(exc))
                # Held rows still come due on their own backoff; try again at the next answer.
                self._release_on_next_answer = True
                return
            total += count
            if count:
                self.wake()
            if count < RELEASE_BATCH:
                break
        if total:
            logger.info("%d payments held back by the outage are due now", total)

    def _written(self, outcomes: list[DeliveryOutcome]) -> None:
        """Outcomes were written: their slots are free, and the earliest retry among
        them is now in the table. Wake for the retry only when it falls due."""
        if self._maybe_due:
            self._wake.set()
        delays = [outcome.retry_in for outcome in outcomes if not outcome.delivered]
        if not delays:
            return
        now = time.monotonic()
        earliest = self._retries[0] if self._retries else float("inf")
        for delay in delays:
            heapq.heappush(self._retries, now + delay)
        if self._retries[0] < earliest:
            self._wake.set()  # the loop is asleep on a longer timeout

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
