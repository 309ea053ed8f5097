"""What the fuzz tests generate: values, ``pay``s well-formed and spoiled, raw requests,
credentials and forwarding headers, each request with what the harness must expect of it."""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import datetime
from decimal import Decimal
from typing import Final
from urllib.parse import quote, quote_from_bytes, quote_plus

from hypothesis import strategies as st

from tests.fuzz.harness import MAX_BODY, NO_ROW, SAFE_LINE, Expectation, Request, ValidPay

# --- values ------------------------------------------------------------------------

TXN_ID_RE: Final = re.compile(r"[0-9]{1,20}")
SUM_RE: Final = re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?")
TXN_DATE_RE: Final = re.compile(r"[0-9]{14}")
REQUIRED_FOR_PAY: Final = ("command", "txn_id", "txn_date", "account", "sum")
DIGITS: Final = "0123456789"
LETTERS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# What the gateway takes as text: no control characters, no surrogates.
PLAIN: Final = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufffe\uffff")
PRINTABLE: Final = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def plain_text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    # Half printable ASCII: any Unicode is right, but much slower to generate.
    return st.one_of(
        st.text(PRINTABLE, min_size=min_size, max_size=max_size),
        st.text(PLAIN, min_size=min_size, max_size=max_size),
    )


SHORT_TEXT: Final = plain_text()
TXN_IDS: Final = st.one_of(
    st.integers(0, 10**20 - 1).map(str), st.text(DIGITS, min_size=1, max_size=20)
)
TXN_DATES: Final = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)
).map(lambda moment: moment.strftime("%Y%m%d%H%M%S"))
# An account takes no invisible or line-breaking characters either (Cf, Zl, Zp).
ACCOUNT_CHARACTERS: Final = st.characters(
    exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp"), exclude_characters="\ufffe\uffff"
)
ACCOUNTS: Final = st.one_of(
    st.text(DIGITS, min_size=1, max_size=20),
    st.text(PRINTABLE, min_size=1, max_size=200).filter(lambda text: bool(text.strip())),
    st.text(ACCOUNT_CHARACTERS, min_size=1, max_size=200).filter(lambda text: bool(text.strip())),
)
CCYS: Final = st.one_of(
    st.text(LETTERS, min_size=3, max_size=3), st.text(DIGITS, min_size=3, max_size=3)
)
PRV_IDS: Final = plain_text(max_size=64)
EXTRAS: Final = st.dictionaries(
    st.builds(lambda n, width: f"data{n:0{width}d}", st.integers(0, 999), st.integers(1, 3)),
    plain_text(max_size=1000),
    max_size=3,
)
# Parameters the gateway does not read, each once (any parameter repeated with
# different values is refused).
NOISE: Final = st.dictionaries(
    st.sampled_from(["foo", "data", "data1234", "Command", "TXN_ID", "account ", "", "ä"]),
    SHORT_TEXT,
    max_size=3,
)


def _sum(cents: int, style: str) -> str:
    """A positive amount with a dot and up to two decimals, spelt every way allowed."""
    whole, fraction = divmod(cents, 100)
    if style == "short" and fraction == 0:
        return str(whole)
    if style == "short" and fraction % 10 == 0:
        return f"{whole}.{fraction // 10}"
    if style == "padded" and whole < 10**14:
        return f"0{whole}.{fraction:02d}"
    return f"{whole}.{fraction:02d}"


SUMS: Final = st.builds(
    _sum, st.integers(1, 10**17 - 1), st.sampled_from(["two", "short", "padded"])
)

# Digits, but not ASCII ones: the protocol wants [0-9].
ARABIC_DATE: Final = "".join(chr(0x0660 + int(d)) for d in "20050815120133")

