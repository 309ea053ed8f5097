"""Prometheus metrics: what operators scrape at ``/metrics``.

Each application gets a registry of its own, so several apps in one process
(tests, replicas in one interpreter) never share counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
