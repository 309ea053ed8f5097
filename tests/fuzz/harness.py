"""Hostile input at ``/payment``: property-based fuzzing with Hypothesis.

How the examples run. pytest-asyncio runs an ``async`` test decorated with
``@given`` by driving each example to completion on the test's own event loop. So
the gateway that ``make_client`` starts once per test function (with its
database) serves every example of that test, one example after another: one app
per test, not per example, which keeps ~2,800 requests within ~25 s. Sharing the
function-scoped fixtures between the examples of a test is the point, hence the
suppressed ``function_scoped_fixture`` health check: the database accumulates
what every example sent, and after each example the invariants are checked
against everything sent so far. For the same reason shrinking is off (replayed
against a changed database it is slow and flaky): a failure lists the offending
requests themselves, as raw bytes.

Requests are written byte for byte on a socket rather than through aiohttp's
client, which refuses CR/LF in headers, re-encodes URLs and cannot send invalid
UTF-8 or a malformed request line. Each carries ``Connection: close`` (its answer
ends at EOF) and an ``X-Fuzz-Id`` header, by which its ``qiwi_http_log`` row is
found. The requests of one example are sent concurrently.

Invariants, per request: never a 5xx; only 200, 401, 403, 404 and 405, and 400
(aiohttp's own parser) only for what the generator knows is malformed HTTP; an XML
answer always parses and carries a known ``<result>``; no header a request tried
to inject comes back in the answer's headers. After each example: every request
that reached ``/payment`` (all but the parser's 400s) has exactly one log row,
with its method, address, URL and body (a refused one, 401 or 403, at most one:
a rate-limited summary without the body), and no other request has one;
``qiwi_transaction`` holds exactly the txn_ids answered ``0`` with a ``prv_txn``
(rows only for valid ``pay``s); a valid ``pay`` the generator built is stored as
sent, or refused because its txn_id is already stored with another account or
sum; a request the generator spoiled stores nothing.

At least 2,000 requests: each fuzz test has a quota (its examples times the
smallest batch) checked when its gateway stops, and
``test_the_fuzz_tests_send_at_least_2000_requests`` adds the quotas up.

This module is the harness: the raw HTTP client, the gateway under fuzzing and the
invariants; ``tests.fuzz.strategies`` is what is generated, ``test_generated`` and
``test_deterministic`` are the cases, ``conftest`` the per-test gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from hypothesis import HealthCheck, Phase, settings

from qiwi_gw.incoming import SUMMARY_URL_CHARS
from qiwi_gw.protocol import ResultCode
from tests.support.app import ClientFactory

MAX_BODY: Final = 64 * 1024
# aiohttp's parser refuses a request line over 8190 bytes; one this long is
# certainly accepted.
SAFE_LINE: Final = 7000
RESULT_CODES: Final = frozenset(str(int(code)) for code in ResultCode)
XML: Final = "text/xml; charset=utf-8"
HANDLER_STATUSES: Final = frozenset({200, 401, 403, 405})
ALLOWED_STATUSES: Final = frozenset({200, 400, 401, 403, 404, 405})
ALREADY_PAID: Final = "txn_id was already paid with another account or sum"

FUZZ: Final = settings(
    deadline=None,
    database=None,
    # No shrinking: see the module's docstring.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
MIN_BATCH: Final = 4
MAX_BATCH: Final = 8
EXAMPLES: Final = {"structured": 250, "raw": 150, "auth": 60, "forwarded": 40}
QUOTAS: Final = {
    "structured": EXAMPLES["structured"] * MIN_BATCH,
    "raw": EXAMPLES["raw"] * MIN_BATCH,
    "auth": EXAMPLES["auth"] * MIN_BATCH,
    "forwarded": EXAMPLES["forwarded"] * MIN_BATCH,  # per run; it runs twice
}


# --- requests and answers ----------------------------------------------------------


@dataclass(frozen=True)
class ValidPay:
    """A ``pay`` the generator built well-formed, with the values it must be stored with."""

    txn_id: str
    account: str
    amount: Decimal


NO_ROW: Final = "no row"
Expectation = ValidPay | Literal["no row"] | None


@dataclass(frozen=True, repr=False)
class Request:
    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    chunked: bool = False
    gzip: bool = False
    version: bytes = b"HTTP/1.1"
    # What the generator knows about the request:
    wellformed: bool = True  # aiohttp's parser must accept it
    to_payment: bool = True  # its path is routed to /payment
    expect: Expectation = None
    status: frozenset[int] | None = None  # the statuses it may get, when known
    ip: str = "127.0.0.1"  # the address its log row must carry
    logged_url: str | None = None
    logged_body: str | None = None

    def __repr__(self) -> str:
        raw = self.encode(0)
        return f"Request({raw[:300]!r}{'...' if len(raw) > 300 else ''}, {len(raw)} bytes)"

    def encode(self, fuzz_id: int) -> bytes:
        lines = [b"%s %s %s" % (self.method, self.target, self.version), b"Host: qiwi-gw.test"]
        lines += [name + b": " + value for name, value in self.headers]
        body = gzip.compress(self.body) if self.gzip else self.body
        if self.gzip:
            lines.append(b"Content-Encoding: gzip")
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked")
            body = _chunked(body)
        else:
            lines.append(b"Content-Length: %d" % len(body))
        lines += [b"Connection: close", b"X-Fuzz-Id: %d" % fuzz_id]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _chunked(body: bytes, size: int = 5000) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


@dataclass(frozen=True)
class Response:
    """``status`` 0: the connection ended before a complete answer."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(frozen=True)