INVALID_VALUES: Final[dict[str, st.SearchStrategy[str]]] = {
    "txn_id": st.one_of(
        st.sampled_from(
            ["", " ", "-1", "1.0", "1e3", "\u0661\u0662\u0663", "0x1F", "1" * 21, "12 3", "+1"]
        ),
        st.text(max_size=25).filter(lambda value: not TXN_ID_RE.fullmatch(value)),
    ),
    "txn_date": st.one_of(
        st.sampled_from(
            [
                "",
                "20051315120133",
                "20050230120000",
                "20050815250000",
                "2005081512013",
                "200508151201330",
                "2005-08-15T12:01",
                ARABIC_DATE,
            ]
        ),
        st.text(max_size=16).filter(lambda value: not TXN_DATE_RE.fullmatch(value)),
    ),
    "sum": st.one_of(
        st.sampled_from(
            [
                "",
                " ",
                "0",
                "0.00",
                "00",
                "-1",
                "1,00",
                "1.001",
                "NaN",
                "Infinity",
                "1e3",
                " 1.00",
                "1.00 ",
                "+1",
                ".5",
                "5.",
                "1" * 16,
                "\u0661\u0660",
                "1_000",
            ]
        ),
        st.text(max_size=20).filter(lambda value: not SUM_RE.fullmatch(value)),
    ),
    "account": st.sampled_from(
        ["", " ", "\u3000", "a" * 201, "a\x00b", "a\nb", "a\tb", "\x7f", "\x85", "\ufffe"]
    ),
    "ccy": st.sampled_from(["RUBL", "R1B", "RU", "€€€", "1234"]),
    "prv_id": st.sampled_from(["a" * 65, "a\x00", "a\nb"]),
    "data1": st.sampled_from(["a" * 1001, "a\x00b", "a\rb"]),
}
INVALID_NAMES: Final = st.sampled_from(sorted(INVALID_VALUES))
REQUIRED_NAMES: Final = st.sampled_from(REQUIRED_FOR_PAY)
SPOILS: Final = st.sampled_from(["value", "missing", "command", "conflict", "control", "many"])
OTHER_COMMANDS: Final = st.sampled_from(
    ["check", "getInfo", "PAY", "Pay", "pay ", " pay", "", "refund"]
)
CONTROLS: Final = st.sampled_from(["\x00", "\r", "\n", "\r\nX-Injected: yes", "\x1b", "\x7f"])
BAD_ESCAPES: Final = st.sampled_from(
    ["%FF", "%C3%28", "%ED%A0%80", "%F4%90%80%80", "%80", "%C0%AF", "%E2%82"]
)
BAD_BYTES: Final = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xc0\xaf"])
FORM_TYPES: Final = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "Application/X-WWW-Form-Urlencoded",
    "application/x-www-form-urlencoded;charset=UTF-8",
]
WRONG_TYPES: Final = [
    "text/plain",
    "application/json",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencodedx",
    "application/octet-stream",
    "text/xml",
    "x-www-form-urlencoded",
]
OTHER_METHODS: Final = st.sampled_from([b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"TRACE"])

Pairs = list[tuple[str, str]]


@st.composite
def valid_pays(draw: st.DrawFn) -> tuple[Pairs, ValidPay]:
    txn_id, account, amount = draw(TXN_IDS), draw(ACCOUNTS), draw(SUMS)
    pairs = [
        ("command", "pay"),
        ("txn_id", txn_id),
        ("txn_date", draw(TXN_DATES)),
        ("account", account),
        ("sum", amount),
    ]
    if draw(st.booleans()):
        pairs.append(("ccy", draw(CCYS)))
    if draw(st.booleans()):
        pairs.append(("prv_id", draw(PRV_IDS)))
    pairs += draw(EXTRAS).items()
    pairs += draw(NOISE).items()
    if draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)))  # repeated with the same value: allowed
    return list(draw(st.permutations(pairs))), ValidPay(txn_id, account, Decimal(amount))


VALID_PAYS: Final = valid_pays()


@st.composite
def spoiled_pays(draw: st.DrawFn) -> Pairs:
    """A pay with one thing wrong in its parameters: it must store nothing."""
    pairs, _pay = draw(VALID_PAYS)
    how = draw(SPOILS)
    if how == "value":
        name = draw(INVALID_NAMES)
        pairs = [(n, v) for n, v in pairs if n != name] + [(name, draw(INVALID_VALUES[name]))]
    elif how == "missing":
        name = draw(REQUIRED_NAMES)
        pairs = [(n, v) for n, v in pairs if n != name]
    elif how == "command":
        command = draw(OTHER_COMMANDS)
        pairs = [(n, command if n == "command" else v) for n, v in pairs]
    elif how == "conflict":
        name = draw(REQUIRED_NAMES)
        value = dict(pairs)[name]
        other = draw(SHORT_TEXT.filter(lambda text: text != value))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, other))
    elif how == "control":
        name, bad, at = draw(REQUIRED_NAMES), draw(CONTROLS), draw(st.integers(0, 30))
        pairs = [(n, v[:at] + bad + v[at:] if n == name else v) for n, v in pairs]
    else:  # more parameters than the gateway reads
        pairs += [("n", "")] * draw(st.integers(101, 150))
    return pairs


