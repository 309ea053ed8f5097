"""QIWI's provider protocol: parameters in, typed commands out, XML answers back.

Pure functions, no I/O: everything here can be tested without a server.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import IntEnum
from xml.sax.saxutils import escape, quoteattr

from qiwi_gw.errors import QiwiGwError


class ResultCode(IntEnum):
    OK = 0
    TEMPORARY = 1
    BAD_ACCOUNT_FORMAT = 4
    ACCOUNT_NOT_FOUND = 5
    FORBIDDEN = 7
    FORBIDDEN_TECHNICAL = 8
    ACCOUNT_INACTIVE = 79
    NOT_COMPLETED = 90
    SUM_TOO_SMALL = 241
    SUM_TOO_LARGE = 242
    CANNOT_CHECK = 243
    OTHER = 300


class ProtocolError(QiwiGwError):
    """A request QIWI must be told about with a result code."""

    def __init__(self, code: ResultCode, comment: str) -> None:
        super().__init__(f"{int(code)}: {comment}")
        self.code = code
        self.comment = comment


@dataclass(frozen=True)
class Limits:
    """What the merchant accepts, from the settings."""

    account_pattern: re.Pattern[str] | None = None
    min_sum: Decimal | None = None
    max_sum: Decimal | None = None


@dataclass(frozen=True)
class GetInfo:
    account: str
    ccy: str | None = None
    prv_id: str | None = None


@dataclass(frozen=True)
class Check:
    txn_id: str
    account: str
    sum: Decimal
    ccy: str | None = None
    prv_id: str | None = None


@dataclass(frozen=True)
class Pay:
    txn_id: str
    txn_date: datetime
    account: str
    sum: Decimal
    ccy: str | None = None
    prv_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


Command = GetInfo | Check | Pay

MAX_ACCOUNT_LENGTH = 200
_TXN_ID = re.compile(r"[0-9]{1,20}")
# Fifteen integer digits: far above any cash payment, and inside NUMERIC(17, 2).
_SUM = re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?")
_TXN_DATE = re.compile(r"[0-9]{14}")
_CCY = re.compile(r"[A-Za-z]{3}|[0-9]{3}")
_EXTRA = re.compile(r"data[0-9]{1,3}")
_SHORT_FIELD = 64
# Format characters (U+202E turns text around, U+FEFF and U+200B are invisible) and
# line or paragraph separators: in an account they make one account look like
# another in an operator's output, and the backend receives them as they are.
_INVISIBLE = frozenset({"Cf", "Zl", "Zp"})
_EXTRA_FIELD = 1000


def parse_command(pairs: list[tuple[str, str]], limits: Limits) -> Command:
    """Validate QIWI's parameters and the merchant's rules; raise ``ProtocolError``
    with the code QIWI expects."""
    command = parse_syntax(pairs)
    apply_rules(command, limits)
    return command


def parse_syntax(pairs: list[tuple[str, str]]) -> Command:
    """The protocol's own rules only (codes 300): what every answer needs, a stored
    ``pay``'s included. The account is taken as sent; ``apply_rules`` judges it."""
    params = _single_values(pairs)
    command = params.get("command")
    if command is None:
        raise ProtocolError(ResultCode.OTHER, "missing parameter: command")
    if command == "getInfo":
        return GetInfo(account=_account(params), **_optional(params))
    if command == "check":
        txn_id = _txn_id(params)
        amount = _sum(params)
        return Check(txn_id=txn_id, account=_account(params), sum=amount, **_optional(params))
    if command == "pay":
        txn_id = _txn_id(params)
        txn_date = _txn_date(params)
        amount = _sum(params)
        return Pay(
            txn_id=txn_id,
            txn_date=txn_date,
            account=_account(params),
            sum=amount,
            extra=_extra(params),
            **_optional(params),
        )
    raise ProtocolError(ResultCode.OTHER, f"unknown command: {_shorten(command)}")


def apply_rules(command: Command, limits: Limits) -> None:
    """The account's rules and the merchant's limits (codes 4, 241, 242).

    A ``pay`` whose txn_id is stored is answered from its row without these: a
    rule tightened since it was stored must not turn its repeat into a refusal.
    """
    if not isinstance(command, GetInfo):
        _check_sum_limits(command.sum, limits)
    _check_account(command.account, limits)


def _single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params and params[name] != value:
            raise ProtocolError(
                ResultCode.OTHER, f"parameter repeated with different values: {_shorten(name)}"
            )
        params[name] = value
    return params


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or not value.strip():
        raise ProtocolError(ResultCode.OTHER, f"missing parameter: {name}")
    return value


def _txn_id(params: dict[str, str]) -> str:
    value = _required(params, "txn_id")
    if not _TXN_ID.fullmatch(value):
        raise ProtocolError(ResultCode.OTHER, "txn_id must be 1 to 20 decimal digits")
    return value


def _txn_date(params: dict[str, str]) -> datetime:
    value = _required(params, "txn_date")
    if not _TXN_DATE.fullmatch(value):
        raise ProtocolError(ResultCode.OTHER, "txn_date must be YYYYMMDDHHMMSS")
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError:
        raise ProtocolError(ResultCode.OTHER, "txn_date is not a valid date and time") from None