class Exchange:
    fuzz_id: int
    request: Request
    response: Response
    answer: dict[str, str] | None  # the XML answer's elements, when there is one


def parse_response(raw: bytes, head: bool) -> Response:
    while True:
        top, separator, rest = raw.partition(b"\r\n\r\n")
        if not separator:
            return Response(0, (), raw)
        lines = top.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        if 100 <= status < 200:  # an interim answer: the real one follows
            raw = rest
            continue
        headers = tuple(
            (name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
            for name, _, value in (line.partition(b":") for line in lines[1:])
        )
        length = dict(headers).get("content-length")
        if not head and length is not None and int(length) != len(rest):
            return Response(0, headers, rest)
        return Response(status, headers, b"" if head else rest)


async def exchange(port: int, request: Request, fuzz_id: int) -> Exchange:
    received = bytearray()
    async with asyncio.timeout(30):  # a hang guard, not a measurement
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request.encode(fuzz_id))
            # The server may answer (a 400) and close before reading it all.
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    received += chunk
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    response = parse_response(bytes(received), head=request.method == b"HEAD")
    return Exchange(fuzz_id, request, response, _answer(response))


def _answer(response: Response) -> dict[str, str] | None:
    if not (response.header("content-type") or "").startswith("text/xml") or not response.body:
        return None
    try:
        root = ET.fromstring(response.body)
    except ET.ParseError:
        return None
    return {child.tag: child.text or "" for child in root} if root.tag == "response" else None


def shown(request: Request, fuzz_id: int) -> str:
    raw = request.encode(fuzz_id)
    return repr(raw[:300]) + (f"... ({len(raw)} bytes)" if len(raw) > 300 else "")


