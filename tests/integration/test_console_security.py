"""The console's defences: CSRF on every POST, login when configured (constant
time, rate-limited), cookie flags, the Content-Security-Policy."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from qiwi_gw.console import keys
from qiwi_gw.console.security import (
    CONTENT_SECURITY_POLICY,
    LoginLimiter,
    Sessions,
    credentials_match,
)
from tests.support.app import ClientFactory
from tests.support.console import Pair, csrf_of, start_pair
from tests.support.rows import add_payment, row

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


def test_login_limiter_blocks_an_address_and_only_slows_everyone() -> None:
    now = [0.0]
    limiter = LoginLimiter(per_address=2, overall=3, window=60, clock=lambda: now[0])
    assert not limiter.failed("a")
    assert limiter.failed("a")  # the failure that blocks "a"
    assert limiter.blocked("a")
    assert not limiter.blocked("b")
    limiter.failed("b")
    # Three failures in the window from anywhere: everyone is slowed, nobody refused.
    assert limiter.slowed()
    assert not limiter.blocked("c")
    now[0] = 61
    assert not limiter.blocked("a")
    assert not limiter.slowed()


async def test_failures_from_everywhere_never_lock_the_operator_out(guarded: Pair) -> None:
    limiter = guarded.console.app[keys.LOGINS]
    for address in range(40):  # forty other addresses, one failure each
        limiter.failed(f"10.0.0.{address}")
    assert limiter.slowed()
    token = csrf_of(await guarded.page("/login"))
    response = await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "s3cret-Pass"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/"


def test_credentials_compare_both_halves() -> None:
    assert credentials_match("ops", "pw", "ops", "pw")
    assert not credentials_match("ops", "pw!", "ops", "pw")
    assert not credentials_match("ops!", "pw", "ops", "pw")
    assert not credentials_match("", "", None, None)


def test_logged_in_sessions_expire_and_stay_bounded() -> None:
    now = [0.0]
    sessions = Sessions(idle_seconds=10, capacity=2, clock=lambda: now[0])
    first = sessions.new("ops")
    second = sessions.new("ops")
    third = sessions.new("ops")
    evicted = sessions.get(first.id)
    assert evicted is not None
    assert evicted.user is None  # the oldest login went first
    assert sessions.get(second.id) is second
    now[0] = 11
    expired = sessions.get(third.id)
    assert expired is not None
    assert expired.user is None


def test_anonymous_visitors_cannot_evict_a_logged_in_session() -> None:
    sessions = Sessions()
    operator = sessions.log_in(sessions.new(), "ops")
    for _ in range(20_000):
        sessions.new()
    assert sessions.get(operator.id) is operator


def test_a_cookie_this_process_did_not_make_is_not_adopted() -> None:
    sessions = Sessions()
    assert sessions.get("attacker-chosen") is None
    made = sessions.new()
    assert sessions.get(made.id + "x") is None
    assert Sessions().get(made.id) is None  # another process (a restart): another key
    again = sessions.get(made.id)
    assert again is not None
    assert again.csrf == made.csrf  # the token is the id's, not stored anywhere


async def test_many_anonymous_visits_leave_the_operator_logged_in(guarded: Pair) -> None:
    token = csrf_of(await guarded.page("/login"))
    await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "s3cret-Pass"},
        allow_redirects=False,
    )
    assert "<h1>Overview</h1>" in await guarded.page("/")
    url = guarded.console.make_url("/login")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as strangers:
        for _ in range(10):
            batch = [strangers.get(url) for _ in range(1001)]
            for response in await asyncio.gather(*batch):
                assert response.status == 200
                response.release()
    assert "<h1>Overview</h1>" in await guarded.page("/")


async def test_metrics_guesses_count_as_failed_logins(
    guarded: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    def basic(password: str) -> dict[str, str]:
        encoded = base64.b64encode(f"ops:{password}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}

    statuses = []
    for guess in range(7):
        response = await guarded.console.get("/metrics", headers=basic(f"guess{guess}"))
        statuses.append(response.status)
    assert statuses == [401] * 5 + [429] * 2
    assert "wrong Basic auth from 127.0.0.1" in caplog.text
    # The address is blocked for the login form too, even with the right password.
    assert (await guarded.console.get("/metrics", headers=basic("s3cret-Pass"))).status == 429
    token = csrf_of(await guarded.page("/login"))
    response = await guarded.console.post(
        "/login",
        data={"csrf": token, "username": "ops", "password": "s3cret-Pass"},
        allow_redirects=False,
    )
    assert response.status == 429


@pytest.mark.parametrize(
    "host",
    ["attacker.example:{port}", "127.0.0.1:1", "attacker.example", "127.0.0.1.nip.io:{port}"],
)
async def test_without_login_only_the_console_names_are_answered(pair: Pair, host: str) -> None:
    port = pair.console.port
    for path in ("/", "/payments", "/metrics", "/pending/resend"):
        response = await pair.console.get(path, headers={"Host": host.format(port=port)})
        assert response.status == 421, path
        assert "Unknown host" in await response.text()
    for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}"):
        assert (await pair.console.get("/", headers={"Host": good})).status == 200


async def test_with_a_login_any_host_gets_the_login_page(guarded: Pair) -> None:
    response = await guarded.console.get(
        "/", headers={"Host": "gateway.example"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/login"


async def test_a_post_from_another_origin_is_refused(pair: Pair, database_dsn: str) -> None:
    add_payment(database_dsn, "6003")
    token = await pair.csrf()
    port = pair.console.port
    assert port is not None
    for origin in (f"http://attacker.example:{port}", "null", f"http://127.0.0.1:{port + 1}"):
        response = await pair.console.post(
            "/payments/6003/resend",
            data={"csrf": token},
            headers={"Origin": origin},
            allow_redirects=False,
        )
        assert response.status == 403, origin
    assert row(database_dsn, "6003")["status"] == 1
    response = await pair.console.post(
        "/payments/6003/resend",
        data={"csrf": token},
        headers={"Origin": f"http://127.0.0.1:{port}"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert row(database_dsn, "6003")["status"] == 0


async def test_every_response_names_qiwi_gw_as_its_server(pair: Pair) -> None:
    for path in ("/", "/nowhere", "/static/console.css", "/metrics", "/favicon.ico"):
        response = await pair.console.get(path)
        assert response.headers["Server"] == "qiwi-gw", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
