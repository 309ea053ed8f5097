"""Secrets by pattern: headers and parameters whose names mean credentials are
stored redacted in ``qiwi_http_log``, whatever the request's outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qiwi_gw.incoming import redact_parameters
from tests.support.app import ClientFactory

PAY = {
    "command": "pay",
    "txn_id": "4401",
    "txn_date": "20261129120000",
    "account": "42",
    "sum": "1.00",
}
SECRET = "S3cret-value-77"
SECRET_HEADERS = {
    "Authorization": f"Bearer {SECRET}",
    "Proxy-Authorization": f"Basic {SECRET}",
    "X-Forwarded-Authorization": f"Bearer {SECRET}",
    "X-Authorization": SECRET,
    "X-Api-Key": SECRET,
    "X-API_KEY": SECRET,
    "Api-Key": SECRET,
    "X-Auth-Token": SECRET,
    "X-Client-Secret": SECRET,
    "X-Password": SECRET,
    "Cookie": f"session={SECRET}",
    "Set-Cookie": f"session={SECRET}",
    "X-Session": SECRET,
    "X-Access-Key": SECRET,
}
SECRET_PARAMETERS = [
    "password",
    "passwd",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "client_secret",
    "Password",
    "pwd",
    "signature",
]


async def test_credential_headers_and_parameters_are_redacted(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    query = {**PAY, **dict.fromkeys(SECRET_PARAMETERS, SECRET)}
    get = await client.get("/payment", params=query, headers={**SECRET_HEADERS, "X-Plain": "kept"})
    post = await client.post(
        "/payment",
        data={**PAY, "txn_id": "4402", "password": SECRET, "token": SECRET},
        headers=SECRET_HEADERS,
    )
    assert get.status == post.status == 200
    rows = await db.fetch(
        "SELECT url, headers::text AS headers, body FROM qiwi_http_log ORDER BY id"
    )
    assert len(rows) == 2
    for row in rows:
        assert SECRET not in row["url"] + row["headers"] + row["body"]
        headers = json.loads(row["headers"])
        assert headers["Authorization"] == "Bearer [redacted]"
        assert headers["Proxy-Authorization"] == "Basic [redacted]"
        assert headers["X-Forwarded-Authorization"] == "Bearer [redacted]"
        for name in ("X-Api-Key", "X-API_KEY", "X-Auth-Token", "Cookie", "Set-Cookie"):
            assert headers[name] == "[redacted]"
    assert json.loads(rows[0]["headers"])["X-Plain"] == "kept"
    # Only the value goes: the names and every other parameter stay as sent.
    assert "password=[redacted]" in rows[0]["url"]
    assert "txn_id=4401" in rows[0]["url"]
    assert rows[1]["body"].count("[redacted]") == 2
    assert "txn_id=4402" in rows[1]["body"]


async def test_a_refused_requests_summary_is_redacted_too(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client(HTTP_AUTH_USERNAME="qiwi", HTTP_AUTH_PASSWORD="right")
    response = await client.get("/payment", params={**PAY, "token": SECRET}, headers=SECRET_HEADERS)
    assert response.status == 401
    row = await db.fetchrow("SELECT url, headers::text AS headers, body FROM qiwi_http_log")
    assert SECRET not in row["url"] + row["headers"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1&password=x&b=2", "a=1&password=[redacted]&b=2"),
        ("PASS%77ORD=x", "PASS%77ORD=[redacted]"),  # the name as decoded: "PASSwORD"
        ("my_token=x;sum=1", "my_token=[redacted];sum=1"),
        ("/payment?secret=", "/payment?secret=[redacted]"),
        ("account=token&sum=1", "account=token&sum=1"),  # a value, not a name
        ("no parameters", "no parameters"),
    ],
)
def test_parameters_are_redacted_by_name(text: str, expected: str) -> None:
    assert redact_parameters(text) == expected