def answer_problems(ex: Exchange) -> list[str]:
    """What is wrong with one answer, on its own."""
    request, response = ex.request, ex.response
    if response.status == 0:
        return ["no complete answer"] if request.wellformed else []
    problems = []
    if response.status not in ALLOWED_STATUSES:
        problems.append(f"status {response.status}")
    if response.status == 400:
        return [*problems, "aiohttp refused a well-formed request"] if request.wellformed else []
    expected = request.status or (HANDLER_STATUSES if request.to_payment else frozenset({404}))
    if response.status not in expected:
        problems.append(f"status {response.status}, expected one of {sorted(expected)}")
    if any(name == "x-injected" for name, _ in response.headers):
        problems.append("a request header was injected into the answer")
    content_type = response.header("content-type") or ""
    authenticate = response.header("www-authenticate") or ""
    if response.status == 401 and not authenticate.startswith("Basic "):
        problems.append("401 without WWW-Authenticate: Basic")
    if response.status in (200, 404, 405) and content_type != XML:
        problems.append(f"Content-Type {content_type!r}, expected {XML!r}")
    if content_type.startswith("text/xml") and request.method != b"HEAD":
        if ex.answer is None:
            problems.append(f"XML answer does not parse: {response.body[:300]!r}")
        elif ex.answer.get("result") not in RESULT_CODES:
            problems.append(f"no known <result>: {ex.answer}")
    return problems


# --- the gateway under fuzzing -----------------------------------------------------


@dataclass
class FuzzTarget:
    """The in-process gateway under fuzzing, reached on ``port``, and what it has been
    sent and has answered so far: each batch's invariants are checked against all of it."""

    port: int
    db: Any
    quota: int = 0
    min_reached: int = 0
    sent: int = 0
    reached: int = 0  # requests that reached /payment
    last_log_id: int = 0
    # txn_id -> (prv_txn, sum) of every pay answered 0.
    paid: dict[str, tuple[int, Decimal]] = field(default_factory=dict)

    async def run(self, requests: Sequence[Request]) -> list[Exchange]:
        """Send the batch at once; fail with every broken invariant."""
        ids = range(self.sent + 1, self.sent + 1 + len(requests))
        self.sent += len(requests)
        results = await asyncio.gather(
            *(exchange(self.port, r, i) for r, i in zip(requests, ids, strict=True)),
            return_exceptions=True,
        )
        problems: list[str] = []
        exchanges: list[Exchange] = []
        for request, fuzz_id, result in zip(requests, ids, results, strict=True):
            if isinstance(result, BaseException):
                problems.append(f"{shown(request, fuzz_id)}: {result!r}")
                continue
            exchanges.append(result)
            problems += [f"{shown(request, fuzz_id)}: {p}" for p in answer_problems(result)]
            problems += self._record_paid(result)
        problems += await self._log_problems(exchanges)
        problems += await self._row_problems(exchanges)
        assert not problems, "\n".join(problems)
        return exchanges

    def _record_paid(self, ex: Exchange) -> list[str]:
        answer = ex.answer
        if answer is None or answer.get("result") != "0" or "prv_txn" not in answer:
            return []
        entry = (int(answer["prv_txn"]), Decimal(answer["sum"]))
        known = self.paid.setdefault(answer["osmp_txn_id"], entry)
        if known != entry:
            return [f"{shown(ex.request, ex.fuzz_id)}: txn_id answered {entry}, before {known}"]
        return []

    async def _log_problems(self, exchanges: list[Exchange]) -> list[str]:
        rows = await self.db.fetch(
            "SELECT id, ip, url, method, headers::text AS headers, body"
            " FROM qiwi_http_log WHERE id > $1 ORDER BY id",
            self.last_log_id,
        )
        if rows:
            self.last_log_id = rows[-1]["id"]
        problems = []
        logged: dict[int, list[Any]] = defaultdict(list)
        for row in rows:
            fuzz_id = json.loads(row["headers"]).get("X-Fuzz-Id", "")
            if not fuzz_id.isdigit():
                problems.append(f"a log row of no request of this example: {dict(row)}")
                continue
            logged[int(fuzz_id)].append(row)
        for ex in exchanges:
            reached = ex.request.to_payment and ex.response.status not in (0, 400)
            self.reached += reached
            rows_of = logged.pop(ex.fuzz_id, [])
            # A refused request is logged at most QIWI_REFUSED_LOG_RATE times a second
            # per address, as a summary (docs/security.md): one row or none.
            refused = reached and ex.response.status in (401, 403)
            if len(rows_of) > reached or (len(rows_of) < reached and not refused):
                problems.append(
                    f"{shown(ex.request, ex.fuzz_id)}: {len(rows_of)} log rows "
                    f"(status {ex.response.status})"
                )
            for row in rows_of:
                problems += [
                    f"{shown(ex.request, ex.fuzz_id)}: log row {p}"
                    for p in _row_mismatches(ex.request, row, refused=refused)
                ]
        if logged:
            problems.append(f"log rows of requests not sent in this example: {sorted(logged)}")
        return problems

    async def _row_problems(self, exchanges: list[Exchange]) -> list[str]:
        rows = {
            row["code"]: row
            for row in await self.db.fetch("SELECT id, code, account, sum FROM qiwi_transaction")
        }
        stored = {code: (row["id"], row["sum"]) for code, row in rows.items()}
        problems = []
        if stored != self.paid:
            unanswered = {code: stored[code] for code in stored.keys() - self.paid.keys()}
            unstored = {code: self.paid[code] for code in self.paid.keys() - stored.keys()}
            changed = [c for c in stored.keys() & self.paid.keys() if stored[c] != self.paid[c]]
            problems.append(
                f"stored payments differ from the pays answered 0: stored but never answered "
                f"0 {unanswered}, answered 0 but not stored {unstored}, different {changed}"
            )
        for ex in exchanges:
            problems += [
                f"{shown(ex.request, ex.fuzz_id)}: {p}" for p in _expectation_problems(ex, rows)
            ]
        return problems


