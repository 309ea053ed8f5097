"""QIWI's side of the protocol: the XML answers read, pays sent and what each was answered
remembered (``Qiwi``, a closed-loop load for the chaos scenarios), pays timed one at a time
(``Payer``, from QIWI's address with its credentials, for the listener's tests)."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import aiohttp
from aiohttp import ClientResponse

# QIWI calls from 127.0.0.1; hostile callers from other loopback addresses (tests.support.intake).
QIWI: str = "127.0.0.1"
USER = "qiwi"
PASSWORD = "qiwi-s3cret"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


async def result_of(response: ClientResponse) -> dict[str, str]:
    """The XML answer's elements by name; fails the test when it is not well-formed XML."""
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    root = ET.fromstring(await response.read())
    assert root.tag == "response"
    return {child.tag: child.text or "" for child in root}


def pay_params(txn: str) -> dict[str, str]:
    """The query of a pay of 10.00 to account ``acc<txn>``, as the load generators send it."""
    return {
        "command": "pay",
        "txn_id": txn,
        "txn_date": "20261129120000",
        "account": f"acc{txn}",
        "sum": "10.00",
    }


@dataclass
class Answer:
    result: str
    prv_txn: str | None
    http_status: int


@dataclass
class Qiwi:
    """Sends pays with unique txn_ids; records what each was answered."""

    answered: dict[str, Answer] = field(default_factory=dict)
    unanswered: set[str] = field(default_factory=set)
    http_500: int = 0
    latencies: list[float] = field(default_factory=list)
    sent: int = 0
    next_txn: int = 1

    def new_txn(self) -> str:
        txn = str(self.next_txn)
        self.next_txn += 1
        return txn

    async def pay(self, session: aiohttp.ClientSession, base: str, txn: str) -> Answer | None:
        params = pay_params(txn)
        self.sent += 1
        started = time.monotonic()
        try:
            async with session.get(f"{base}/payment", params=params) as response:
                body = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            self.unanswered.add(txn)
            return None
        self.latencies.append(time.monotonic() - started)
        if status >= 500:
            self.http_500 += 1
        root = ET.fromstring(body)
        answer = Answer(
            result=root.findtext("result") or "",
            prv_txn=root.findtext("prv_txn"),
            http_status=status,
        )
        if answer.result == "0":
            self.unanswered.discard(txn)
            previous = self.answered.get(txn)
            assert previous is None or previous.prv_txn == answer.prv_txn, (txn, previous, answer)
            self.answered[txn] = answer
        else:
            self.unanswered.add(txn)
        return answer

    async def load(
        self,
        bases: list[str],
        *,
        seconds: float,
        concurrency: int,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Closed-loop load, round-robin over ``bases``, until time is up or ``stop``."""
        deadline = time.monotonic() + seconds
        turn = 0
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:

            async def worker() -> None:
                nonlocal turn
                while time.monotonic() < deadline and not (stop and stop.is_set()):
                    turn += 1
                    await self.pay(session, bases[turn % len(bases)], self.new_txn())

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def repeat_unanswered(self, base: str) -> None:
        """What QIWI does: repeat every pay that got no 0 until it does."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for txn in sorted(self.unanswered, key=int):
                answer = await self.pay(session, base, txn)
                assert answer is not None, txn
                assert answer.result == "0", (txn, answer)

    def p99_ms(self) -> float:
        return p99_ms(self.latencies)


class Payer:
    """Sends pays with fresh txn_ids from 127.0.0.1, one at a time; records latency.
    ``reconnect``: a new connection for every pay, as QIWI's servers may open."""

    def __init__(
        self, base: str, *, first_txn: int = 1, auth: str | None = AUTH, reconnect: bool = False
    ) -> None:
        self.base = base
        self.next_txn = first_txn
        self.auth = auth
        self.reconnect = reconnect
        self.latencies: list[float] = []
        self.answers: list[str] = []

    async def pay(self, session: aiohttp.ClientSession) -> str:
        txn = str(self.next_txn)
        self.next_txn += 1
        params = pay_params(txn)
        headers = {"Authorization": self.auth} if self.auth else {}
        started = time.perf_counter()
        try:
            async with session.get(
                f"{self.base}/payment", params=params, headers=headers
            ) as response:
                body = await response.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            result = f"error: {type(exc).__name__}"
        else:
            result = body.split("<result>")[1].split("<")[0] if "<result>" in body else "?"
        self.latencies.append(time.perf_counter() - started)
        self.answers.append(result)
        return result

    async def run(self, count: int) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(local_addr=(QIWI, 0), limit=1, force_close=self.reconnect)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            for _ in range(count):
                await self.pay(session)

    async def run_until(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(local_addr=(QIWI, 0), limit=1, force_close=self.reconnect)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            while not stop.is_set():
                await self.pay(session)


def median_ms(latencies: list[float]) -> float:
    return 1000 * statistics.median(latencies) if latencies else 0.0


def p99_ms(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


async def pay(session: aiohttp.ClientSession, base: str, txn: str) -> float:
    """Send a pay; the monotonic time it was sent. Fails unless answered 0."""
    sent = time.monotonic()
    params = {
        "command": "pay",
        "txn_id": txn,
        "txn_date": "20261130120000",
        "account": f"acc{txn}",
        "sum": "10.00",
    }
    async with session.get(f"{base}/payment", params=params) as response:
        body = await response.text()
    assert "<result>0</result>" in body, body
    return sent
