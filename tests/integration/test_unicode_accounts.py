"""Accounts with invisible or line-breaking characters are refused with code 4.

Format characters (Cf: U+202E turns text around, U+FEFF and U+200B are
invisible) and line or paragraph separators (Zl, Zp) would be stored, sent to
the backend and shown to operators, where one account can pass for another.
"""

from __future__ import annotations

from typing import Any

import pytest

from qiwi_gw.protocol import Limits, ProtocolError, ResultCode, parse_command
from tests.support.app import ClientFactory
from tests.support.qiwi import result_of

REFUSED = {
    "right-to-left override": "42\u202e1",
    "byte order mark": "\ufeff42",
    "zero width space": "4\u200b2",
    "zero width joiner": "4\u200d2",
    "soft hyphen": "4\u00ad2",
    "line separator": "4\u20282",
    "paragraph separator": "4\u20292",
}
KEPT = ["Иванов Иван", "счёт №42", "42\u00a0000", "ü", "💳"]


@pytest.mark.parametrize("account", REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("command", ["check", "pay", "getInfo"])
def test_format_and_separator_characters_are_4(account: str, command: str) -> None:
    pairs = [
        ("command", command),
        ("txn_id", "1"),
        ("txn_date", "20261129120000"),
        ("account", account),
        ("sum", "1.00"),
    ]
    with pytest.raises(ProtocolError) as refused:
        parse_command(pairs, Limits())
    assert refused.value.code == ResultCode.BAD_ACCOUNT_FORMAT


@pytest.mark.parametrize("account", KEPT)
def test_other_unicode_is_kept_as_it_is(account: str) -> None:
    pairs = [("command", "check"), ("txn_id", "1"), ("account", account), ("sum", "1.00")]
    assert parse_command(pairs, Limits()).account == account


async def test_such_a_pay_is_neither_stored_nor_asked_about(
    make_client: ClientFactory, db: Any
) -> None:
    # The check URL points nowhere: asking it would answer 1, not 4.
    client = await make_client(QIWI_CHECK_URL="http://127.0.0.1:9/check", QIWI_CHECK_ON_PAY="true")
    for number, account in enumerate(REFUSED.values()):
        pay = {
            "command": "pay",
            "txn_id": str(900 + number),
            "txn_date": "20261129120000",
            "account": account,
            "sum": "1.00",
        }
        assert (await result_of(await client.get("/payment", params=pay)))["result"] == "4"
    assert await db.fetchval("SELECT count(*) FROM qiwi_transaction") == 0
    assert await db.fetchval("SELECT count(*) FROM qiwi_http_log") == len(REFUSED)