def _row_mismatches(request: Request, row: Any, *, refused: bool = False) -> list[str]:
    wrong = []
    if row["method"] != request.method.decode("latin-1"):
        wrong.append(f"method {row['method']!r}")
    if row["ip"] != request.ip:
        wrong.append(f"ip {row['ip']!r}, expected {request.ip!r}")
    url, body = request.logged_url, request.logged_body
    if refused:
        # The summary of a refused request: its URL cut short, no body.
        if url is not None and len(url) > SUMMARY_URL_CHARS:
            url = url[: SUMMARY_URL_CHARS - 1] + "…"
        body = ""
    if url is not None and row["url"] != url:
        wrong.append(f"url {row['url'][:200]!r}")
    if body is not None and row["body"] != body:
        wrong.append(f"body {row['body'][:200]!r}")
    return wrong


def _expectation_problems(ex: Exchange, rows: dict[str, Any]) -> list[str]:
    expect, answer = ex.request.expect, ex.answer
    if expect == NO_ROW:
        if answer is not None and "prv_txn" in answer:
            return [f"a spoiled request was stored: {answer}"]
        return []
    if not isinstance(expect, ValidPay):
        return []
    if answer is None:
        return [f"a valid pay got no XML answer (status {ex.response.status})"]
    row = rows.get(expect.txn_id)
    if row is None:
        return [f"a valid pay's txn_id is not stored: {answer}"]
    same = row["account"] == expect.account and row["sum"] == expect.amount
    if answer["result"] == "0":
        if not same or answer.get("prv_txn") != str(row["id"]):
            return [f"a valid pay answered {answer} but is stored as {dict(row)}"]
        return []
    if answer["result"] == "300" and answer.get("comment") == ALREADY_PAID and not same:
        return []  # the txn_id was taken by another account or sum first
    return [f"a valid pay was refused: {answer}"]


class Gateways:
    """Starts the test's one gateway at its first example; later examples reuse it."""

    def __init__(self, make_client: ClientFactory, db: Any) -> None:
        self._make_client = make_client
        self._db = db
        self.target: FuzzTarget | None = None

    async def start(self, quota: int = 0, min_reached: int = 0, **env: str) -> FuzzTarget:
        if self.target is None:
            client = await self._make_client(**env)
            port = client.server.port
            assert port is not None
            self.target = FuzzTarget(port, self._db, quota, min_reached)
        return self.target
