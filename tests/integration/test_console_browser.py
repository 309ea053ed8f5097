"""The console in a real browser: Debian's Chromium driven by Playwright.

Pays go in through /payment; the browser finds them on the overview and in the
search, opens one, presses Resend and confirms, and the local backend receives
the webhook once more. A hostile account shows as text and no dialog fires; no
page is wider than a phone's screen. The screenshots in docs/img/ come from
here: ``CONSOLE_SCREENSHOTS=docs/img make test ARGS=tests/integration/test_console_browser.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.app import ClientFactory
from tests.support.backend import Backend
from tests.support.console import HOSTILE_ACCOUNT, Pair, start_pair
from tests.support.rows import execute

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (make test installs it when run as root)",
)

# A day of traffic behind the three payments the test makes, so the overview's
# chart has something to show: a daily curve, delivered a few seconds later.
SEED_DAY = """
INSERT INTO qiwi_transaction
    (account, code, sum, status, txn_date, created_at, delivered_at, attempts)
SELECT (700000 + g % 97)::text, (50000000 + g)::text, 100 + g % 900, 1,
       '2026-11-01 12:00', t,
       (t + make_interval(secs => 1 + (g % 7) * (g % 3))) AT TIME ZONE 'UTC', 1
FROM generate_series(1, 6000) AS g,
     LATERAL (SELECT (now() AT TIME ZONE 'UTC')
                     - make_interval(mins => (1430 * sqrt(g / 6000.0))::int) AS t) AS moment
"""


# QIWI's file for 2026-11-29: two of ours (one with another sum), one we never saw;
# the hostile account's payment is missing from it.
REGISTRY = (
    b"txn_id;account;sum;date\n"
    b"1234567;4100-1234;10.00;2026-11-29 12:00:00\n"
    b"1234568;4100-5678;205.00;2026-11-29 12:00:00\n"
    b"7654321;4100-9999;15.00;2026-11-29 12:30:00\n"
)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """docs/img when asked (to refresh the operating docs), else a temporary folder."""
    wanted = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as driver:
        launched = await driver.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def fits_the_screen(page: Any) -> bool:
    width: bool = await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth + 1"
    )
    return width


async def test_an_operator_finds_a_payment_and_resends_it(
    make_client: ClientFactory,
    aiohttp_client: Any,
    database_dsn: str,
    browser: Any,
    screenshots: Path,
) -> None:
    async with Backend() as backend:
        pair: Pair = await start_pair(
            make_client, aiohttp_client, database_dsn, QIWI_WEBHOOK_URL=backend.url
        )
        execute(database_dsn, SEED_DAY)
        await pair.pay("1234567", account="4100-1234")
        await pair.pay("1234568", account="4100-5678", sum="250.00")
        await pair.pay("1234569", account=HOSTILE_ACCOUNT)
        await backend.wait_delivered({"1234567", "1234568", "1234569"})
        base = str(pair.console.make_url("/")).rstrip("/")

        page = await (await browser.new_context(viewport=LAPTOP)).new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        errors: list[str] = []
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )

        # The overview: the day's counts and the chart.
        await page.goto(f"{base}/")
        assert await page.locator("h1").inner_text() == "Overview"
        body = await page.locator("body").inner_text()
        assert "6,003" in body
        assert await page.locator("#chart polyline").count() == 3
        box = await page.locator("#chart").bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] * 0.98, box["y"] + box["height"] * 0.3)
        assert "UTC:" in await page.locator("#chart-readout").inner_text()
        await page.screenshot(path=str(screenshots / "console-overview.png"), full_page=True)

        # Search by txn_id, open the payment.
        await page.click("text=Payments")
        await page.fill("input[name=txn_id]", "1234568")
        await page.click("button:has-text('Search')")
        assert await page.locator("table.rows tbody tr").count() == 1
        await page.click("table.rows >> text=1234568")
        assert await page.locator("h1").inner_text() == "Payment 1234568"
        payment_text = await page.locator("body").inner_text()
        assert "4100-5678" in payment_text
        assert "250.00" in payment_text
        assert "HTTP 200 (delivered)" in payment_text
        assert "GET /payment?" in payment_text
        await page.screenshot(path=str(screenshots / "console-payment.png"), full_page=True)

        # Resend, confirm: the backend receives it once more.
        received = len(backend.received)
        await page.click("text=Resend…")
        assert "Resend payment 1234568?" in await page.locator("h1").inner_text()
        await page.click("button:has-text('Resend now')")
        assert "Resend of txn_id 1234568" in await page.locator(".flash").inner_text()
        await backend.wait_received(received + 1)
        again = [item for item in backend.received[received:] if item.body["code"] == "1234568"]
        assert again

        # The hostile account is text, on every page that shows it; no dialog.
        await page.goto(f"{base}/payments?account={quote(HOSTILE_ACCOUNT)}")
        assert HOSTILE_ACCOUNT in await page.locator("table.rows").inner_text()
        await page.click("table.rows >> text=1234569")
        assert HOSTILE_ACCOUNT in await page.locator("body").inner_text()
        assert await page.locator("main img").count() == 0
        await page.goto(f"{base}/")
        assert dialogs == []
        assert errors == []

        # QIWI's registry uploaded: the differences, by reconcile's rules.
        await page.goto(f"{base}/registry")
        await page.set_input_files(
            "input[name=file]",
            {"name": "registry-2026-11-29.csv", "mimeType": "text/csv", "buffer": REGISTRY},
        )
        await page.click("button:has-text('Compare')")
        result = await page.locator("#reconciliation").inner_text()
        assert "difference(s)" in result
        assert "7654321" in result  # missing on our side
        await page.screenshot(path=str(screenshots / "console-registry.png"), full_page=True)

        # A phone: nothing wider than the screen (tables scroll inside their box).
        phone = await (await browser.new_context(viewport=PHONE)).new_page()
        for path in ("/", "/payments", "/payments/1234568", "/pending", "/registry"):
            await phone.goto(f"{base}{path}")
            assert await fits_the_screen(phone), path
