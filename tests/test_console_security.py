"""The console's defences: CSRF on every POST, login when configured (constant
time, rate-limited), cookie flags, the Content-Security-Policy."""

from __future__ import annotations

from typing import Any

import pytest

from qiwi_gw.console.security import (
    CONTENT_SECURITY_POLICY,
    LoginLimiter,
    Sessions,
    credentials_match,
)
from tests.conftest import ClientFactory
from tests.console_helpers import Pair, csrf_of, start_pair
from tests.ops_helpers import add_payment, row

LOGIN = {"QIWI_CONSOLE_USERNAME": "ops", "QIWI_CONSOLE_PASSWORD": "s3cret-Pass"}


@pytest.fixture
async def pair(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn)


@pytest.fixture
async def guarded(make_client: ClientFactory, aiohttp_client: Any, database_dsn: str) -> Pair:
    return await start_pair(make_client, aiohttp_client, database_dsn, **LOGIN)


@pytest.mark.parametrize("path", ["/payments/6001/resend", "/pending/resend", "/logout"])
async def test_a_post_without_the_csrf_token_is_refused(
    pair: Pair, database_dsn: str, path: str
) -> None:
    add_payment(database_dsn, "6001")
    await pair.page("/")  # a session, as a browser would have
    for data in ({}, {"csrf": "forged"}):
        response = await pair.console.post(path, data=data, allow_redirects=False)
        assert response.status == 403
        assert "security token is missing or stale" in await response.text()
    assert row(database_dsn, "6001")["status"] == 1


async def test_a_token_from_another_session_is_refused(
    make_client: ClientFactory, aiohttp_client: Any, database_dsn: str, pair: Pair
) -> None:
    add_payment(database_dsn, "6002")
    stolen = await pair.csrf()
    other = await start_pair(make_client, aiohttp_client, database_dsn)
    await other.page("/")
    response = await other.console.post(
        "/payments/6002/resend", data={"csrf": stolen}, allow_redirects=False
    )
    assert response.status == 403
    assert row(database_dsn, "6002")["status"] == 1


async def test_headers_and_cookie_flags(pair: Pair) -> None:
    response = await pair.console.get("/")
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    # Error pages carry them too.
    missing = await pair.console.get("/nowhere")
    assert missing.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def test_without_login_settings_there_is_no_login(pair: Pair) -> None:
    response = await pair.console.get("/login", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_login_required_when_set(guarded: Pair) -> None:
    for path in ("/", "/payments", "/payments/1", "/pending", "/registry", "/nowhere"):
        response = await guarded.console.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/login"
    form = await guarded.page("/login")
    assert 'name="password"' in form
    assert (await guarded.console.get("/static/console.css")).status == 200


async def test_login_then_logout(guarded: Pair) -> None:
    token = csrf_of(await guarded.page("/login"))
    before = guarded.console.session.cookie_jar.filter_cookies(guarded.console.make_url("/"))
    response = await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "s3cret-Pass"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/"
    after = guarded.console.session.cookie_jar.filter_cookies(guarded.console.make_url("/"))
    # A new session id at login: one planted before it is worth nothing.
    assert after["qiwi_console"].value != before["qiwi_console"].value
    overview = await guarded.page("/")
    assert "<h1>Overview</h1>" in overview
    response = await guarded.console.post(
        "/logout", data={"csrf": csrf_of(overview)}, allow_redirects=False
    )
    assert response.status == 303
    assert (await guarded.console.get("/", allow_redirects=False)).status == 303


async def test_a_wrong_password_then_the_rate_limit(guarded: Pair) -> None:
    token = csrf_of(await guarded.page("/login"))
    statuses = []
    for _ in range(6):
        response = await guarded.console.post(
            "/login",
            data={"csrf": token, "username": "ops", "password": "guess"},
            allow_redirects=False,
        )
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429]
    assert "Too many failed logins" in await response.text()
    # Even the right password waits out the window.
    response = await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "s3cret-Pass"},
        allow_redirects=False,
    )
    assert response.status == 429


def test_login_limiter_window_and_overall_cap() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_address=2, overall=3, window=60, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.blocked("a")
    assert not limiter.blocked("b")
    limiter.failed("b")
    assert limiter.blocked("c")  # three failures in the window from anywhere
    now[0] = 61
    assert not limiter.blocked("a")
    assert not limiter.blocked("c")


def test_credentials_compare_both_halves() -> None:
    assert credentials_match("ops", "pw", "ops", "pw")
    assert not credentials_match("ops", "pw!", "ops", "pw")
    assert not credentials_match("ops!", "pw", "ops", "pw")
    assert not credentials_match("", "", None, None)


def test_sessions_expire_and_stay_bounded() -> None:
    now = [0.0]
    sessions = Sessions(idle_seconds=10, capacity=2, clock=lambda: now[0])
    first = sessions.new()
    second = sessions.new()
    third = sessions.new()
    assert sessions.get(first.id) is None  # evicted: the oldest goes first
    assert sessions.get(second.id) is second
    now[0] = 11
    assert sessions.get(third.id) is None
