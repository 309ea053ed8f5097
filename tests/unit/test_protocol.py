"""protocol.py: QIWI's parameters in, typed commands out, XML answers back (pure, no I/O)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest

from qiwi_gw.protocol import (
    Answer,
    Check,
    GetInfo,
    Limits,
    Pay,
    ProtocolError,
    ResultCode,
    parse_command,
)

NO_LIMITS = Limits()
Pairs = list[tuple[str, str]]
ParamsFactory = Callable[..., Pairs]


def check_params(**overrides: str | None) -> Pairs:
    return _params(
        {"command": "check", "txn_id": "1234567", "account": "0957835959", "sum": "10.45"},
        overrides,
    )


def pay_params(**overrides: str | None) -> Pairs:
    return _params(
        {
            "command": "pay",
            "txn_id": "1234567",
            "txn_date": "20050815120133",
            "account": "0957835959",
            "sum": "10.45",
        },
        overrides,
    )


def _params(base: dict[str, str], overrides: dict[str, str | None]) -> Pairs:
    """``None`` in overrides removes the parameter."""
    merged: dict[str, str | None] = {**base, **overrides}
    return [(name, value) for name, value in merged.items() if value is not None]


def error_of(pairs: Pairs, limits: Limits = NO_LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse_command(pairs, limits)
    return caught.value


# --- commands ---------------------------------------------------------------


def test_check_parses() -> None:
    command = parse_command(check_params(), NO_LIMITS)
    assert command == Check(txn_id="1234567", account="0957835959", sum=Decimal("10.45"))


def test_pay_parses() -> None:
    command = parse_command(pay_params(), NO_LIMITS)
    assert command == Pay(
        txn_id="1234567",
        txn_date=datetime(2005, 8, 15, 12, 1, 33),
        account="0957835959",
        sum=Decimal("10.45"),
    )


def test_get_info_parses_without_txn_id_or_sum() -> None:
    command = parse_command([("command", "getInfo"), ("account", "42")], NO_LIMITS)
    assert command == GetInfo(account="42")


def test_get_info_still_validates_the_account() -> None:
    error = error_of([("command", "getInfo"), ("account", "")])
    assert error.code == ResultCode.BAD_ACCOUNT_FORMAT


def test_sum_is_a_decimal_not_a_float() -> None:
    command = parse_command(check_params(sum="0.10"), NO_LIMITS)
    assert isinstance(command, Check)
    assert isinstance(command.sum, Decimal)
    assert command.sum == Decimal("0.10")


@pytest.mark.parametrize("amount", ["1", "1.5", "10.45", "500.00", "999999999999999.99"])
def test_valid_sums(amount: str) -> None:
    command = parse_command(check_params(sum=amount), NO_LIMITS)
    assert isinstance(command, Check)
    assert command.sum == Decimal(amount)


@pytest.mark.parametrize("txn_id", ["0", "1", "12345678901234567890"])
def test_valid_txn_ids(txn_id: str) -> None:
    command = parse_command(check_params(txn_id=txn_id), NO_LIMITS)
    assert isinstance(command, Check)
    assert command.txn_id == txn_id


# --- malformed requests: 300 ------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "comment_part"),
    [
        (check_params(command=None), "command"),
        (check_params(txn_id=None), "txn_id"),
        (check_params(account=None), "account"),
        (check_params(sum=None), "sum"),
        (pay_params(command=None), "command"),
        (pay_params(txn_id=None), "txn_id"),
        (pay_params(txn_date=None), "txn_date"),
        (pay_params(account=None), "account"),
        (pay_params(sum=None), "sum"),
        ([("command", "getInfo")], "account"),
        ([], "command"),
    ],
)
def test_missing_parameter_is_300(pairs: Pairs, comment_part: str) -> None:
    error = error_of(pairs)
    assert error.code == ResultCode.OTHER
    assert comment_part in error.comment


@pytest.mark.parametrize("txn_id", ["", " ", "abc", "1" * 21, "-1", "1.5", "+1", " 1", "1 ", "١٢٣"])
@pytest.mark.parametrize("params", [check_params, pay_params])
def test_bad_txn_id_is_300(txn_id: str, params: ParamsFactory) -> None:
    assert error_of(params(txn_id=txn_id)).code == ResultCode.OTHER


@pytest.mark.parametrize(
    "amount",
    [
        "1,00",
        "-1",
        "-1.00",
        "+1.00",
        "0",
        "0.00",
        "0.0",
        "NaN",
        "Infinity",
        "1e3",
        " 1.00",
        "1.00 ",
        "1.",
        ".5",
        "1.005",
        "",
        "  ",
        "\uff11.00",  # fullwidth digit one
        "1_000",
        "1234567890123456.00",
    ],
)
@pytest.mark.parametrize("params", [check_params, pay_params])
def test_bad_sum_is_300(amount: str, params: ParamsFactory) -> None:
    assert error_of(params(sum=amount)).code == ResultCode.OTHER


@pytest.mark.parametrize(
    "txn_date",
    [
        "20261332120000",  # month 13
        "20261130250000",  # hour 25
        "20260230120000",  # 30 February
        "2026113012000",  # 13 digits
        "202611301200001",  # 15 digits
        "abcdefghijklmn",
        "2026-11-30 12:0",
        "",
    ],
)
def test_bad_txn_date_is_300(txn_date: str) -> None:
    assert error_of(pay_params(txn_date=txn_date)).code == ResultCode.OTHER


@pytest.mark.parametrize("command", ["refund", "CHECK", "Pay", "getinfo", "", " check"])
def test_unknown_command_is_300(command: str) -> None:
    error = error_of(check_params(command=command))
    assert error.code == ResultCode.OTHER


def test_unknown_command_comment_is_shortened_and_printable() -> None:
    error = error_of(check_params(command="x\x00" + "y" * 100))
    assert error.code == ResultCode.OTHER
    assert "\x00" not in error.comment
    assert len(error.comment) < 80


@pytest.mark.parametrize("name", ["command", "txn_id", "account", "sum", "ccy"])
def test_repeated_parameter_with_different_values_is_300(name: str) -> None:
    pairs = check_params(ccy="RUB")
    pairs.append((name, "643" if name == "ccy" else "9"))
    error = error_of(pairs)
    assert error.code == ResultCode.OTHER
    assert "repeated" in error.comment


def test_repeated_parameter_with_the_same_value_is_fine() -> None:
    pairs = check_params()
    pairs.extend(check_params())
    assert parse_command(pairs, NO_LIMITS) == parse_command(check_params(), NO_LIMITS)


# --- account: 4 ---------------------------------------------------------------


@pytest.mark.parametrize(
    "account",
    [
        "",
        "   ",
        "a" * 201,
        "12\x0034",
        "12\n34",
        "12\r34",
        "12\t34",
        "12\x1b34",
        "12\x7f34",
        "12\x8534",
        "12\ud80034",
        "12\ufffe34",
    ],
)
@pytest.mark.parametrize("params", [check_params, pay_params])
def test_bad_account_is_4(account: str, params: ParamsFactory) -> None:
    assert error_of(params(account=account)).code == ResultCode.BAD_ACCOUNT_FORMAT


def test_account_of_exactly_200_characters_is_accepted() -> None:
    command = parse_command(check_params(account="7" * 200), NO_LIMITS)
    assert isinstance(command, Check)
    assert command.account == "7" * 200


@pytest.mark.parametrize(
    "account",
    # Not a family emoji: its joiners (U+200D) are format characters, which accounts refuse.
    ["Иванов Иван", "счёт-№42", "💳💰", "👍🏽", "a b", "<a&\"b'>", "ü" * 200],
)
def test_unicode_and_symbols_in_account_are_accepted_as_is(account: str) -> None:
    command = parse_command(pay_params(account=account), NO_LIMITS)
    assert isinstance(command, Pay)
    assert command.account == account


DIGITS_ONLY = Limits(account_pattern=re.compile(r"[0-9]{10}"))


@pytest.mark.parametrize("account", ["095783595", "09578359590", "095783595a", "0957835959\u200b"])
def test_account_not_matching_the_pattern_is_4(account: str) -> None:
    error = error_of(check_params(account=account), DIGITS_ONLY)
    assert error.code == ResultCode.BAD_ACCOUNT_FORMAT


def test_account_pattern_must_match_the_whole_account() -> None:
    prefix_only = Limits(account_pattern=re.compile(r"[0-9]+"))
    assert error_of(check_params(account="123abc"), prefix_only).code == 4


def test_account_matching_the_pattern_is_accepted() -> None:
    command = parse_command(check_params(account="0957835959"), DIGITS_ONLY)
    assert isinstance(command, Check)
    assert command.account == "0957835959"


def test_get_info_applies_the_account_pattern() -> None:
    error = error_of([("command", "getInfo"), ("account", "abc")], DIGITS_ONLY)
    assert error.code == ResultCode.BAD_ACCOUNT_FORMAT


# --- sum limits: 241 / 242 --------------------------------------------------------

BOUNDED = Limits(min_sum=Decimal("10.00"), max_sum=Decimal("15000.00"))


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("9.99", ResultCode.SUM_TOO_SMALL),
        ("0.01", ResultCode.SUM_TOO_SMALL),
        ("15000.01", ResultCode.SUM_TOO_LARGE),
        ("99999", ResultCode.SUM_TOO_LARGE),
    ],
)
@pytest.mark.parametrize("params", [check_params, pay_params])
def test_sum_outside_limits(amount: str, code: ResultCode, params: ParamsFactory) -> None:
    assert error_of(params(sum=amount), BOUNDED).code == code


@pytest.mark.parametrize("amount", ["10", "10.00", "10.01", "14999.99", "15000", "15000.00"])
def test_sum_at_or_inside_limits_is_accepted(amount: str) -> None:
    command = parse_command(check_params(sum=amount), BOUNDED)
    assert isinstance(command, Check)
    assert command.sum == Decimal(amount)


def test_malformed_sum_is_300_even_with_limits() -> None:
    assert error_of(check_params(sum="1,00"), BOUNDED).code == ResultCode.OTHER
    assert error_of(check_params(sum="0.00"), BOUNDED).code == ResultCode.OTHER


# --- optional parameters and extras ---------------------------------------------


@pytest.mark.parametrize(
    ("ccy", "expected"), [("RUB", "RUB"), ("rub", "RUB"), ("643", "643"), ("", None)]
)
def test_ccy(ccy: str, expected: str | None) -> None:
    command = parse_command(check_params(ccy=ccy), NO_LIMITS)
    assert isinstance(command, Check)
    assert command.ccy == expected


@pytest.mark.parametrize("ccy", ["RU", "RUBL", "12", "R1B", "€€€"])
def test_bad_ccy_is_300(ccy: str) -> None:
    assert error_of(check_params(ccy=ccy)).code == ResultCode.OTHER


def test_prv_id_is_kept() -> None:
    command = parse_command(pay_params(prv_id="777"), NO_LIMITS)
    assert isinstance(command, Pay)
    assert command.prv_id == "777"


@pytest.mark.parametrize("prv_id", ["x" * 65, "7\x007"])
def test_bad_prv_id_is_300(prv_id: str) -> None:
    assert error_of(pay_params(prv_id=prv_id)).code == ResultCode.OTHER


def test_pay_collects_data_extras_only() -> None:
    pairs = pay_params()
    pairs += [
        ("data1", "Иван"),
        ("data22", ""),
        ("data999", "z"),
        ("data1000", "too many digits"),
        ("datax", "not numbered"),
        ("other", "ignored"),
    ]
    command = parse_command(pairs, NO_LIMITS)
    assert isinstance(command, Pay)
    assert command.extra == {"data1": "Иван", "data22": "", "data999": "z"}


def test_pay_without_extras_has_an_empty_dict() -> None:
    command = parse_command(pay_params(), NO_LIMITS)
    assert isinstance(command, Pay)
    assert command.extra == {}


@pytest.mark.parametrize("value", ["x" * 1001, "a\x00b", "a\nb"])
def test_malformed_extra_is_300(value: str) -> None:
    pairs = [*pay_params(), ("data1", value)]
    assert error_of(pairs).code == ResultCode.OTHER


def test_extra_of_1000_characters_is_accepted() -> None:
    command = parse_command([*pay_params(), ("data1", "x" * 1000)], NO_LIMITS)
    assert isinstance(command, Pay)
    assert command.extra == {"data1": "x" * 1000}


def test_protocol_error_carries_code_and_comment() -> None:
    error = ProtocolError(ResultCode.SUM_TOO_SMALL, "too small")
    assert error.code == 241
    assert error.comment == "too small"
    assert str(error) == "241: too small"


# --- Answer.to_xml -------------------------------------------------------------------


def parse(answer: Answer) -> ET.Element:
    text = answer.to_xml()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    # ElementTree refuses a str with an encoding declaration, so parse the UTF-8 bytes.
    return ET.fromstring(text.encode("utf-8"))


def test_pay_answer_elements_in_order() -> None:
    answer = Answer(
        result=ResultCode.OK,
        comment="OK",
        osmp_txn_id="1234567",
        prv_txn=2016,
        sum=Decimal("10.45"),
    )
    root = parse(answer)
    assert root.tag == "response"
    assert [(child.tag, child.text) for child in root] == [
        ("osmp_txn_id", "1234567"),
        ("prv_txn", "2016"),
        ("sum", "10.45"),
        ("result", "0"),
        ("comment", "OK"),
    ]


def test_none_fields_are_left_out() -> None:
    root = parse(Answer(result=ResultCode.OTHER, comment="bad"))
    assert [(child.tag, child.text) for child in root] == [("result", "300"), ("comment", "bad")]


@pytest.mark.parametrize(
    ("amount", "printed"),
    [
        (Decimal("10"), "10.00"),
        (Decimal("10.5"), "10.50"),
        (Decimal("0.01"), "0.01"),
        (Decimal("500.00"), "500.00"),
        (Decimal("999999999999999.99"), "999999999999999.99"),
    ],
)
def test_sum_has_two_decimals(amount: Decimal, printed: str) -> None:
    root = parse(Answer(result=ResultCode.OK, comment="OK", sum=amount))
    assert root.findtext("sum") == printed


@pytest.mark.parametrize("text", ["<a&\"b'>", "]]>", "&amp;", "<response>", "Иванов 💳"])
def test_values_are_escaped_and_round_trip(text: str) -> None:
    answer = Answer(
        result=ResultCode.OK,
        comment=text,
        osmp_txn_id=text,
        fields=((text, text),),
    )
    root = parse(answer)
    assert root.findtext("comment") == text
    assert root.findtext("osmp_txn_id") == text
    field = root.find("fields/field1")
    assert field is not None
    assert field.text == text
    assert field.get("name") == text


def test_control_characters_do_not_break_the_document() -> None:
    nasty = "a\x00b\x01c\x1bd\x7fe\ud800f\ufffeg"
    answer = Answer(
        result=ResultCode.OTHER,
        comment=nasty,
        osmp_txn_id=nasty,
        fields=((nasty, nasty),),
    )
    root = parse(answer)
    comment = root.findtext("comment")
    assert comment is not None
    # Every character XML cannot carry is replaced; the readable ones survive in place.
    assert comment.replace("\ufffd", "") == "abcdefg"
    assert root.findtext("osmp_txn_id") == comment
    field = root.find("fields/field1")
    assert field is not None
    assert field.text == comment
    assert field.get("name") == comment


def test_tab_and_newline_survive_in_text() -> None:
    root = parse(Answer(result=ResultCode.OK, comment="a\tb\nc"))
    assert root.findtext("comment") == "a\tb\nc"


def test_fields_are_numbered_with_names_after_comment() -> None:
    answer = Answer(
        result=ResultCode.OK,
        comment="OK",
        fields=(("disp1", "Иванов И."), ("disp2", "Баланс: 10 ₽"), ("disp3", "")),
    )
    root = parse(answer)
    assert [child.tag for child in root] == ["result", "comment", "fields"]
    fields = root.find("fields")
    assert fields is not None
    assert [(f.tag, f.get("name"), f.text or "") for f in fields] == [
        ("field1", "disp1", "Иванов И."),
        ("field2", "disp2", "Баланс: 10 ₽"),
        ("field3", "disp3", ""),
    ]


def test_no_fields_element_without_fields() -> None:
    root = parse(Answer(result=ResultCode.OK, comment="OK"))
    assert root.find("fields") is None


def test_from_error() -> None:
    error = ProtocolError(ResultCode.SUM_TOO_LARGE, "sum is above the maximum 100")
    answer = Answer.from_error(error, "42")
    assert answer == Answer(
        result=ResultCode.SUM_TOO_LARGE, comment="sum is above the maximum 100", osmp_txn_id="42"
    )
    root = parse(answer)
    assert root.findtext("result") == "242"
    assert root.findtext("osmp_txn_id") == "42"


def test_from_error_without_txn_id_leaves_it_out() -> None:
    answer = Answer.from_error(ProtocolError(ResultCode.OTHER, "missing parameter: command"))
    assert parse(answer).find("osmp_txn_id") is None
