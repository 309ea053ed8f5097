"""How many connections QIWI's port holds open, per address and in total.

Every open connection costs a file descriptor and some memory. Without caps, a
caller who opens connections and sends nothing (or half a request) takes the
descriptors the gateway needs for QIWI's own connections and its database:
then every real ``pay`` fails. So:

- one address may hold ``QIWI_MAX_CONNECTIONS_PER_IP`` (a trusted proxy is
  exempt: every client behind it shares its address);
- everyone together ``QIWI_MAX_CONNECTIONS``, and never more than the process's
  descriptor limit leaves after what the gateway needs for itself;
- with an allow-list set, the last tenth of the total is kept for addresses on
  it, so QIWI still connects while others hold the rest;
- an address the gate penalised for a storm of refused requests is held: its
  connections (within the caps) are accepted and never read, until the read
  timeout closes them. Refusing them instead would have it reconnect in a loop,
  each attempt an accept; held, it waits.
"""

from __future__ import annotations

import enum
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from qiwi_gw.access import is_in
from qiwi_gw.settings import IpNetwork, Settings

logger = logging.getLogger(__name__)

# Descriptors the gateway needs besides QIWI's connections, on top of its pool
# and its webhook connections: the listening sockets, the LISTEN and gauge
# connections, the console's connections, the event loop, logs, libraries.
_OWN_DESCRIPTORS: Final = 64
_KEPT_FOR_ALLOWED_MIN: Final = 16


class Verdict(enum.Enum):
    SERVE = "serve"
    # Counted like any open connection, but never read: a caller shut out for a
    # storm of refused requests waits on it instead of reconnecting in a loop.
    HOLD = "hold"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Caps:
    per_address: int
    total: int
    # How many of ``total`` callers off the allow-list may hold (== total without one).
    others: int


def descriptors_needed(settings: Settings) -> int:
    return settings.database.pool_size + settings.webhook.concurrency + _OWN_DESCRIPTORS


def raise_descriptor_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit,
    which only root can raise); return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else wanted


def caps_for(settings: Settings, descriptor_limit: int) -> Caps:
    limits = settings.limits
    own = descriptors_needed(settings)
    total = max(1, min(limits.max_connections, descriptor_limit - own))
    if total < limits.max_connections:
        logger.warning(
            "the file descriptor limit (%d) leaves room for %d connections, not "
            "QIWI_MAX_CONNECTIONS=%d: raise it (ulimit -n, LimitNOFILE) to at least %d",
            descriptor_limit,
            total,
            limits.max_connections,
            limits.max_connections + own,
        )
    others = total
    if settings.allowed_networks:
        kept = min(total // 2, max(_KEPT_FOR_ALLOWED_MIN, total // 10))
        others = total - kept
    return Caps(per_address=min(limits.max_connections_per_ip, total), total=total, others=others)


class Admission:
    """Counts open connections; ``admit`` says whether one more may open."""

    def __init__(
        self,
        caps: Caps,
        *,
        allowed: tuple[IpNetwork, ...] = (),
        trusted_proxies: tuple[IpNetwork, ...] = (),
        penalised: Callable[[str], bool] = lambda _address: False,
        on_refused: Callable[[str, str], None] = lambda _address, _cap: None,
    ) -> None:
        self.caps = caps
        self._penalised = penalised
        self._allowed = allowed
        self._trusted = trusted_proxies
        self._on_refused = on_refused
        self._by_address: Counter[str] = Counter()
        self.open = 0

    def admit(self, address: str) -> Verdict:
        trusted = is_in(address, self._trusted)
        favoured = trusted or not self._allowed or is_in(address, self._allowed)
        if self.open >= self.caps.total:
            self._on_refused(address, "total")
            return Verdict.REFUSE
        if not favoured and self.open >= self.caps.others:
            self._on_refused(address, "reserved")
            return Verdict.REFUSE
        if not trusted and self._by_address[address] >= self.caps.per_address:
            self._on_refused(address, "per_address")
            return Verdict.REFUSE
        self.open += 1
        self._by_address[address] += 1
        if self._penalised(address):
            self._on_refused(address, "penalty")
            return Verdict.HOLD
        return Verdict.SERVE

    def release(self, address: str) -> None:
        self.open -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]

    def held_by(self, address: str) -> int:
        return self._by_address[address]
