"""Prometheus metrics: what operators scrape at ``/metrics``.

Each application gets a registry of its own, so several apps in one process
(tests, replicas in one interpreter) never share counters.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from qiwi_gw.db import DATABASE_ERRORS
from qiwi_gw.store import queue

__all__ = ["CONTENT_TYPE_LATEST", "DatabaseGauges", "Metrics"]

# From a commit on a quiet database to a slow backend's timeout.
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600, 86400)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "qiwi_requests",
            "Requests to /payment by command and QIWI result code (or HTTP status when refused).",
            ["command", "result"],
            registry=r,
        )
        # QIWI's two commands answered "done" and "repeat later", at 0 from the start: a
        # counter born at its first increment hides that increment from increase() and
        # rate(), and the retry alert must see a quiet gateway's first result 1.
        for command in ("pay", "check"):
            for result in ("0", "1"):
                self.requests.labels(command, result)
        self.pay_seconds = Histogram(
            "qiwi_pay_seconds",
            "Time to answer a pay, from its parameters to the committed answer.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.commit_batch_size = Histogram(
            "qiwi_commit_batch_size",
            "Requests committed together in one transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.deliveries = Counter(
            "qiwi_webhook_deliveries",
            "Webhook attempts by outcome (delivered; rejected: the backend refused this "
            "payment; down: no usable answer; failed: an error of the gateway's).",
            ["outcome"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "qiwi_webhook_attempt_seconds",
            "Duration of one webhook attempt.",
            buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.delivery_lag_seconds = Histogram(
            "qiwi_webhook_delivery_lag_seconds",
            "From storing a payment to its webhook's 2xx.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "qiwi_pending_payments", "Payments not yet delivered (status 0).", registry=r
        )
        self.oldest_pending_seconds = Gauge(
            "qiwi_oldest_pending_seconds",
            "Age of the oldest undelivered payment (0 when none).",
            registry=r,
        )
        self.listener_connected = Gauge(
            "qiwi_listener_connected",
            "1 while the LISTEN connection is up (0 also when no webhook is configured).",
            registry=r,
        )
        self.backend_up = Gauge(
            "qiwi_webhook_backend_up",
            "0 while the dispatcher holds deliveries back because the backend is down "
            "(probes only), else 1.",
            registry=r,
        )
        self.held_payments = Gauge(
            "qiwi_webhook_held_payments",
            "Undelivered payments held back by a backend outage (due when it ends).",
            registry=r,
        )
        self.backing_off_payments = Gauge(
            "qiwi_webhook_backing_off_payments",
            "Undelivered payments waiting out their own backoff (the backend rejected them).",
            registry=r,
        )
        self.database_up = Gauge(
            "qiwi_database_up", "1 when the last scrape's query reached the database.", registry=r
        )
        # What QIWI's port turned away (docs/security.md).
        self.refused_unlogged = Counter(
            "qiwi_refused_unlogged",
            "Refused requests (allow-list, auth) not written to qiwi_http_log: over the rate.",
            registry=r,
        )
        self.connections_refused = Counter(
            "qiwi_connections_refused",
            "Connections closed at once because a cap was reached (per_address, total, "
            "reserved), or held unread: the address shut out for refusals (penalty).",
            ["cap"],
            registry=r,
        )
        self.read_timeouts = Counter(
            "qiwi_read_timeouts",
            "Connections closed because a request did not arrive within QIWI_READ_TIMEOUT.",
            registry=r,
        )
        self.bad_requests = Counter(
            "qiwi_bad_requests",
            "Requests aiohttp's parser refused (malformed HTTP, oversized headers).",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


# The database-backed gauges are refreshed at most this often, however often
# /metrics is scraped: Prometheus scrapes every 15-60 s, and a caller scraping in
# a loop must not turn into load on the database.
GAUGE_INTERVAL = 5.0


class DatabaseGauges:
    """The gauges read from the table (pending payments, the oldest one's age,
    whether the database answered), on a connection of their own.

    The connection is opened at the first scrape and reopened after a failure,
    never taken from the pool that serves /payment: a scrape storm costs the
    database one small query per ``interval`` and holds no request's connection.
    """

    def __init__(
        self,
        metrics: Metrics,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        interval: float = GAUGE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._connect = connect
        self._interval = interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._connection: asyncpg.Connection | None = None
        self._read_at = -math.inf

    @property
    def read_at(self) -> float:
        """When the table was last read (on this object's clock): a page rendered
        since then shows the current figures."""
        return self._read_at

    def _fresh(self) -> bool:
        return self._clock() - self._read_at < self._interval

    async def refresh(self) -> None:
        """Read the table unless it was read less than ``interval`` seconds ago;
        concurrent scrapes wait for one read instead of each making their own."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return
            try:
                if self._connection is None or self._connection.is_closed():
                    self._connection = await self._connect()
                backlog = await queue.delivery_backlog(self._connection)
            except DATABASE_ERRORS:
                self._metrics.database_up.set(0)
                await self.close()
                return
            finally:
                # Also after a failure: a database that is down is asked once per interval.
                self._read_at = self._clock()
            self._metrics.database_up.set(1)
            self._metrics.pending.set(backlog.pending)
            self._metrics.oldest_pending_seconds.set(backlog.oldest_seconds)
            self._metrics.held_payments.set(backlog.held)
            self._metrics.backing_off_payments.set(backlog.backing_off)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close(timeout=1.0)
            except DATABASE_ERRORS:
                connection.terminate()
