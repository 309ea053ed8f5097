"""One webhook call: the contract's JSON, Standard Webhooks signature, the outcome."""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import aiohttp
from standardwebhooks import Webhook

from qiwi_gw.errors import describe
from qiwi_gw.store.attempts import AttemptRecord
from qiwi_gw.store.payments import DueRow

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 512

# Answers that say "not now" about the backend as a whole, not about this payment.
_DOWN_STATUSES = frozenset({408, 429})


class Verdict(enum.Enum):
    """What one attempt says about the payment and about the backend."""

    DELIVERED = "delivered"
    # The backend answered and did not take this payment (3xx, 4xx but 408/429):
    # the payment backs off on its own; the backend is up.
    REJECTED = "rejected"
    # No usable answer (refused, reset, timeout, 5xx, 408, 429): the backend is down.
    DOWN = "down"
    # An error of this gateway's while sending: the payment backs off on its own
    # and says nothing about the backend.
    FAILED = "failed"


def verdict_for(status: int | None) -> Verdict:
    """The verdict on an HTTP answer (``None``: no answer at all)."""
    if status is None or status >= 500 or status in _DOWN_STATUSES:
        return Verdict.DOWN
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.REJECTED


def payload(row: DueRow, zone: ZoneInfo) -> bytes:
    """The body the original image sent; ``created_at`` is stored as naive UTC.

    Written field by field because json.dumps can write a Decimal only through float.
    """
    created = row.created_at.replace(tzinfo=UTC).astimezone(zone)
    fields = (
        ("id", _string(str(row.id))),
        ("account", _string(row.account)),
        ("code", _string(row.code)),
        ("sum", json_number(row.sum)),
        ("created_at", _string(created.strftime("%Y-%m-%d %H:%M:%S"))),
    )
    return ("{" + ", ".join(f'"{name}": {value}' for name, value in fields) + "}").encode()


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def json_number(amount: Decimal) -> str:
    """The float's own spelling (``45.0``, as the original image sent) whenever that is
    exact, the decimal's digits where a float would lose cents."""
    as_float = repr(float(amount))
    if Decimal(as_float) == amount:
        return as_float
    return str(amount)


def message_id(row: DueRow) -> str:
    """Stable across retries, so the backend can de-duplicate by it as well as by code."""
    return f"qiwi_txn_{row.code}"


@dataclass(frozen=True)
class Delivery:
    record: AttemptRecord
    verdict: Verdict

    @property
    def delivered(self) -> bool:
        return self.verdict is Verdict.DELIVERED


class WebhookSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        secret: str | None,
        timeout: float,
        zone: ZoneInfo,
    ) -> None:
        self._session = session
        self._url = url
        self._signer = Webhook(secret) if secret else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._zone = zone

    def headers(self, row: DueRow, body: bytes, now: datetime) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._signer is not None:
            msg_id = message_id(row)
            headers["webhook-id"] = msg_id
            # standardwebhooks reads the datetime's fields as UTC: hand it UTC.
            now = now.astimezone(UTC)
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(msg_id, now, body.decode())
        return headers

    async def send(self, row: DueRow) -> Delivery:
        """Never raises (but for cancellation): every failure is an outcome to record."""
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        excerpt: str | None = None
        unexpected = False
        try:
            body = payload(row, self._zone)
            async with self._session.post(
                self._url,
                data=body,
                headers=self.headers(row, body, started_at),
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = await response.content.read(EXCERPT_BYTES)
                excerpt = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        except TimeoutError:
            error = f"timeout after {self._timeout.total:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = describe(exc)[:300]
        except Exception as exc:
            # A bug of ours (or of a library) must not lose the attempt: it becomes
            # a failed one, recorded and backed off like any other.
            error = f"internal error: {describe(exc)}"
            unexpected = True
            logger.debug("webhook attempt for %s raised", row.code, exc_info=True)
        duration_ms = round((time.perf_counter() - started) * 1000)
        record = AttemptRecord(
            transaction_id=row.id,
            attempt=row.attempts + 1,
            started_at=started_at,
            duration_ms=duration_ms,
            http_status=status,
            error=error,
            response_excerpt=excerpt,
        )
        if unexpected:
            return Delivery(record=record, verdict=Verdict.FAILED)
        return Delivery(record=record, verdict=verdict_for(status))
