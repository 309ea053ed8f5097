"""No answer tells a caller which Python and aiohttp versions run here."""

from __future__ import annotations

from tests.support.app import ClientFactory

PAY = {
    "command": "pay",
    "txn_id": "9001",
    "txn_date": "20261129120000",
    "account": "42",
    "sum": "1.00",
}


async def test_no_answer_carries_a_version_banner(make_client: ClientFactory) -> None:
    client = await make_client(HTTP_AUTH_USERNAME="qiwi", HTTP_AUTH_PASSWORD="secret")
    auth = {"Authorization": "Basic cWl3aTpzZWNyZXQ="}
    responses = [
        await client.get("/payment", params=PAY, headers=auth),  # 200
        await client.get("/payment", params={**PAY, "sum": "x"}, headers=auth),  # 300
        await client.get("/payment", params=PAY),  # 401
        await client.put("/payment", data=PAY, headers=auth),  # 405
        await client.get("/nowhere"),  # 404
        await client.get("/healthz"),
        await client.get("/readyz"),
    ]
    assert [r.status for r in responses] == [200, 200, 401, 405, 404, 200, 200]
    for response in responses:
        assert response.headers.get("Server", "qiwi-gw") == "qiwi-gw", response.url
