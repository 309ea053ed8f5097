"""Security: Basic auth compared in constant time, ``X-Forwarded-For`` believed only
from trusted proxies, credentials never stored in ``qiwi_http_log`` nor logged.

No test here measures time: constant time is checked by recording what
``hmac.compare_digest`` is asked to compare (both halves, as bytes, whatever the
header), which is what makes the comparison's duration independent of the secret.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from aiohttp import ClientResponse

from qiwi_gw import access, server
from qiwi_gw.errors import ConfigError, DatabaseUnavailableError
from qiwi_gw.logs import JsonFormatter, TextFormatter
from qiwi_gw.settings import Settings
from tests.support.app import ClientFactory
from tests.support.qiwi import result_of

GET_INFO = {"command": "getInfo", "account": "42"}
PAY = {
    "command": "pay",
    "txn_id": "7001",
    "txn_date": "20261129120000",
    "account": "42",
    "sum": "10.45",
}
QIWI_NETWORK = "79.142.16.0/20"


async def result(response: ClientResponse) -> str:
    return (await result_of(response))["result"]


def basic(user: str, password: str, encoding: str = "utf-8") -> str:
    token = base64.b64encode(f"{user}:{password}".encode(encoding)).decode()
    return f"Basic {token}"


# --- Basic auth: both halves always compared, in constant time --------------------

USER = "qiwi"
PASSWORD = "Pa55-word"


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    """Every call of ``hmac.compare_digest`` made through ``qiwi_gw.access``."""
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("qiwi_gw.access.hmac.compare_digest", recording)
    return calls


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(basic(USER, PASSWORD), True, id="right"),
        pytest.param(basic(USER, PASSWORD).replace("Basic", "basic"), True, id="right-lower"),
        pytest.param(basic("qiwx", PASSWORD), False, id="wrong-user-same-length"),
        pytest.param(basic("someone-else", PASSWORD), False, id="wrong-user"),
        pytest.param(basic(USER, "Pa55-worx"), False, id="wrong-password-same-length"),
        pytest.param(basic(USER, "Pa55"), False, id="password-prefix"),
        pytest.param(basic(USER, PASSWORD + "x"), False, id="password-longer"),
        pytest.param(basic("x", "y"), False, id="both-wrong"),
        pytest.param(basic("", ""), False, id="both-empty"),
        pytest.param(None, False, id="no-header"),
        pytest.param("", False, id="empty-header"),
        pytest.param("Basic", False, id="scheme-only"),
        pytest.param("Bearer " + PASSWORD, False, id="other-scheme"),
        pytest.param("Basic !!!not-base64!!!", False, id="bad-base64"),
        pytest.param("Basic " + base64.b64encode(b"qiwiPa55-word").decode(), False, id="no-colon"),
        pytest.param("Basic w6TDtsO8", False, id="non-ascii-decoded"),
        pytest.param("Basic äöü", False, id="non-ascii-header"),
    ],
)
def test_basic_auth_always_compares_both_halves_as_bytes(
    comparisons: list[tuple[object, object]], header: str | None, expected: bool
) -> None:
    assert access.basic_auth_matches(header, USER, PASSWORD) is expected
    # Two comparisons whatever the header: no early exit on a wrong user or a
    # malformed header, and no `==` on either half.
    assert len(comparisons) == 2, comparisons
    assert {known for _given, known in comparisons} == {USER.encode(), PASSWORD.encode()}
    # Bytes on both sides: compare_digest is constant-time for bytes (str is only
    # accepted for ASCII, and would raise on a non-ASCII header).
    assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in comparisons)


async def test_the_gateway_compares_both_halves_for_every_caller(
    make_client: ClientFactory, comparisons: list[tuple[object, object]], db: Any
) -> None:
    client = await make_client(HTTP_AUTH_USERNAME=USER, HTTP_AUTH_PASSWORD=PASSWORD)
    headers = [
        basic(USER, PASSWORD),
        basic("intruder", PASSWORD),
        basic(USER, "guess"),
        "Basic ???",
    ]
    statuses = []
    for header in headers:
        response = await client.get("/payment", params=GET_INFO, headers={"Authorization": header})
        statuses.append(response.status)
    assert statuses == [200, 401, 401, 401]
    assert len(comparisons) == 2 * len(headers)
    assert await db.fetchval("SELECT count(*) FROM qiwi_http_log") == len(headers)


async def test_a_non_ascii_password_is_compared_as_utf8_bytes(
    make_client: ClientFactory,
) -> None:
    password = "пароль-ä"
    client = await make_client(HTTP_AUTH_USERNAME=USER, HTTP_AUTH_PASSWORD=password)
    right = await client.get(
        "/payment", params=GET_INFO, headers={"Authorization": basic(USER, password)}
    )
    assert await result(right) == "0"
    latin1 = await client.get(
        "/payment", params=GET_INFO, headers={"Authorization": basic(USER, "ä", "latin-1")}
    )
    assert latin1.status == 401
    assert latin1.headers["WWW-Authenticate"].startswith("Basic ")


# --- X-Forwarded-For: believed only from trusted proxies ---------------------------


SPOOFS = [
    "79.142.16.5",
    "79.142.16.5, 79.142.16.6",
    "127.0.0.1, 79.142.16.5",
    "::ffff:79.142.16.5",
    "79.142.16.5, garbage",
]


@pytest.mark.parametrize("trusted", [None, "10.0.0.0/8"])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    make_client: ClientFactory, db: Any, trusted: str | None
) -> None:
    env = {"QIWI_ALLOWED_IPS": QIWI_NETWORK}
    if trusted is not None:
        env["QIWI_TRUSTED_PROXIES"] = trusted  # the test client's 127.0.0.1 is not in it
    client = await make_client(**env)
    for forwarded_for in SPOOFS:
        response = await client.get(
            "/payment", params=PAY, headers={"X-Forwarded-For": forwarded_for}
        )
        assert response.status == 403, forwarded_for
    # The rejected requests are logged with the address that really called.
    logged = await db.fetch("SELECT ip FROM qiwi_http_log ORDER BY id")
    assert [row["ip"] for row in logged] == ["127.0.0.1"] * len(SPOOFS)
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction") == 0


# (X-Forwarded-For, status, the caller's address as logged)
ONE_PROXY = [
    # The proxy saw QIWI: allowed.
    ("79.142.16.5", 200, "79.142.16.5"),
    # The client wrote a hop of its own on the left; the proxy appended the address
    # it saw (QIWI's): the rightmost untrusted hop wins, allowed.
    ("10.0.0.9, 79.142.16.5", 200, "79.142.16.5"),
    # A spoofed QIWI address on the left, the real caller appended by the proxy.
    ("79.142.16.5, 10.0.0.9", 403, "10.0.0.9"),
    ("79.142.16.5,10.0.0.9", 403, "10.0.0.9"),
    # A hop that is not an address ends the walk at the last address known.
    ("79.142.16.5, not-an-address", 403, "127.0.0.1"),
    ("", 403, "127.0.0.1"),
    ("::ffff:79.142.16.5", 200, "::ffff:79.142.16.5"),
]
TWO_PROXIES = [
    # Trusted proxies in a row are skipped, then the first untrusted hop counts.
    ("79.142.16.5, 10.1.2.3", 200, "79.142.16.5"),
    ("1.2.3.4, 79.142.16.5, 10.1.2.3", 200, "79.142.16.5"),
    ("79.142.16.5, 192.0.2.1, 10.1.2.3", 403, "192.0.2.1"),
    # Every hop trusted: the leftmost is the client.
    ("10.0.0.1, 10.0.0.2", 403, "10.0.0.1"),
]


@pytest.mark.parametrize(
    ("trusted", "cases"),
    [("127.0.0.1/32", ONE_PROXY), ("127.0.0.1/32,10.0.0.0/8", TWO_PROXIES)],
    ids=["one-proxy", "two-proxies"],
)
async def test_a_trusted_proxy_chain_is_read_from_the_right(
    make_client: ClientFactory,
    db: Any,
    trusted: str,
    cases: list[tuple[str, int, str]],
) -> None:
    client = await make_client(QIWI_ALLOWED_IPS=QIWI_NETWORK, QIWI_TRUSTED_PROXIES=trusted)
    for forwarded_for, status, _ip in cases:
        response = await client.get(
            "/payment", params=GET_INFO, headers={"X-Forwarded-For": forwarded_for}
        )
        assert response.status == status, forwarded_for
    logged = await db.fetch("SELECT ip FROM qiwi_http_log ORDER BY id")
    assert [row["ip"] for row in logged] == [ip for _forwarded_for, _status, ip in cases]


async def test_repeated_forwarded_for_lines_are_one_list(
    make_client: ClientFactory, db: Any
) -> None:
    """A proxy may append its own header line rather than extend the client's
    (HAProxy's ``option forwardfor`` does): reading only the first line would
    believe the client's spoof."""
    client = await make_client(QIWI_ALLOWED_IPS=QIWI_NETWORK, QIWI_TRUSTED_PROXIES="127.0.0.1/32")
    # The client's spoof first, then the line the trusted proxy appended with
    # the address it really saw. RFC 9110 5.3: the same as "79.142.16.5, 10.0.0.9".
    response = await client.get(
        "/payment",
        params=PAY,
        headers=[("X-Forwarded-For", "79.142.16.5"), ("X-Forwarded-For", "10.0.0.9")],
    )
    logged = await db.fetchrow("SELECT ip, headers FROM qiwi_http_log")
    assert json.loads(logged["headers"])["X-Forwarded-For"] == "79.142.16.5, 10.0.0.9"
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction") == 0
    assert response.status == 403
    assert logged["ip"] == "10.0.0.9"


# --- Credentials never stored, never logged ----------------------------------------

AUTH_USER = "qiwi-login"
AUTH_PASSWORD = "Auth-pa55-s3cret"
WRONG_PASSWORD = "Wrong-pa55-s3cret"
BEARER_TOKEN = "Bearer-t0ken-s3cret"
PROXY_PASSWORD = "Proxy-pa55-s3cret"
COOKIE_SECRET = "Cookie-s3cret-value"
CHECK_USER = "check-user-x"
CHECK_PASSWORD = "Check-pa55-s3cret"
CHECK_TOKEN = "Check-t0ken-s3cret"
HOOK_USER = "hook-user-x"
HOOK_PASSWORD = "Hook-pa55-s3cret"
HOOK_TOKEN = "Hook-t0ken-s3cret"
DB_PASSWORD = "Db-pa55-s3cret"
WEBHOOK_KEY = b"webhook-signing-key-s3cret-0123"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()

AUTHORIZATION = basic(AUTH_USER, AUTH_PASSWORD)
WRONG_AUTHORIZATION = basic(AUTH_USER, WRONG_PASSWORD)
PROXY_AUTHORIZATION = basic("proxy-user", PROXY_PASSWORD)


def needles() -> list[str]:
    """Every secret, as written and as it travels (base64 in headers, %-encoded)."""
    plain = [
        AUTH_PASSWORD,
        WRONG_PASSWORD,
        BEARER_TOKEN,
        PROXY_PASSWORD,
        COOKIE_SECRET,
        CHECK_USER,
        CHECK_PASSWORD,
        CHECK_TOKEN,
        HOOK_USER,
        HOOK_PASSWORD,
        HOOK_TOKEN,
        DB_PASSWORD,
        WEBHOOK_SECRET,
        base64.b64encode(WEBHOOK_KEY).decode(),
        WEBHOOK_KEY.decode(),
    ]
    encoded = [
        header.partition(" ")[2]
        for header in (AUTHORIZATION, WRONG_AUTHORIZATION, PROXY_AUTHORIZATION)
    ]
    return plain + encoded + [quote(text, safe="") for text in plain]


def leaks(texts: list[str]) -> list[tuple[str, str]]:
    return [(needle, text) for text in texts for needle in needles() if needle in text]


class Lines(logging.Handler):
    """Formats every record the way the gateway's own handler would."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Iterator[list[Lines]]:
    """Every log record at DEBUG, formatted as text and as JSON lines."""
    caplog.set_level(logging.DEBUG)
    handlers = [Lines(TextFormatter()), Lines(JsonFormatter())]
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield handlers
    finally:
        for handler in handlers:
            root.removeHandler(handler)


class WebhookFailures(logging.Handler):
    """Wakes the test when the dispatcher has logged ``wanted`` failed deliveries."""

    def __init__(self, wanted: int) -> None:
        super().__init__(logging.DEBUG)
        self.wanted = wanted
        self.count = 0
        self.reached = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "qiwi_gw.dispatcher" and record.getMessage().startswith("webhook down"):
            self.count += 1
            if self.count >= self.wanted:
                self.reached.set()


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


async def test_credentials_are_never_stored_nor_logged(
    make_client: ClientFactory,
    db: Any,
    database_dsn: str,
    log_lines: list[Lines],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = WebhookFailures(wanted=2)
    logging.getLogger("qiwi_gw.dispatcher").addHandler(failures)
    try:
        await _exercise_every_path(make_client, database_dsn, failures)
    finally:
        logging.getLogger("qiwi_gw.dispatcher").removeHandler(failures)

    # Every path was taken (else "nothing leaked" would prove nothing).
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("check URL ") and " unreachable" in m for m in messages)
    assert sum(m.startswith("webhook down") for m in messages) >= 2
    assert sum(m.endswith("Basic authentication failed") for m in messages) == 2
    assert any(m.endswith("not in QIWI_ALLOWED_IPS") for m in messages)
    assert any(m.startswith("database: postgresql://") for m in messages)

    texts = [caplog.text, *(line for handler in log_lines for line in handler.lines)]
    assert len(log_lines[0].lines) == len(caplog.records)
    assert not leaks(texts)

    logged = [
        row["line"]
        for row in await db.fetch("SELECT row_to_json(l)::text AS line FROM qiwi_http_log l")
    ]
    assert len(logged) == 9
    stored = [
        row["line"]
        for table in ("qiwi_transaction", "qiwi_webhook_attempt")
        for row in await db.fetch(f"SELECT row_to_json(t)::text AS line FROM {table} t")
    ]
    assert not leaks(logged + stored)

    # Redacted, not dropped: an operator still sees which scheme was used.
    for line in logged:
        headers = json.loads(line)["headers"]
        assert headers["Proxy-Authorization"] == "Basic [redacted]"
        assert headers["Cookie"] == "[redacted]"
        assert headers["Authorization"] in (
            "Basic [redacted]",
            "Bearer [redacted]",
            "Basic [redacted], Basic [redacted]",
        )
    attempts = await db.fetch("SELECT error FROM qiwi_webhook_attempt")
    assert attempts
    assert all("127.0.0.1" in row["error"] for row in attempts)


async def _exercise_every_path(
    make_client: ClientFactory, database_dsn: str, failures: WebhookFailures
) -> None:
    """Check (the check URL refuses), pay (the webhook refuses, again and again),
    401s, a 403, a 405 and a malformed request, all carrying credentials."""
    env = {
        "DATABASE_URL": with_password(database_dsn, DB_PASSWORD),
        "HTTP_AUTH_USERNAME": AUTH_USER,
        "HTTP_AUTH_PASSWORD": AUTH_PASSWORD,
        "QIWI_CHECK_URL": f"http://{CHECK_USER}:{CHECK_PASSWORD}@127.0.0.1:9/check"
        f"?token={CHECK_TOKEN}",
        "QIWI_WEBHOOK_URL": f"http://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:9/hook"
        f"?token={HOOK_TOKEN}",
        "QIWI_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "QIWI_WEBHOOK_RETRY_MIN": "0.01",
        "QIWI_WEBHOOK_RETRY_MAX": "0.05",
        "QIWI_ALLOWED_IPS": "127.0.0.1/32",
        "QIWI_TRUSTED_PROXIES": "127.0.0.1/32",
        "DEBUG": "true",
    }
    settings = Settings.from_env(env)
    # What `serve` logs about the database it uses.
    with server.database(settings) as dsn:
        assert DB_PASSWORD in dsn
    # What the CLI prints when the database cannot be reached at all.
    with pytest.raises(DatabaseUnavailableError) as refused:
        server.migrate(with_password("postgresql://postgres@127.0.0.1:9/x", DB_PASSWORD), "public")
    assert "127.0.0.1" in str(refused.value)
    assert not leaks([str(refused.value)])

    client = await make_client(**env)
    secrets_sent = {"Proxy-Authorization": PROXY_AUTHORIZATION, "Cookie": COOKIE_SECRET}
    right = {"Authorization": AUTHORIZATION, **secrets_sent}

    check = {"command": "check", "txn_id": "7000", "account": "42", "sum": "1.00"}
    # The check URL refuses: temporary.
    assert await result(await client.get("/payment", params=check, headers=right)) == "1"
    assert await result(await client.get("/payment", params=GET_INFO, headers=right)) == "1"
    assert await result(await client.post("/payment", data=PAY, headers=right)) == "0"
    wrong = {"Authorization": WRONG_AUTHORIZATION, **secrets_sent}
    assert (await client.get("/payment", params=PAY, headers=wrong)).status == 401
    bearer = {"Authorization": f"Bearer {BEARER_TOKEN}", **secrets_sent}
    assert (await client.get("/payment", params=PAY, headers=bearer)).status == 401
    forwarded = {**right, "X-Forwarded-For": "10.0.0.9"}
    assert (await client.get("/payment", params=PAY, headers=forwarded)).status == 403
    assert (await client.put("/payment", data=PAY, headers=right)).status == 405
    malformed = {**PAY, "txn_id": "x"}
    assert await result(await client.get("/payment", params=malformed, headers=right)) == "300"
    twice = [("Authorization", AUTHORIZATION), ("Authorization", WRONG_AUTHORIZATION)]
    twice += list(secrets_sent.items())
    assert (await client.get("/payment", params=PAY, headers=twice)).status == 200

    async with asyncio.timeout(30):
        await failures.reached.wait()
    # Stopping lets the dispatcher record its outcomes and log its shutdown too.
    await client.close()


@pytest.mark.parametrize(
    ("name", "value", "blamed"),
    [
        ("QIWI_CHECK_URL", f"ftp://{CHECK_USER}:{CHECK_PASSWORD}@h/x?t={CHECK_TOKEN}", None),
        ("QIWI_CHECK_URL", f"http://{CHECK_USER}:{CHECK_PASSWORD}@h:99999/", None),
        ("QIWI_WEBHOOK_URL", f"http://{HOOK_USER}:{HOOK_PASSWORD}@/?t={HOOK_TOKEN}", None),
        ("DATABASE_URL", f"mysql://u:{DB_PASSWORD}@h/db", None),
        ("DATABASE_URL", f"postgresql://u:{DB_PASSWORD}@h:port/db", None),
        ("QIWI_WEBHOOK_SECRET", HOOK_TOKEN, None),
        ("QIWI_WEBHOOK_SECRET", f"whsec_{HOOK_TOKEN}!", None),
        ("HTTP_AUTH_PASSWORD", AUTH_PASSWORD, "HTTP_AUTH_USERNAME"),
    ],
)
def test_configuration_errors_do_not_repeat_secrets(
    name: str, value: str, blamed: str | None
) -> None:
    """The CLI prints these on stderr when the gateway refuses to start."""
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DATABASE_URL": "postgresql://h/db", name: value})
    assert error.value.variable == (blamed or name)
    assert not leaks([str(error.value)])


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://qiwi:{DB_PASSWORD}@db.internal:5432/qiwi",
        f"postgresql://qiwi:{quote(DB_PASSWORD + '@:/', safe='')}@db.internal/qiwi",
        f"postgresql://db.internal/qiwi?user=qiwi&password={DB_PASSWORD}",
        f"postgresql://qiwi@db.internal/qiwi?sslmode=verify-full&sslpassword={DB_PASSWORD}",
    ],
)
def test_the_database_url_is_logged_without_its_secrets(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings.from_env({"DATABASE_URL": dsn})
    with server.database(settings):
        pass
    assert "db.internal" in caplog.text
    assert DB_PASSWORD not in caplog.text
    assert quote(DB_PASSWORD, safe="") not in caplog.text
