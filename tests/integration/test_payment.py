"""``/payment``: QIWI's commands end to end, on a real database."""

from __future__ import annotations

import asyncio
import base64
import json
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from tests.support.app import ClientFactory
from tests.support.qiwi import result_of

PAY = {
    "command": "pay",
    "txn_id": "1234567",
    "txn_date": "20050815120133",
    "account": "0957835959",
    "sum": "10.45",
}


async def count(db: Any, table: str) -> int:
    value: int = await db.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def test_pay_stores_the_payment_and_answers_its_id(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    response = await client.get("/payment", params={**PAY, "ccy": "RUB", "data1": "x"})
    assert response.status == 200
    answer = await result_of(response)
    row = await db.fetchrow("SELECT * FROM qiwi_transaction")
    assert answer == {
        "osmp_txn_id": "1234567",
        "prv_txn": str(row["id"]),
        "sum": "10.45",
        "result": "0",
        "comment": "OK",
    }
    assert row["code"] == "1234567"
    assert row["account"] == "0957835959"
    assert row["sum"] == Decimal("10.45")
    assert row["status"] == 1  # no webhook configured: nothing to deliver
    assert row["ccy"] == "RUB"
    assert json.loads(row["extra"]) == {"data1": "x"}
    assert str(row["txn_date"]) == "2005-08-15 12:01:33"
    log = await db.fetchrow("SELECT * FROM qiwi_http_log WHERE id = $1", row["http_log_id"])
    assert log["method"] == "GET"
    assert "txn_id=1234567" in log["url"]


async def test_pay_is_stored_for_delivery_when_a_webhook_is_configured(
    make_client: ClientFactory, db: Any
) -> None:
    # The webhook URL points nowhere: the row must simply wait with status 0.
    client = await make_client(QIWI_WEBHOOK_URL="http://127.0.0.1:9/hook")
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "0"
    assert await db.fetchval("SELECT status FROM qiwi_transaction") == 0


async def test_repeated_pay_answers_the_same_prv_txn_and_stores_nothing_new(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    first = await result_of(await client.get("/payment", params=PAY))
    second = await result_of(await client.post("/payment", data=PAY))
    assert first == second
    assert await count(db, "qiwi_transaction") == 1
    assert await count(db, "qiwi_http_log") == 2


async def test_fifty_concurrent_duplicate_pays_make_one_row(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    responses = await asyncio.gather(*(client.get("/payment", params=PAY) for _ in range(50)))
    answers = [await result_of(response) for response in responses]
    assert {answer["result"] for answer in answers} == {"0"}
    assert len({answer["prv_txn"] for answer in answers}) == 1
    assert await count(db, "qiwi_transaction") == 1
    assert await count(db, "qiwi_http_log") == 50


@pytest.mark.parametrize("changed", [{"account": "other"}, {"sum": "10.46"}])
async def test_same_txn_id_with_another_account_or_sum_is_fatal_and_changes_nothing(
    make_client: ClientFactory, db: Any, changed: dict[str, str]
) -> None:
    client = await make_client()
    await client.get("/payment", params=PAY)
    before = await db.fetch("SELECT * FROM qiwi_transaction")
    answer = await result_of(await client.get("/payment", params={**PAY, **changed}))
    assert answer["result"] == "300"
    assert "prv_txn" not in answer
    assert await db.fetch("SELECT * FROM qiwi_transaction") == before


async def test_same_sum_written_differently_is_the_same_payment(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    first = await result_of(await client.get("/payment", params={**PAY, "sum": "10.40"}))
    second = await result_of(await client.get("/payment", params={**PAY, "sum": "10.4"}))
    assert first["prv_txn"] == second["prv_txn"]
    assert await count(db, "qiwi_transaction") == 1


async def test_get_and_post_give_identical_answers(make_client: ClientFactory) -> None:
    client = await make_client()
    check = {"command": "check", "txn_id": "5", "account": "42", "sum": "1.00"}
    by_get = await client.get("/payment", params=check)
    by_post = await client.post("/payment", data=check)
    assert await by_get.read() == await by_post.read()
    bad = {"command": "check", "txn_id": "x", "account": "42", "sum": "1.00"}
    bad_get = await client.get("/payment", params=bad)
    bad_post = await client.post("/payment", data=bad)
    assert await bad_get.read() == await bad_post.read()


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({k: v for k, v in PAY.items() if k != "command"}, "300"),
        ({k: v for k, v in PAY.items() if k != "txn_id"}, "300"),
        ({k: v for k, v in PAY.items() if k != "account"}, "300"),
        ({k: v for k, v in PAY.items() if k != "sum"}, "300"),
        ({k: v for k, v in PAY.items() if k != "txn_date"}, "300"),
        ({**PAY, "txn_id": "123456789012345678901"}, "300"),
        ({**PAY, "txn_id": "12a"}, "300"),
        ({**PAY, "sum": "1,00"}, "300"),
        ({**PAY, "sum": "-1"}, "300"),
        ({**PAY, "sum": "0"}, "300"),
        ({**PAY, "sum": "NaN"}, "300"),
        ({**PAY, "sum": "1e3"}, "300"),
        ({**PAY, "sum": " "}, "300"),
        ({**PAY, "txn_date": "20051315120133"}, "300"),
        ({**PAY, "account": ""}, "4"),
        ({**PAY, "account": "9" * 201}, "4"),
        ({**PAY, "command": "refund"}, "300"),
    ],
)
async def test_invalid_pay_gets_a_fatal_code_and_no_row(
    make_client: ClientFactory, db: Any, params: dict[str, str], code: str
) -> None:
    client = await make_client()
    answer = await result_of(await client.get("/payment", params=params))
    assert answer["result"] == code
    assert answer["comment"]
    assert await count(db, "qiwi_transaction") == 0
    assert await count(db, "qiwi_http_log") == 1


@pytest.mark.parametrize(
    ("env", "params", "code"),
    [
        ({"QIWI_ACCOUNT_REGEX": "[0-9]{10}"}, {**PAY, "account": "abc"}, "4"),
        ({"QIWI_MIN_SUM": "100"}, PAY, "241"),
        ({"QIWI_MAX_SUM": "10"}, PAY, "242"),
    ],
)
async def test_merchant_limits(
    make_client: ClientFactory, db: Any, env: dict[str, str], params: dict[str, str], code: str
) -> None:
    client = await make_client(**env)
    answer = await result_of(await client.get("/payment", params=params))
    assert answer["result"] == code
    assert await count(db, "qiwi_transaction") == 0


@pytest.mark.parametrize("account", ["<a&\"b'>", "Иванов Иван", "счёт-№1 😀", "]]>&amp;"])
async def test_any_account_is_escaped_and_stored_exactly(
    make_client: ClientFactory, db: Any, account: str
) -> None:
    client = await make_client()
    answer = await result_of(await client.post("/payment", data={**PAY, "account": account}))
    assert answer["result"] == "0"
    assert await db.fetchval("SELECT account FROM qiwi_transaction") == account


async def test_a_malformed_txn_id_is_echoed_escaped(make_client: ClientFactory) -> None:
    client = await make_client()
    answer = await result_of(await client.get("/payment", params={**PAY, "txn_id": "<x>"}))
    assert answer == {
        "osmp_txn_id": "<x>",
        "result": "300",
        "comment": "txn_id must be 1 to 20 decimal digits",
    }


async def test_invalid_utf8_is_a_fatal_error_not_a_crash(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    response = await client.get("/payment?command=check&txn_id=1&account=%FF%FE&sum=1.00")
    assert (await result_of(response))["result"] == "300"
    response = await client.post(
        "/payment",
        data=b"command=check&txn_id=1&account=\xff&sum=1.00",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (await result_of(response))["result"] == "300"
    assert await count(db, "qiwi_http_log") == 2


async def test_nul_bytes_are_rejected_and_still_logged(make_client: ClientFactory, db: Any) -> None:
    client = await make_client()
    response = await client.get(
        "/payment?command=pay&txn_id=1&txn_date=20261129120000&account=a%00b&sum=1.00"
    )
    assert (await result_of(response))["result"] == "4"
    assert await count(db, "qiwi_http_log") == 1


async def test_a_body_over_the_limit_is_refused_with_xml(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    body = "command=check&txn_id=1&sum=1.00&account=" + "a" * 100_000
    response = await client.post(
        "/payment", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 200
    assert (await result_of(response))["result"] == "300"
    assert await count(db, "qiwi_http_log") == 1


async def test_other_methods_get_405_with_xml_and_are_logged(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    response = await client.put("/payment", data="command=check")
    assert response.status == 405
    assert response.headers["Allow"] == "GET, POST"
    assert (await result_of(response))["result"] == "300"
    assert await db.fetchval("SELECT method FROM qiwi_http_log") == "PUT"


async def test_check_and_get_info_accept_any_account_without_a_check_url(
    make_client: ClientFactory, db: Any
) -> None:
    client = await make_client()
    check = await result_of(
        await client.get(
            "/payment", params={"command": "check", "txn_id": "7", "account": "1", "sum": "1.00"}
        )
    )
    assert check == {"osmp_txn_id": "7", "result": "0", "comment": "OK"}
    info = await result_of(
        await client.get("/payment", params={"command": "getInfo", "account": "1"})
    )
    assert info == {"result": "0", "comment": "OK"}
    assert await count(db, "qiwi_transaction") == 0
    assert await count(db, "qiwi_http_log") == 2


class TestBasicAuth:
    ENV: ClassVar[dict[str, str]] = {"HTTP_AUTH_USERNAME": "qiwi", "HTTP_AUTH_PASSWORD": "s3cr:et"}

    @staticmethod
    def header(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @pytest.mark.parametrize(
        "headers",
        [{}, {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}],
    )
    async def test_missing_or_malformed_credentials_get_401(
        self, make_client: ClientFactory, db: Any, headers: dict[str, str]
    ) -> None:
        client = await make_client(**self.ENV)
        response = await client.get("/payment", params=PAY, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert await count(db, "qiwi_transaction") == 0
        assert await count(db, "qiwi_http_log") == 1

    @pytest.mark.parametrize(("user", "password"), [("qiwi", "wrong"), ("other", "s3cr:et")])
    async def test_wrong_credentials_get_401(
        self, make_client: ClientFactory, user: str, password: str
    ) -> None:
        client = await make_client(**self.ENV)
        response = await client.get("/payment", params=PAY, headers=self.header(user, password))
        assert response.status == 401

    async def test_right_credentials_pass_and_are_redacted_in_the_log(
        self, make_client: ClientFactory, db: Any
    ) -> None:
        client = await make_client(**self.ENV)
        headers = {
            **self.header("qiwi", "s3cr:et"),
            "Cookie": "session=abc",
            "Proxy-Authorization": "Basic cHJveHk6cGFzcw==",
        }
        response = await client.get("/payment", params=PAY, headers=headers)
        assert (await result_of(response))["result"] == "0"
        logged = json.loads(await db.fetchval("SELECT headers FROM qiwi_http_log"))
        assert logged["Authorization"] == "Basic [redacted]"
        assert logged["Cookie"] == "[redacted]"
        assert logged["Proxy-Authorization"] == "Basic [redacted]"
        raw = await db.fetchval("SELECT headers::text || url || body FROM qiwi_http_log")
        assert "s3cr" not in raw
        assert "session=abc" not in raw
        assert "cHJveHk6cGFzcw" not in raw


class TestAllowedIps:
    async def test_callers_outside_the_list_get_403(
        self, make_client: ClientFactory, db: Any
    ) -> None:
        client = await make_client(QIWI_ALLOWED_IPS="79.142.16.0/20")
        response = await client.get("/payment", params=PAY)
        assert response.status == 403
        assert await count(db, "qiwi_transaction") == 0
        assert await db.fetchval("SELECT ip FROM qiwi_http_log") == "127.0.0.1"

    async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
        self, make_client: ClientFactory
    ) -> None:
        client = await make_client(QIWI_ALLOWED_IPS="79.142.16.0/20")
        response = await client.get(
            "/payment", params=PAY, headers={"X-Forwarded-For": "79.142.16.5"}
        )
        assert response.status == 403

    async def test_forwarded_for_is_believed_from_a_trusted_proxy(
        self, make_client: ClientFactory, db: Any
    ) -> None:
        client = await make_client(
            QIWI_ALLOWED_IPS="79.142.16.0/20", QIWI_TRUSTED_PROXIES="127.0.0.1/32"
        )
        response = await client.get(
            "/payment", params=PAY, headers={"X-Forwarded-For": "10.0.0.1, 79.142.16.5"}
        )
        assert (await result_of(response))["result"] == "0"
        assert await db.fetchval("SELECT ip FROM qiwi_http_log") == "79.142.16.5"


async def test_unknown_paths_get_404_with_xml(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/nope")
    assert response.status == 404
    assert (await result_of(response))["result"] == "300"


async def test_health_and_readiness(make_client: ClientFactory, db: Any) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await db.execute("DELETE FROM _yoyo_migration WHERE migration_id = '0002.webhook-delivery'")
    # /readyz answers from a state cached for a few seconds: a gateway started now sees it.
    response = await (await make_client()).get("/readyz")
    assert response.status == 503
    assert await response.text() == "not ready: schema not current (run qiwi-gw migrate)\n"
