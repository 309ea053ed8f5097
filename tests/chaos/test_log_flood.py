"""A caller without credentials cannot fill the disk through ``qiwi_http_log``.

Access (allow-list, Basic auth) is decided from the connection and the headers
before the body is read. A refused request is logged as a bounded summary (no
body, a dozen headers cut short), at most ``QIWI_REFUSED_LOG_RATE`` rows a second
per address; the rest are counted in ``qiwi_refused_unlogged_total``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from qiwi_gw.incoming import SUMMARY_HEADERS, SUMMARY_URL_CHARS, SUMMARY_VALUE_CHARS
from tests.support.app import ClientFactory
from tests.support.gateway import gateway
from tests.support.intake import compare_latency, log_table_bytes, result_of, spawn
from tests.support.qiwi import AUTH, PASSWORD, QIWI, USER, median_ms

PROTECTED = {
    "HTTP_AUTH_USERNAME": USER,
    "HTTP_AUTH_PASSWORD": PASSWORD,
    "QIWI_ALLOWED_IPS": f"{QIWI}/32",
}
# The largest refused request the listener still parses (32 headers of 4 KiB at
# most), with a body just under the 64 KiB limit: 175 KB each.
FLOOD = {"headers": 28, "header_bytes": 4000, "body_bytes": 65000}
ROW_BYTES = (
    "octet_length(url) + octet_length(method) + octet_length(headers::text) + octet_length(body)"
)


async def test_a_refused_flood_grows_the_table_by_a_bounded_rate(database_dsn: str) -> None:
    """Four callers without credentials send big requests back to back for 4 s
    (each soon shut out: its connections then held unread for the 1 s read timeout)."""
    async with gateway(database_dsn, QIWI_READ_TIMEOUT="1", **PROTECTED) as gw:
        before = await log_table_bytes(database_dsn)
        started = time.monotonic()
        flood = await spawn(
            "refused_flood", port=gw.port, clients=4, requests=2000, seconds=4, **FLOOD
        )
        counts = await result_of(flood)
        elapsed = time.monotonic() - started
        growth = await log_table_bytes(database_dsn) - before
        metrics = await _metrics(gw.base)
        log = gw.log_text()
    sent = sum(counts.values())
    # Every one refused: with 403, or held unread until given up on.
    assert "200" not in counts
    assert counts["403"] >= 4
    assert "shutting out 127.0.0.2 for 10 s" in log
    connection = await asyncpg.connect(database_dsn)
    try:
        logged = await connection.fetchrow(
            f"SELECT count(*) AS rows, max({ROW_BYTES}) AS widest,"
            " count(*) FILTER (WHERE body <> '') AS with_body FROM qiwi_http_log"
        )
    finally:
        await connection.close()
    assert logged is not None
    # Five a second per address (bursts of five) from four addresses.
    assert 4 <= logged["rows"] <= 4 * (5 + 5 * elapsed)
    assert logged["with_body"] == 0
    assert logged["widest"] <= 5000
    assert metrics["qiwi_refused_unlogged_total"] == counts["403"] - logged["rows"]
    # Each refused request cost the table a small part of one of its headers
    # (was 185 KB: the whole request); the rows it holds are summaries.
    assert growth / counts["403"] < 4000, (growth, counts)
    assert sent >= counts["403"]


async def test_pay_latency_during_a_refused_flood_stays_near_idle(database_dsn: str) -> None:
    """300 big refused requests a second from four addresses (new ones each time)
    for 2 s: QIWI's pays are answered about as fast as without (no absolute time: a
    ratio of medians, over alternating slices)."""
    async with gateway(database_dsn, **PROTECTED) as gw:

        async def flood(number: int) -> asyncio.subprocess.Process:
            return await spawn(
                "refused_flood",
                port=gw.port,
                clients=4,
                requests=600,
                seconds=2,
                rate=300,
                source=4 * number,
                **FLOOD,
            )

        idle, flooded, counts = await compare_latency(gw.base, flood)
    for flood_counts in counts:
        assert "200" not in flood_counts
        assert flood_counts["403"] >= 4
    assert median_ms(flooded) <= 3 * median_ms(idle), (median_ms(idle), median_ms(flooded))


async def _metrics(base: str) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/metrics", headers={"Authorization": AUTH}) as response,
    ):
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


# --- in-process: what a refused request leaves behind ----------------------------------


async def test_access_is_decided_before_the_body_arrives(make_client: ClientFactory) -> None:
    """A caller outside the allow-list gets 403 while its body is still on the way."""
    client = await make_client(QIWI_ALLOWED_IPS="10.0.0.0/8")
    assert client.port is not None
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /payment HTTP/1.1\r\nHost: q\r\nContent-Length: 60000\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\ncommand=pay&"
    )
    async with asyncio.timeout(10):
        status_line = await reader.readline()
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 403 ")


async def test_a_refused_request_is_logged_as_a_bounded_summary(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client(QIWI_ALLOWED_IPS="10.0.0.0/8")
    headers = {f"X-Pad-{n}": "v" * 1000 for n in range(20)}
    response = await client.post(
        "/payment?command=pay&password=hunter2&" + "x=" + "y" * 2000,
        data={"account": "1", "secret": "s"},
        headers={**headers, "Cookie": "session=abc"},
    )
    assert response.status == 403
    row = await db.fetchrow(
        "SELECT ip, url, method, headers::text AS headers, body FROM qiwi_http_log"
    )
    logged = json.loads(row["headers"])
    assert row["ip"] == "127.0.0.1"
    assert row["method"] == "POST"
    assert row["body"] == ""
    assert row["url"].startswith("/payment?command=pay&password=[redacted]&x=yyy")
    assert len(row["url"]) == SUMMARY_URL_CHARS
    assert len(logged) == SUMMARY_HEADERS + 1
    assert logged["(more)"].endswith("header(s) not kept")
    assert all(len(value) <= SUMMARY_VALUE_CHARS for value in logged.values())
    assert "hunter2" not in row["url"]


async def test_refused_requests_are_logged_at_most_five_a_second_per_address(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client(HTTP_AUTH_USERNAME=USER, HTTP_AUTH_PASSWORD=PASSWORD)
    started = time.monotonic()
    for _ in range(30):
        assert (await client.get("/payment", params={"command": "check"})).status == 401
    elapsed = time.monotonic() - started
    rows = await db.fetchval("SELECT count(*) FROM qiwi_http_log")
    scrape = await client.get("/metrics", headers={"Authorization": AUTH})
    text = await scrape.text()
    assert 5 <= rows <= 5 + 5 * elapsed
    assert f"qiwi_refused_unlogged_total {float(30 - rows)}" in text
    assert 'qiwi_requests_total{command="check",result="http_401"} 30.0' in text


def test_a_storm_of_refusals_never_shuts_out_an_allowed_address() -> None:
    """A wrong password after a change, or a neighbour behind QIWI's NAT, must not
    shut QIWI itself out; an address outside the allow-list is shut out."""
    from qiwi_gw.gate import STRIKES_PER_SECOND, Gate
    from qiwi_gw.metrics import Metrics
    from qiwi_gw.settings import Settings

    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://h/db", "QIWI_ALLOWED_IPS": "10.0.0.0/8"}
    )
    gate = Gate(settings, Metrics(), clock=lambda: 1000.0)
    for _ in range(int(STRIKES_PER_SECOND) * 3):
        gate.strike("10.1.2.3")
        gate.strike("192.0.2.7")
    assert not gate.penalised("10.1.2.3")
    assert gate.penalised("192.0.2.7")
