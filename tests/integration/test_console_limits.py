"""What an anonymous or logged-out client can make the console read: nothing of a
POST's body before its session (and login) are known, 64 KiB of a form after that,
and the registry upload as a stream to disk with a cap, its token checked first."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qiwi_gw.console import upload
from qiwi_gw.console.security import CONTENT_SECURITY_POLICY
from tests.support.app import Client, ClientFactory
from tests.support.console import Pair, raw_exchange, start_pair
from tests.support.rows import add_payment, row

LOGIN = {"QIWI_CONSOLE_USERNAME": "ops", "QIWI_CONSOLE_PASSWORD": "s3cret-Pass"}
PROMISED = 10 * 1024 * 1024  # Content-Length announced; a few KiB are ever sent


@pytest.fixture
async def pair(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn)


@pytest.fixture
async def guarded(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn, **LOGIN)


def cookie_of(client: Client) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/"))["qiwi_console"].value


def form_post(path: str, cookie: str | None = None) -> str:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: {host}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {PROMISED}",
    ]
    if cookie is not None:
        lines.append(f"Cookie: qiwi_console={cookie}")
    return "\r\n".join(lines) + "\r\n"


async def test_a_post_without_a_session_is_refused_on_its_headers(pair: Pair) -> None:
    answer = await raw_exchange(pair.console, form_post("/pending/resend"), b"csrf=" + b"a" * 4096)
    assert answer.startswith("HTTP/1.1 403"), answer


async def test_a_post_before_logging_in_is_refused_on_its_headers(
    guarded: Pair, database_dsn: str
) -> None:
    add_payment(database_dsn, "7001")
    await guarded.page("/login")  # a session, not logged in
    cookie = cookie_of(guarded.console)
    for path in ("/pending/resend", "/payments/7001/resend", "/logout", "/registry"):
        answer = await raw_exchange(guarded.console, form_post(path, cookie), b"csrf=x&")
        assert answer.startswith("HTTP/1.1 403"), (path, answer)
    assert row(database_dsn, "7001")["status"] == 1


async def test_a_form_over_64_kib_is_refused_with_a_page_of_ours(guarded: Pair) -> None:
    token = await guarded.csrf("/login")
    response = await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "x" * (70 * 1024)},
        allow_redirects=False,
    )
    assert response.status == 413
    page = await response.text()
    assert "<h1>Too large</h1>" in page
    assert "Maximum request body size" not in page  # aiohttp's own text
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["Server"] == "qiwi-gw"


def multipart_head(cookie: str, boundary: str) -> str:
    return (
        "POST /registry HTTP/1.1\r\n"
        "Host: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {PROMISED}\r\n"
        f"Cookie: qiwi_console={cookie}\r\n"
    )


async def test_an_upload_whose_token_is_huge_is_refused_after_a_few_bytes(pair: Pair) -> None:
    await pair.page("/registry")
    boundary = "b0undary"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'.encode()
        + b"x" * 8192
    )
    answer = await raw_exchange(
        pair.console, multipart_head(cookie_of(pair.console), boundary), start
    )
    assert answer.startswith("HTTP/1.1 403"), answer


async def test_an_upload_whose_first_part_is_the_file_is_refused_unread(pair: Pair) -> None:
    await pair.page("/registry")
    boundary = "b0undary"
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\n'
        "\r\n".encode()
        + b"9" * 8192
    )
    answer = await raw_exchange(
        pair.console, multipart_head(cookie_of(pair.console), boundary), start
    )
    assert answer.startswith("HTTP/1.1 403"), answer


async def test_the_registry_file_is_capped_and_leaves_nothing_on_disk(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(upload, "MAX_FILE_BYTES", 1024 * 1024)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    token = await pair.csrf("/registry")
    form = aiohttp.FormData()
    form.add_field("csrf", token)
    form.add_field(
        "file",
        io.BytesIO(b"9;a;1.00;2026-11-01\n" * 110_000),
        filename="big.csv",
        content_type="text/csv",
    )
    response = await pair.console.post("/registry", data=form)
    assert response.status == 413
    assert "file: larger than 1 MiB" in await response.text()
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - a directory of a few entries