SPOILED_PAYS: Final = spoiled_pays()


def encoded(pairs: Pairs, plus: bool = False) -> list[str]:
    escape = quote_plus if plus else quote
    return [f"{escape(name, safe='')}={escape(value, safe='')}" for name, value in pairs]


def form_request(
    draw: st.DrawFn,
    query: str,
    body: str,
    *,
    expect: Expectation,
    content_type: str | None,
    method: bytes = b"POST",
) -> Request:
    raw = body.encode()
    headers = () if content_type is None else ((b"Content-Type", content_type.encode()),)
    target = f"/payment?{query}" if query else "/payment"
    return Request(
        method,
        target.encode(),
        headers=headers,
        body=raw,
        chunked=bool(raw) and draw(st.booleans()),
        gzip=bool(raw) and draw(st.booleans()),
        expect=expect,
        logged_url=target,
        logged_body=body if len(raw) <= MAX_BODY else "",
    )


TRANSPORTS: Final = st.sampled_from(
    ["get", "post", "post-query", "split", "padded-post", "padded-get"]
)


@st.composite
def delivered(draw: st.DrawFn, items: list[str], expect: Expectation, one_source: bool) -> Request:
    """The parameters as QIWI may send them: query, form body, both, padded."""
    how = draw(TRANSPORTS)
    query = "&".join(items)
    if how in ("get", "post-query", "padded-get") and len(query) > SAFE_LINE:
        how = "post"
    if how == "split" and one_source:
        how = "post"
    content_type = draw(st.sampled_from(FORM_TYPES))
    if how in ("get", "padded-get"):
        if how == "padded-get":  # a huge value, still inside the line limit
            query += "&pad=" + "x" * draw(st.integers(0, max(0, SAFE_LINE - len(query))))
        target = f"/payment?{query}"
        return Request(b"GET", target.encode(), expect=expect, logged_url=target)
    if how == "post-query":
        return form_request(draw, query, "", expect=expect, content_type=content_type)
    if how == "split":
        cut = draw(st.integers(0, len(items)))
        query, body = "&".join(items[:cut]), "&".join(items[cut:])
        return form_request(draw, query, body, expect=expect, content_type=content_type)
    if how == "padded-post":  # a huge value, up to the body limit exactly
        room = MAX_BODY - len(query.encode()) - len("&pad=")
        query += "&pad=" + "x" * draw(st.integers(0, max(0, room)))
    return form_request(draw, "", query, expect=expect, content_type=content_type)


KINDS: Final = st.sampled_from(
    [
        *["valid"] * 6,
        *["spoiled"] * 4,
        *["bad-utf8", "method", "content-type", "no-content-type", "oversized", "raw-body"],
        "long-line",
    ]
)


