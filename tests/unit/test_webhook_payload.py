"""webhook.py's pure parts: the contract's JSON body, the message id, the signed headers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from qiwi_gw.store.payments import DueRow
from qiwi_gw.webhook import WebhookSender, message_id, payload

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_c2VjcmV0LW9mLWFub3RoZXItbWVyY2hhbnQ="
UTC_ZONE = ZoneInfo("UTC")
MOSCOW = ZoneInfo("Europe/Moscow")


def row(
    *,
    id: int = 123,
    account: str = "123456",
    code: str = "563456456745",
    amount: str = "45.00",
    created_at: datetime = datetime(2022, 2, 10, 12, 0, 0),
    attempts: int = 0,
) -> DueRow:
    return DueRow(
        id=id,
        account=account,
        code=code,
        sum=Decimal(amount),
        created_at=created_at,
        attempts=attempts,
    )


def decoded(body: bytes) -> dict[str, Any]:
    value = json.loads(body.decode("utf-8"))
    assert isinstance(value, dict)
    return value


# --- payload ------------------------------------------------------------------------------


def test_payload_is_the_contract_example() -> None:
    body = payload(row(), UTC_ZONE)
    assert isinstance(body, bytes)
    assert decoded(body) == {
        "id": "123",
        "account": "123456",
        "code": "563456456745",
        "sum": 45.0,
        "created_at": "2022-02-10 12:00:00",
    }


def test_payload_has_exactly_the_contract_keys_and_types() -> None:
    data = decoded(payload(row(amount="10.45"), UTC_ZONE))
    assert list(data) == ["id", "account", "code", "sum", "created_at"]
    assert isinstance(data["id"], str)
    assert isinstance(data["account"], str)
    assert isinstance(data["code"], str)
    assert isinstance(data["sum"], float)
    assert isinstance(data["created_at"], str)


@pytest.mark.parametrize(
    ("amount", "number"),
    [("45.00", "45.0"), ("10.45", "10.45"), ("0.01", "0.01"), ("15000", "15000.0")],
)
def test_sum_is_a_json_number_not_a_string(amount: str, number: str) -> None:
    body = payload(row(amount=amount), UTC_ZONE).decode()
    assert f'"sum": {number},' in body
    assert decoded(body.encode())["sum"] == float(amount)


def test_sum_keeps_its_cents() -> None:
    data = decoded(payload(row(amount="123456789.99"), UTC_ZONE))
    assert Decimal(repr(data["sum"])) == Decimal("123456789.99")


def test_sums_beyond_a_float_are_written_exactly() -> None:
    body = payload(row(amount="999999999999999.99"), UTC_ZONE).decode()
    assert '"sum": 999999999999999.99,' in body
    assert json.loads(body, parse_float=Decimal)["sum"] == Decimal("999999999999999.99")


@pytest.mark.parametrize(
    ("created_at", "zone", "expected"),
    [
        (datetime(2022, 2, 10, 12, 0, 0), UTC_ZONE, "2022-02-10 12:00:00"),
        (datetime(2022, 2, 10, 12, 0, 0), MOSCOW, "2022-02-10 15:00:00"),
        # The day rolls over in Moscow.
        (datetime(2022, 2, 10, 22, 30, 5), MOSCOW, "2022-02-11 01:30:05"),
        # Microseconds are dropped, not rounded.
        (datetime(2022, 2, 10, 12, 0, 0, 999999), MOSCOW, "2022-02-10 15:00:00"),
        # Zones with daylight saving: winter and summer offsets.
        (datetime(2022, 1, 15, 12, 0, 0), ZoneInfo("Europe/Berlin"), "2022-01-15 13:00:00"),
        (datetime(2022, 7, 15, 12, 0, 0), ZoneInfo("Europe/Berlin"), "2022-07-15 14:00:00"),
        (datetime(2022, 2, 10, 2, 0, 0), ZoneInfo("America/New_York"), "2022-02-09 21:00:00"),
        (datetime(2022, 2, 10, 12, 0, 0), ZoneInfo("Asia/Kolkata"), "2022-02-10 17:30:00"),
    ],
)
def test_created_at_is_naive_utc_shown_in_the_zone(
    created_at: datetime, zone: ZoneInfo, expected: str
) -> None:
    assert decoded(payload(row(created_at=created_at), zone))["created_at"] == expected


@pytest.mark.parametrize(
    "account", ["Иванов Иван", "💳 42", "<a&\"b'>", "back\\slash", "tab\there", "\u2028"]
)
def test_account_round_trips_through_json(account: str) -> None:
    body = payload(row(account=account), UTC_ZONE)
    assert decoded(body)["account"] == account


def test_non_ascii_is_sent_as_utf8_not_escaped() -> None:
    body = payload(row(account="Иванов"), UTC_ZONE)
    assert "Иванов".encode() in body


def test_payload_does_not_depend_on_attempts() -> None:
    assert payload(row(attempts=0), MOSCOW) == payload(row(attempts=7), MOSCOW)


# --- message_id --------------------------------------------------------------------------


def test_message_id_is_stable_across_retries() -> None:
    first = message_id(row(attempts=0))
    assert first == message_id(row(attempts=5))
    assert first == message_id(row(attempts=0))


def test_message_id_follows_the_code() -> None:
    assert "563456456745" in message_id(row(code="563456456745"))
    assert message_id(row(code="1")) != message_id(row(code="2"))
    assert message_id(row(id=1, code="7")) == message_id(row(id=2, code="7"))


# --- WebhookSender.headers --------------------------------------------------------------


@asynccontextmanager
async def sender(secret: str | None) -> AsyncIterator[WebhookSender]:
    async with aiohttp.ClientSession() as session:
        yield WebhookSender(
            session, "http://backend.invalid/hook", secret=secret, timeout=5.0, zone=MOSCOW
        )


async def test_signed_headers_verify_with_standardwebhooks() -> None:
    due = row()
    body = payload(due, MOSCOW)
    now = datetime.now(UTC)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, now)
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == message_id(due)
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == decoded(body)


async def test_signature_verifies_when_given_a_local_time() -> None:
    due = row()
    body = payload(due, MOSCOW)
    now = datetime.now(MOSCOW)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, now)
    assert Webhook(SECRET).verify(body, headers) == decoded(body)


async def test_signature_fails_with_another_secret() -> None:
    due = row()
    body = payload(due, MOSCOW)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, datetime.now(UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(body, headers)


async def test_signature_fails_for_a_tampered_body() -> None:
    due = row()
    body = payload(due, MOSCOW)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, datetime.now(UTC))
    forged = payload(row(amount="4500.00"), MOSCOW)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(forged, headers)


async def test_signature_covers_the_timestamp() -> None:
    due = row()
    body = payload(due, MOSCOW)
    now = datetime.now(UTC)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, now)
    headers["webhook-timestamp"] = str(int((now - timedelta(seconds=30)).timestamp()))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


async def test_signed_non_ascii_body_verifies() -> None:
    due = row(account="Иванов 💳")
    body = payload(due, MOSCOW)
    async with sender(SECRET) as webhook:
        headers = webhook.headers(due, body, datetime.now(UTC))
    assert Webhook(SECRET).verify(body, headers)["account"] == "Иванов 💳"


@pytest.mark.parametrize("secret", [None, ""])
async def test_no_secret_means_no_webhook_headers(secret: str | None) -> None:
    due = row()
    body = payload(due, MOSCOW)
    async with sender(secret) as webhook:
        headers = webhook.headers(due, body, datetime.now(UTC))
    assert headers == {"Content-Type": "application/json"}
    assert not any(name.lower().startswith("webhook-") for name in headers)
