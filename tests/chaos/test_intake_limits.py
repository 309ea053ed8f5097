"""QIWI's listener bounds what a caller can hold: time to send a request,
connections per address and in all, and what a malformed request costs.

Against real gateway processes on loopback (``tests.support.gateway``,
``tests.support.intake``); hostile callers come from 127.0.0.2 and up, QIWI from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

import aiohttp

from qiwi_gw.admission import Admission, Verdict, caps_for, descriptors_needed
from qiwi_gw.settings import Settings
from tests.support.gateway import Gateway, gateway
from tests.support.intake import attacker, held, result_of, spawn
from tests.support.qiwi import AUTH, PASSWORD, QIWI, USER, Payer

CREDENTIALS = {"HTTP_AUTH_USERNAME": USER, "HTTP_AUTH_PASSWORD": PASSWORD}
GUARD = 20.0  # seconds: a hang guard for each wait, never a measurement


async def connect(
    gw: Gateway, source: str = QIWI
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(QIWI, gw.port, local_addr=(source, 0))


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    async with asyncio.timeout(GUARD):
        with suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def test_a_stalled_body_is_closed_after_the_read_timeout(database_dsn: str) -> None:
    async with gateway(database_dsn, QIWI_READ_TIMEOUT="1", **CREDENTIALS) as gw:
        reader, writer = await connect(gw)
        started = time.monotonic()
        writer.write(
            b"POST /payment HTTP/1.1\r\nHost: q\r\nAuthorization: " + AUTH.encode() + b"\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"command=pay"
        )
        answer = await until_closed(reader)
        waited = time.monotonic() - started
        writer.close()
        log = gw.log_text()
    # Closed once the read timeout ran out (not before), with a short answer.
    assert waited >= 0.9  # not before its time (the loop's clock ticks in milliseconds)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert "body not received within 1 s (QIWI_READ_TIMEOUT)" in log


async def test_headers_that_never_end_are_closed_after_the_read_timeout(
    database_dsn: str,
) -> None:
    async with gateway(database_dsn, QIWI_READ_TIMEOUT="1", **CREDENTIALS) as gw:
        reader, writer = await connect(gw, attacker(0))
        started = time.monotonic()
        writer.write(b"GET /payment?command=pay HTTP/1.1\r\nHost: q\r\nX-Slow: ")
        answer = await until_closed(reader)
        waited = time.monotonic() - started
        writer.close()
        log = gw.log_text()
    assert waited >= 0.9  # not before its time (the loop's clock ticks in milliseconds)
    assert answer == b""
    assert f"connection from {attacker(0)} closed: no complete request within 1 s" in log


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout(
    database_dsn: str,
) -> None:
    async with gateway(database_dsn, QIWI_KEEPALIVE_TIMEOUT="1", **CREDENTIALS) as gw:
        reader, writer = await connect(gw)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: q\r\n\r\n")
        started = time.monotonic()
        answer = await until_closed(reader)
        waited = time.monotonic() - started
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert waited >= 0.9  # not before its time (the loop's clock ticks in milliseconds)


async def test_one_address_holds_at_most_its_share(database_dsn: str) -> None:
    async with gateway(database_dsn, QIWI_MAX_CONNECTIONS_PER_IP="5", **CREDENTIALS) as gw:
        hold = await spawn("hold_connections", port=gw.port, addresses=1, per_address=8, seconds=1)
        counts = await result_of(hold)
        # Another address is not affected.
        payer = Payer(gw.base)
        await payer.run(3)
        log = gw.log_text()
    assert counts["opened"] == 8
    assert counts["closed_by_server"] == 3
    assert payer.answers == ["0", "0", "0"]
    assert f"connection from {attacker(0)} refused: 5 open from this address" in log


async def test_a_connection_flood_under_a_low_descriptor_limit_leaves_qiwi_paying(
    database_dsn: str,
) -> None:
    """256 descriptors for the gateway, 600 connections held by ten attackers: QIWI
    (on the allow-list) keeps paying, and the gateway says why it refuses."""
    async with gateway(
        database_dsn, nofile=256, QIWI_ALLOWED_IPS=f"{QIWI}/32", **CREDENTIALS
    ) as gw:
        hold = await spawn(
            "hold_connections", port=gw.port, addresses=10, per_address=60, seconds=4
        )
        await held(hold)
        # A new connection for every pay: the descriptors are taken by now.
        payer = Payer(gw.base, reconnect=True)
        stop = asyncio.Event()
        paying = asyncio.create_task(payer.run_until(stop))
        counts = await result_of(hold)
        stop.set()
        await paying
        log = gw.log_text()
    assert counts["opened"] == 600
    assert counts["closed_by_server"] > 0
    assert len(payer.answers) >= 10
    assert set(payer.answers) == {"0"}, payer.answers
    assert "the file descriptor limit (256) leaves room for" in log
    assert "open from outside QIWI_ALLOWED_IPS" in log


async def test_a_malformed_request_is_one_short_warning_and_a_short_answer(
    database_dsn: str,
) -> None:
    hostile = b"<script>alert(1)</script>"
    async with gateway(database_dsn, **CREDENTIALS) as gw:
        answers = []
        for request in (
            b"GET /payment HTTP/1.1\r\nHost: q\r\nBad " + hostile + b"\r\n\r\n",
            b"GET /payment HTTP/1.1\r\nHost: q\r\n" + b"X-Many: 1\r\n" * 40 + b"\r\n",
            b"POST /payment HTTP/1.1\r\nHost: q\r\nAuthorization: " + AUTH.encode() + b"\r\n"
            b"Content-Encoding: br\r\nContent-Length: 4\r\n\r\nabcd",
        ):
            reader, writer = await connect(gw, attacker(0))
            writer.write(request)
            answers.append(await until_closed(reader))
            writer.close()
        log = gw.log_text()
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b" 400 " in head.split(b"\r\n")[0]
        assert b"Server: qiwi-gw\r\n" in head + b"\r\n"
        assert b"Python" not in head
        assert hostile not in body
        assert b"Brotli" not in body
        assert len(body) < 100
    warnings = [line for line in log.splitlines() if "malformed request from" in line]
    assert warnings
    assert all(" WARNING " in line for line in warnings)
    assert "Traceback" not in log
    assert "ERROR" not in log


async def test_malformed_requests_are_warned_about_at_most_once_a_second_per_address(
    database_dsn: str,
) -> None:
    async with gateway(database_dsn, **CREDENTIALS) as gw:
        started = time.monotonic()
        for _ in range(30):
            reader, writer = await connect(gw, attacker(1))
            writer.write(b"NOT HTTP\r\n\r\n")
            await until_closed(reader)
            writer.close()
        elapsed = time.monotonic() - started
        log = gw.log_text()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gw.base}/metrics", headers={"Authorization": AUTH}) as response,
        ):
            metrics = await response.text()
    warned = sum("malformed request from" in line for line in log.splitlines())
    assert 1 <= warned <= 1 + elapsed
    assert "qiwi_bad_requests_total 30.0" in metrics


# --- the admission's arithmetic, without a process ------------------------------------


def admission_for(**env: str) -> Admission:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://h/db", **env})
    caps = caps_for(settings, descriptor_limit=settings.limits.max_connections + 1000)
    return Admission(
        caps,
        allowed=settings.allowed_networks,
        trusted_proxies=settings.trusted_proxies,
        penalised=lambda address: address == "192.0.2.66",
    )


def test_an_address_gets_its_share_and_a_trusted_proxy_more() -> None:
    gate = admission_for(
        QIWI_MAX_CONNECTIONS="50",
        QIWI_MAX_CONNECTIONS_PER_IP="3",
        QIWI_TRUSTED_PROXIES="10.0.0.1/32",
    )
    assert [gate.admit("192.0.2.1") for _ in range(4)] == [Verdict.SERVE] * 3 + [Verdict.REFUSE]
    assert [gate.admit("10.0.0.1") for _ in range(10)] == [Verdict.SERVE] * 10
    gate.release("192.0.2.1")
    assert gate.admit("192.0.2.1") is Verdict.SERVE


def test_a_tenth_of_the_total_is_kept_for_the_allow_list() -> None:
    gate = admission_for(
        QIWI_MAX_CONNECTIONS="200",
        QIWI_MAX_CONNECTIONS_PER_IP="200",
        QIWI_ALLOWED_IPS="127.0.0.1/32",
    )
    assert gate.caps.others == 200 - 20
    outsiders = [gate.admit("192.0.2.1") for _ in range(200)]
    assert outsiders.count(Verdict.SERVE) == 180
    assert [gate.admit("127.0.0.1") for _ in range(21)] == [Verdict.SERVE] * 20 + [Verdict.REFUSE]


def test_a_shut_out_address_is_held_within_the_caps() -> None:
    gate = admission_for(QIWI_MAX_CONNECTIONS_PER_IP="2")
    verdicts = [gate.admit("192.0.2.66") for _ in range(3)]
    assert verdicts == [Verdict.HOLD, Verdict.HOLD, Verdict.REFUSE]
    assert gate.held_by("192.0.2.66") == 2


def test_the_descriptor_limit_caps_the_total() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://h/db"})
    caps = caps_for(settings, descriptor_limit=256)
    assert caps.total == 256 - descriptors_needed(settings)
    assert caps.per_address == min(100, caps.total)