@st.composite
def structured_requests(draw: st.DrawFn) -> Request:
    """Pays built from the real parameters: mostly valid, or spoiled in one known way."""
    kind = draw(KINDS)
    plus = draw(st.booleans())
    if kind == "spoiled":
        pairs = draw(SPOILED_PAYS)
        return draw(delivered(encoded(pairs, plus), NO_ROW, one_source=len(pairs) > 100))
    pairs, pay = draw(VALID_PAYS)
    items = encoded(pairs, plus)
    if kind == "valid":
        return draw(delivered(items, pay, one_source=False))
    if kind == "bad-utf8":
        items[draw(st.integers(0, len(items) - 1))] += draw(BAD_ESCAPES)
        return draw(delivered(items, NO_ROW, one_source=False))
    body = "&".join(items)
    if kind == "method":
        method = draw(OTHER_METHODS)
        in_body = method in (b"PUT", b"PATCH") and draw(st.booleans())
        if len(body) > SAFE_LINE:
            in_body = method != b"TRACE"
        query = "" if in_body or len(body) > SAFE_LINE else body
        return form_request(
            draw,
            query,
            body if in_body else "",
            expect=NO_ROW,
            content_type=FORM_TYPES[0],
            method=method,
        )
    if kind == "content-type":
        content_type = draw(st.sampled_from(WRONG_TYPES))
        return form_request(draw, "", body, expect=NO_ROW, content_type=content_type)
    if kind == "no-content-type":
        # Refused today (aiohttp reads a missing Content-Type as octet-stream), though
        # incoming._FORM_TYPES means to accept it: either answer passes here, see
        # test_a_post_without_content_type_is_read_as_a_form.
        missing = draw(st.sampled_from([None, ""]))
        return form_request(draw, "", body, expect=None, content_type=missing)
    if kind == "oversized":
        padding = "x" * draw(st.integers(MAX_BODY, 100_000))
        return form_request(
            draw, "", f"{body}&pad={padding}", expect=NO_ROW, content_type=FORM_TYPES[0]
        )
    if kind == "raw-body":
        raw, at = body.encode(), draw(st.integers(0, len(body)))
        return Request(
            b"POST",
            b"/payment",
            headers=((b"Content-Type", FORM_TYPES[0].encode()),),
            body=raw[:at] + draw(BAD_BYTES) + raw[at:],
            chunked=draw(st.booleans()),
            expect=NO_ROW,
            logged_url="/payment",
        )
    # long-line: a query over aiohttp's line limit; its parser answers 400.
    padding = "x" * draw(st.integers(8200, 100_000))
    return Request(
        b"GET", f"/payment?{body}&pad={padding}".encode(), wellformed=False, expect=NO_ROW
    )


# --- raw bytes -----------------------------------------------------------------------

