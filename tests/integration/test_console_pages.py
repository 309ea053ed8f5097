"""The console's pages with aiohttp's test client on a real PostgreSQL: what each
shows, search and its pages, resend, the registry export, bad input."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import re
from typing import Any

import pytest
from aiohttp import web

from qiwi_gw.console import payments as payments_page
from tests.support.app import ClientFactory
from tests.support.backend import Backend, Received
from tests.support.console import HOSTILE_ACCOUNT, Pair, start_pair
from tests.support.rows import add_attempt, add_payment, execute, row


@pytest.fixture
async def pair(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn)


def codes_in(page: str) -> list[str]:
    """The txn_ids of a result table, in order."""
    return re.findall(r'<td><a href="/payments/[^"]+">([^<]+)</a></td>', page)


async def test_overview_counts_and_chart(pair: Pair) -> None:
    await pair.pay("1001")
    await pair.pay("1002")
    page = await pair.page("/")
    assert "<h1>Overview</h1>" in page
    # No webhook URL: stored completed, nothing sent; the overview says so.
    assert "not set" in page
    assert re.search(r"<dt>received \(stored\)</dt>\s*<dd>2</dd>", page)
    assert re.search(r"<dt>pending</dt>\s*<dd><a href=\"/pending\">0</a>", page)
    assert '<svg id="chart"' in page
    assert "stored: 2" in page
    assert '<script src="/static/chart.js' in page


async def test_overview_shows_the_listener_and_last_error(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    async with Backend() as backend:
        pair = await start_pair(
            make_client, aiohttp_client, database_dsn, QIWI_WEBHOOK_URL=backend.url
        )
        await pair.pay("2001")
        await backend.wait_delivered({"2001"})
        transaction_id = add_payment(database_dsn, "2002", delivered_ago="1 minute")
        add_attempt(database_dsn, transaction_id, 1, ago="2 minutes", http_status=502)
        page = await pair.page("/")
    assert "<code>http://127.0.0.1:" in page
    assert re.search(r"LISTEN connection</dt>\s*<dd><span class=\"ok\">connected", page)
    assert "HTTP 502" in page
    assert re.search(r"last delivery</dt>\s*<dd><a href=\"/payments/200[12]\">", page)


async def test_overview_shows_an_outage_and_the_rows_it_holds(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str, db: Any
) -> None:
    async def down(received: Received) -> web.StreamResponse:
        return web.Response(status=503)

    async with Backend(down) as backend:
        pair = await start_pair(
            make_client,
            aiohttp_client,
            database_dsn,
            QIWI_WEBHOOK_URL=backend.url,
            QIWI_WEBHOOK_RETRY_MIN="60",
        )
        for txn_id in ("2101", "2102", "2103"):
            await pair.pay(txn_id)
        query = "SELECT count(*) FROM qiwi_transaction WHERE attempts = 1"
        async with asyncio.timeout(30):
            while await db.fetchval(query) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the recorder writes in a task of its own
        # The three failures opened the outage; rows that fail while it lasts are
        # the held ones (the policy is tested in tests/chaos/test_delivery_policy.py).
        await db.execute("UPDATE qiwi_transaction SET held_by_outage = true")
        page = await pair.page("/")
    assert re.search(r"backend</dt>\s*<dd><span class=\"warn\">outage</span> since", page)
    assert re.search(r"held back by an outage</dt><dd>3</dd>", page)


async def test_search_by_each_field(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "3001", account="alice", txn_date="2026-11-01 10:00:00")
    add_payment(database_dsn, "3002", account="bob", txn_date="2026-11-02 10:00:00")
    third = add_payment(
        database_dsn, "3003", account="alice", txn_date="2026-11-03 10:00:00", delivered_ago=None
    )
    assert codes_in(await pair.page("/payments")) == ["3003", "3002", "3001"]
    assert codes_in(await pair.page("/payments", txn_id="3002")) == ["3002"]
    assert codes_in(await pair.page("/payments", prv_txn=str(third))) == ["3003"]
    assert codes_in(await pair.page("/payments", account="alice")) == ["3003", "3001"]
    assert codes_in(await pair.page("/payments", status="0")) == ["3003"]
    assert codes_in(await pair.page("/payments", status="1")) == ["3002", "3001"]
    by_date = await pair.page("/payments", **{"from": "2026-11-02", "to": "2026-11-03"})
    assert codes_in(by_date) == ["3003", "3002"]
    both = await pair.page("/payments", account="alice", **{"from": "2026-11-02"})
    assert codes_in(both) == ["3003"]
    assert codes_in(await pair.page("/payments", account="carol")) == []


async def test_pagination_boundaries(pair: Pair, database_dsn: str) -> None:
    size = payments_page.PAGE_SIZE
    execute(
        database_dsn,
        """
        INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)
        SELECT 'acc', (10000 + g)::text, 1, 1, '2026-11-01' FROM generate_series(1, %s) AS g
        """,
        2 * size,
    )
    first = await pair.page("/payments")
    assert codes_in(first) == [str(10000 + n) for n in range(2 * size, size, -1)]
    assert 'rel="prev"' not in first
    older = html.unescape(re.search(r'href="([^"]+)" rel="next"', first)[1])  # type: ignore[index]
    second = await pair.page(older)
    assert codes_in(second) == [str(10000 + n) for n in range(size, 0, -1)]
    # Exactly two pages: nothing older than the second.
    assert 'rel="next"' not in second
    newer = html.unescape(re.search(r'href="([^"]+)" rel="prev"', second)[1])  # type: ignore[index]
    back = await pair.page(newer)
    assert codes_in(back) == codes_in(first)
    assert 'rel="prev"' not in back
    # One row more: a third page with that one row.
    execute(database_dsn, "DELETE FROM qiwi_transaction WHERE code = '10001'")
    add_payment(database_dsn, "99999", account="acc")
    execute(database_dsn, "UPDATE qiwi_transaction SET account = 'acc'")
    assert len(codes_in(await pair.page("/payments", account="acc"))) == size


async def test_the_last_page_ends_where_the_rows_do(pair: Pair, database_dsn: str) -> None:
    size = payments_page.PAGE_SIZE
    for n in range(size + 1):
        add_payment(database_dsn, str(20000 + n), account="edge")
    first = await pair.page("/payments", account="edge")
    assert len(codes_in(first)) == size
    older = html.unescape(re.search(r'href="([^"]+)" rel="next"', first)[1])  # type: ignore[index]
    last = await pair.page(older)
    assert codes_in(last) == ["20000"]
    assert 'rel="next"' not in last
    assert "account=edge" in older


async def test_a_search_by_dates_pages_by_qiwi_date(pair: Pair, database_dsn: str) -> None:
    size = payments_page.PAGE_SIZE
    # QIWI's dates out of storing order, many on one day: ties go by id.
    execute(
        database_dsn,
        """
        INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)
        SELECT 'acc', (30000 + g)::text, 1, 1, timestamp '2026-11-01' + (g %% 7) * interval '1 day'
        FROM generate_series(1, %s) AS g
        """,
        2 * size + 3,
    )
    add_payment(database_dsn, "39999", txn_date="2026-10-31 23:59:59")  # outside the range
    expected = [
        code
        for (code,) in execute(
            database_dsn,
            "SELECT code FROM qiwi_transaction WHERE txn_date >= '2026-11-01'"
            " ORDER BY txn_date DESC, id DESC",
        )
    ]
    params = {"from": "2026-11-01", "to": "2026-11-30"}
    seen: list[str] = []
    pages = [await pair.page("/payments", **params)]
    while True:
        seen += codes_in(pages[-1])
        found = re.search(r'href="([^"]+)" rel="next"', pages[-1])
        if found is None:
            break
        pages.append(await pair.page(html.unescape(found[1])))
    assert seen == expected
    assert len(pages) == 3
    newer = re.search(r'href="([^"]+)" rel="prev"', pages[2])
    assert newer is not None
    assert codes_in(await pair.page(html.unescape(newer[1]))) == codes_in(pages[1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-13-01"}, "from: &#39;2026-13-01&#39; is not a real date"),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "from: 2026-11-05 is after to 2026-11-01"),
        ({"prv_txn": "x1"}, "prv_txn: &#39;x1&#39; is not a positive whole number"),
        ({"status": "7"}, "status: &#39;7&#39; is neither 0 nor 1"),
        ({"before": "-1"}, "before: &#39;-1&#39; is not a positive whole number"),
        ({"account": "a" * 300}, "account: longer than 256 characters"),
    ],
)
async def test_bad_search_is_one_line_and_a_400(
    pair: Pair, params: dict[str, str], message: str
) -> None:
    page = await pair.page("/payments", 400, **params)
    assert message in page


async def test_a_payment_with_its_request_and_attempts(pair: Pair, database_dsn: str) -> None:
    await pair.pay("4001", account="acc-7", prv_id="77")
    transaction_id = row(database_dsn, "4001")["id"]
    add_attempt(database_dsn, transaction_id, 1, ago="2 minutes", http_status=503, response="busy")
    add_attempt(database_dsn, transaction_id, 2, ago="1 minute", error="connection refused")
    page = await pair.page("/payments/4001")
    assert "<h1>Payment 4001</h1>" in page
    assert "acc-7" in page
    assert "10.00" in page
    # The request-log row: its method, URL and headers as stored.
    assert "GET /payment?" in page
    assert "command=pay" in page
    assert "&#34;Host&#34;" in page or "&quot;Host&quot;" in page or "Host" in page
    assert "HTTP 503" in page
    assert "busy" in page
    assert "connection refused" in page


async def test_an_unknown_payment_is_a_404_page(pair: Pair) -> None:
    page = await pair.page("/payments/404404", 404)
    assert "No payment with txn_id 404404." in page
    await pair.page("/nowhere", 404)


async def test_a_hostile_account_is_text_everywhere(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "5001", account=HOSTILE_ACCOUNT, delivered_ago=None)
    escaped = html.escape(HOSTILE_ACCOUNT, quote=False)
    for path in ("/payments", "/payments/5001", "/pending", "/payments/5001/resend"):
        page = await pair.page(path)
        assert "<img" not in page, path
        # The pending table cuts long accounts, escaped all the same.
        assert escaped[:20] in page, path
    assert "<img" not in await pair.page("/payments", account=HOSTILE_ACCOUNT)


async def test_resend_asks_first_then_schedules_like_the_cli(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "6001")
    confirm = await pair.page("/payments/6001/resend")
    assert "Resend payment 6001?" in confirm
    assert row(database_dsn, "6001")["status"] == 1  # asking changes nothing
    token = re.search(r'name="csrf" value="([^"]+)"', confirm)[1]  # type: ignore[index]
    response = await pair.console.post(
        "/payments/6001/resend", data={"csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/payments/6001"
    after = row(database_dsn, "6001")
    assert after["status"] == 0
    assert after["delivered_at"] is None
    page = await pair.page("/payments/6001")
    assert "Resend of txn_id 6001: was completed, now due now: will be sent once more." in page


async def test_resend_all_pending(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "7001", delivered_ago=None, next_attempt_in="1 hour")
    add_payment(database_dsn, "7002", delivered_ago=None, next_attempt_in="2 hours")
    page = await pair.page("/pending")
    assert codes_in(page) == ["7001", "7002"]
    assert "2 pending (0 due now)" in page
    confirm = await pair.page("/pending/resend")
    token = re.search(r'name="csrf" value="([^"]+)"', confirm)[1]  # type: ignore[index]
    response = await pair.console.post(
        "/pending/resend", data={"csrf": token}, allow_redirects=False
    )
    assert response.status == 303
    assert "2 pending (2 due now)" in await pair.page("/pending")


async def test_registry_export_is_the_cli_csv(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "8001", txn_date="2026-11-01 09:00:00", amount="1.50")
    add_payment(database_dsn, "8002", txn_date="2026-11-02 23:59:59")
    add_payment(database_dsn, "8003", txn_date="2026-11-03 00:00:00")
    assert "Registry" in await pair.page("/registry")
    response = await pair.console.get(
        "/registry/export.csv", params={"from": "2026-11-01", "to": "2026-11-02"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["txn_id", "prv_txn", "account", "sum", "txn_date", "created_at", "status"]
    assert [r[0] for r in rows[1:]] == ["8001", "8002"]
    assert rows[1][3] == "1.50"


async def test_registry_export_with_a_bad_period(pair: Pair) -> None:
    page = await pair.page("/registry/export.csv", 400, **{"from": "2026-11-02", "to": "nope"})
    assert "to: &#39;nope&#39; is not a date written YYYY-MM-DD" in page
    assert "give both days" in await pair.page(
        "/registry/export.csv", 400, **{"from": "2026-11-02"}
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("txn_id=%00", "txn_id"),
        ("account=a%00b", "account"),
        ("account=a%1Bb", "account"),
        ("account=a%C2%85b", "account"),  # NEL, a C1 control character
    ],
)
async def test_a_control_character_in_a_search_is_a_400_naming_the_field(
    pair: Pair, query: str, field: str
) -> None:
    response = await pair.console.get(f"/payments?{query}")
    page = await response.text()
    assert response.status == 400, page
    assert re.search(rf'class="problem"[^>]*>{field}: contains the control character U\+', page)
    assert "Database unavailable" not in page


@pytest.mark.parametrize("path", ["/payments/%00", "/payments/1%00/resend", "/payments/%7F"])
async def test_a_control_character_in_the_txn_id_of_the_path_is_a_400(
    pair: Pair, path: str
) -> None:
    response = await pair.console.get(path)
    page = await response.text()
    assert response.status == 400, page
    assert "txn_id: contains the control character U+00" in page


async def test_a_control_character_in_a_posted_txn_id_is_a_400(pair: Pair) -> None:
    token = await pair.csrf()
    response = await pair.console.post(
        "/payments/9%00/resend", data={"csrf": token}, allow_redirects=False
    )
    assert response.status == 400
    assert "txn_id: contains the control character U+0000" in await response.text()


async def test_an_unknown_long_txn_id_is_echoed_cut(pair: Pair) -> None:
    page = await pair.page("/payments/" + "9" * 5000, 404)
    message = re.search(r'class="problem">([^<]*)<', page)
    assert message is not None
    assert message[1] == f"No payment with txn_id {'9' * 100}…."
