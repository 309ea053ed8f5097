"""The registry page's comparison: QIWI's file uploaded, the differences shown by
``qiwi-gw reconcile``'s rules (the same function)."""

from __future__ import annotations

import codecs
import io
import re
from typing import Any

import aiohttp
import pytest

from tests.support.app import ClientFactory
from tests.support.console import start_pair
from tests.support.rows import add_payment

REGISTRY = (
    "txn_id;account;sum;date\n"
    "9001;alice;10.00;2026-11-01 10:00:00\n"
    "9002;bob;25.00;2026-11-01 11:00:00\n"
    "9004;dave;7.00;2026-11-01 12:00:00\n"
)


async def upload(
    client: Any, token: str, text: str | bytes, **fields: str
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    for name, value in fields.items():
        form.add_field(name, value)
    data = text.encode() if isinstance(text, str) else text
    form.add_field("file", io.BytesIO(data), filename="registry.csv", content_type="text/csv")
    response: aiohttp.ClientResponse = await client.post("/registry", data=form)
    return response


async def test_an_uploaded_registry_shows_the_differences(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    add_payment(database_dsn, "9001", account="alice", txn_date="2026-11-01 10:00:00")
    add_payment(database_dsn, "9002", account="bob", amount="20.00", txn_date="2026-11-01 11:00:00")
    add_payment(database_dsn, "9003", account="carol", txn_date="2026-11-01 13:00:00")
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    token = await pair.csrf("/registry")
    response = await upload(
        pair.console, token, REGISTRY, **{"from": "2026-11-01", "to": "2026-11-01"}
    )
    page = await response.text()
    assert response.status == 200, page
    assert "3 difference(s)" in page
    missing_ours = page.split("Missing on our side")[1].split("<h3>")[0]
    assert "9004" in missing_ours
    missing_theirs = page.split("Missing on their side")[1].split("<h3>")[0]
    assert re.search(r'<a href="/payments/9003">9003</a>', missing_theirs)
    sums = page.split("Different sums")[1].split("<h3>")[0]
    assert "20.00" in sums
    assert "25.00" in sums


async def test_a_malformed_registry_is_one_line(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    token = await pair.csrf("/registry")
    response = await upload(pair.console, token, "txn_id;account;sum;date\n1;a;ten;2026-11-01\n")
    assert response.status == 400
    assert 'class="problem" role="alert">registry.csv' in await response.text()


async def test_an_upload_without_the_csrf_token_is_refused(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str
) -> None:
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    await pair.page("/registry")
    response = await upload(pair.console, "forged", REGISTRY)
    assert response.status == 403


# Files from the outside world that are no registry at all; each is one line and a 400,
# never "database unavailable" (the file's bytes are not the database's failure).
HOSTILE_FILES = {
    "nul bytes": b"\x00" * 100_000,
    "a NUL in a txn_id": b"txn_id;account;sum;date\n9\x001;a;10.00;2026-11-01\n",
    "binary": bytes(range(256)) * 400,
    "UTF-16 with a lone surrogate": codecs.BOM_UTF16_LE
    + "txn_id;account;sum;date\n1;".encode("utf-16-le")
    + b"\x00\xd8"
    + ";1.00;2026-11-01\n".encode("utf-16-le"),
    "one 5 MB line": b"9" * 5_000_000,
    "empty": b"",
    "many columns": b";".join([b"c"] * 100_000) + b"\n",
}


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
async def test_a_hostile_file_is_one_line_and_a_400(
    make_client: ClientFactory,
    aiohttp_client: Any,
    database_dsn: str,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    pair = await start_pair(make_client, aiohttp_client, database_dsn)
    token = await pair.csrf("/registry")
    response = await upload(pair.console, token, HOSTILE_FILES[name])
    page = await response.text()
    assert response.status == 400, page
    problems = re.findall(r'class="problem" role="alert">([^<]*)<', page)
    assert len(problems) == 1, page
    assert problems[0].startswith("registry.csv"), problems
    assert "Traceback" not in page
    assert "Traceback" not in caplog.text