# (method, aiohttp's parser accepts it)
METHODS: Final = st.sampled_from(
    [
        *[(b"GET", True), (b"POST", True)] * 3,
        *[(m, True) for m in (b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE")],
        *[(b"get", False), (b"FOO", False), (b"G\x00T", False), (b"", False)],
    ]
)
# (path, routed to /payment); none can reach /healthz, /readyz or /metrics.
PATHS: Final = st.sampled_from(
    [
        *[(b"/payment", True)] * 16,
        (b"/paym%65nt", True),
        (b"/%70ayment", True),
        (b"/pay%6Dent", True),
        (b"/payment/", False),
        (b"//payment", False),
        (b"/PAYMENT", False),
        (b"/payment%2F", False),
        (b"/./payment", False),
        (b"/payment;x", False),
        (b"/payment%00", False),
        (b"/", False),
    ]
)
QUERY_TOKENS: Final = st.sampled_from(
    [
        b"&",
        b"=",
        b"%",
        b"%G1",
        b"%0",
        b"%00",
        b"%0D%0AX-Injected:%20yes",
        b"+",
        b";",
        b"%FF",
        b"%C0%80",
        b"%ED%A0%80",
        b"?",
        b"#",
        b"command=pay",
        b"command=check",
        b"command=getInfo",
        b"txn_id=1",
        b"txn_id=2",
        b"sum=1.00",
        b"account=1",
    ]
)
REAL_NAMES: Final = st.sampled_from(
    ["command", "txn_id", "txn_date", "account", "sum", "ccy", "prv_id", "data1"]
)
ANY_VALUE: Final = st.one_of(TXN_IDS, SUMS, TXN_DATES, ACCOUNTS, SHORT_TEXT)
HEADER_NAMES: Final = st.sampled_from(
    [
        b"Authorization",
        b"Proxy-Authorization",
        b"Cookie",
        b"Content-Type",
        b"User-Agent",
        b"X-Forwarded-For",
        b"X-Real-IP",
        b"Forwarded",
        b"Accept",
        b"Referer",
        b"Accept-Language",
        b"X-Requested-With",
    ]
)
TOKEN: Final = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# aiohttp refuses a second one of these.
SINGLETONS: Final = frozenset({b"content-type", b"user-agent"})
# (header value, aiohttp's parser accepts it)
HOSTILE_VALUES: Final = st.sampled_from(
    [
        (b"a\r\nX-Injected: yes", True),  # one more request header, nothing more
        (b"a\rX-Injected: yes", False),
        (b"a\nX-Injected: yes", False),
        (b"a\r\n X-Injected: yes", False),  # obsolete line folding
        (b"a\r\nnot a header", False),
        (b"a\x00b", False),
        (b"\x7f", False),
        (b"a\tb", True),
        (b"\xff\xfe\x80", True),
        (b"\xc3\xa4", True),
        (b"=?utf-8?b?w6Q=?=", True),
        (b"%0d%0aX-Injected: yes", True),
        (b"x" * 4000, True),
    ]
)
CONTROL: Final = frozenset(set(range(0x20)) - {0x09} | {0x7F})
SAFE_HEADER_VALUES: Final = st.one_of(
    st.text(PRINTABLE, max_size=40).map(str.encode),
    st.text(PLAIN, max_size=20).map(str.encode),
    st.binary(max_size=20).map(lambda raw: bytes(b | 0x80 for b in raw)),
)
RAW_HEADER_VALUES: Final = st.binary(max_size=40).filter(
    lambda raw: b"\r" not in raw and b"\n" not in raw
)
HUGE_BODIES: Final = st.integers(1000, 100_000).map(lambda size: b"x=" + b"y" * size)


@st.composite
def query_pieces(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 23))
    if choice < 8:  # a real parameter with a plausible value
        return f"{draw(REAL_NAMES)}={quote(draw(ANY_VALUE), safe='')}".encode()
    if choice < 12:  # any bytes, %-escaped: invalid UTF-8, NUL, CR, LF
        return quote_from_bytes(draw(st.binary(max_size=30)), safe="").encode()
    if choice < 15:  # a whole valid pay
        pairs, _pay = draw(VALID_PAYS)
        return "&".join(encoded(pairs, draw(st.booleans()))).encode()
    if choice < 21:
        return draw(QUERY_TOKENS)
    if choice < 23:  # bytes as they are: the parser may refuse them
        return draw(st.binary(max_size=12))
    return b"h=" + b"x" * draw(st.integers(100, 100_000))


QUERY_PIECES: Final = st.lists(query_pieces(), max_size=6)


@st.composite
def raw_headers(draw: st.DrawFn) -> tuple[tuple[tuple[bytes, bytes], ...], bool]:
    """Up to three headers, and whether aiohttp's parser must accept them."""
    headers: list[tuple[bytes, bytes]] = []
    wellformed = True
    for _ in range(draw(st.integers(0, 3))):
        choice = draw(st.integers(0, 19))
        if choice < 12:
            name = draw(HEADER_NAMES)
        elif choice < 18:
            name = b"X-Gen-" + draw(st.text(TOKEN, min_size=1, max_size=12)).encode()
        else:
            name = b"X-Gen-" + draw(st.binary(min_size=1, max_size=12))
        choice = draw(st.integers(0, 19))
        if choice < 4:
            value, accepted = draw(HOSTILE_VALUES)
        elif choice < 17:
            value, accepted = draw(SAFE_HEADER_VALUES), True
        else:
            value = draw(RAW_HEADER_VALUES)
            accepted = not CONTROL.intersection(value)
        token = all(chr(b) in TOKEN for b in name)
        repeated = name.lower() in SINGLETONS and name.lower() in (n.lower() for n, _ in headers)
        wellformed = wellformed and accepted and token and not repeated
        headers.append((name, value))
    return tuple(headers), wellformed


RAW_HEADERS: Final = raw_headers()
RAW_BODIES: Final = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    VALID_PAYS.map(lambda pay: "&".join(encoded(pay[0])).encode()),
    HUGE_BODIES,
)
VERSIONS: Final = st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"])


@st.composite
def raw_requests(draw: st.DrawFn) -> Request:
    """Bytes that only look like HTTP sometimes: any method, path, query, header, body."""
    method, method_ok = draw(METHODS)
    if draw(st.integers(0, 7)) == 0:
        path, to_payment = b"/fz/" + draw(st.binary(max_size=20)), False
    else:
        path, to_payment = draw(PATHS)
    target = path
    if draw(st.booleans()):
        target += b"?" + b"".join(draw(QUERY_PIECES))
    headers, headers_ok = draw(RAW_HEADERS)
    if draw(st.booleans()) and b"content-type" not in (name.lower() for name, _ in headers):
        headers += ((b"Content-Type", draw(st.sampled_from(FORM_TYPES + WRONG_TYPES)).encode()),)
    body = draw(RAW_BODIES)
    version = draw(VERSIONS)
    wellformed = (
        method_ok
        and headers_ok
        and all(0x21 <= b <= 0x7E for b in target)
        and len(target) < SAFE_LINE
    )
    if not wellformed:
        body = body[:1000]  # refused early: leave little unread
    return Request(
        method,
        target,
        headers=headers,
        body=body,
        chunked=version == b"HTTP/1.1" and bool(body) and draw(st.booleans()),
        gzip=bool(body) and wellformed and draw(st.integers(0, 5)) == 0,
        version=version,
        wellformed=wellformed,
        to_payment=to_payment,
    )


