"""Webhook delivery: NOTIFY-driven, retried without limit, signed, safe with replicas."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from qiwi_gw import keys
from tests.support.app import ClientFactory
from tests.support.backend import Backend, Received
from tests.support.qiwi import result_of

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST_RETRIES = {"QIWI_WEBHOOK_RETRY_MIN": "0.05", "QIWI_WEBHOOK_RETRY_MAX": "0.2"}


def pay(txn_id: int, account: str = "42", amount: str = "45.00") -> dict[str, str]:
    return {
        "command": "pay",
        "txn_id": str(txn_id),
        "txn_date": "20261129120000",
        "account": account,
        "sum": amount,
    }


async def test_payload_and_completion(make_client: ClientFactory, db: Any) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, MS_TIMEZONE="Europe/Moscow")
        answer = await result_of(await client.get("/payment", params=pay(563456456745)))
        await backend.wait_delivered({"563456456745"})
    row = await db.fetchrow("SELECT * FROM qiwi_transaction")
    created = row["created_at"].replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Moscow"))
    assert backend.delivered()["563456456745"][0].body == {
        "id": answer["prv_txn"],
        "account": "42",
        "code": "563456456745",
        "sum": 45.0,
        "created_at": created.strftime("%Y-%m-%d %H:%M:%S"),
    }
    assert backend.delivered()["563456456745"][0].headers["Content-Type"] == "application/json"
    await client.close()  # the dispatcher records before it stops
    row = await db.fetchrow("SELECT * FROM qiwi_transaction")
    assert row["status"] == 1
    assert row["delivered_at"] is not None
    assert row["attempts"] == 1
    assert row["locked_by"] is None
    attempt = await db.fetchrow("SELECT * FROM qiwi_webhook_attempt")
    assert attempt["http_status"] == 200
    assert attempt["response_excerpt"] == "ok"


@pytest.mark.parametrize("failure", ["500", "404", "redirect", "timeout", "refused-body"])
async def test_failures_are_retried_until_a_2xx(
    make_client: ClientFactory, db: Any, failure: str
) -> None:
    hang = asyncio.Event()

    async def flaky(received: Received) -> web.StreamResponse:
        if received.number >= 2:
            return web.Response(status=204)
        if failure == "redirect":
            raise web.HTTPFound("/hook")
        if failure == "timeout":
            await hang.wait()
        if failure == "refused-body":
            return web.Response(status=422, text="x" * 10_000)
        return web.Response(status=int(failure) if failure.isdigit() else 500, text="nope")

    async with Backend(flaky) as backend:
        client = await make_client(
            QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_TIMEOUT="0.3", **FAST_RETRIES
        )
        await client.get("/payment", params=pay(1))
        await backend.wait_delivered({"1"})
        await client.close()
        hang.set()
    assert len(backend.received) == 3
    row = await db.fetchrow("SELECT status, attempts, last_error FROM qiwi_transaction")
    assert (row["status"], row["attempts"], row["last_error"]) == (1, 3, None)
    attempts = await db.fetch("SELECT * FROM qiwi_webhook_attempt ORDER BY attempt")
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert attempts[2]["http_status"] == 204
    first = attempts[0]
    if failure == "timeout":
        assert first["http_status"] is None
        assert "timeout" in first["error"]
    else:
        assert first["http_status"] in (302, 404, 422, 500)
        assert len(first["response_excerpt"] or "") <= 512


async def test_backlog_drains_within_seconds_of_the_backend_returning(
    make_client: ClientFactory, db: Any
) -> None:
    """Backoff is allowed to grow to an hour here: only the recovery rule can make
    the backlog arrive within the wait below."""
    up = asyncio.Event()

    async def outage(received: Received) -> web.StreamResponse:
        return web.Response(status=200 if up.is_set() else 503)

    async with Backend(outage) as backend:
        client = await make_client(
            QIWI_WEBHOOK_URL=backend.url,
            QIWI_WEBHOOK_RETRY_MIN="0.2",
            QIWI_WEBHOOK_RETRY_MAX="3600",
            QIWI_WEBHOOK_CONCURRENCY="4",
            QIWI_SWEEP_INTERVAL="3600",
        )
        codes = {str(n) for n in range(1, 41)}
        for code in sorted(codes):
            await client.get("/payment", params=pay(int(code)))
        await backend.wait_received(8)
        # A flood would be one request per payment at once; the breaker sends probes.
        assert len(backend.received) < len(codes)
        up.set()
        await backend.wait_delivered(codes, within=10)
        await client.close()
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE status = 0") == 0


async def test_rows_pending_before_start_are_delivered_without_a_notify(
    make_client: ClientFactory, db: Any
) -> None:
    await db.execute(
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date, next_attempt_at)"
        " SELECT 'a', n::text, 1, 0, now(), now() FROM generate_series(1, 20) n"
    )
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_SWEEP_INTERVAL="3600")
        await backend.wait_delivered({str(n) for n in range(1, 21)})
        await client.close()


async def test_a_killed_listen_connection_does_not_wait_for_the_sweep(
    make_client: ClientFactory, db: Any
) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_SWEEP_INTERVAL="3600")
        await client.get("/payment", params=pay(1))
        await backend.wait_delivered({"1"})
        listener = client.app[keys.DISPATCHER].listener
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            " AND pid <> pg_backend_pid()"
        )
        assert killed == 1
        await client.get("/payment", params=pay(2))
        await backend.wait_delivered({"2"}, within=5)
        assert listener.reconnects >= 1
        await client.close()


async def test_two_dispatchers_never_deliver_one_row_at_the_same_time(
    make_client: ClientFactory, db: Any
) -> None:
    async def slowish(received: Received) -> web.StreamResponse:
        await asyncio.sleep(0)  # yield, so deliveries interleave
        return web.Response()

    async with Backend(slowish) as backend:
        env = {"QIWI_WEBHOOK_URL": backend.url, "QIWI_SWEEP_INTERVAL": "0.05"}
        first = await make_client(**env)
        second = await make_client(**env)
        codes = {str(n) for n in range(1, 201)}
        await asyncio.gather(
            *(
                (first if int(code) % 2 else second).get("/payment", params=pay(int(code)))
                for code in codes
            )
        )
        await backend.wait_delivered(codes)
        await first.close()
        await second.close()
    by_code: dict[str, list[tuple[float, float]]] = {}
    for item in backend.received:
        by_code.setdefault(item.body["code"], []).append((item.started, item.finished))
    for code, spans in by_code.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"payment {code} was delivered twice at once"
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction WHERE status = 1") == 200


async def test_signature_verifies_with_standardwebhooks(make_client: ClientFactory) -> None:
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_SECRET=SECRET)
        await client.get("/payment", params=pay(9))
        await backend.wait_delivered({"9"})
        await client.close()
    item = backend.delivered()["9"][0]
    assert Webhook(SECRET).verify(item.raw, item.headers) == item.body
    assert item.headers["webhook-id"] == "qiwi_txn_9"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(item.raw, item.headers)
    tampered = item.raw.replace(b'"42"', b'"43"')
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, item.headers)


async def test_webhook_id_is_stable_across_retries(make_client: ClientFactory) -> None:
    async def fail_once(received: Received) -> web.StreamResponse:
        return web.Response(status=500 if received.number == 0 else 200)

    async with Backend(fail_once) as backend:
        client = await make_client(
            QIWI_WEBHOOK_URL=backend.url, QIWI_WEBHOOK_SECRET=SECRET, **FAST_RETRIES
        )
        await client.get("/payment", params=pay(10))
        await backend.wait_delivered({"10"})
        await client.close()
    ids = {item.headers["webhook-id"] for item in backend.received}
    assert len(backend.received) == 2
    assert ids == {"qiwi_txn_10"}


async def test_a_repeated_pay_notifies_nothing(make_client: ClientFactory, db: Any) -> None:
    notified: list[str] = []
    await db.add_listener("qiwi_gw:public", lambda *args: notified.append(args[3]))
    client = await make_client(QIWI_WEBHOOK_URL="http://127.0.0.1:9/hook")
    first = await result_of(await client.get("/payment", params=pay(5)))
    await result_of(await client.get("/payment", params=pay(5)))
    await db.fetchval("SELECT 1")  # a round trip delivers notifications queued before it
    assert notified == [first["prv_txn"]]


async def test_old_attempts_of_delivered_rows_are_pruned(
    make_client: ClientFactory, db: Any
) -> None:
    await db.execute(
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
        " VALUES ('a', 'old', 1, 1, now()), ('b', 'stuck', 1, 0, now())"
    )
    await db.execute(
        "INSERT INTO qiwi_webhook_attempt (transaction_id, attempt, started_at, duration_ms)"
        " SELECT id, 1, now() - interval '40 days', 1 FROM qiwi_transaction"
    )
    async with Backend() as backend:
        client = await make_client(QIWI_WEBHOOK_URL=backend.url)
        await backend.wait_delivered({"stuck"})
        await client.close()
    remaining = await db.fetch(
        "SELECT t.code FROM qiwi_webhook_attempt a"
        " JOIN qiwi_transaction t ON t.id = a.transaction_id"
        " WHERE a.started_at < now() - interval '30 days'"
    )
    assert [r["code"] for r in remaining] == ["stuck"]
