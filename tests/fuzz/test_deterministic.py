"""Hostile requests written out by hand: the limits and encodings fuzzing reaches only by
chance, through the same harness and invariants."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from tests.fuzz.harness import (
    MAX_BODY,
    NO_ROW,
    Expectation,
    FuzzTarget,
    Gateways,
    Request,
    ValidPay,
)
from tests.fuzz.strategies import encoded

# --- deterministic cases -------------------------------------------------------------

PAY: Final = {
    "command": "pay",
    "txn_id": "4242",
    "txn_date": "20261129120000",
    "account": "0957835959",
    "sum": "10.45",
}
FORM: Final = ((b"Content-Type", b"application/x-www-form-urlencoded"),)


def form(params: dict[str, str]) -> str:
    return "&".join(encoded(list(params.items())))


def get(query: str, expect: Expectation = NO_ROW) -> Request:
    target = f"/payment?{query}"
    return Request(b"GET", target.encode(), expect=expect, logged_url=target)


def post(body: bytes, query: str = "", expect: Expectation = NO_ROW) -> Request:
    target = f"/payment?{query}" if query else "/payment"
    return Request(
        b"POST",
        target.encode(),
        headers=FORM,
        body=body,
        expect=expect,
        logged_url=target,
        logged_body=body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        if len(body) <= MAX_BODY
        else "",
    )


async def answers(target: FuzzTarget, *requests: Request) -> list[dict[str, str]]:
    """Send one by one, every invariant checked; the XML answers, in order."""
    found = []
    for request in requests:
        (ex,) = await target.run([request])
        assert ex.answer is not None, ex.response
        found.append(ex.answer)
    return found


async def test_a_body_over_64_kib_is_refused_and_logged(gateways: Gateways) -> None:
    target = await gateways.start()
    body = (form(PAY) + "&pad=").encode()
    at_limit = body + b"x" * (MAX_BODY - len(body))
    over, chunked_over = post(at_limit + b"x"), post(at_limit + b"x" * 40_000)
    chunked_over = Request(**{**chunked_over.__dict__, "chunked": True})
    refused = await answers(target, over, chunked_over)
    for answer in refused:
        assert answer["result"] == "300"
        assert answer["comment"] == f"request body is over {MAX_BODY} bytes"
    # 64 KiB exactly is still a request.
    (accepted,) = await answers(
        target, post(at_limit, expect=ValidPay("4242", PAY["account"], Decimal("10.45")))
    )
    assert accepted["result"] == "0"
    assert target.paid.keys() == {"4242"}


async def test_invalid_utf8_in_the_body_or_the_query_is_refused(gateways: Gateways) -> None:
    target = await gateways.start()
    valid = form(PAY)
    refused = await answers(
        target,
        get(valid.replace("account=0957835959", "account=%FF")),
        get(valid + "&data1=%C3%28"),
        get(valid.replace("command=pay", "command=pay%ED%A0%80")),
        get(valid + "&unread=%F4%90%80%80"),
        post(valid.encode().replace(b"account=", b"account=\xff")),
        post(valid.encode() + b"&data1=%E2%82"),
        post(b"x=\xc0\xaf", query=valid),
    )
    for answer in refused:
        assert answer["result"] == "300"
        assert answer["comment"] in (
            "parameters are not valid UTF-8",
            "request body is not valid UTF-8",
        )
    assert not target.paid


async def test_nul_in_a_parameter_is_refused_and_logged(gateways: Gateways) -> None:
    target = await gateways.start()
    cases = [
        ("account", "09578\x0035959", "4"),
        ("account", "\x00", "4"),
        ("txn_id", "4242\x00", "300"),
        ("sum", "10.45\x00", "300"),
        ("txn_date", "2026112912000\x00", "300"),
        ("command", "pay\x00", "300"),
        ("data1", "x\x00y", "300"),
        ("prv_id", "\x00", "300"),
    ]
    for name, value, result in cases:
        params = form({**PAY, name: value})
        assert "%00" in params
        for answer in await answers(target, get(params), post(params.encode())):
            assert answer["result"] == result, (name, answer)
    # A NUL byte as it is in the body: refused, and logged with it replaced
    # (PostgreSQL's text holds no NUL).
    body = form(PAY).encode().replace(b"account=", b"account=a\x00")
    (answer,) = await answers(target, post(body))
    assert answer["result"] == "4"
    assert not target.paid


async def test_a_parameter_repeated_with_different_values_is_refused(
    gateways: Gateways,
) -> None:
    target = await gateways.start()
    valid = form(PAY)
    refused = await answers(
        target,
        get(valid + "&txn_id=4243"),
        get(valid + "&sum=10.450"),
        get(valid + "&command=check"),
        get(valid + "&account="),
        get(valid + "&unread=1&unread=2"),
        post(valid.encode(), query="sum=10.46"),  # the query and the body disagree
    )
    for answer in refused:
        assert answer["result"] == "300"
        assert answer["comment"].startswith("parameter repeated with different values: ")
    pay = ValidPay("4242", PAY["account"], Decimal("10.45"))
    # The same value twice is one value.
    accepted = await answers(
        target, get(valid + "&txn_id=4242&sum=10.45", pay), post(valid.encode(), valid, pay)
    )
    assert [answer["result"] for answer in accepted] == ["0", "0"]
    assert target.paid.keys() == {"4242"}


async def test_an_undecodable_content_encoding_is_refused_and_logged(
    gateways: Gateways,
) -> None:
    target = await gateways.start()
    for encoding in (b"gzip", b"deflate"):
        request = Request(
            b"POST",
            b"/payment",
            headers=(*FORM, (b"Content-Encoding", encoding)),
            body=form(PAY).encode(),  # not compressed at all
            expect=NO_ROW,
        )
        (answer,) = await answers(target, request)
        assert answer["result"] == "300"


async def test_a_post_without_content_type_is_read_as_a_form(gateways: Gateways) -> None:
    target = await gateways.start()
    pay = ValidPay("4242", PAY["account"], Decimal("10.45"))
    (answer,) = await answers(
        target, Request(b"POST", b"/payment", body=form(PAY).encode(), expect=pay)
    )
    assert answer["result"] == "0"
