"""A stored ``pay`` always answers from its row.

QIWI repeats a ``pay`` whose answer it did not get. If the operator tightened a
rule meanwhile (``QIWI_MAX_SUM``, ``QIWI_ACCOUNT_REGEX``, ...) and restarted, the
repeat used to get the rule's fatal code: QIWI then refunds a customer whose
payment the merchant already has. The stored row decides first: 0 with the same
``prv_txn`` when account and sum match, 300 when they differ. Only the
protocol's own syntax comes before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qiwi_gw import keys
from tests.support.app import ClientFactory, Switch
from tests.support.qiwi import result_of

PAY = {
    "command": "pay",
    "txn_id": "5001",
    "txn_date": "20261129120000",
    "account": "ab-1000",
    "sum": "1000.00",
}

# Each: a setting that refuses PAY once it is stored, and the code it refuses with.
TIGHTER = [
    pytest.param({"QIWI_MAX_SUM": "500"}, "242", id="max-sum"),
    pytest.param({"QIWI_MIN_SUM": "5000"}, "241", id="min-sum"),
    pytest.param({"QIWI_ACCOUNT_REGEX": "[0-9]+"}, "4", id="account-regex"),
]


async def count(db: Any, table: str) -> int:
    value: int = await db.fetchval(f"SELECT count(*) FROM {table}")
    return value


async def stored_before_restart(make_client: ClientFactory) -> dict[str, str]:
    """PAY stored by a gateway with no limits; its answer is then "lost" (QIWI will repeat)."""
    first = await make_client()
    answer = await result_of(await first.get("/payment", params=PAY))
    await first.close()
    assert answer["result"] == "0"
    return answer


@pytest.mark.parametrize(("tighter", "code"), TIGHTER)
async def test_a_repeat_after_tighter_limits_answers_from_the_row(
    make_client: ClientFactory, db: Any, tighter: dict[str, str], code: str
) -> None:
    answer = await stored_before_restart(make_client)
    client = await make_client(**tighter)
    repeat = await result_of(await client.get("/payment", params=PAY))
    # The rule still applies to payments not stored yet.
    other = await result_of(await client.get("/payment", params={**PAY, "txn_id": "5002"}))
    assert repeat == answer
    assert other["result"] == code
    assert await count(db, "qiwi_transaction") == 1
    # Every request is logged, the repeat and the refusal included.
    assert await count(db, "qiwi_http_log") == 3


@pytest.mark.parametrize(("tighter", "_code"), TIGHTER)
async def test_a_repeat_with_another_account_or_sum_is_300_not_the_rules_code(
    make_client: ClientFactory, db: Any, tighter: dict[str, str], _code: str
) -> None:
    await stored_before_restart(make_client)
    client = await make_client(**tighter)
    for changed in ({"sum": "999.00"}, {"account": "ab-1001"}):
        answer = await result_of(await client.get("/payment", params={**PAY, **changed}))
        assert answer["result"] == "300"
        assert "already paid" in answer["comment"]
    assert await count(db, "qiwi_transaction") == 1


async def test_an_account_stored_before_a_rule_existed_is_answered_from_its_row(
    make_client: ClientFactory, db: Any
) -> None:
    """A row an older version (or the original image) stored with an account the
    rules now refuse: its repeat is still the same payment."""
    account = "\ufeff42\u202e"  # format characters, refused for new payments
    row_id = await db.fetchval(
        "INSERT INTO qiwi_transaction (account, code, sum, status, txn_date)"
        " VALUES ($1, '5003', 10, 1, now()) RETURNING id",
        account,
    )
    client = await make_client()
    params = {**PAY, "txn_id": "5003", "account": account, "sum": "10.00"}
    repeat = await result_of(await client.get("/payment", params=params))
    assert repeat["result"] == "0"
    assert repeat["prv_txn"] == str(row_id)


async def test_the_protocols_syntax_still_comes_first(make_client: ClientFactory) -> None:
    await stored_before_restart(make_client)
    client = await make_client(QIWI_MAX_SUM="500")
    for broken in ({"sum": "1000,00"}, {"txn_date": "2026-11-29"}, {"txn_id": "5001x"}):
        answer = await result_of(await client.get("/payment", params={**PAY, **broken}))
        assert answer["result"] == "300", broken


async def test_concurrent_repeats_under_group_commit_all_answer_from_the_row(
    make_client: ClientFactory, db: Any
) -> None:
    answer = await stored_before_restart(make_client)
    client = await make_client(QIWI_MAX_SUM="500", QIWI_ACCOUNT_REGEX="[0-9]+")
    fresh = {**PAY, "txn_id": "5010"}
    responses = await asyncio.gather(
        *(client.get("/payment", params=PAY) for _ in range(40)),
        *(client.get("/payment", params=fresh) for _ in range(10)),
    )
    answers = [await result_of(response) for response in responses]
    assert answers[:40] == [answer] * 40
    assert {a["result"] for a in answers[40:]} == {"242"}
    assert await count(db, "qiwi_transaction") == 1
    assert await count(db, "qiwi_http_log") == 1 + 50
    # The requests were committed in shared transactions, not one by one.
    assert max(client.app[keys.COMMITTER].batch_sizes) > 1


async def test_a_first_pay_and_its_refused_twin_in_one_batch(
    make_client: ClientFactory, db: Any
) -> None:
    """The same txn_id twice at once, once within the limits and once not (another
    sum): whichever is stored, the other is answered from its row (300), never 242."""
    client = await make_client(QIWI_MAX_SUM="500")
    within = {**PAY, "txn_id": "5020", "sum": "100.00"}
    beyond = {**within, "sum": "600.00"}
    first, second = await asyncio.gather(
        client.get("/payment", params=within), client.get("/payment", params=beyond)
    )
    assert (await result_of(first))["result"] == "0"
    assert (await result_of(second))["result"] == "300"
    assert await count(db, "qiwi_transaction") == 1


async def test_without_the_database_a_refusal_is_1_not_fatal(
    make_client: ClientFactory, database_switch: Switch
) -> None:
    """Nothing can say whether the txn_id is stored: only "repeat later" is safe."""
    await stored_before_restart(make_client)
    client = await make_client(QIWI_MAX_SUM="500", QIWI_DB_TIMEOUT="1")
    await database_switch(False)
    answer = await result_of(await client.get("/payment", params=PAY))
    assert answer["result"] == "1"
    await database_switch(True)
    again = await result_of(await client.get("/payment", params=PAY))
    assert again["result"] == "0"