# --- Basic auth and X-Forwarded-For ---------------------------------------------------

AUTH_USER: Final = "qiwi"
AUTH_PASSWORD: Final = "s3cret-пароль"
RIGHT_TOKEN: Final = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode())


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


AUTHORIZATIONS: Final = st.one_of(
    # The right credentials, as clients write them.
    st.builds(
        lambda scheme, space: (scheme + space + RIGHT_TOKEN, True),
        st.sampled_from([b"Basic", b"basic", b"BASIC"]),
        st.sampled_from([b" ", b"  "]),
    ),
    # Near misses: either half (or both) wrong.
    st.builds(
        lambda user, password: (
            _basic(user, password),
            user == AUTH_USER and password == AUTH_PASSWORD,
        ),
        st.one_of(st.just(AUTH_USER), SHORT_TEXT.filter(lambda user: ":" not in user)),
        st.one_of(st.just(AUTH_PASSWORD), SHORT_TEXT),
    ),
    st.builds(
        lambda raw: (raw, False),
        st.binary(max_size=60).filter(lambda raw: not CONTROL.intersection(raw)),
    ),
    st.just((None, False)),
    st.builds(
        lambda scheme: (scheme + RIGHT_TOKEN, False),
        st.sampled_from([b"Bearer ", b"Digest ", b"Basic\t", b"Basic", b"Basic :"]),
    ),
)
AUTH_PAYS: Final = st.tuples(TXN_IDS, ACCOUNTS, SUMS)


@st.composite
def authenticated_requests(draw: st.DrawFn) -> Request:
    authorization, right = draw(AUTHORIZATIONS)
    txn_id, account, amount = draw(AUTH_PAYS)
    pairs = [("command", "pay"), ("txn_id", txn_id), ("txn_date", "20261129120000")]
    pairs += [("account", account), ("sum", amount)]
    target = "/payment?" + "&".join(encoded(pairs))
    headers = () if authorization is None else ((b"Authorization", authorization),)
    return Request(
        b"GET",
        target.encode(),
        headers=headers,
        expect=ValidPay(txn_id, account, Decimal(amount)) if right else NO_ROW,
        status=frozenset({200} if right else {401}),
        logged_url=target,
    )


QIWI_FIRST: Final = ipaddress.ip_address("79.142.16.0")
QIWI_ADDRESSES: Final = st.integers(0, 4095).map(lambda n: str(QIWI_FIRST + n))
HOPS: Final = st.one_of(
    QIWI_ADDRESSES,
    st.sampled_from(
        [
            "127.0.0.1",
            "10.0.0.9",
            "::ffff:79.142.16.5",
            "unknown",
            "",
            " ",
            "79.142.16.5:443",
            "[79.142.16.5]",
            "2001:db8::1",
            "79.142.16.5 ",
            "for=79.142.16.5",
        ]
    ),
    st.text(PRINTABLE, max_size=15),
)
FORWARDED_LINES: Final = st.lists(
    st.lists(HOPS, min_size=1, max_size=5).map(",".join), min_size=1, max_size=3
)


@st.composite
def forwarded_requests(draw: st.DrawFn) -> Request:
    """A pay from the untrusted test client, claiming every way it can to be QIWI."""
    headers = [(b"X-Forwarded-For", line.encode()) for line in draw(FORWARDED_LINES)]
    if draw(st.booleans()):
        qiwi = draw(QIWI_ADDRESSES)
        headers += [(b"X-Real-IP", qiwi.encode()), (b"Forwarded", f"for={qiwi}".encode())]
    target = (
        f"/payment?command=pay&txn_id={draw(TXN_IDS)}&txn_date=20261129120000&account=42&sum=1.00"
    )
    return Request(
        b"GET",
        target.encode(),
        headers=tuple(draw(st.permutations(headers))),
        expect=NO_ROW,
        status=frozenset({403}),
        ip="127.0.0.1",
        logged_url=target,
    )
