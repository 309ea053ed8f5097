"""A re-export shim ONLY for ``qiwi_gw.console``, whose files another developer is editing:
the store is now split by purpose (``payments``, ``queue``, ``reports``). Point the console's
imports there and delete this module."""

from qiwi_gw.store.payments import STATUS_COMPLETED, STATUS_RECEIVED
from qiwi_gw.store.queue import DeliveryBacklog, delivery_backlog
from qiwi_gw.store.reports import Search, delivered_per_minute, search, stored_per_minute

__all__ = [
    "STATUS_COMPLETED",
    "STATUS_RECEIVED",
    "DeliveryBacklog",
    "Search",
    "delivered_per_minute",
    "delivery_backlog",
    "search",
    "stored_per_minute",
]