def _sum(params: dict[str, str]) -> Decimal:
    value = _required(params, "sum")
    if not _SUM.fullmatch(value):
        raise ProtocolError(
            ResultCode.OTHER, "sum must be a positive amount with a dot and at most two decimals"
        )
    amount = Decimal(value)
    if amount <= 0:
        raise ProtocolError(ResultCode.OTHER, "sum must be greater than zero")
    return amount


def _check_sum_limits(amount: Decimal, limits: Limits) -> None:
    if limits.min_sum is not None and amount < limits.min_sum:
        raise ProtocolError(ResultCode.SUM_TOO_SMALL, f"sum is below the minimum {limits.min_sum}")
    if limits.max_sum is not None and amount > limits.max_sum:
        raise ProtocolError(ResultCode.SUM_TOO_LARGE, f"sum is above the maximum {limits.max_sum}")


def _account(params: dict[str, str]) -> str:
    value = params.get("account")
    if value is None:
        raise ProtocolError(ResultCode.OTHER, "missing parameter: account")
    return value


def _check_account(value: str, limits: Limits) -> None:
    if not value.strip():
        raise ProtocolError(ResultCode.BAD_ACCOUNT_FORMAT, "account is empty")
    if len(value) > MAX_ACCOUNT_LENGTH:
        raise ProtocolError(
            ResultCode.BAD_ACCOUNT_FORMAT, f"account is longer than {MAX_ACCOUNT_LENGTH} characters"
        )
    if not _is_plain_text(value):
        raise ProtocolError(ResultCode.BAD_ACCOUNT_FORMAT, "account contains control characters")
    if not value.isascii() and any(unicodedata.category(ch) in _INVISIBLE for ch in value):
        raise ProtocolError(
            ResultCode.BAD_ACCOUNT_FORMAT, "account contains invisible or line-breaking characters"
        )
    if limits.account_pattern is not None and not limits.account_pattern.fullmatch(value):
        raise ProtocolError(
            ResultCode.BAD_ACCOUNT_FORMAT, "account does not match the expected format"
        )


def _optional(params: dict[str, str]) -> dict[str, str | None]:
    ccy = params.get("ccy") or None
    if ccy is not None and not _CCY.fullmatch(ccy):
        raise ProtocolError(ResultCode.OTHER, "ccy must be an ISO 4217 currency code")
    prv_id = params.get("prv_id") or None
    if prv_id is not None and (len(prv_id) > _SHORT_FIELD or not _is_plain_text(prv_id)):
        raise ProtocolError(ResultCode.OTHER, "prv_id is malformed")
    return {"ccy": ccy.upper() if ccy else None, "prv_id": prv_id}


def _extra(params: dict[str, str]) -> dict[str, str]:
    extra = {}
    for name, value in params.items():
        if _EXTRA.fullmatch(name):
            if len(value) > _EXTRA_FIELD or not _is_plain_text(value):
                raise ProtocolError(ResultCode.OTHER, f"{name} is malformed")
            extra[name] = value
    return extra


def _is_plain_text(text: str) -> bool:
    if text.isascii() and text.isprintable():
        return True
    return all(_is_text_char(ch) and ch not in "\t\n\r" for ch in text)


def _is_text_char(ch: str) -> bool:
    """True for characters XML 1.0 can carry and PostgreSQL's text can store."""
    if ch in "\t\n\r":
        return True
    return unicodedata.category(ch) not in ("Cc", "Cs") and ch not in "\ufffe\uffff"


def _shorten(text: str, limit: int = 40) -> str:
    short = "".join(ch if _is_plain_text(ch) else "?" for ch in text[:limit])
    return short + ("..." if len(text) > limit else "")


@dataclass(frozen=True)
class Answer:
    """One XML answer; ``None`` fields are left out."""

    result: ResultCode
    comment: str
    osmp_txn_id: str | None = None
    prv_txn: int | None = None
    sum: Decimal | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_error(cls, error: ProtocolError, txn_id: str | None = None) -> Answer:
        return cls(result=error.code, comment=error.comment, osmp_txn_id=txn_id)

    def to_xml(self) -> str:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<response>\n']
        if self.osmp_txn_id is not None:
            parts.append(f"  <osmp_txn_id>{_text(self.osmp_txn_id)}</osmp_txn_id>\n")
        if self.prv_txn is not None:
            parts.append(f"  <prv_txn>{self.prv_txn}</prv_txn>\n")
        if self.sum is not None:
            parts.append(f"  <sum>{self.sum:.2f}</sum>\n")
        parts.append(f"  <result>{int(self.result)}</result>\n")
        parts.append(f"  <comment>{_text(self.comment)}</comment>\n")
        if self.fields:
            parts.append("  <fields>\n")
            for number, (name, value) in enumerate(self.fields, start=1):
                tag = f"field{number}"
                name_attr = quoteattr(_clean(name))
                parts.append(f"    <{tag} name={name_attr}>{_text(value)}</{tag}>\n")
            parts.append("  </fields>\n")
        parts.append("</response>\n")
        return "".join(parts)


def _clean(text: str) -> str:
    # XML 1.0 forbids most control characters even when escaped.
    if text.isascii() and text.isprintable():
        return text  # the common case, without a Python loop per character
    return "".join(ch if _is_text_char(ch) else "\ufffd" for ch in text)


def _text(text: str) -> str:
    return escape(_clean(text), {'"': "&quot;", "'": "&apos;"})
